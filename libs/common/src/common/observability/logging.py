"""JSON logs with request_id, trace_id, span_id and service on every line."""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from common.observability import context

SENSITIVE_KEYS = ("password", "token", "secret", "authorization", "card")


class ContextFilter(logging.Filter):
    def __init__(self, default_service: str) -> None:
        super().__init__()
        self.default_service = default_service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = context.service_name.get() or self.default_service
        record.request_id = context.request_id.get()
        span = trace.get_current_span().get_span_context()
        record.trace_id = f"{span.trace_id:032x}" if span.is_valid else None
        record.span_id = f"{span.span_id:016x}" if span.is_valid else None
        for key in list(record.__dict__):
            if any(s in key.lower() for s in SENSITIVE_KEYS):
                record.__dict__[key] = "[redacted]"
        return True


def configure_logging(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    """Idempotent: the embedded mode configures once for all services."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_triple", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler._triple = True  # type: ignore[attr-defined]
    if json_logs:
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(request_id)s %(trace_id)s %(span_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        ))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s [%(service)s %(request_id)s] %(name)s: %(message)s"))
    handler.addFilter(ContextFilter(service))
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own plain-text handlers; send its records through ours instead.
    # (Not uvicorn.access: it stays as uvicorn configured it, off, since query strings carry tokens.)
    for name in ("uvicorn", "uvicorn.error"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    for noisy in ("aiormq", "aio_pika", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
