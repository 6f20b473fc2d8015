"""SQL statements per HTTP request, as a Prometheus histogram by route template.

A `before_cursor_execute` listener on the engine counts into a per-request counter held in a
context variable (SQLAlchemy's async greenlets inherit the request's context). The benchmark
reads it to show that a page costs a fixed number of queries (no N+1), cached or not.
"""

from __future__ import annotations

import contextvars
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

SQL_QUERIES = Histogram(
    "catalog_sql_queries_per_request", "SQL statements executed while answering one request",
    ["service", "method", "route"], buckets=(0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 50, 100))

_counter: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("catalog_sql_counter",
                                                                            default=None)


def _count(*_args: Any) -> None:
    counter = _counter.get()
    if counter is not None:
        counter[0] += 1


def install(engine: AsyncEngine) -> None:
    event.listen(engine.sync_engine, "before_cursor_execute", _count)


class QueryCountMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counter = [0]
        token = _counter.set(counter)
        try:
            await self.app(scope, receive, send)
        finally:
            _counter.reset(token)
            route = getattr(scope.get("route"), "path", None)
            if route is not None:
                SQL_QUERIES.labels(self.service, scope.get("method", "GET"), route).observe(counter[0])
