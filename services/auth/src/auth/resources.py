"""What auth opens besides the shared runtime, typed: read by routes through `ResourcesDep`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from auth import demo, keys, passwords, service
from auth.settings import AuthSettings
from common.app import OpenResources
from common.runtime import Runtime


def configure_passwords(settings: AuthSettings) -> None:
    passwords.configure(passwords.HashParameters(time_cost=settings.argon2_time_cost,
                                                 memory_kib=settings.argon2_memory_kib,
                                                 parallelism=settings.argon2_parallelism),
                        threads=settings.password_hash_threads)



@dataclass(frozen=True)
class AuthResources:
    keyring: keys.KeyRing


def open_resources(settings: AuthSettings) -> OpenResources:
    """Password hashing parameters, the signing keyring (readiness fails while no key can sign),
    then the bootstrap writes: a signing key, the service clients and, embedded, the demo data."""

    @asynccontextmanager
    async def open_auth(runtime: Runtime) -> AsyncIterator[AuthResources]:
        configure_passwords(settings)
        keyring = keys.KeyRing(settings)

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
        yield AuthResources(keyring=keyring)

    return open_auth
