"""The dashboards show the truth: Debian's real `prometheus` scrapes the distributed
platform (every service replica, RabbitMQ's built-in exporter) with the committed rules loaded,
the core path runs, then every dashboard panel's query and every rule's expression is evaluated
through Prometheus's HTTP API. Each must parse; each panel must return data, the panels that show
data only under failure after the fault that shows them (a message forced to a dead-letter queue,
an unsigned webhook), which must also put DeadLettersPresent into pending/firing."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import httpx
import pytest
import yaml

from common.testing import RABBITMQ_URL
from gateway.distributed import REPO_ROOT, Topology, free_port

from .test_core_path import DEMO_ASSET, DEMO_INSTRUCTOR, eventually, login
from .test_core_path import test_core_path as walk_core_path

OBSERVABILITY = REPO_ROOT / "infra" / "observability"
RABBITMQ_PROMETHEUS = "127.0.0.1:15692"
# Panels fed by parts the test topology does not run (PostgreSQL/Redis exporters; the transcode
# worker's own metrics and queue only move when a video is uploaded, test_ingest's job): their
# queries are still evaluated and must parse.
NOT_IN_TEST_TOPOLOGY = {
    "Connections by database and state", "Connection saturation", "Transactions", "Redis commands",
    "Redis clients and memory", "Transcodes in flight", "Transcode duration p95 and attempts",
    "Assets ready / failed",
}
# Panels whose data needs a situation the core path does not create, and the step below that does.
SHOWN_BY_FAULT = {
    "Dead-letter depth by queue": "unparseable message", "Dead-lettered events": "unparseable message",
    "Webhooks rejected (signature, payload)": "unsigned webhook",
    # Parse-checked only: more concurrent sessions than the limit; a refresh token reused after
    # its grace period; an erasure (test_erasure.py and test_playback_protection.py cause them).
    "Stream-limit hits": "not caused", "Refresh reuse and erasures": "not caused",
}


@pytest.fixture(scope="module")
def prometheus(distributed: Topology, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is needed (.ci/run installs it)"
    eventually(lambda: _ready(f"http://{RABBITMQ_PROMETHEUS}/metrics"), within=30,
               what="RabbitMQ's prometheus plugin (.ci/run enables it)")
    run = tmp_path_factory.mktemp("prometheus")
    namespace = re.escape(distributed.namespace)
    labels = {"namespace": "e2e"}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted((OBSERVABILITY / "prometheus" / "rules").glob("*.yml"))],
        "scrape_configs": [
            *({"job_name": service, "honor_labels": True,
               "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in ports], "labels": labels}]}
              for service, ports in distributed.ports.items()),
            {"job_name": "rabbitmq", "metrics_path": "/metrics/per-object",
             "static_configs": [{"targets": [RABBITMQ_PROMETHEUS], "labels": labels}],
             # The broker is shared with other test runs: keep this run's queues (and queue-less series).
             "metric_relabel_configs": [{"source_labels": ["queue"], "regex": f"({namespace}\\..*)?",
                                         "action": "keep"}]},
        ],
    }
    (run / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (run / "prometheus.log").open("wb")
    process = subprocess.Popen([binary, f"--config.file={run / 'prometheus.yml'}",
                                f"--storage.tsdb.path={run / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _ready(f"{url}/-/ready"), within=60, what="prometheus ready")
        eventually(lambda: all(t["health"] == "up" for t in _targets(url)) and len(_targets(url)) > 4, within=60,
                   what="every target scraped")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _targets(url: str) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    return targets


def query(url: str, expr: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    return answer


def panel_queries() -> Iterator[tuple[str, str, str]]:
    for path in sorted((OBSERVABILITY / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = (target["expr"].replace("$__rate_interval", "5m").replace('"$namespace"', '".*"')
                        .replace('"$instance"', '".*"'))
                yield path.name, panel["title"], expr


async def _force_dead_letter(topology: Topology) -> None:
    """A message nobody can parse, with a real routing key: catalog's consumer dead-letters it."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{topology.namespace}.events")
        await exchange.publish(aio_pika.Message(b"not an envelope", content_type="application/json"),
                               routing_key="billing.order.paid.v1")


async def _purge_dead_letters(topology: Topology) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{topology.namespace}.catalog.events.dlq")
        await queue.purge()


def test_every_panel_and_rule_evaluates_with_data(distributed: Topology, prometheus: str) -> None:
    walk_core_path(distributed.gateway_url)

    # Faults that the failure-only panels exist for.
    asyncio.run(_force_dead_letter(distributed))
    unsigned = httpx.post(f"{distributed.gateway_url}/api/billing/webhooks/stripe", content=b"{}",
                          headers={"Stripe-Signature": "t=1,v1=00"}, timeout=10)
    assert unsigned.status_code == 400
    try:
        eventually(lambda: query(prometheus, 'ALERTS{alertname="DeadLettersPresent"}')["data"]["result"], within=90,
                   what="DeadLettersPresent pending or firing")

        expected: dict[str, str] = {}
        for board, title, expr in panel_queries():
            answer = query(prometheus, expr)
            assert answer["status"] == "success", (board, title, answer)
            if title not in NOT_IN_TEST_TOPOLOGY and SHOWN_BY_FAULT.get(title) != "not caused":
                expected[f"{board}: {title}"] = expr
        # Recording rules and rates need a few evaluations and scrapes: poll until all have data.
        deadline = time.monotonic() + 90
        while expected and time.monotonic() < deadline:
            expected = {name: expr for name, expr in expected.items() if not query(prometheus, expr)["data"]["result"]}
            time.sleep(1 if expected else 0)
        empty = [f"{name}: {expr}" for name, expr in expected.items()]
        assert not empty, "panels without data after the core path:\n" + "\n".join(empty)

        for path in sorted((OBSERVABILITY / "prometheus" / "rules").glob("*.yml")):
            for group in yaml.safe_load(path.read_text())["groups"]:
                for rule in group["rules"]:
                    answer = query(prometheus, rule["expr"])
                    assert answer["status"] == "success", (path.name, rule.get("alert") or rule.get("record"), answer)
        rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        unhealthy = [r["name"] for g in rules for r in g["rules"] if r["health"] != "ok"]
        assert not unhealthy, unhealthy
    finally:
        asyncio.run(_purge_dead_letters(distributed))


def test_one_trace_follows_a_purchase_across_processes_and_rabbitmq(distributed: Topology,
                                                                    otlp_receiver: Any) -> None:
    """The learner's browser starts one trace (W3C traceparent on checkout and pay); the edge passes
    it on and logs it; billing's checkout, the provider's webhook, billing's outbox publish,
    catalog's grant (consumer, its own outbox publish) and playback's entitlement update (consumer
    with its SQL spans) all land in that trace, exported by four processes over OTLP."""
    trace_id = secrets.token_hex(16)
    traced = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    with httpx.Client(base_url=distributed.gateway_url, timeout=15) as client:
        instructor = login(client, *DEMO_INSTRUCTOR)
        course = client.post("/api/catalog/courses", headers=instructor, json={
            "title": f"Traced course {secrets.token_hex(3)}", "subtitle": "traces", "description": "one trace",
            "price_amount": 990, "currency": "EUR", "sections": [{"title": "S", "lessons": [
                {"title": "Paid", "kind": "video", "asset_id": DEMO_ASSET, "is_preview": False}]}]})
        assert course.status_code == 201, course.text
        course_id = course.json()["id"]
        assert client.post(f"/api/catalog/courses/{course_id}/publish", headers=instructor).status_code == 200
        lesson_id = course.json()["sections"][0]["lessons"][0]["id"]
        email = f"traced-{secrets.token_hex(4)}@example.com"
        assert client.post("/api/auth/register", json={"email": email, "password": "a long enough passphrase",
                                                       "full_name": "Traced"}).status_code == 201
        learner = login(client, email, "a long enough passphrase")

        checkout = client.post("/api/billing/checkout", json={"course_id": course_id},
                               headers={**learner, **traced, "Idempotency-Key": secrets.token_hex(8)})
        assert checkout.status_code == 201, checkout.text
        assert client.post(checkout.json()["checkout_url"] + "/pay", headers=traced).status_code < 400
        eventually(lambda: client.post("/api/playback/token", headers=learner,
                                       json={"lesson_id": lesson_id}).status_code == 200, within=30, what="entitlement")

    def chain() -> dict[str, dict[str, str]] | None:
        spans = otlp_receiver.trace(trace_id)
        found = {
            "checkout": _span(spans, "billing", "SERVER", "checkout"),
            "webhook": _span(spans, "billing", "SERVER", "webhooks/stripe"),
            "webhook call": _span(spans, "billing", "CLIENT", "POST"),
            "publish paid": _span(spans, "billing", "PRODUCER", "publish billing.order.paid.v1"),
            "grant": _span(spans, "catalog", "CONSUMER", "consume billing.order.paid.v1"),
            "publish granted": _span(spans, "catalog", "PRODUCER", "publish catalog.enrollment.granted.v1"),
            "entitlement": _span(spans, "playback", "CONSUMER", "consume catalog.enrollment.granted.v1"),
        }
        present = {step: span for step, span in found.items() if span is not None}
        if len(present) < len(found):
            return None
        entitlement_id = present["entitlement"]["span_id"]
        sql = [s for s in spans if s["service"] == "playback" and s["parent_span_id"] == entitlement_id
               and s["kind"] == "3"]
        return {**present, "entitlement sql": sql[0]} if sql else None

    try:
        found = eventually(chain, within=60, what="the purchase's spans in one trace")
    except AssertionError:
        seen = sorted({(s["service"], s["name"], s["kind"]) for s in otlp_receiver.trace(trace_id)})
        raise AssertionError(f"trace {trace_id} holds only {seen}") from None
    assert found["publish paid"]["parent_span_id"] in {s["span_id"] for s in otlp_receiver.trace(trace_id)}
    assert found["grant"]["parent_span_id"] == found["publish paid"]["span_id"]
    assert found["entitlement"]["parent_span_id"] == found["publish granted"]["span_id"]
    access = (distributed.run_dir / "nginx" / "access.log").read_text()
    logged = [json.loads(line) for line in access.splitlines() if trace_id in line]
    assert logged and all(entry["trace_id"] == trace_id for entry in logged)


KINDS = {"SERVER": "2", "CLIENT": "3", "PRODUCER": "4", "CONSUMER": "5"}


def _span(spans: list[dict[str, str]], service: str, kind: str, name_part: str) -> dict[str, str] | None:
    return next((s for s in spans if s["service"] == service and s["kind"] == KINDS[kind]
                 and name_part in s["name"]), None)
