"""Redis goes away (cut): what docs/faults.md says degrades does, fail closed (signed-in requests,
whose token revocation check reads Redis, and login and password reset, whose throttles count
there: 503 problem+json with Retry-After); what it says keeps working does (anonymous catalog reads,
registration, the payment provider's webhook, event consumption: a course paid during the outage
is enrolled and playable); and everything answers again once Redis is back, without a restart.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx

from .conftest import (
    DEMO_COURSE,
    PAID_LESSON,
    PASSWORD,
    Faults,
    Tally,
    buy,
    enrollments,
    entitled,
    eventually,
    process_ids,
    seconds_until_readiness,
    signed_in_learners,
    user_id,
)

OUTAGE_SECONDS = 15
RECOVERY_WITHIN = 10


def test_redis_cut_fails_signed_in_requests_closed_and_keeps_public_reads_webhooks_and_events(
        healed: Faults) -> None:
    topology = healed.topology
    tally = Tally(f"redis cut {OUTAGE_SECONDS}s")
    with httpx.Client(base_url=topology.gateway_url, timeout=30) as client:
        watcher, payer = signed_in_learners(topology.gateway_url, 2)
        email = client.get("/api/auth/me", headers=watcher).json()["email"]
        buy(client, watcher)
        eventually(lambda: client.post("/api/playback/token", headers=watcher,
                                       json={"lesson_id": PAID_LESSON}).status_code == 200,
                   within=30, what="the watcher may watch")
        payer_id = user_id(client, payer)
        checkout = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE},
                               headers={**payer, "Idempotency-Key": uuid.uuid4().hex})
        assert checkout.status_code == 201, checkout.text  # signed in: before the outage
        pids = process_ids(topology)

        works: dict[str, Callable[[], httpx.Response]] = {  # no Redis needed
            "course_detail": lambda: client.get(f"/api/catalog/courses/{DEMO_COURSE}"),
            "course_search": lambda: client.get("/api/catalog/courses", params={"q": uuid.uuid4().hex[:8]}),
            # Registration has no throttle of its own in Redis: the edge's login zone limits it.
            "register": lambda: client.post("/api/auth/register", json={
                "email": f"fault-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD, "full_name": "L"}),
        }
        closed: dict[str, Callable[[], httpx.Response]] = {  # fail closed
            "me": lambda: client.get("/api/auth/me", headers=watcher),
            "enrollments": lambda: client.get("/api/catalog/me/enrollments", headers=watcher),
            "orders": lambda: client.get("/api/billing/orders", headers=watcher),
            "playback_token": lambda: client.post("/api/playback/token", headers=watcher,
                                                  json={"lesson_id": PAID_LESSON}),
            "login": lambda: client.post("/api/auth/login", json={"email": email, "password": PASSWORD}),
            "login_wrong_password": lambda: client.post("/api/auth/login",
                                                        json={"email": email, "password": "not the password"}),
            "password_forgot": lambda: client.post("/api/auth/password/forgot", json={"email": email}),
        }
        seen: dict[str, list[int]] = {name: [] for name in (*works, *closed)}
        unproblematic: list[str] = []

        def probe() -> None:
            for name, call in (*works.items(), *closed.items()):
                answer = call()
                seen[name].append(answer.status_code)
                tally.record(answer.status_code)
                if answer.status_code == 503 and not (
                        answer.headers.get("content-type", "").startswith("application/problem+json")
                        and "retry-after" in answer.headers):
                    unproblematic.append(name)

        healed.redis.set_mode("cut")
        outage_started = time.monotonic()
        not_ready_after = seconds_until_readiness(topology, ready=False, within=5 + 3)
        paid = client.post(checkout.json()["checkout_url"] + "/pay")  # the provider's webhook reaches billing
        assert paid.status_code == 200, paid.text
        paid_at = time.monotonic()
        # Billing took the webhook, catalog enrolled and playback entitled: all while Redis is down.
        eventually(lambda: entitled(topology, [payer_id]) == 1, within=10,
                   what="the course paid during the outage playable (events consumed)")
        entitled_after = time.monotonic() - paid_at
        while time.monotonic() - outage_started < OUTAGE_SECONDS:
            probe()
            time.sleep(0.5)
        healed.redis.set_mode("up")
        returned = time.monotonic()

        healthy = {"register": 201, "login_wrong_password": 401, "password_forgot": 202}
        once = ("login_wrong_password", "password_forgot")  # repeated, they would trip their throttles

        def everything_answers() -> bool:
            return all(call().status_code == healthy.get(name, 200) for name, call in (*works.items(), *closed.items())
                       if name not in once)

        eventually(everything_answers, within=RECOVERY_WITHIN + 5, interval=0.2, what="every request answers")
        recovered_after = time.monotonic() - returned
        assert [closed[name]().status_code for name in once] == [healthy[name] for name in once]
        ready_after = seconds_until_readiness(topology, ready=True, within=RECOVERY_WITHIN + 5)
        payer_enrollments = enrollments(client, payer)
    tally.extra = {
        "during_outage": {name: {str(s): statuses.count(s) for s in sorted(set(statuses))}
                          for name, statuses in seen.items()},
        "readiness_503_after_s": round(not_ready_after, 1),
        "paid_during_outage_entitled_after_s": round(entitled_after, 1),
        "recovery_s": round(recovered_after, 1), "all_ready_after_s": round(recovered_after + ready_after, 1),
        "restarted": sorted(name for name, pid in process_ids(topology).items() if pids.get(name) != pid)}
    tally.report()
    for name in works:
        assert set(seen[name]) == {healthy.get(name, 200)}, (name, seen[name])
    for name in closed:
        assert set(seen[name]) == {503}, (name, seen[name])
    assert unproblematic == [], "every 503 is problem+json with Retry-After"
    assert not_ready_after < 5 + 1
    assert payer_enrollments == 1
    assert recovered_after + ready_after < RECOVERY_WITHIN
    assert tally.extra["restarted"] == []
