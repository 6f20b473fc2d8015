"""Is PostgreSQL, Redis and RabbitMQ there? Checked before `make test` and `make up` use them, so a
newcomer reads one line per missing piece (what, where, how to start it or where to point) instead of
a wall of tracebacks from the first fixture that connects."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import psycopg
import redis

TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Dependency:
    """One piece of infrastructure: its URL, the setting that points to it, how to start one."""

    name: str
    url: str
    setting: str
    start_hint: str


def postgres(dsn: str, setting: str) -> Dependency:
    return Dependency("PostgreSQL", dsn, setting,
                      "sudo pg_ctlcluster $(ls /etc/postgresql) main start, or "
                      "docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16")


def redis_server(url: str, setting: str) -> Dependency:
    return Dependency("Redis", url, setting,
                      "redis-server --daemonize yes --bind 127.0.0.1 --save '', or docker run -d -p 6379:6379 redis:7")


def rabbitmq(url: str, setting: str) -> Dependency:
    return Dependency("RabbitMQ", url, setting,
                      "sudo rabbitmq-server -detached, or docker run -d -p 5672:5672 rabbitmq:3")


def _ping_postgres(dsn: str) -> None:
    with psycopg.connect(dsn, connect_timeout=int(TIMEOUT_SECONDS)) as conn:
        conn.execute("SELECT 1")


def _ping_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()


def _ping_rabbitmq(url: str) -> None:
    async def ping() -> None:
        connection = await aio_pika.connect(url, timeout=TIMEOUT_SECONDS)
        await connection.close()

    # aiormq logs its own failure too: the one line below says it already.
    quiet = [logging.getLogger(name) for name in ("aiormq", "aio_pika")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        asyncio.run(ping())
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


PINGS: dict[str, Callable[[str], None]] = {
    "PostgreSQL": _ping_postgres, "Redis": _ping_redis, "RabbitMQ": _ping_rabbitmq}


def where(url: str) -> str:
    """host:port of a URL, without its credentials (libpq key=value DSNs are shown as they are)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def problem(dependency: Dependency) -> str | None:
    """One line when the dependency does not answer, None when it does."""
    try:
        PINGS[dependency.name](dependency.url)
    except Exception as exc:  # any failure means "not usable", said in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (f"{dependency.name} does not answer at {where(dependency.url)} ({reason[:160]}): start it "
                f"({dependency.start_hint}) or point {dependency.setting} at a running one.")
    return None


def problems(dependencies: list[Dependency]) -> list[str]:
    return [line for line in map(problem, dependencies) if line]


def missing_tools(tools: dict[str, str]) -> list[str]:
    """`tools`: binary -> Debian package; one line per binary not on PATH (nor in /usr/sbin)."""
    return [f"{binary} is not installed: sudo apt-get install {package}" for binary, package in tools.items()
            if not (shutil.which(binary) or Path("/usr/sbin", binary).exists())]
