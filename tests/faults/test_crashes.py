"""Processes die (kill -9) under load and at the worst moments: the edge routes around a dead replica,
the supervisor brings it back, and a crash between an effect and its acknowledgement leaves exactly
one effect.

The crash points are reached through the links, not through hooks in the services: the fault proxy
freezes the one connection that is about to COMMIT (billing) or to ack (catalog), the test finds
the process that owns it (through the topology's pids and /proc) and kills it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import stripe

from common.faultproxy import Hold
from common.testing import PG_ADMIN_DSN
from gateway.distributed import SERVICES, Topology

from .conftest import (
    DEMO_COURSE,
    PAID_LESSON,
    Faults,
    Tally,
    buy,
    dead_letters,
    enrollments,
    entitled,
    eventually,
    new_learner,
    process_ids,
    readiness,
    signed_in_learners,
    user_id,
)

CLIENTS = 4


def owner_of_connection(client_port: int, pids: Iterable[int]) -> int:
    """Which of these processes owns the TCP connection whose local end is `client_port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            if int(columns[1].rsplit(":", 1)[1], 16) == client_port:
                inodes.add(columns[9])
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    raise LookupError(f"no process of {list(pids)} owns the connection from port {client_port}")


def owner_process(topology: Topology, service: str, client_port: int) -> tuple[str, int]:
    """The name and pid of the `service` process that owns the connection from `client_port`."""
    processes = {name: pid for name, pid in process_ids(topology).items() if name.startswith(f"{service}-")}
    pid = owner_of_connection(client_port, processes.values())
    return next(name for name, candidate in processes.items() if candidate == pid), pid


def kill(topology: Topology, name: str) -> int:
    """kill -9 one process of the topology; returns its pid."""
    pid = process_ids(topology)[name]
    os.kill(pid, signal.SIGKILL)
    return pid


def back_ready(topology: Topology, name: str, old_pid: int, *, within: float = 60) -> float:
    """Wait for the supervisor to start `name` again under a new pid and for it to be ready; the
    seconds that took."""
    service, index = name.rsplit("-", 1)
    started = time.monotonic()
    eventually(lambda: process_ids(topology)[name] != old_pid and readiness(topology, service, int(index)) == 200,
               within=within, interval=0.2, what=f"{name} restarted and ready")
    return time.monotonic() - started


def wait_enrolled_and_entitled(client: httpx.Client, topology: Topology, learners: list[dict[str, str]]) -> None:
    eventually(lambda: all(enrollments(client, learner) == 1 for learner in learners), within=60,
               what="enrolled")
    ids = [user_id(client, learner) for learner in learners]
    eventually(lambda: entitled(topology, ids) == len(ids), within=30, what="entitled in playback")


# --- kill -9 under load ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def buyers(faults: Faults) -> list[dict[str, str]]:
    """Learners who own the demo course: their load touches every service."""
    topology = faults.topology
    faults.heal()
    learners = signed_in_learners(topology.gateway_url, CLIENTS)
    with httpx.Client(base_url=topology.gateway_url, timeout=30) as client:
        for learner in learners:
            buy(client, learner)
        wait_enrolled_and_entitled(client, topology, learners)
    return learners


def _steady_load(base_url: str, learner: dict[str, str], tally: Tally, lock: threading.Lock,
                 stop: threading.Event) -> None:
    """One learner's loop through the edge: course detail, playback token, orders, profile."""
    with httpx.Client(base_url=base_url, timeout=10, headers=learner) as client:
        while not stop.is_set():
            for method, path, body in (("GET", f"/api/catalog/courses/{DEMO_COURSE}", None),
                                       ("POST", "/api/playback/token", {"lesson_id": PAID_LESSON}),
                                       ("GET", "/api/billing/orders", None),
                                       ("GET", "/api/auth/me", None)):
                try:
                    status = client.request(method, path, json=body).status_code
                except httpx.HTTPError:
                    status = 599
                with lock:
                    tally.record(status)


@contextmanager
def steady_load(base_url: str, learners: list[dict[str, str]], tally: Tally) -> Iterator[None]:
    """A few concurrent clients, one per learner, until the block ends; failures count as 599."""
    lock, stop = threading.Lock(), threading.Event()
    threads = [threading.Thread(target=_steady_load, args=(base_url, learner, tally, lock, stop), daemon=True)
               for learner in learners]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


@pytest.mark.parametrize("service", SERVICES)
def test_a_replica_killed_under_load_costs_under_one_percent_and_comes_back(
        healed: Faults, buyers: list[dict[str, str]], service: str) -> None:
    """Replica 0 of each service in turn; the edge and the peers' balanced addresses route around it."""
    topology = healed.topology
    name = f"{service}-0"
    tally = Tally(f"kill -9 {name} under load ({CLIENTS} clients)")
    with steady_load(topology.gateway_url, buyers, tally):
        time.sleep(3)
        before_kill = tally.sent
        killed = kill(topology, name)
        recovery = back_ready(topology, name, killed)
        time.sleep(2)  # and the load goes on with the replica back
    error_count = sum(tally.errors.values())
    tally.extra = {"killed_pid": killed, "new_pid": process_ids(topology)[name], "sent_before_kill": before_kill,
                   "recovery_s": round(recovery, 1), "error_rate": round(error_count / max(tally.sent, 1), 4)}
    tally.report()
    assert before_kill > 0 and tally.sent > before_kill
    assert error_count < tally.sent / 100, tally.errors


def test_peer_calls_route_around_a_dead_replica(healed: Faults) -> None:
    """Checkout asks catalog (course, enrollment check) service to service: with catalog-0 dead,
    those calls reach catalog-1 through the peer's balanced address, so every checkout made
    before the supervisor has it back still succeeds."""
    topology = healed.topology
    tally = Tally("checkouts while catalog-0 is dead")
    with httpx.Client(base_url=topology.gateway_url, timeout=30) as client:
        learners = [new_learner(client) for _ in range(6)]
        killed = kill(topology, "catalog-0")
        for learner in learners:
            answer = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE},
                                 headers={**learner, "Idempotency-Key": uuid.uuid4().hex})
            tally.record(answer.status_code)
        still_down = process_ids(topology)["catalog-0"] == killed or readiness(topology, "catalog", 0) != 200
        recovery = back_ready(topology, "catalog-0", killed)
    tally.extra = {"checked_out_while_down": still_down, "recovery_s": round(recovery, 1)}
    tally.report()
    assert still_down, "catalog-0 came back before the checkouts ended: the test proved nothing"
    assert tally.statuses == {201: len(learners)}, tally.errors


# --- billing dies between the provider's webhook and its commit ------------------------------------


def _checkout(client: httpx.Client) -> tuple[dict[str, str], str, dict[str, Any]]:
    """A new learner's checkout of the demo course: the learner, their user id and the checkout."""
    learner = new_learner(client)
    checkout = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE},
                           headers={**learner, "Idempotency-Key": uuid.uuid4().hex})
    assert checkout.status_code == 201, checkout.text
    return learner, user_id(client, learner), checkout.json()


def _paid_event(event_id: str, checkout: dict[str, object]) -> str:
    """`checkout.session.completed` for an order, in the shape the local provider (and Stripe) send."""
    order_id = str(checkout["order_id"])
    session = {"id": str(checkout["checkout_url"]).rsplit("/", 1)[1], "object": "checkout.session",
               "mode": "payment", "status": "complete", "client_reference_id": order_id,
               "metadata": {"order_id": order_id, "course_id": DEMO_COURSE},
               "amount_total": checkout["amount"], "currency": str(checkout["currency"]).lower(),
               "payment_status": "paid", "payment_intent": f"pi_crash_{uuid.UUID(order_id).hex}", "livemode": False}
    return json.dumps({"id": event_id, "object": "event", "created": int(time.time()), "livemode": False,
                       "type": "checkout.session.completed", "data": {"object": session}})


def _facts(topology: Topology, order_id: str, user: str) -> dict[str, object]:
    """The effects of one paid order, read from each service's own tables."""
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{topology.database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        def one(query: str, *args: object) -> object:
            row = conn.execute(query, args).fetchone()
            return row[0] if row else None

        return {
            "order_status": one("SELECT status FROM billing.orders WHERE id = %s", order_id),
            "paid_events": one("SELECT count(*) FROM billing.outbox WHERE routing_key = 'billing.order.paid.v1' "
                               "AND envelope->'payload'->>'order_id' = %s", order_id),
            "paid_audit": one("SELECT count(*) FROM billing.order_audit WHERE order_id = %s AND to_status = 'paid' "
                              "AND from_status <> 'paid'", order_id),
            "enrollment": one("SELECT status || ' v' || version FROM catalog.enrollments WHERE user_id = %s "
                              "AND course_id = %s", user, DEMO_COURSE),
            "granted_events": one("SELECT count(*) FROM catalog.outbox WHERE routing_key = "
                                  "'catalog.enrollment.granted.v1' AND envelope->'payload'->>'user_id' = %s", user),
            "entitlement": one("SELECT active::text || ' v' || version FROM playback.entitlements WHERE user_id = %s "
                               "AND course_id = %s", user, DEMO_COURSE),
        }


@pytest.mark.parametrize("crash", ["before", "after"])
def test_billing_killed_between_webhook_and_commit_pays_once_when_the_provider_retries(
        healed: Faults, crash: str) -> None:
    """The webhook handler's database connection is frozen at its COMMIT (`before`: the COMMIT never
    reaches PostgreSQL; `after`: it does, but the answer never comes back), the billing process
    handling it is killed, and the provider retries the same event, as Stripe does until it gets a 200."""
    topology = healed.topology
    secret = topology.secrets["stripe_webhook_secret"]
    tally = Tally(f"billing killed {crash} the webhook's commit")
    with httpx.Client(base_url=topology.gateway_url, timeout=30) as client:
        learner, user, checkout = _checkout(client)
        order_id = str(checkout["order_id"])
        event_id = f"evt_crash_{uuid.uuid4().hex}"
        payload = _paid_event(event_id, checkout)

        def deliver() -> httpx.Response:
            # Signed afresh for each delivery, as Stripe signs each retry.
            signature = stripe.WebhookSignature.generate_signature_header(payload, secret)
            headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
            return client.post("/api/billing/webhooks/stripe", content=payload, headers=headers)

        healed.postgres.set_mode("hold", hold=Hold((event_id.encode(), b"COMMIT"), deliver=crash == "after"))
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(deliver)
            eventually(lambda: len(healed.postgres.held) == 1, within=15, interval=0.1,
                       what="the webhook's transaction at its COMMIT")
            name, victim = owner_process(topology, "billing", healed.postgres.held[0][1])
            os.kill(victim, signal.SIGKILL)
            tally.record(first.result().status_code)
        healed.postgres.set_mode("up")  # the frozen connection goes: PostgreSQL ends its transaction
        after_crash = _facts(topology, order_id, user)["order_status"]

        retried = time.monotonic()
        retries: list[httpx.Response] = []

        def provider_retry() -> bool:
            retries.append(deliver())
            tally.record(retries[-1].status_code)
            return retries[-1].status_code == 200

        eventually(provider_retry, within=30, interval=1, what="the provider's retry accepted")
        accepted_after = time.monotonic() - retried
        recovery = back_ready(topology, name, victim)
        again = deliver()  # one more retry (Stripe may send an event more than once)
        tally.record(again.status_code)
        wait_enrolled_and_entitled(client, topology, [learner])
        facts = _facts(topology, order_id, user)
        orders = client.get("/api/billing/orders", headers=learner).json()["items"]
    tally.extra = {"killed": name, "order_after_crash": after_crash, "retry_outcome": retries[-1].json()["outcome"],
                   "retry_accepted_after_s": round(accepted_after, 1), "replica_back_after_s": round(recovery, 1),
                   **facts}
    tally.report()
    assert after_crash == ("pending" if crash == "before" else "paid")
    assert retries[-1].json()["outcome"] == ("fulfilled" if crash == "before" else "duplicate")
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert [o["status"] for o in orders] == ["paid"]
    assert facts == {"order_status": "paid", "paid_events": 1, "paid_audit": 1, "enrollment": "active v1",
                     "granted_events": 1, "entitlement": "true v1"}


# --- catalog dies between an event's delivery and its ack ------------------------------------------


def _duplicates(topology: Topology, ports: Iterable[int]) -> float:
    """Paid-order events catalog's inbox recognised as already applied (each replica's /metrics)."""
    total = 0.0
    for port in ports:
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
            if (line.startswith("events_consumed_total{") and 'outcome="duplicate"' in line
                    and 'routing_key="billing.order.paid.v1"' in line):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_catalog_killed_between_delivery_and_ack_enrolls_once(healed: Faults) -> None:
    """The consumer's broker connection is frozen right after the paid-order event reached it: the
    enrollment commits, the ack cannot leave; the consumer is killed, the broker redelivers, and
    the inbox recognises the event."""
    topology = healed.topology
    tally = Tally("catalog killed between the delivery and its ack")
    with httpx.Client(base_url=topology.gateway_url, timeout=30) as client:
        learner, user, checkout = _checkout(client)
        order_id = str(checkout["order_id"])
        healed.broker.set_mode("hold", hold=Hold((order_id.encode(),), to_server=False, deliver=True))
        paid = client.post(checkout["checkout_url"] + "/pay")
        tally.record(paid.status_code)
        eventually(lambda: len(healed.broker.held) == 1, within=30, interval=0.1,
                   what="the paid-order event delivered to a catalog consumer")
        name, victim = owner_process(topology, "catalog", healed.broker.held[0][1])
        eventually(lambda: enrollments(client, learner) == 1, within=15, what="the enrollment committed")
        survivors = [port for index, port in enumerate(topology.ports["catalog"]) if f"catalog-{index}" != name]
        baseline = _duplicates(topology, survivors)
        os.kill(victim, signal.SIGKILL)
        healed.broker.set_mode("up")  # the broker sees the connection go and requeues the unacked event
        healed_at = time.monotonic()
        everyone = topology.ports["catalog"]
        eventually(lambda: _duplicates(topology, [p for p in everyone if readiness(topology, "catalog",
                                                                                     everyone.index(p)) == 200])
                   - baseline >= 1, within=30, interval=0.3, what="the redelivered event seen as a duplicate")
        redelivered_after = time.monotonic() - healed_at
        recovery = back_ready(topology, name, victim)
        wait_enrolled_and_entitled(client, topology, [learner])
        facts = _facts(topology, order_id, user)
        duplicates = _duplicates(topology, everyone) - baseline
    tally.extra = {"killed": name, "redelivered_after_s": round(redelivered_after, 1),
                   "replica_back_after_s": round(recovery, 1), "duplicates_seen": duplicates,
                   "dlq": dead_letters(topology), **facts}
    tally.report()
    assert duplicates == 1
    assert facts == {"order_status": "paid", "paid_events": 1, "paid_audit": 1, "enrollment": "active v1",
                     "granted_events": 1, "entitlement": "true v1"}
    assert not any(dead_letters(topology).values())
