"""`python -m auth ...` (also the `triple-auth` console script): one-shot operator commands.

    migrate                          apply migrations, create the first signing key and service clients
    create-admin --email E           create (or promote) an admin; password from a prompt or --password-stdin
    keys list                        signing keys and their state
    keys rotate [--activate-in S]    add the next key: published now, signs after S seconds
    keys prune                       retire keys whose tokens have all expired (wipes their private half)
    keys revoke KID                  emergency: unpublish a key now (a fresh key takes over if needed)
    keys rewrap                      re-encrypt private keys under the first key-encryption key
    keys generate-kek                print a new key-encryption key for AUTH_SIGNING_KEY_ENCRYPTION_KEYS
    events outbox|dlq ...           dead outbox rows and dead letters (common.events.tooling)

Every command reads the same settings as the service (AUTH_* environment), so it works in any
mode: embedded (the SQLite file under var/data, migrated first), `make up`, compose, Kubernetes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from auth import events, keys, service
from auth.main import MIGRATIONS_DIR, configure_passwords
from auth.models import SigningKey
from auth.settings import AuthSettings
from common import cli, migrations
from common.db import Database, utcnow
from common.errors import DomainError
from common.events import tooling

T = TypeVar("T")


async def _in_transaction(settings: AuthSettings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    db = Database(settings.database_url.get_secret_value(), settings.db_schema)
    try:
        async with db.startup_transaction("bootstrap") as session:
            return await work(session)
    finally:
        await db.dispose()


async def _bootstrap(settings: AuthSettings) -> None:
    async def work(session: AsyncSession) -> None:
        await keys.ensure_signing_key(db_session=session, settings=settings)
        await service.ensure_service_clients(db_session=session, secrets_by_client=settings.service_client_secrets())

    await _in_transaction(settings, work)


def _ensure_schema(settings: AuthSettings) -> None:
    """Embedded mode migrates on start; the CLI does the same so it works before the first `make run`."""
    if settings.should_migrate_on_start:
        migrations.upgrade(MIGRATIONS_DIR, settings.database_url.get_secret_value(), settings.db_schema)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the passwords differ")
    return first


def _describe(key: SigningKey, now: dt.datetime) -> str:
    if key.retired_at is not None or (key.retire_after is not None and key.retire_after <= now):
        state = "retired"
    elif key.activates_at > now:
        state = f"pending (signs from {key.activates_at.isoformat()})"
    elif key.retire_after is not None:
        state = f"active, superseded (published until {key.retire_after.isoformat()})"
    else:
        state = "active"
    return f"{key.kid}  created {key.created_at.isoformat()}  {state}"


def _keys(settings: AuthSettings, args: argparse.Namespace) -> None:
    if args.keys_command == "generate-kek":
        print(keys.generate_kek())
        return
    _ensure_schema(settings)

    async def work(session: AsyncSession) -> None:
        if args.keys_command == "list":
            now = utcnow()
            for key in await keys.list_keys(db_session=session):
                print(_describe(key, now))
        elif args.keys_command == "rotate":
            delay = None if args.activate_in is None else dt.timedelta(seconds=args.activate_in)
            new = await keys.rotate(db_session=session, settings=settings, activate_in=delay)
            print(f"added {new.kid}; it signs from {new.activates_at.isoformat()}")
        elif args.keys_command == "prune":
            print("retired: " + (", ".join(await keys.prune(db_session=session)) or "none"))
        elif args.keys_command == "revoke":
            await keys.revoke(db_session=session, settings=settings, kid=args.kid)
            print(f"revoked {args.kid}")
        elif args.keys_command == "rewrap":
            print(f"re-encrypted {await keys.rewrap(db_session=session, settings=settings)} key(s)")

    try:
        asyncio.run(_in_transaction(settings, work))
    except keys.SigningKeyError as exc:
        raise SystemExit(str(exc)) from exc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m auth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply migrations, create the first signing key and service clients")
    admin = sub.add_parser("create-admin", help="create (or promote) an admin account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--full-name", default="Administrator")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    key_cmd = sub.add_parser("keys", help="signing keys: list, rotate, prune, revoke, rewrap")
    key_sub = key_cmd.add_subparsers(dest="keys_command", required=True)
    key_sub.add_parser("list")
    rotate = key_sub.add_parser("rotate")
    rotate.add_argument("--activate-in", type=int, default=None, metavar="SECONDS",
                        help="delay before the new key signs (default AUTH_KEY_ACTIVATION_DELAY_SECONDS)")
    key_sub.add_parser("prune")
    revoke = key_sub.add_parser("revoke")
    revoke.add_argument("kid")
    key_sub.add_parser("rewrap")
    key_sub.add_parser("generate-kek")
    tooling.add_parser(sub)
    args = parser.parse_args(argv)
    settings = AuthSettings()
    if args.command == "migrate":
        cli.migrate(settings, MIGRATIONS_DIR, events.HANDLERS)
        asyncio.run(_bootstrap(settings))
    elif args.command == "create-admin":
        _ensure_schema(settings)
        configure_passwords(settings)
        password = _read_password(args.password_stdin)

        async def work(session: AsyncSession) -> None:
            user = await service.create_admin(db_session=session, email=args.email, password=password,
                                              full_name=args.full_name, settings=settings)
            print(f"admin {user.email} ({user.id})")

        try:
            asyncio.run(_in_transaction(settings, work))
        except DomainError as exc:
            raise SystemExit(exc.detail) from exc
    elif args.command == "keys":
        _keys(settings, args)
    elif args.command == "events":
        tooling.run(settings, args)


if __name__ == "__main__":
    main()
