"""The edge in front of two processes of every service: replicas dying under load, login storms,
spoofed client addresses, and the edge's headers on 200, 404, 429 and 502 alike."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import threading
import time
import uuid

import httpx

from gateway.distributed import Topology

DEMO_COURSE = "10000000-0000-4000-8000-000000000001"
STUDENT = {"email": "student@triple.academy", "password": "Student-Demo-2026!"}
EDGE_HEADERS = ("strict-transport-security", "x-content-type-options", "referrer-policy",
                "content-security-policy", "x-request-id")


def assert_edge_headers(response: httpx.Response) -> None:
    for header in EDGE_HEADERS:
        assert header in response.headers, (response.status_code, header)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def kill(topology: Topology, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
    os.killpg(topology.pids[name], sig)


def from_address(address: str) -> httpx.Client:
    """A client connecting from another loopback address: its own rate-limit budget (untrusted, so
    its X-Forwarded-For would count for nothing)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=20)


def steady_load(url: str, headers: dict[str, str], seconds: float, workers: int,
                during: threading.Event, rate: float = 70.0) -> list[int]:
    """GET `url` from `workers` clients for `seconds` at about `rate` requests per second in all (below
    the edge's 100 r/s per-IP API limit, so every non-200 is a failover error); `during` is set half way."""
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    interval = workers / rate

    def worker() -> None:
        with httpx.Client(headers=headers, timeout=10) as client:
            next_at = time.monotonic()
            while next_at < deadline:
                try:
                    statuses.append(client.get(url).status_code)
                except httpx.HTTPError:
                    statuses.append(0)
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    time.sleep(seconds / 2)
    during.set()
    for thread in threads:
        thread.join()
    return statuses


def test_killing_a_replica_under_load_is_invisible_to_gets(failover: Topology) -> None:
    token = httpx.post(failover.gateway_url + "/api/auth/login", json=STUDENT).json()["access_token"]
    # Authenticated reads bypass the microcache, so every one of them reaches a catalog replica.
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{failover.gateway_url}/api/catalog/courses/{DEMO_COURSE}"
    killed = threading.Event()
    def kill_when_loaded() -> None:
        killed.wait()
        kill(failover, "catalog-0")

    killer = threading.Thread(target=kill_when_loaded)
    killer.start()
    statuses = steady_load(url, headers, seconds=5, workers=6, during=killed)
    killer.join()
    errors = [s for s in statuses if s != 200]
    assert len(statuses) >= 100, "too few requests for a 1% error rate to mean anything"
    assert len(errors) / len(statuses) < 0.01, f"{len(errors)} errors in {len(statuses)}: {set(errors)}"
    # The edge tried the dead replica, then the live one, for the same request.
    dead, alive = (f"127.0.0.1:{p}" for p in failover.ports["catalog"])
    log = (failover.run_dir / "nginx" / "access.log").read_text().splitlines()
    assert any(f'"upstream":"{dead}, {alive}"' in line and '"status":200' in line for line in log)


def test_login_storm_gets_429s_and_no_5xx_whatever_x_forwarded_for_says(failover: Topology) -> None:
    url = failover.gateway_url + "/api/auth/login"

    def attempt(_: int) -> httpx.Response:
        # A fresh "client address" each time, sent by a client that is not a trusted proxy.
        spoofed = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
        return httpx.post(url, json={"email": "nobody@example.com", "password": "wrong-password-1"},
                          headers={"X-Forwarded-For": spoofed, "X-Real-IP": spoofed})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(attempt, range(40)))
    statuses = [r.status_code for r in responses]
    assert not [s for s in statuses if s >= 500], statuses
    edge_refusals = [r for r in responses if r.status_code == 429 and r.headers.get("retry-after") == "12"]
    assert len(edge_refusals) >= 30, statuses  # 5 a minute per IP, spoofing or not
    for refusal in edge_refusals:
        assert refusal.headers["content-type"].startswith("application/problem+json")
        assert refusal.json()["status"] == 429
        assert_edge_headers(refusal)
    # A real other client behind the trusted load balancer (127.0.0.2) has its own budget.
    behind_proxy = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with behind_proxy:
        other = behind_proxy.post(url, json={"email": "nobody@example.com", "password": "wrong-password-1"},
                                  headers={"X-Forwarded-For": "203.0.113.77"})
    assert other.status_code == 401


def test_a_checkout_post_that_reached_a_dying_replica_is_never_replayed(failover: Topology) -> None:
    """Billing replica 0 is frozen (SIGSTOP), a checkout POST is sent until one hangs on it, then
    the replica dies (SIGKILL) with that request unanswered. nginx must answer 502 and not re-send
    it to replica 1 (that would be a second checkout; with `non_idempotent` it would be 201/200)."""
    base = failover.gateway_url
    with from_address("127.0.0.4") as client:
        email, password = f"failover-{uuid.uuid4().hex[:8]}@example.com", "a long enough passphrase"
        assert client.post(f"{base}/api/auth/register",
                           json={"email": email, "password": password, "full_name": "Failover"}).status_code == 201
        login = client.post(f"{base}/api/auth/login", json={"email": email, "password": password})
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    kill(failover, "billing-0", signal.SIGSTOP)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answered: list[httpx.Response] = []
            for attempt in range(4):  # least_conn alternates between idle replicas: one lands on 0
                pending = pool.submit(httpx.post, f"{base}/api/billing/checkout", json={"course_id": DEMO_COURSE},
                                      headers={**auth, "Idempotency-Key": uuid.uuid4().hex,
                                               "X-Request-ID": f"frozen-checkout-{attempt}"}, timeout=20)
                try:
                    answered.append(pending.result(timeout=1.5))
                except concurrent.futures.TimeoutError:
                    break
            else:
                raise AssertionError(f"no checkout reached the frozen replica: {answered}")
            kill(failover, "billing-0")
            stuck = pending.result(timeout=15)
    finally:
        with contextlib.suppress(ProcessLookupError):  # never leave it frozen (SIGKILL ends a stopped one)
            kill(failover, "billing-0")
    assert [r.status_code for r in answered] == [201, 200, 200][: len(answered)], [r.text for r in answered]
    assert stuck.status_code == 502, stuck.text
    assert stuck.json()["title"] == "Bad Gateway"
    assert_edge_headers(stuck)
    dead = f"127.0.0.1:{failover.ports['billing'][0]}"
    log = [json.loads(line) for line in (failover.run_dir / "nginx" / "access.log").read_text().splitlines()]
    entry = next(e for e in log if e["request_id"] == f"frozen-checkout-{len(answered)}")
    assert entry["upstream"] == dead, "the POST went to one replica only"
    # Billing holds exactly the orders of the answered checkouts (one open order), none from a replay.
    orders = httpx.get(f"{base}/api/billing/orders", headers=auth)
    assert orders.status_code == 200, orders.text
    assert len(orders.json()["items"]) == (1 if answered else 0)


def test_edge_headers_on_200_404_429_and_502(failover: Topology) -> None:
    base = failover.gateway_url
    ok = httpx.get(f"{base}/api/catalog/courses")
    missing = httpx.get(f"{base}/api/catalog/courses/{uuid.uuid4()}")
    for _ in range(6):  # 5 a minute per IP: the sixth at the latest is refused (earlier tests spent some)
        limited = httpx.post(f"{base}/api/auth/login", json=STUDENT)
        if limited.status_code == 429:
            break
    for name in ("playback-0", "playback-1"):
        kill(failover, name)
    down = httpx.get(f"{base}/api/playback/health/live")
    assert [r.status_code for r in (ok, missing, limited, down)] == [200, 404, 429, 502]
    for response in (ok, missing, limited, down):
        assert_edge_headers(response)
    assert down.headers["content-type"].startswith("application/problem+json")
    assert down.json()["title"] == "Bad Gateway"
