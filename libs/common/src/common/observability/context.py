"""Per-request context carried into logs and events."""

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
service_name: ContextVar[str | None] = ContextVar("service_name", default=None)
