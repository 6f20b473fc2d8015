"""Settings hold connection URLs as secrets: masked in repr and logs, checked in production, readable
from secret files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")


STRONG = "Vq7Lm2Xr9Tz4Wp8Kd1Hs"
PRODUCTION: dict[str, Any] = {"environment": "production",
              "database_url": f"postgresql+psycopg://triple_demo:{STRONG}@db:5432/triple",
              "redis_url": f"redis://:{STRONG}@redis:6379/0",
              "broker_url": f"amqp://triple:{STRONG}@rabbitmq:5672/"}


@pytest.mark.parametrize(("field", "url"), [
    ("database_url", "postgresql+psycopg://triple_auth:dev-auth-db-password@postgres:5432/triple"),
    ("database_url", "postgresql+psycopg://triple_auth:pw@postgres:5432/triple"),
    ("redis_url", "redis://:change-me@redis:6379/0"),
    ("broker_url", "amqp://guest:guest@rabbitmq:5672/"),
])
def test_production_refuses_a_placeholder_password_inside_a_url(field: str, url: str) -> None:
    with pytest.raises(ValidationError, match=f"{field} \\(password\\)") as raised:
        DemoSettings(**{**PRODUCTION, field: url})
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in str(raised.value), "the refusal prints the password it refuses"


def test_production_accepts_strong_or_absent_url_passwords() -> None:
    DemoSettings(**PRODUCTION)
    # Certificate or IAM authentication: no password in the URL, nothing to refuse.
    DemoSettings(**{**PRODUCTION, "database_url": "postgresql+psycopg://triple_demo@db/triple?sslmode=verify-full",
                    "redis_url": "rediss://redis:6380/0"})


def test_repr_and_dumps_mask_every_connection_url() -> None:
    settings = DemoSettings(**PRODUCTION)
    for shown in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert STRONG not in shown
    assert settings.database_url.get_secret_value() == PRODUCTION["database_url"]
    assert not settings.is_sqlite


def test_secret_files_are_read_from_the_services_secrets_dir(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A mounted Secret volume: one file per variable; the environment still wins over a file."""
    for name in ("DEMO_DATABASE_URL", "DEMO_REDIS_URL", "DEMO_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "DEMO_DATABASE_URL").write_text(PRODUCTION["database_url"])
    (tmp_path / "DEMO_REDIS_URL").write_text(PRODUCTION["redis_url"])
    monkeypatch.setenv("DEMO_SECRETS_DIR", str(tmp_path))
    settings = DemoSettings()
    assert settings.database_url.get_secret_value() == PRODUCTION["database_url"]
    assert settings.redis_url is not None and settings.redis_url.get_secret_value() == PRODUCTION["redis_url"]
    monkeypatch.setenv("DEMO_REDIS_URL", "redis://redis-from-env:6379/0")
    assert DemoSettings().redis_url.get_secret_value() == "redis://redis-from-env:6379/0"  # type: ignore[union-attr]
    monkeypatch.delenv("DEMO_SECRETS_DIR")
    assert DemoSettings().database_url.get_secret_value().startswith("sqlite")
