"""Text the database can store, checked once for every input: a 422, never a 500 from PostgreSQL.

PostgreSQL's `text` refuses NUL characters (SQLite stores them) and no UTF-8 encoder takes a lone
surrogate (JSON may spell one as `\\ud800`): either used to fail at insert time, after
validation, and only in the distributed mode. The middleware refuses them in the path, the query
string and JSON or form bodies, before any route runs, in both modes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import problem

BUFFERED_TYPES = (b"application/json", b"application/x-www-form-urlencoded")


def storable(text: str) -> bool:
    """Whether PostgreSQL can hold `text` in a text column."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def json_storable(body: bytes) -> bool:
    """Only `\\u` escapes can put NUL or a lone surrogate in JSON text (raw control characters are
    invalid JSON), so bodies without one are accepted unparsed; invalid JSON is the route's 422."""
    if b"\\u" not in body:
        return True
    try:
        document = json.loads(body)
    except ValueError:
        return True
    return all(storable(text) for text in _strings(document))


class TextGuardMiddleware:
    """Refuses requests whose text the database could not store (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query:
            await self._refuse(scope, receive, send, "path or query")
            return
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type not in BUFFERED_TYPES:
            await self.app(scope, receive, send)
            return
        # These bodies are read whole by the route anyway; read them first and hand them on.
        messages: list[Message] = []
        more_body = True
        while more_body:
            message = await receive()
            messages.append(message)
            more_body = message["type"] == "http.request" and message.get("more_body", False)
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        form = content_type == b"application/x-www-form-urlencoded"
        if (b"%00" in body or b"\x00" in body) if form else not json_storable(body):
            await self._refuse(scope, receive, send, "body")
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, where: str) -> None:
        response = problem(422, "Validation failed", "text cannot contain NUL characters or lone surrogates",
                           code="validation", instance=scope.get("path"),
                           errors=[{"loc": [where], "msg": "text the database cannot store", "type": "string_nul"}])
        await response(scope, receive, send)
