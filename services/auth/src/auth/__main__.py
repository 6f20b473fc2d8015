"""`python -m auth migrate | create-admin`: one-shot commands for operators and CI."""

from __future__ import annotations

import argparse
import asyncio
import getpass

from auth import events, keys, service
from auth.main import MIGRATIONS_DIR
from auth.settings import AuthSettings
from common import cli
from common.db import Database


async def _bootstrap(settings: AuthSettings) -> None:
    db = Database(settings.database_url, settings.db_schema)
    try:
        async with db.transaction() as session:
            await keys.ensure_signing_key(db_session=session)
            await service.ensure_service_clients(db_session=session,
                                                 secrets_by_client=settings.service_client_secrets())
    finally:
        await db.dispose()


async def _create_admin(settings: AuthSettings, email: str, password: str, name: str) -> None:
    db = Database(settings.database_url, settings.db_schema)
    try:
        async with db.transaction() as session:
            await service.create_admin(db_session=session, email=email, password=password, full_name=name)
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m auth")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply migrations, create the first signing key and service clients")
    admin = sub.add_parser("create-admin", help="create (or promote) an admin account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--full-name", default="Administrator")
    args = parser.parse_args()
    settings = AuthSettings()
    if args.command == "migrate":
        cli.migrate(settings, MIGRATIONS_DIR, events.HANDLERS)
        asyncio.run(_bootstrap(settings))
    elif args.command == "create-admin":
        password = getpass.getpass("password: ")
        asyncio.run(_create_admin(settings, args.email, password, args.full_name))


if __name__ == "__main__":
    main()
