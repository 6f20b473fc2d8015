"""Test kit of auth's tests: auth alone on real PostgreSQL and Redis, mail to a real local SMTP server.

Every response any test receives is checked for password hashes (the "no response ever contains
a password hash" rule holds for the whole suite, not just one test).
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import sqlalchemy as sa
from fastapi import FastAPI

from auth.main import create_app
from auth.models import AuditEvent
from auth.settings import AuthSettings
from common.events.tables import outbox
from common.http import LazyASGITransport
from common.runtime import Runtime
from common.testing import (
    REDIS_URL,
    TEST_BASE_URL,
    MailCatcher,
    postgres_database,
    serve_in_process,
    smtp_server,
    unique_name,
)

BILLING_SECRET = "billing-test-secret-123456"
CATALOG_SECRET = "catalog-test-secret-123456"
PASSWORD = "correct horse battery"
CODE = re.compile(r"code: ([0-9a-f]{48})")


async def _no_password_hash(response: httpx.Response) -> None:
    body = await response.aread()
    assert b"$argon2" not in body, response.request.url


class HasherSpy:
    """Stands in for the argon2 hasher: records the thread of every hash/verify and the parameter
    prefix of every hash verified against, then delegates to the real one."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.threads: list[str] = []
        self.verified: list[str] = []

    def hash(self, password: str) -> str:
        self.threads.append(threading.current_thread().name)
        return str(self.real.hash(password))

    def verify(self, hashed: str, password: str) -> bool:
        self.threads.append(threading.current_thread().name)
        self.verified.append(hashed.rsplit("$", 2)[0])  # algorithm and parameters, not salt and hash
        return bool(self.real.verify(hashed, password))

    def check_needs_rehash(self, hashed: str) -> bool:
        return bool(self.real.check_needs_rehash(hashed))


def random_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@dataclass
class Auth:
    client: httpx.AsyncClient
    app: FastAPI
    mailbox: MailCatcher
    settings: AuthSettings

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def register(self, email: str | None = None, password: str = PASSWORD,
                       full_name: str = "Test User") -> dict[str, Any]:
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        response = await self.client.post("/register", json={"email": email, "password": password,
                                                              "full_name": full_name})
        assert response.status_code == 201, response.text
        user: dict[str, Any] = response.json()
        return user

    async def login(self, email: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
        response = await self.client.post("/login", json={"email": email, "password": password, **extra},
                                          headers={"X-Real-IP": random_ip()})
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    async def user_with_tokens(self, password: str = PASSWORD) -> tuple[dict[str, Any], dict[str, Any]]:
        user = await self.register(password=password)
        return user, await self.login(user["email"], password)

    async def admin_tokens(self) -> dict[str, Any]:
        return await self.login("admin@triple.academy", "Admin-Demo-2026!")

    async def code_from_mail(self, to: str, subject: str) -> str:
        message = await self.mailbox.wait_for(to, subject_contains=subject)
        match = CODE.search(message.get_content())
        assert match, message.get_content()
        return match.group(1)

    async def events(self, routing_key: str, **match: str) -> list[dict[str, Any]]:
        async with self.runtime.db.session() as session:
            rows = (await session.execute(sa.select(outbox.c.envelope).where(outbox.c.routing_key == routing_key)
                                          .order_by(outbox.c.created_at))).scalars().all()
        return [r["payload"] for r in rows if all(r["payload"].get(k) == v for k, v in match.items())]

    async def audit(self, action: str, subject_id: str | None = None) -> list[AuditEvent]:
        async with self.runtime.db.session() as session:
            query = sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.occurred_at)
            if subject_id:
                query = query.where(AuditEvent.subject_id == uuid.UUID(subject_id))
            return list((await session.scalars(query)).all())

    async def service_token(self, client_id: str, secret: str, audience: str = "auth") -> str:
        response = await self.client.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "audience": audience})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def auth_settings(database_url: str, mailbox: MailCatcher, **overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "database_url": database_url, "migrate_on_start": True, "redis_url": REDIS_URL,
        "redis_key_prefix": unique_name("t") + ":", "auth_url": TEST_BASE_URL, "public_base_url": TEST_BASE_URL,
        "log_json": False, "seed_demo_data": True,
        "service_clients": f"billing:{BILLING_SECRET},catalog:{CATALOG_SECRET}",
        **mailbox.settings(), **overrides,
    }
    return AuthSettings(**values)


@asynccontextmanager
async def open_auth(**overrides: Any) -> AsyncIterator[Auth]:
    """Auth alone on a fresh PostgreSQL database (demo accounts seeded), its own Redis prefix."""
    with postgres_database(["auth"]) as urls, smtp_server() as mailbox:
        settings = auth_settings(urls["auth"], mailbox, **overrides)
        transport = LazyASGITransport()
        app = create_app(settings, http_transport=transport)
        async with serve_in_process(app, transport) as client:
            client.event_hooks["response"] = [_no_password_hash]
            yield Auth(client=client, app=app, mailbox=mailbox, settings=settings)
