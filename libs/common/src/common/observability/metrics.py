"""Prometheus metrics. Defined once per process; every series carries the service label."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by route template", ["service", "method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "HTTP request latency by route template",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter("events_published_total", "Outbox events published", ["service", "routing_key"])
EVENTS_PUBLISH_FAILED = Counter(
    "events_publish_failed_total", "Outbox publish attempts that failed", ["service", "routing_key"]
)
EVENTS_CONSUMED = Counter(
    "events_consumed_total", "Events consumed by outcome", ["service", "routing_key", "outcome"]
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total", "Events given up on (DLQ or dead outbox row)", ["service", "routing_key"]
)
OUTBOX_LAG = Gauge("outbox_lag_seconds", "Age of the oldest unpublished outbox row", ["service"])
BUSINESS_EVENTS = Counter(
    "business_events_total", "Business counters (orders paid, refunds, tokens issued...)",
    ["service", "name"],
)


def count(service: str, name: str, amount: float = 1) -> None:
    """Increment a business counter, e.g. count("billing", "orders_paid")."""
    BUSINESS_EVENTS.labels(service, name).inc(amount)
