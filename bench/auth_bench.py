"""Auth under load: login and refresh throughput and latency, and whether argon2 work stalls other
requests on the same worker (p99 of GET /me alone, then during a login storm).

By default it starts its own auth: one uvicorn worker on a fresh PostgreSQL database with Redis
(the distributed adapters), seeds a few users, runs each scenario for a few seconds, and drops the
database. `--base-url` measures an auth that is already running instead (e.g. `make up`'s, at
http://127.0.0.1:8101; seed users must then be registrable there).

    uv run python bench/auth_bench.py                       # ~25 s in total
    uv run python bench/auth_bench.py --seconds 3 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

# bench/ is sys.path[0] when run as `uv run python bench/auth_bench.py`.
from loadgen import run

from common.testing import REDIS_URL, postgres_database, unique_name
from gateway.distributed import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "a benchmark passphrase"


@contextlib.contextmanager
def local_auth(threads: int | None) -> Iterator[str]:
    """One uvicorn worker of auth on a fresh PostgreSQL schema + Redis prefix; yields its URL."""
    with postgres_database(["auth"]) as urls:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "AUTH_DATABASE_URL": urls["auth"], "AUTH_MIGRATE_ON_START": "true",
               "AUTH_REDIS_URL": REDIS_URL, "AUTH_REDIS_KEY_PREFIX": unique_name("bench") + ":",
               "AUTH_AUTH_URL": url, "AUTH_LOG_LEVEL": "WARNING", "AUTH_LOG_JSON": "true"}
        if threads:
            env["AUTH_PASSWORD_HASH_THREADS"] = str(threads)
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "auth.main:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log", "--log-level", "warning"],
            env=env, cwd=REPO_ROOT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                        break
                time.sleep(0.2)
            else:
                raise RuntimeError("auth did not become ready")
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


async def bench(base_url: str, seconds: float, concurrency: int, users: int) -> None:
    limits = httpx.Limits(max_connections=concurrency * 2 + 8, max_keepalive_connections=concurrency * 2 + 8)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        emails = [f"bench-{uuid.uuid4().hex[:10]}@example.com" for _ in range(users)]
        for email in emails:
            response = await client.post("/register", json={"email": email, "password": PASSWORD,
                                                             "full_name": "Bench"})
            response.raise_for_status()
        first = (await client.post("/login", json={"email": emails[0], "password": PASSWORD})).json()
        me_headers = {"Authorization": f"Bearer {first['access_token']}"}
        await client.get("/me", headers=me_headers)  # JWKS fetched and cached

        async def me() -> bool:
            return (await client.get("/me", headers=me_headers)).status_code == 200

        turn = itertools.count()

        async def login() -> bool:
            response = await client.post("/login", json={"email": emails[next(turn) % users], "password": PASSWORD})
            return response.status_code == 200

        # One refresh chain per concurrent client: each call takes a free chain, rotates it and puts the
        # new token back, so no chain is ever refreshed twice at once (that would be a reuse).
        chains: asyncio.Queue[str] = asyncio.Queue()
        for i in range(concurrency):
            chains.put_nowait((await client.post("/login", json={"email": emails[i % users], "password": PASSWORD}))
                              .json()["refresh_token"])

        async def refresh() -> bool:
            token = chains.get_nowait()
            response = await client.post("/refresh", json={"refresh_token": token})
            ok = response.status_code == 200
            chains.put_nowait(response.json()["refresh_token"] if ok else token)
            return ok

        print(f"auth at {base_url}; {seconds:.0f} s per scenario, {concurrency} concurrent clients, "
              f"{os.cpu_count()} CPUs")
        print((await run(me, 4, seconds=seconds)).line("GET /me (alone, 4 clients)"))
        print((await run(login, concurrency, seconds=seconds)).line("POST /login"))
        print((await run(refresh, concurrency, seconds=seconds)).line("POST /refresh"))
        storm, probe = await asyncio.gather(run(login, concurrency, seconds=seconds), run(me, 4, seconds=seconds))
        print(storm.line("POST /login (storm)"))
        print(probe.line("GET /me during the login storm"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="an auth that is already running (default: start one)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each scenario")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--hash-threads", type=int, default=None, help="AUTH_PASSWORD_HASH_THREADS of the local auth")
    args = parser.parse_args()
    if args.base_url:
        asyncio.run(bench(args.base_url, args.seconds, args.concurrency, args.users))
        return
    with local_auth(args.hash_threads) as url:
        asyncio.run(bench(url, args.seconds, args.concurrency, args.users))


if __name__ == "__main__":
    main()
