"""Prometheus metrics. Defined once per process; every series carries the service label.

Names follow the OpenTelemetry semantic conventions as Prometheus exports them (HTTP server
duration histogram in seconds with `http_request_method`, `http_route`,
`http_response_status_code`); every event and outbox series starts with `events_`. Ratios
(error ratio, cache hit ratio...) are recording rules over these counters
(`infra/observability/prometheus/rules/`), never per-process gauges: a per-pod ratio cannot be
summed across replicas.

The `service` label is the application's own (one embedded process serves every service), so
scrapes keep it with `honor_labels` and name the target by `job`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_SERVER_DURATION = Histogram(
    "http_server_request_duration_seconds", "Duration of HTTP server requests by route template",
    ["service", "http_request_method", "http_route", "http_response_status_code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter("events_published_total", "Outbox events published", ["service", "routing_key"])
EVENTS_PUBLISH_FAILURES = Counter(
    "events_publish_failures_total", "Outbox publish attempts that failed", ["service", "routing_key"]
)
EVENTS_CONSUMED = Counter(
    "events_consumed_total", "Events consumed by outcome", ["service", "routing_key", "outcome"]
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total", "Events given up on (DLQ or dead outbox row)", ["service", "routing_key"]
)
EVENTS_OUTBOX_LAG = Gauge("events_outbox_lag_seconds", "Age of the oldest unpublished outbox row", ["service"])
BUSINESS_EVENTS = Counter(
    "business_events_total", "Business counters (orders paid, refunds, tokens issued...)",
    ["service", "name"],
)
BUSINESS_AMOUNTS = Counter(
    "business_amount_minor_total", "Money moved by business events, in minor units (cents) per currency",
    ["service", "name", "currency"],
)


def count(service: str, name: str, amount: float = 1) -> None:
    """Increment a business counter, e.g. count("billing", "orders_paid")."""
    BUSINESS_EVENTS.labels(service, name).inc(amount)


def count_amount(service: str, name: str, amount_minor: int, currency: str) -> None:
    """Add money to a business amount counter, e.g. count_amount("billing", "orders_paid", 1999, "EUR")."""
    BUSINESS_AMOUNTS.labels(service, name, currency.upper()).inc(amount_minor)
