"""Tracing: the OTLP endpoint setting is a base URL like OTEL_EXPORTER_OTLP_ENDPOINT
(`/v1/traces` appended once, never dropped); server spans follow the semantic conventions."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from common.observability import middleware
from common.observability.middleware import ObservabilityMiddleware
from common.observability.tracing import traces_endpoint


def test_otlp_endpoint_setting_keeps_the_traces_path() -> None:
    assert traces_endpoint("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_endpoint("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_endpoint("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"
    assert traces_endpoint(None) is None and traces_endpoint("") is None


async def test_server_spans_follow_semantic_conventions_and_only_5xx_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Starlette app with the shared middleware: the server span is named by route template,
    carries method/route/status attributes, continues an incoming traceparent, and is an error
    only for a 5xx (a 404 is the client's problem, not the server's)."""
    exporter = InMemorySpanExporter()
    # A provider of its own: the process's global one may be set already, by a test that did not
    # record spans (ALWAYS_OFF), and can be set only once.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(middleware, "tracer", provider.get_tracer(middleware.__name__))

    async def item(request: Request) -> Response:
        status = int(request.path_params["status"])
        return PlainTextResponse("x", status_code=status)

    app = ObservabilityMiddleware(Starlette(routes=[Route("/status/{status}", item)]), service="tracing")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.get("/status/503", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        await client.get("/status/404")
    spans = {span.attributes["http.response.status_code"]: span for span in exporter.get_finished_spans()
             if span.attributes and span.attributes.get("http.route") == "/status/{status}"}
    failed, missing = spans[503], spans[404]
    assert failed.attributes is not None
    assert failed.name == "GET /status/{status}" and failed.kind == trace.SpanKind.SERVER
    assert failed.attributes["http.request.method"] == "GET"
    assert f"{failed.context.trace_id:032x}" == trace_id
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert missing.status.status_code == trace.StatusCode.UNSET
