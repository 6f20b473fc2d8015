"""Catalog reads through the gateway: cached vs uncached list/detail throughput and p99, with the
SQL statements each request cost (no N+1: a detail page is a fixed number of queries whatever its
lesson count).

Anonymous scenarios send a cookie so the Nginx edge microcache (which honours `Cache-Control:
public, max-age=1`) passes them to catalog; two "edge microcache" scenarios show the edge itself.
Starts its own distributed platform (Nginx, PostgreSQL, Redis, RabbitMQ; catalog with two
replicas) once with the response cache on and once with it off
(`CATALOG_PUBLIC_CACHE_TTL_SECONDS=0`), and tears it down again. Per-request query counts and
cache hits come from catalog's own Prometheus metrics (`catalog_sql_queries_per_request`, fed by
a `before_cursor_execute` listener; `catalog_cache_lookups_total`), scraped from every replica
before and after each scenario. Bounded: a fixed number of requests per scenario and at most
`--max-seconds` each, loopback only.

    uv run python bench/catalog_read.py --requests 1500 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx

# bench/ is sys.path[0] when run as `uv run python bench/catalog_read.py`.
from loadgen import run
from prometheus_client.parser import text_string_to_metric_families

from gateway.distributed import SERVICES, Topology
from gateway.limits import EdgeLimits

DEMO_ASSET = "20000000-0000-4000-8000-000000000001"
INSTRUCTOR = {"email": "instructor@triple.academy", "password": "Instructor-Demo-2026!"}
STUDENT = {"email": "student@triple.academy", "password": "Student-Demo-2026!"}


@dataclass
class BenchTopology(Topology):
    """The e2e topology with catalog's response cache switched on or off."""

    catalog_cache_ttl: str = "60"

    def env_for(self, service: str) -> dict[str, str]:
        env = super().env_for(service)
        if service == "catalog":
            env["CATALOG_PUBLIC_CACHE_TTL_SECONDS"] = self.catalog_cache_ttl
        return env


def scrape(ports: list[int]) -> dict[tuple[str, str], float]:
    """(metric sample name, label string) -> value, summed over the catalog replicas."""
    totals: dict[tuple[str, str], float] = {}
    for port in ports:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            if not family.name.startswith(("catalog_sql_queries_per_request", "catalog_cache_lookups")):
                continue
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "service")
                key = (sample.name, labels)
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def delta(after: dict[tuple[str, str], float], before: dict[tuple[str, str], float], name: str,
          contains: str) -> float:
    return sum(value - before.get(key, 0.0) for key, value in after.items()
               if key[0] == name and contains in key[1])


async def scenario(name: str, route: str, ports: list[int], args: argparse.Namespace,
                   call: Callable[[], Awaitable[int]]) -> None:
    before = scrape(ports)
    result = await run(call, args.concurrency, total=args.requests, seconds=args.max_seconds)
    after = scrape(ports)
    requests = delta(after, before, "catalog_sql_queries_per_request_count", f"route={route}")
    queries = delta(after, before, "catalog_sql_queries_per_request_sum", f"route={route}")
    hits = delta(after, before, "catalog_cache_lookups_total", "result=hit")
    lookups = delta(after, before, "catalog_cache_lookups_total", "result=")
    hit_ratio = f"{100 * hits / lookups:5.1f}%" if lookups else "    -"
    print(f"  {result.line(name)}   SQL/req {queries / max(requests, 1):4.2f}   cache hits {hit_ratio}")


async def run_mode(topology: Topology, args: argparse.Namespace, *, edge: bool) -> None:
    ports = topology.ports["catalog"]
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=topology.gateway_url, timeout=30, limits=limits) as client:
        instructor = {"Authorization": "Bearer " + (await client.post("/api/auth/login", json=INSTRUCTOR)
                                                     ).json()["access_token"]}
        student = {"Authorization": "Bearer " + (await client.post("/api/auth/login", json=STUDENT)
                                                  ).json()["access_token"]}
        courses = {}
        for lessons in (3, 60):
            created = await client.post("/api/catalog/courses", headers=instructor, json={
                "title": f"Bench course {lessons} lessons {uuid.uuid4().hex[:6]}", "price_amount": 1500,
                "currency": "EUR", "description": "streaming benchmark", "tags": ["bench", "streaming"],
                "sections": [{"title": f"Section {s}", "lessons": [
                    {"title": f"Lesson {s}.{n}", "kind": "video", "asset_id": DEMO_ASSET, "is_preview": n == 0}
                    for n in range(lessons // 3)]} for s in range(3)]})
            created.raise_for_status()
            course_id = created.json()["id"]
            (await client.post(f"/api/catalog/courses/{course_id}/publish", headers=instructor)).raise_for_status()
            courses[lessons] = course_id

        def get(url: str, headers: dict[str, str] | None = None,
                params: dict[str, str] | None = None) -> Callable[[], Awaitable[int]]:
            async def call() -> int:
                return (await client.get(url, headers=headers, params=params)).status_code
            return call

        # A cookie makes the edge skip its microcache (it never caches requests with credentials or
        # cookies) while catalog still sees an anonymous caller: that measures catalog's own cache.
        app = {"Cookie": "bench=1"}
        if edge:
            await scenario("list, edge microcache", "/courses", ports, args, get("/api/catalog/courses"))
            await scenario("detail 60 lessons, edge microcache", "/courses/{course_id}", ports, args,
                           get(f"/api/catalog/courses/{courses[60]}"))
        await scenario("list (anonymous)", "/courses", ports, args, get("/api/catalog/courses", headers=app))
        await scenario("search q=streaming (anonymous)", "/courses", ports, args,
                       get("/api/catalog/courses", headers=app, params={"q": "streaming"}))
        await scenario("detail 3 lessons (anonymous)", "/courses/{course_id}", ports, args,
                       get(f"/api/catalog/courses/{courses[3]}", headers=app))
        await scenario("detail 60 lessons (anonymous)", "/courses/{course_id}", ports, args,
                       get(f"/api/catalog/courses/{courses[60]}", headers=app))
        await scenario("detail 3 lessons (signed in)", "/courses/{course_id}", ports, args,
                       get(f"/api/catalog/courses/{courses[3]}", headers=student))
        await scenario("detail 60 lessons (signed in)", "/courses/{course_id}", ports, args,
                       get(f"/api/catalog/courses/{courses[60]}", headers=student))


async def delete_broker_objects(topology: Topology) -> None:
    """The run's exchange and queues (what tests/e2e/conftest.py also removes after its runs)."""
    connection = await aio_pika.connect(topology.broker_url)
    async with connection:
        channel = await connection.channel()
        for service in SERVICES:
            for suffix in ("", ".retry", ".dlq"):
                await channel.queue_delete(f"{topology.namespace}.{service}.events{suffix}")
        await channel.exchange_delete(f"{topology.namespace}.events")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1500, help="requests per scenario")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=20.0, help="cap per scenario")
    parser.add_argument("--modes", default="cached,uncached")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix="catalog-bench-") as run_dir:
            topology = BenchTopology.ephemeral(Path(run_dir), replicas={"catalog": 2})
            assert isinstance(topology, BenchTopology)
            topology.limits = EdgeLimits(api_rate_limit="100000r/s")  # lift the per-IP edge limit for the load
            topology.catalog_cache_ttl = "60" if mode == "cached" else "0"
            try:
                await asyncio.to_thread(topology.start)
                print(f"{mode}: {topology.gateway_url}, catalog x{len(topology.ports['catalog'])}, "
                      f"{args.requests} requests per scenario, concurrency {args.concurrency}")
                await run_mode(topology, args, edge=mode == "cached")
            finally:
                await asyncio.to_thread(topology.stop, drop_database=True)
                await delete_broker_objects(topology)


if __name__ == "__main__":
    asyncio.run(main())
