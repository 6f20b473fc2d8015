"""Throughput and latency of the core path through the gateway.

Run against `make up` (default http://127.0.0.1:8080) or `make run` (--base-url http://127.0.0.1:8000).
Bounded: a fixed number of requests per scenario, loopback only.

    uv run python bench/core_path.py --requests 2000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio

import httpx

# bench/ is sys.path[0] when run as `uv run python bench/core_path.py`.
from loadgen import run

PREVIEW_LESSON = "30000000-0000-4000-8000-000000000001"
STUDENT = {"email": "student@triple.academy", "password": "Student-Demo-2026!"}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.base_url, timeout=30, limits=limits) as client:
        login = await client.post("/api/auth/login", json=STUDENT)
        login.raise_for_status()
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

        async def list_courses() -> int:
            return (await client.get("/api/catalog/courses")).status_code

        async def me() -> int:
            return (await client.get("/api/auth/me", headers=auth)).status_code

        async def playback_token_and_manifest() -> int:
            token = await client.post("/api/playback/token", headers=auth, json={"lesson_id": PREVIEW_LESSON})
            if token.status_code != 200:
                return token.status_code
            return (await client.get(token.json()["manifest_url"])).status_code

        n, c = args.requests, args.concurrency
        print(f"{args.base_url}: {n} requests per scenario, concurrency {c}")
        print((await run(list_courses, c, total=n)).line("GET /api/catalog/courses"))
        print((await run(me, c, total=n)).line("GET /api/auth/me"))
        print((await run(playback_token_and_manifest, c, total=max(1, n // 4))).line("token + master manifest"))


if __name__ == "__main__":
    asyncio.run(main())
