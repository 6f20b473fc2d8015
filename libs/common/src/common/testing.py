"""Test helpers shared by every service's tests: run an app in-process, fresh PostgreSQL schemas.

Tests talk to real PostgreSQL/Redis/RabbitMQ; names are unique per run so no state leaks
between runs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
import jwt
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from common import pgbootstrap
from common.events import Envelope
from common.events.consumer import HandlerMap, InboxConsumer
from common.http import LazyASGITransport
from common.runtime import Runtime
from common.settings import composed_urls

if TYPE_CHECKING:
    from pytest import MonkeyPatch

T = TypeVar("T")
# The password of the accounts test suites create (long enough for the password policy).
TEST_PASSWORD = "correct horse battery"

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
TEST_BASE_URL = "http://testserver"


@dataclass
class DatabaseWork:
    """What the database was asked inside a `database_work` block."""

    statements: list[str] = field(default_factory=list)
    commits: int = 0


_database_work: ContextVar[DatabaseWork | None] = ContextVar("database_work", default=None)


def _count_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    work = _database_work.get()
    if work is not None:
        work.statements.append(statement)


def _count_commit(_conn: Any) -> None:
    work = _database_work.get()
    if work is not None:
        work.commits += 1


@contextmanager
def database_work(engine: AsyncEngine) -> Iterator[DatabaseWork]:
    """SQL statements and commits the current task makes on `engine` inside the block (an in-process
    request runs in the caller's task). Background tasks (outbox relay, batched writers) run in
    their own contexts and are not counted: the hot paths' regression guards count per request.
    The pool's pre-ping is not a cursor statement and is not counted either."""
    work = DatabaseWork()
    token = _database_work.set(work)
    event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    event.listen(engine.sync_engine, "commit", _count_commit)
    try:
        yield work
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", _count_statement)
        event.remove(engine.sync_engine, "commit", _count_commit)
        _database_work.reset(token)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def in_process_settings(database_url: str) -> dict[str, Any]:
    """Settings every service gets in a test platform served by `serve_in_process`."""
    return {**composed_urls(TEST_BASE_URL), "database_url": database_url, "migrate_on_start": True,
            "log_json": False}


@contextmanager
def postgres_database(services: list[str]) -> Iterator[dict[str, str]]:
    """A fresh database with one role-owned schema per service; yields service -> async URL."""
    database = unique_name("triple_test")
    roles = {name: (f"triple_{name}", f"test-{name}-pw") for name in services}
    pgbootstrap.bootstrap(PG_ADMIN_DSN, database, roles)
    urls = {name: pgbootstrap.role_url(PG_ADMIN_DSN, database, role, password)
            for name, (role, password) in roles.items()}
    try:
        yield urls
    finally:
        pgbootstrap.drop_database(PG_ADMIN_DSN, database)


@asynccontextmanager
async def serve_in_process(app: Starlette, transport: LazyASGITransport | None = None,
                           ) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client talking to it without a socket.

    Pass the same `transport` the app was created with so its own outgoing calls (JWKS, other
    services mounted on the same app) loop back in-process.
    """
    if transport is not None:
        transport.bind(app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=TEST_BASE_URL) as client:
        yield client


class MailCatcher:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.host = "127.0.0.1"
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(cast(EmailMessage, message_from_bytes(envelope.content, policy=default_policy)))
        return "250 Message accepted for delivery"

    def settings(self) -> dict[str, Any]:
        """Service settings that send mail here."""
        return {"smtp_host": self.host, "smtp_port": self.port}

    async def wait_for(self, to: str, *, subject_contains: str = "") -> EmailMessage:
        """The newest message to `to` whose subject contains the text, waiting up to 10 s for it."""
        async with asyncio.timeout(10):
            while True:
                for message in reversed(self.messages):
                    if message["To"] == to and subject_contains in str(message["Subject"]):
                        return message
                await asyncio.sleep(0.05)


def mail_text(message: EmailMessage) -> str:
    """The plain-text body of a message, with or without attachments."""
    body = message.get_body(("plain",))
    assert body is not None, "no text/plain body"
    return str(body.get_content())


@contextmanager
def smtp_server() -> Iterator[MailCatcher]:
    """Run a MailCatcher on a free loopback port for the duration of the block."""
    from aiosmtpd.controller import Controller

    catcher = MailCatcher()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        catcher.port = probe.getsockname()[1]
    controller = Controller(catcher, hostname=catcher.host, port=catcher.port)
    controller.start()
    try:
        yield catcher
    finally:
        controller.stop()


def assert_migrations_sound(migrations_dir: Path, url: str, schema: str | None, *, downgrades: bool = True) -> None:
    """Every service's migration checks, on the database `url` points at (empty):

    one head (two would mean parallel branches nobody merged); at the head the models and the schema
    agree (Alembic's autogenerate finds nothing to do); and with `downgrades`, every revision upgrades,
    downgrades and upgrades again (a stairway, so each downgrade really undoes its upgrade) and the
    way down to base leaves none of the service's tables behind.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    from common.migrations import alembic_config, sync_url

    cfg = alembic_config(migrations_dir, url, schema)
    script = ScriptDirectory.from_config(cfg)
    heads = script.get_heads()
    assert len(heads) == 1, f"{migrations_dir}: several heads {heads}: merge them (alembic merge)"
    if not downgrades:
        command.upgrade(cfg, "heads")
        command.check(cfg)
        return
    for revision in reversed(list(script.walk_revisions())):
        command.upgrade(cfg, revision.revision)
        if not revision.is_merge_point:  # a merge changes nothing; its parents are stepped on their own
            command.downgrade(cfg, str(revision.down_revision or "base"))
            command.upgrade(cfg, revision.revision)
    command.check(cfg)  # raises AutogenerateDiffsDetected, naming each difference
    command.downgrade(cfg, "base")
    engine = sa.create_engine(sync_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            left = set(sa.inspect(connection).get_table_names(schema=schema)) - {"alembic_version"}
    finally:
        engine.dispose()
    assert not left, f"{migrations_dir}: downgrade to base leaves {sorted(left)}"
    command.upgrade(cfg, "heads")


def eventually(check: Callable[[], T | None], *, within: float = 20.0, interval: float = 0.2,
               what: str = "condition") -> T:
    """Poll `check()` until it is truthy and return its value: events cross services
    asynchronously, so tests wait for their effect, bounded."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(interval)


async def eventually_async(check: Callable[[], Awaitable[T | None]], *, within: float = 5.0, interval: float = 0.05,
                           what: str = "condition") -> T:
    """`eventually` for an async check (work done after a commit, by a worker or a consumer)."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class ServicePlatform:
    """One service under test, served in process beside auth (and the peers it needs) behind a
    composed gateway: the harness every service suite shares; each suite's `Platform` adds its
    service's own helpers."""

    client: httpx.AsyncClient
    app: FastAPI  # the service under test

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def consume(self, envelope: Envelope, handlers: HandlerMap) -> Envelope:
        """Hand an event to the service's inbox consumer, as the transport would."""
        await InboxConsumer(self.runtime.db, self.runtime.settings.service_name, handlers)(envelope)
        return envelope

    async def register(self, *, full_name: str = "Test Learner", prefix: str = "learner",
                       password: str = TEST_PASSWORD) -> tuple[str, str, str]:
        """A new account through the public API: (user id, email, password)."""
        email = f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"
        response = await self.client.post("/api/auth/register", json={
            "email": email, "password": password, "full_name": full_name})
        assert response.status_code == 201, response.text
        return str(response.json()["id"]), email, password

    async def access_token(self, email: str, password: str) -> str:
        response = await self.client.post("/api/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def count_jwt_decodes(monkeypatch: MonkeyPatch) -> list[str]:
    """The tokens PyJWT is asked to decode from now on: one answered from a verified-token cache
    (`common.security.VerifiedTokens`) is not."""
    decoded: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return decoded
