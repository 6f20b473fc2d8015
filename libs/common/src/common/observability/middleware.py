"""Request id, access metrics by route template and a server span, as one pure ASGI middleware."""

from __future__ import annotations

import re
import time
import uuid

from opentelemetry import propagate, trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.observability import context, metrics

tracer = trace.get_tracer(__name__)
REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()
                   if k in (b"traceparent", b"tracestate")}
        rid_token = context.request_id.set(request_id)
        svc_token = context.service_name.set(self.service)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                raw = list(message.get("headers", []))
                if not any(k.lower() == REQUEST_ID_HEADER for k, _ in raw):
                    raw.append((REQUEST_ID_HEADER, request_id.encode()))
                message["headers"] = raw
            await send(message)

        method = scope.get("method", "GET")
        try:
            with tracer.start_as_current_span(
                f"{method} {scope.get('path', '')}", context=propagate.extract(carrier),
                kind=trace.SpanKind.SERVER,
            ) as span:
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    template = _route_template(scope)
                    span.set_attribute("http.request.method", method)
                    span.set_attribute("http.route", template)
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:  # semantic conventions: only 5xx is a server span error
                        span.set_status(trace.StatusCode.ERROR)
                    span.update_name(f"{method} {template}")
        finally:
            metrics.HTTP_SERVER_DURATION.labels(self.service, method, _route_template(scope), str(status)).observe(
                time.perf_counter() - start)
            context.request_id.reset(rid_token)
            context.service_name.reset(svc_token)


def _route_template(scope: Scope) -> str:
    """The matched route's template (never the raw path: ids would explode label cardinality)."""
    route = scope.get("route")
    return getattr(route, "path", None) or "<unmatched>"
