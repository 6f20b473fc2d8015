"""Gateway overhead: a catalog read straight from the service versus through the Nginx edge.

Three runs of `wrk` (short, loopback) on GET /courses/{demo course}:
  direct      the catalog uvicorn process itself
  edge        through Nginx with a cookie, so the microcache is bypassed: proxy cost only
  edge-cache  through Nginx anonymously: the 1 s microcache answers most reads

By default it starts its own throw-away distributed platform (PostgreSQL, Redis, RabbitMQ as for
the e2e tests; one catalog process, edge limits lifted) and takes it down again:

    uv run python bench/gateway_overhead.py --seconds 5 --connections 16
    uv run python bench/gateway_overhead.py --gateway-url http://127.0.0.1:8080 --service-url http://127.0.0.1:8102

Numbers go in the issue notes, never in tests.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# bench/ is sys.path[0] when run as `uv run python bench/gateway_overhead.py`.
from loadgen import wrk

from gateway.distributed import Topology
from gateway.limits import EdgeLimits

COURSE = "10000000-0000-4000-8000-000000000001"


@contextmanager
def own_platform() -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        topology = Topology.ephemeral(Path(tmp), limits=EdgeLimits(api_rate_limit="100000r/s"))
        try:
            topology.start()
            yield topology.gateway_url, f"http://127.0.0.1:{topology.ports['catalog'][0]}"
        finally:
            topology.stop(drop_database=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway-url", help="a running edge (limits lifted: make up UP_ARGS=...)")
    parser.add_argument("--service-url", help="the catalog process behind it")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    @contextmanager
    def given() -> Iterator[tuple[str, str]]:
        yield args.gateway_url, args.service_url

    platform = given() if args.gateway_url and args.service_url else own_platform()
    with platform as (gateway_url, service_url):
        runs = {
            "direct": (f"{service_url}/courses/{COURSE}", {}),
            "edge": (f"{gateway_url}/api/catalog/courses/{COURSE}", {"Cookie": "bench=bypass-the-microcache"}),
            "edge-cache": (f"{gateway_url}/api/catalog/courses/{COURSE}", {}),
        }
        results = {}
        for name, (url, headers) in runs.items():
            wrk(url, seconds=1, connections=args.connections, threads=args.threads, headers=headers)  # warm-up
            results[name] = wrk(url, seconds=args.seconds, connections=args.connections, threads=args.threads,
                                headers=headers)
    print(f"GET /courses/{{id}}  {args.connections} connections, {args.seconds}s each")
    for name, r in results.items():
        print(f"{name:<11} {r['rps']:8.0f} req/s   p50 {r['p50']:7.2f} ms   p99 {r['p99']:7.2f} ms"
              f"   non-2xx {r['errors']:.0f}")
    direct, edge = results["direct"], results["edge"]
    print(f"edge overhead: p50 +{edge['p50'] - direct['p50']:.2f} ms, p99 +{edge['p99'] - direct['p99']:.2f} ms, "
          f"throughput {100 * (edge['rps'] / direct['rps'] - 1):+.0f}%")


if __name__ == "__main__":
    main()
