"""OpenTelemetry: trace ids always exist (for log correlation); export only when configured.

Export is configured by the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED`,
`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, read by the SDK) or by
the service's `<PREFIX>_OTLP_ENDPOINT` setting, which is a base URL like
`OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` is appended). Database, Redis and outgoing HTTP calls
get client spans from the OpenTelemetry instrumentations, beside the middleware's server spans.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

_configured = False
TRACES_PATH = "/v1/traces"


def traces_endpoint(otlp_endpoint: str | None) -> str | None:
    """The OTLP/HTTP traces URL for a configured base endpoint (None: let the SDK read OTEL_*)."""
    if not otlp_endpoint:
        return None
    base = otlp_endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def _exporting() -> bool:
    return (os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true"
            and os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() != "none")


def configure_tracing(service: str, otlp_endpoint: str | None,
                      extra_processor: SpanProcessor | None = None) -> None:
    """Once per process (the embedded mode's services share one provider); `extra_processor` is
    for tests that read spans in memory."""
    global _configured
    if _configured:
        return
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over the default name (Resource.create merges them).
    env_endpoint = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    exporting = _exporting() and bool(otlp_endpoint or env_endpoint)
    # When no span leaves the process, record none (trace ids, which logs and the traceparent of
    # outgoing calls carry, still exist): recording is a third of a hot request's cost.
    sampler = None if exporting or extra_processor is not None else ALWAYS_OFF
    provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_endpoint(otlp_endpoint))))
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    trace.set_tracer_provider(provider)
    if exporting or extra_processor is not None:
        # Client spans only when someone reads them: hot paths pay nothing for them otherwise.
        # SQLAlchemy: the instrumentation's declared range stops below 2.1, the engine events it
        # uses are unchanged (the e2e trace test sees playback's SQL spans under its consumer).
        SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
        RedisInstrumentor().instrument(tracer_provider=provider)
        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _configured = True
