"""The audit log is append-only; the operator CLI works in both modes (PostgreSQL and the
embedded SQLite file); the password list ships with the package."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from auth_testkit import Auth, bearer
from sqlalchemy.exc import DBAPIError

from auth import passwords
from auth.__main__ import main as cli_main
from auth.models import AuditEvent

SRC = Path(passwords.__file__).parent


async def test_audit_log_refuses_update_and_delete(auth: Auth) -> None:
    await auth.user_with_tokens()
    for statement in (sa.update(AuditEvent).values(action="tampered"), sa.delete(AuditEvent),
                      sa.text("TRUNCATE audit_log")):
        with pytest.raises(DBAPIError, match="append-only"):
            async with auth.runtime.db.transaction() as session:
                await session.execute(statement)
    async with auth.runtime.db.session() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) > 0
        assert not await session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                        .where(AuditEvent.action == "tampered"))


def test_no_code_path_updates_or_deletes_audit_entries() -> None:
    for source in SRC.rglob("*.py"):
        text = source.read_text()
        for forbidden in ("update(AuditEvent", "delete(AuditEvent", "audit_log SET", "FROM audit_log"):
            assert forbidden not in text, f"{forbidden} in {source.name}"


def test_common_password_list_is_the_top_10000() -> None:
    common = passwords.common_passwords()
    assert isinstance(common, frozenset) and len(common) == 10_000
    assert {"123456", "password", "qwerty", "iloveyou"} <= common
    assert passwords.common_passwords() is common  # loaded once


def _subprocess_cli(env: dict[str, str], *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auth", *args], env={**os.environ, **env}, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


async def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
               stdin: str = "") -> tuple[int, str, str]:
    """`python -m auth ...` in-process (the interpreter start-up costs seconds on a busy machine)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        await asyncio.to_thread(cli_main, list(args))
    except SystemExit as exc:
        code, message = (exc.code, "") if isinstance(exc.code, int) else (1, str(exc.code))
        captured = capsys.readouterr()
        return code, captured.out, captured.err + message
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_cli_creates_the_first_admin_and_rotates_keys_on_postgres(
        auth: Auth, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AUTH_DATABASE_URL", auth.settings.database_url.get_secret_value())
    code, out, err = await _cli(monkeypatch, capsys, "create-admin", "--email", "Ops.Admin@Example.com",
                                "--full-name", "Ops", "--password-stdin", stdin="an operator passphrase\n")
    assert code == 0, err
    assert "admin ops.admin@example.com" in out
    code, _out, err = await _cli(monkeypatch, capsys, "create-admin", "--email", "weak@example.com",
                                 "--password-stdin", stdin="password\n")
    assert code != 0 and "too common" in err

    tokens = await auth.login("ops.admin@example.com", "an operator passphrase")
    assert (await auth.client.get("/admin/users", headers=bearer(tokens))).status_code == 200

    code, _out, err = await _cli(monkeypatch, capsys, "keys", "rotate", "--activate-in", "600")
    assert code == 0, err
    _code, listing, _err = await _cli(monkeypatch, capsys, "keys", "list")
    assert "active, superseded" in listing and "pending" in listing
    assert len((await auth.client.get("/.well-known/jwks.json")).json()["keys"]) == 2
    code, _out, err = await _cli(monkeypatch, capsys, "keys", "rotate")
    assert code != 0 and "already waiting" in err


def test_python_m_auth_creates_an_admin_in_the_embedded_sqlite_file(tmp_path: Path) -> None:
    env = {"AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}", "AUTH_LOG_JSON": "false"}
    created = _subprocess_cli(env, "create-admin", "--email", "first@example.com", "--password-stdin",
                              stdin="first admin passphrase\n")
    assert created.returncode == 0, created.stderr
    assert "admin first@example.com" in created.stdout and (tmp_path / "auth.db").exists()
