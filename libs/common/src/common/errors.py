"""One error format for every service: RFC 9457 problem+json, never a bare 500 for bad input.

Use cases raise the domain errors below (no FastAPI in service code); the handlers turn them into
responses.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class DomainError(Exception):
    """A refusal the caller can act on; `status` maps it to HTTP."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.headers = headers
        self.extra = extra


class InvalidInput(DomainError):
    status = 400
    title = "Invalid input"


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(DomainError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(DomainError):
    status = 415
    title = "Unsupported media type"


class Unprocessable(DomainError):
    status = 422
    title = "Unprocessable"


class TooManyRequests(DomainError):
    status = 429
    title = "Too many requests"


class UpstreamUnavailable(DomainError):
    status = 503
    title = "Dependency unavailable"


# How long a client should wait before retrying a request refused because a dependency is down.
RETRY_AFTER_SECONDS = 5


# The exception classes a dependency outage raises (is_unavailable tells which instances are one).
# (UpstreamUnavailable has its own handler, as every DomainError.)
UNAVAILABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError, OSError)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says a dependency (database, Redis, broker, a peer) is down, slow or cut, not
    that the request or the event is wrong: such a failure answers 503 and costs no retry budget.

    SQLAlchemy's OperationalError covers refused and dropped connections and the statement timeout
    (QueryCanceled) on PostgreSQL; its TimeoutError is a pool checkout that timed out.
    """
    if isinstance(exc, UpstreamUnavailable):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                            sqlalchemy.exc.TimeoutError, redis.exceptions.ConnectionError,
                            redis.exceptions.TimeoutError, ConnectionError, TimeoutError, OSError))


def problem(status: int, title: str, detail: str | None = None, *, code: str | None = None,
            instance: str | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": f"https://errors.triple.academy/{code or status}", "title": title,
                            "status": status}
    if detail:
        body["detail"] = detail
    if code:
        body["code"] = code
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        headers = exc.headers
        if exc.status == 503 and not (headers and "Retry-After" in headers):
            headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_SECONDS)}
        return problem(exc.status, exc.title, exc.detail, code=exc.code, instance=request.url.path,
                       headers=headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed"}
        return problem(exc.status_code, title.get(exc.status_code, "Error"), str(exc.detail),
                       instance=request.url.path, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
            for err in exc.errors()
        ]
        return problem(422, "Validation failed", "the request does not match the schema",
                       code="validation", instance=request.url.path, errors=errors)

    @app.exception_handler(ClientDisconnect)
    async def _disconnected(request: Request, exc: ClientDisconnect) -> JSONResponse:
        """The client (or the edge, past its body limit) stopped sending: nobody reads this answer,
        and it is no server error."""
        log.info("client disconnected before the request body was read", extra={"path": request.url.path})
        return problem(400, "Bad request", "the request body was not received", code="client_disconnected")

    async def _outage_or_internal(request: Request, exc: Exception) -> JSONResponse:
        if not is_unavailable(exc):  # e.g. an IntegrityError: a DBAPIError, yet a bug, not an outage
            log.exception("unhandled error", extra={"path": request.url.path})
            return problem(500, "Internal error", "an unexpected error occurred", code="internal")
        log.warning("dependency unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
        return problem(503, "Dependency unavailable", "a dependency of this service is unavailable; "
                       "retry later", code="unavailable", instance=request.url.path,
                       headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    # The outage classes are registered by class, not left to the catch-all `Exception`: Starlette
    # re-raises whatever reaches the catch-all to the server after answering, and uvicorn then
    # closes the connection, which the edge may already be reusing for the next request (a reset,
    # a 502 for a POST). An outage is an expected answer, not a crash.
    for exception_class in (*UNAVAILABLE_EXCEPTIONS, Exception):
        app.add_exception_handler(exception_class, _outage_or_internal)
