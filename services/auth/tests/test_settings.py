"""Settings that protect production: no mail-to-log, no unencrypted signing keys, ASVS password lengths,
KEK format."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from auth import keys
from auth.settings import AuthSettings

PRODUCTION: dict[str, Any] = {
    "environment": "production", "database_url": "postgresql+psycopg://auth:Vq7Lm2Xr9Tz4Wp8Kd1@db/triple",
    "service_clients": "billing:Zq8x7Lw2Rt5Yb9Nc4Vm1", "service_client_secret": "Hn4Kd8Wq2Lx6Rb9Tz3Vc",
    "smtp_host": "smtp.internal",
    "signing_key_encryption_keys": "kR3v8Qm1Zt6Wn2Yp5Lc9Hd4Fg7Js0Xb3Ua8Ne1Ti6Oq",
}


def test_production_needs_an_smtp_relay() -> None:
    AuthSettings(**PRODUCTION)
    with pytest.raises(ValidationError, match="SMTP"):
        AuthSettings(**{**PRODUCTION, "smtp_host": None})


def test_production_never_stores_signing_keys_unencrypted() -> None:
    with pytest.raises(ValidationError, match="AUTH_SIGNING_KEY_ENCRYPTION_KEYS"):
        AuthSettings(**{**PRODUCTION, "signing_key_encryption_keys": None})


def test_password_limits_cannot_go_below_asvs() -> None:
    with pytest.raises(ValidationError):
        AuthSettings(password_min_length=6)
    with pytest.raises(ValidationError):
        AuthSettings(password_max_length=32)


def test_key_encryption_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        keys.KeyEncryption.from_settings(AuthSettings(signing_key_encryption_keys=SecretStr("c2hvcnQ")))
    assert keys.KeyEncryption.from_settings(AuthSettings(signing_key_encryption_keys=SecretStr(
        keys.generate_kek()))).enabled
    assert not keys.KeyEncryption.from_settings(AuthSettings()).enabled


def test_allowed_origins_default_to_the_public_base_url() -> None:
    assert AuthSettings(public_base_url="https://academy.example.com/").origins() == {"https://academy.example.com"}
    assert AuthSettings(allowed_origins="https://a.example, https://b.example/").origins() == {
        "https://a.example", "https://b.example"}
