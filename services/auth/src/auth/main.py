"""create_app(settings) -> the auth service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from auth import demo, events, keys, passwords, service
from auth.api import admin, internal, routes
from auth.api.examples import EXAMPLES
from auth.settings import AuthSettings
from common.app import build_app
from common.events import EventBus
from common.runtime import open_runtime

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def configure_passwords(settings: AuthSettings) -> None:
    passwords.configure(passwords.HashParameters(time_cost=settings.argon2_time_cost,
                                                 memory_kib=settings.argon2_memory_kib,
                                                 parallelism=settings.argon2_parallelism),
                        threads=settings.password_hash_threads)


def create_app(settings: AuthSettings | None = None, *, bus: EventBus | None = None,
               http_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_passwords(settings)
        async with open_runtime(settings, migrations_dir=MIGRATIONS_DIR, handlers=events.HANDLERS,
                                bus=bus, http_transport=http_transport) as runtime:
            keyring = runtime.resources["keyring"] = keys.KeyRing(settings)

            async def can_sign() -> None:
                """Not ready while no key can sign (e.g. its key-encryption key is not configured):
                every login would fail."""
                async with runtime.db.session() as session:
                    await keyring.signing_key(db_session=session)

            runtime.health_checks["signing_key"] = can_sign
            async with runtime.db.startup_transaction("bootstrap") as session:
                await keys.ensure_signing_key(db_session=session, settings=settings)
                await service.ensure_service_clients(
                    db_session=session, secrets_by_client=settings.service_client_secrets())
                if settings.seed_demo_data:
                    await demo.seed(db_session=session)
            app.state.runtime = runtime
            yield

    return build_app(settings, title="Triple Academy auth",
                     description="Accounts, sessions, signing keys and service clients.",
                     lifespan=lifespan, routers=[routes.router, admin.router, internal.router], examples=EXAMPLES)
