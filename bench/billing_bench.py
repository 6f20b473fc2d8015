"""Billing: checkout latency (p50/p99) and webhook events processed per second.

Runs auth, catalog and billing in this process (like billing's tests) on the local PostgreSQL, with
the local payment provider, and drives them over HTTP through the ASGI transport: the numbers are
billing's own cost (catalog calls, row locks, outbox) without a network or Nginx in between.
Bounded: a fixed number of requests, loopback only, a few seconds.

    uv run python bench/billing_bench.py --buyers 8 --rounds 10 --events 400 --concurrency 16

Checkout: each buyer repeatedly opens a checkout (timed) and lets it expire through the signed
webhook (so the next checkout creates a new order instead of returning the open one).
Webhooks: a mix of new refund events on paid orders (each takes the order's row lock, records a
refund - failed, so no receipt mail competes for the CPU - and recomputes the order) and
re-deliveries of events already processed (the dedup path).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "billing" / "tests"))

from billing_testkit import Platform, open_platform


def summary(name: str, latencies: list[float], elapsed: float, errors: int) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:<34} {len(ordered) / elapsed:8.1f}/s   p50 {statistics.median(ordered) * 1000:7.1f} ms"
          f"   p99 {p99 * 1000:7.1f} ms   n={len(ordered)} errors={errors}")


async def bench_checkout(platform: Platform, buyers: int, rounds: int) -> None:
    people = await asyncio.gather(*(platform.new_user() for _ in range(buyers)))
    for person in people:
        await platform.login(*person)
    checkout_latencies: list[float] = []
    expiry_latencies: list[float] = []
    errors = 0

    async def buyer_loop(person: tuple[str, str]) -> None:
        nonlocal errors
        for _ in range(rounds):
            start = time.perf_counter()
            response = await platform.checkout(person, key=f"bench-{uuid.uuid4()}")
            checkout_latencies.append(time.perf_counter() - start)
            if response.status_code != 201:
                errors += 1
                continue
            order_id = response.json()["order_id"]
            event = platform.stripe_event("checkout.session.expired", order_id, await platform.session_id(order_id),
                                          payment_status="unpaid")
            start = time.perf_counter()
            delivered = await platform.deliver(event)
            expiry_latencies.append(time.perf_counter() - start)
            if delivered.json().get("outcome") != "expired":
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(buyer_loop(p) for p in people))
    elapsed = time.perf_counter() - started
    summary("POST /checkout (new order)", checkout_latencies, elapsed, errors)
    summary("webhook checkout.session.expired", expiry_latencies, elapsed, 0)


async def bench_webhooks(platform: Platform, events: int, concurrency: int) -> None:
    orders: list[str] = []
    for _ in range(max(4, concurrency)):  # one paid order per concurrent sender: few lock collisions
        person = await platform.new_user()
        order_id = (await platform.checkout(person)).json()["order_id"]
        paid = platform.stripe_event("checkout.session.completed", order_id, await platform.session_id(order_id))
        assert (await platform.deliver(paid)).json()["outcome"] == "fulfilled"
        orders.append(order_id)
    payloads: list[str] = []
    for index in range(events):
        order_id = orders[index % len(orders)]
        if index % 2 and payloads:
            payloads.append(payloads[-1])  # a re-delivery: processed once, then acknowledged as duplicate
        else:
            payloads.append(platform.refund_event("refund.updated", order_id, f"re_bench_{uuid.uuid4().hex}", 1,
                                                  "failed"))
    queue: asyncio.Queue[str] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    async def worker() -> None:
        while not queue.empty():
            payload = queue.get_nowait()
            start = time.perf_counter()
            response = await platform.deliver(payload)
            latencies.append(time.perf_counter() - start)
            outcome = response.json().get("outcome", str(response.status_code))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    summary(f"webhook events (concurrency {concurrency})", latencies, elapsed, 0)
    print(f"{'':<34} outcomes: {dict(sorted(outcomes.items()))}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buyers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    async with open_platform() as platform:
        logging.getLogger().setLevel(logging.WARNING)
        for name in ("mail.log", "common", "billing", "auth", "catalog", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        print(f"billing in-process on PostgreSQL: {args.buyers} buyers x {args.rounds} checkouts, "
              f"{args.events} webhook events")
        await bench_checkout(platform, args.buyers, args.rounds)
        await bench_webhooks(platform, args.events, args.concurrency)


if __name__ == "__main__":
    asyncio.run(main())
