"""Async SQLAlchemy per service: PostgreSQL (own schema via search_path) or a SQLite file."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg import errors as psycopg_errors
from psycopg.abc import PQGen
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from common.observability import context as obs_context

RV = TypeVar("RV")
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite drops the offset otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def upsert_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both backends (the PostgreSQL or SQLite construct)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(table)


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long a stalled or unreachable database may cost a request: opening a connection, waiting
    for a free one in the pool, and one statement (server-side). 0 turns one off (migrations)."""

    connect: float = 3.0
    checkout: float = 3.0
    statement: float = 5.0

    @property
    def answer(self) -> float | None:
        """How long the client waits for any answer of the server (a statement, a commit, a ping)
        before it closes the connection: one second past the server's own statement timeout, so a
        slow statement is still cancelled cleanly by the server and only a server or link that
        stopped answering reaches it. The server cannot enforce its timeout on a link that lost
        the statement or its answer, and psycopg's cancellation of an abandoned statement waits up
        to 5 + 5 s more on such a link."""
        return self.statement + 1.0 if self.statement else None


def is_sqlite_url(url: str) -> bool:
    """The one place that tells the embedded backend (SQLite) from PostgreSQL by its URL."""
    return url.startswith("sqlite")


def engine_options(url: str, schema: str | None, pool_size: int = 10,
                   timeouts: DatabaseTimeouts | None = None) -> dict[str, Any]:
    """Connection arguments shared by the app engine and the migration engine."""
    if is_sqlite_url(url):
        return {"connect_args": {"timeout": 30}}
    options: dict[str, Any] = {}
    connect_args: dict[str, Any] = {}
    server_options = []
    if schema:
        server_options.append(f"-csearch_path={schema}")
    if timeouts is not None:
        if timeouts.connect:
            connect_args["connect_timeout"] = max(1, round(timeouts.connect))
        if timeouts.statement:
            server_options.append(f"-cstatement_timeout={int(timeouts.statement * 1000)}")
        if timeouts.answer and "+psycopg" in url:
            # A real partition drops packets: the kernel closes a connection whose sent bytes stay
            # unacknowledged this long (libpq's tcp_user_timeout, milliseconds), cancel requests
            # included, where the client's answer deadline below cannot reach.
            connect_args["tcp_user_timeout"] = int(timeouts.answer * 1000)
        if timeouts.checkout:
            options["pool_timeout"] = timeouts.checkout
    if server_options:
        connect_args["options"] = " ".join(server_options)
    if connect_args:
        options["connect_args"] = connect_args
    if "+psycopg" in url:
        # Every connection up to the ceiling stays open: an overflow connection is closed when it is
        # handed back, and under load that meant a new PostgreSQL backend (a fork) for many requests.
        # Size it so that replicas x pool_size of every service fits max_connections.
        options["pool_size"] = pool_size
        options["max_overflow"] = 0
    return options


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, emit BEGIN: savepoints then nest for real (SQLAlchemy's
    # documented pysqlite/aiosqlite recipe), see _sqlite_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    """IMMEDIATE takes the write lock up front: a read-then-write transaction can then never fail
    with 'database is locked' when it upgrades (SQLite does not wait in that case)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite file URL so a fresh checkout just runs."""
    prefix = url.split(":///", 1)
    if is_sqlite_url(url) and len(prefix) == 2 and prefix[1] not in ("", ":memory:"):
        Path(prefix[1]).parent.mkdir(parents=True, exist_ok=True)


# A connection handed back less than this long ago is used without a ping: under load every checkout
# would otherwise pay a `SELECT 1` round trip; one that sat idle (where a server restart or a cut
# link hides) is pinged first and replaced when dead, as SQLAlchemy's pool_pre_ping does.
PING_AFTER_IDLE_SECONDS = 1.0


# The idle ping gets less than a statement: a healthy server answers an empty query at once, and a
# stalled link then costs this plus the connect timeout of the replacement, not a statement's budget.
PING_ANSWER_SECONDS = 2.0


class AnsweringConnection(psycopg.AsyncConnection[Any]):
    """A psycopg connection that gives up on a server that does not answer within `answer_timeout`:
    it closes the connection and raises OperationalError (SQLAlchemy sees a closed connection and
    invalidates it; the request answers 503). psycopg's own wait takes a deadline (raising its
    `_WaitTimeout`); without one it would wait for as long as the link is stalled, and cancelling
    the waiting task instead sends a cancel request on the same stalled path."""

    answer_timeout: float | None = None

    async def wait(self, gen: PQGen[RV], interval: float = 0.1,
                   timeout: float | None = None) -> RV:  # noqa: ASYNC109 (psycopg's signature)
        if timeout is not None or self.answer_timeout is None:  # a caller's own deadline (psycopg's)
            return await super().wait(gen, interval, timeout)
        try:
            return await super().wait(gen, interval, self.answer_timeout)
        except psycopg_errors._WaitTimeout:
            self.pgconn.finish()  # the protocol state is lost mid-exchange: this connection is done
            raise psycopg.OperationalError(
                f"the database did not answer within {self.answer_timeout:g} s") from None

    @contextmanager
    def answering_within(self, seconds: float) -> Iterator[None]:
        previous, self.answer_timeout = self.answer_timeout, seconds
        try:
            yield
        finally:
            self.answer_timeout = previous


def _answering_connector(answer_timeout: float) -> Callable[..., Awaitable[AnsweringConnection]]:
    async def connect(*args: Any, **kwargs: Any) -> AnsweringConnection:
        connection = await AnsweringConnection.connect(*args, **kwargs)
        connection.answer_timeout = answer_timeout
        return connection

    return connect


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dialect: Dialect) -> Callable[[Any, Any, Any], None]:
    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is not None and time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
            return
        driver = record.driver_connection
        answering = (driver.answering_within(PING_ANSWER_SECONDS) if isinstance(driver, AnsweringConnection)
                     else nullcontext())
        try:
            with answering:
                dialect.do_ping(dbapi_connection)  # the dialect's own ping, as pool_pre_ping runs it
        except Exception as exc:  # any failure: the pool discards this connection and opens another
            raise sa_exc.DisconnectionError() from exc

    return checkout


class Database:
    """Engine and session factory of one service; opened in lifespan, never at import."""

    def __init__(self, url: str, schema: str | None = None, pool_size: int = 10,
                 timeouts: DatabaseTimeouts | None = None) -> None:
        ensure_sqlite_dir(url)
        self.url = url
        self.is_sqlite = is_sqlite_url(url)
        self.schema = schema
        self.timeouts = timeouts or DatabaseTimeouts()
        options = engine_options(url, schema, pool_size, self.timeouts)
        if "+psycopg" in url and self.timeouts.answer:
            options.setdefault("connect_args", {})["async_creator_fn"] = _answering_connector(
                self.timeouts.answer)
        # Through the module attribute: the OpenTelemetry SQLAlchemy instrumentation wraps that one.
        self.engine: AsyncEngine = sa_asyncio.create_async_engine(url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        else:
            event.listen(self.engine.sync_engine.pool, "checkin", _note_checkin)
            event.listen(self.engine.sync_engine.pool, "checkout", _ping_if_idle(self.engine.dialect))
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL: each statement commits as it completes (no BEGIN/ROLLBACK round trips);
        # SQLite keeps its transactions (there BEGIN is not a round trip). Same pool as `engine`.
        self._statements_engine: AsyncEngine = (
            self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT"))
        self._after_commit_hooks: list[Callable[[AsyncSession], None]] = []

    def on_commit(self, hook: Callable[[AsyncSession], None]) -> None:
        """Run `hook(session)` after each commit of a `transaction()` (e.g. wake the outbox relay)."""
        self._after_commit_hooks.append(hook)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on any error."""
        async with self.sessionmaker() as session, session.begin():
            yield session
        for hook in self._after_commit_hooks:
            hook(session)

    @asynccontextmanager
    async def startup_transaction(self, name: str) -> AsyncIterator[AsyncSession]:
        """A transaction that replicas starting together run one at a time (seeds, first keys).

        PostgreSQL: a transaction-scoped advisory lock; SQLite: BEGIN IMMEDIATE already serializes.
        """
        async with self.transaction() as session:
            if not self.is_sqlite:
                await session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                                      {"name": f"{self.schema}:{name}"})
            yield session

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read-only style session; callers commit explicitly if they write."""
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[AsyncConnection]:
        """A bare connection for hot statements that are each whole on their own (reads, or one
        write that commits as it completes): no ORM session around them, and on PostgreSQL no
        transaction either (no BEGIN and ROLLBACK round trips around a read). On SQLite the
        connection's transaction is rolled back at the end: write there through `transaction()`."""
        async with self._statements_engine.connect() as connection:
            yield connection

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def request_id_column() -> Mapped[str | None]:
    """The id of the request (or, in a consumer, the correlation id of the event) whose transaction
    writes the row: what an evidence trail needs to tie a record to what caused it."""
    return mapped_column(sa.String(128), nullable=True, default=_current_request_id)


def _current_request_id() -> str | None:
    return obs_context.request_id.get()
