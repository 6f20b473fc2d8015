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
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "billing" / "tests"))

from billing_testkit import Platform, open_platform

# bench/ is sys.path[0] when run as `uv run python bench/billing_bench.py`.
from loadgen import Result, run


async def bench_checkout(platform: Platform, buyers: int, rounds: int) -> None:
    people = await asyncio.gather(*(platform.new_user() for _ in range(buyers)))
    for person in people:
        await platform.login(*person)
    # One round per call: a free buyer opens a checkout and lets it expire, then is free again, so
    # a buyer never has two checkouts in flight. The two steps are timed separately.
    free: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for person in people:
        free.put_nowait(person)
    checkouts, expiries = Result(), Result()

    async def checkout_then_expire() -> bool:
        person = free.get_nowait()
        try:
            start = time.perf_counter()
            response = await platform.checkout(person, key=f"bench-{uuid.uuid4()}")
            checkouts.add(time.perf_counter() - start, response.status_code == 201)
            if response.status_code != 201:
                return False
            order_id = response.json()["order_id"]
            event = platform.stripe_event("checkout.session.expired", order_id, await platform.session_id(order_id),
                                          payment_status="unpaid")
            start = time.perf_counter()
            delivered = await platform.deliver(event)
            expired = delivered.json().get("outcome") == "expired"
            expiries.add(time.perf_counter() - start, expired)
            return expired
        finally:
            free.put_nowait(person)

    rounds_run = await run(checkout_then_expire, buyers, total=buyers * rounds)
    checkouts.elapsed = expiries.elapsed = rounds_run.elapsed
    print(checkouts.line("POST /checkout (new order)"))
    print(expiries.line("webhook checkout.session.expired"))


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
    pending = iter(payloads)
    outcomes: dict[str, int] = {}

    async def deliver() -> int:
        response = await platform.deliver(next(pending))
        outcome = response.json().get("outcome", str(response.status_code))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return response.status_code

    print((await run(deliver, concurrency, total=len(payloads))).line(f"webhook events (concurrency {concurrency})"))
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
