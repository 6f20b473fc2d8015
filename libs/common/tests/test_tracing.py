"""The OTLP endpoint setting is a base URL like OTEL_EXPORTER_OTLP_ENDPOINT: `/v1/traces` is
appended once, never dropped (issue 16)."""

from __future__ import annotations

from common.observability.tracing import traces_endpoint


def test_otlp_endpoint_setting_keeps_the_traces_path() -> None:
    assert traces_endpoint("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_endpoint("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_endpoint("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"
    assert traces_endpoint(None) is None and traces_endpoint("") is None
