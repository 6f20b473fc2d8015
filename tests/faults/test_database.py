"""PostgreSQL goes away (cut, then stalled) under steady traffic through the edge: every failed
request is a quick 503 problem+json with Retry-After (never a 500, never a hang), readiness says so
within 5 s, everything answers again within 10 s of its return without a restart, and the purchases
made just before the outage all end up paid, enrolled and playable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from common.faultproxy import Mode

from .conftest import (
    DEMO_COURSE,
    PAID_LESSON,
    PASSWORD,
    Faults,
    Tally,
    buy,
    dead_letters,
    dead_outbox_rows,
    enrollments,
    entitled,
    eventually,
    new_learner,
    process_ids,
    seconds_until_readiness,
    signed_in_learners,
    user_id,
)

OUTAGE_SECONDS = 20
PURCHASES_BEFORE = 6
# What a request may cost while the database does not answer: the services' answer deadline
# (statement timeout 5 s + 1 s, common.db.DatabaseTimeouts.answer), or the idle ping (2 s) and a
# fresh connection's connect timeout (3 s), plus a margin for a peer's own wait (a playback token
# asks catalog) and for scheduling on the shared machine. Without the deadline: 30 s at the edge.
FAIL_WITHIN = 6 + 4
RECOVERY_WITHIN = 10


@dataclass
class Answer:
    kind: str
    started: float
    seconds: float
    status: int
    problem: bool
    retry_after: bool


def _traffic(base_url: str, learner: dict[str, str], email: str, answers: list[Answer],
             stop: threading.Event) -> list[threading.Thread]:
    """One thread per request kind, each sending one request after the other."""
    calls: dict[str, Callable[[httpx.Client], httpx.Response]] = {
        "login": lambda c: c.post("/api/auth/login", json={"email": email, "password": PASSWORD}),
        "course": lambda c: c.get(f"/api/catalog/courses/{DEMO_COURSE}"),
        "orders": lambda c: c.get("/api/billing/orders", headers=learner),
        "playback_token": lambda c: c.post("/api/playback/token", headers=learner, json={"lesson_id": PAID_LESSON}),
    }
    lock = threading.Lock()

    def run(kind: str, call: Callable[[httpx.Client], httpx.Response]) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = call(client)
                    status = response.status_code
                    problem = response.headers.get("content-type", "").startswith("application/problem+json")
                    retry_after = "retry-after" in response.headers
                except httpx.HTTPError:
                    status, problem, retry_after = 0, False, False
                with lock:
                    answers.append(Answer(kind, started, time.monotonic() - started, status, problem, retry_after))
                time.sleep(0.1)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in calls.items()]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize("mode", ["cut", "stall"])
def test_database_outage_under_traffic_answers_503_quickly_and_recovers(healed: Faults, mode: Mode) -> None:
    topology = healed.topology
    tally = Tally(f"postgres {mode} {OUTAGE_SECONDS}s under traffic")
    with httpx.Client(base_url=topology.gateway_url, timeout=30) as client:
        regular = new_learner(client)  # the traffic's signed-in learner, entitled to the paid lesson
        email = client.get("/api/auth/me", headers=regular).json()["email"]
        buy(client, regular)
        eventually(lambda: client.post("/api/playback/token", headers=regular,
                                       json={"lesson_id": PAID_LESSON}).status_code == 200,
                   within=30, what="the traffic's learner may watch")
        buyers = signed_in_learners(topology.gateway_url, PURCHASES_BEFORE)
        pids = process_ids(topology)
        answers: list[Answer] = []
        stop = threading.Event()
        threads = _traffic(topology.gateway_url, regular, email, answers, stop)
        try:
            time.sleep(1)
            orders = [buy(client, buyer) for buyer in buyers]  # paid just before the outage
            healed.postgres.set_mode(mode)
            outage_started = time.monotonic()
            not_ready_after = seconds_until_readiness(topology, ready=False, within=5 + 3)
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
            healed.postgres.set_mode("up")
            returned = time.monotonic()

            def answering_again() -> bool:
                latest = {a.kind: a for a in answers if a.started >= returned}
                return len(latest) == 4 and all(a.status == 200 for a in latest.values())

            eventually(answering_again, within=RECOVERY_WITHIN + 5, interval=0.1, what="every request kind answers")
            recovered_after = time.monotonic() - returned
            ready_after = seconds_until_readiness(topology, ready=True, within=RECOVERY_WITHIN + 5)
            time.sleep(2)  # and keeps answering
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=70)
        settled = returned + recovered_after
        during = [a for a in answers if outage_started <= a.started < returned]
        failed = [a for a in answers if a.status != 200]
        after = [a for a in answers if a.started >= settled]

        ids = [user_id(client, buyer) for buyer in buyers]
        eventually(lambda: all(enrollments(client, buyer) == 1 for buyer in buyers), within=30,
                   what="every purchase made before the outage enrolled")
        eventually(lambda: entitled(topology, ids) == PURCHASES_BEFORE, within=30, what="every buyer entitled")
        statuses = [client.get(f"/api/billing/orders/{order}", headers=buyer).json()["status"]
                    for order, buyer in zip(orders, buyers, strict=True)]
        counts = [enrollments(client, buyer) for buyer in buyers]
    for answer in answers:
        tally.record(answer.status)
    tally.extra = {
        "during_outage": {kind: _summary([a for a in during if a.kind == kind]) for kind in
                          ("login", "course", "orders", "playback_token")},
        "slowest_failure_s": round(max((a.seconds for a in failed), default=0.0), 1),
        "readiness_503_after_s": round(not_ready_after, 1), "recovery_s": round(recovered_after, 1),
        "all_ready_after_s": round(recovered_after + ready_after, 1),
        "paid_before": len(orders), "paid": statuses.count("paid"), "enrolled": counts.count(1),
        "lost": counts.count(0), "duplicated": sum(1 for c in counts if c > 1),
        "restarted": sorted(name for name, pid in process_ids(topology).items() if pids.get(name) != pid),
        "dead_outbox": dead_outbox_rows(topology), "dlq": dead_letters(topology)}
    tally.report()
    assert {a.status for a in failed} <= {503}, "only 503s: " + str(tally.errors)
    assert all(a.problem and a.retry_after for a in failed), "every 503 is problem+json with Retry-After"
    assert all(a.seconds < FAIL_WITHIN for a in failed), [(a.kind, round(a.seconds, 1)) for a in failed
                                                          if a.seconds >= FAIL_WITHIN]
    assert any(a.status == 503 for a in during), "the outage was seen"
    assert not_ready_after < 5 + 1
    assert recovered_after + ready_after < RECOVERY_WITHIN
    assert all(a.status == 200 for a in after)
    assert tally.extra["restarted"] == []
    assert statuses == ["paid"] * PURCHASES_BEFORE and counts == [1] * PURCHASES_BEFORE
    assert not any(dead_outbox_rows(topology).values()) and not any(dead_letters(topology).values())


def _summary(answers: list[Answer]) -> dict[str, object]:
    by_status: dict[int, int] = {}
    for answer in answers:
        by_status[answer.status] = by_status.get(answer.status, 0) + 1
    failed = [a.seconds for a in answers if a.status != 200]
    return {"sent": len(answers), "by_status": by_status,
            "max_failure_s": round(max(failed, default=0.0), 1)}
