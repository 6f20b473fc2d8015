"""The hot paths through the Nginx edge, as ratios to a FastAPI hello-world behind the same Nginx.

Brings up the distributed topology (2 replicas of catalog and playback, PostgreSQL, Redis,
RabbitMQ, Nginx) on free ports with unique names, adds a FastAPI hello-world (bench/hello_app.py,
2 uvicorn processes started with the services' flags) behind the same Nginx with the same upstream
settings, enrols `--learners` learners in the paid demo course, then measures every path with
`wrk` (`--connections`, `--seconds`), each run right after a hello-world run (the machine is shared
and noisy: the ratio is what holds), `--repeats` times, and prints the medians:

    uv run python bench/hot_paths.py                       # make bench-hot
    uv run python bench/hot_paths.py --seconds 5 --repeats 2 --only token,variant

The first row (`floor`) is playback's `/health/live` through the edge: the service's middleware,
routing and uvicorn with no dependency and no I/O, the least any path of a service can cost.
Token and manifest paths are measured with requests spread over every learner (Lua scripts; each
learner within its stream limit: the default `end_oldest` policy ends a learner's oldest stream,
nothing is refused) and with one learner (the contention of a single account). The 2,000-segment
playlist is a synthetic rendition written next to the demo video for the run (removed after).
Raised for the benchmark, through settings (printed again with the results): the edge's per-IP
rate limits (`api_rate_limit`, `login_rate_limit`, `login_burst`) and auth's access-token lifetime
(the run outlasts 15 minutes). Any non-2xx answer or socket error fails the run.

Numbers go in docs/performance.md and the issue notes, never in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# bench/ is sys.path[0] when run as `uv run python bench/hot_paths.py`.
from catalog_read import delete_broker_objects
from loadgen import wrk

from gateway import nginx
from gateway.distributed import MEDIA_ROOT, REPO_ROOT, Topology, free_port
from gateway.limits import EdgeLimits

PAID_COURSE = "10000000-0000-4000-8000-000000000001"
PAID_VIDEO_LESSON = "30000000-0000-4000-8000-000000000003"
DEMO_ASSET = "20000000-0000-4000-8000-000000000001"
ADMIN = {"email": "admin@triple.academy", "password": "Admin-Demo-2026!"}
PASSWORD = "bench passphrase 2026"
SEGMENT_COUNTS = (10, 2000)
EDGE_LIMITS = EdgeLimits(api_rate_limit="1000000r/s", api_burst=1000000, login_rate_limit="1000000r/s",
                         login_burst=1000000)
ACCESS_TOKEN_TTL = "7200"
# PostgreSQL connections per service process: the machine's server (max_connections 100) is shared.
POOL_SIZE = "8"


@dataclass
class BenchTopology(Topology):
    """The e2e topology with auth's access tokens living through the whole run."""

    def env_for(self, service: str) -> dict[str, str]:
        env = super().env_for(service)
        env[f"{service.upper()}_DATABASE_POOL_SIZE"] = POOL_SIZE
        if service == "auth":
            env["AUTH_ACCESS_TOKEN_TTL_SECONDS"] = ACCESS_TOKEN_TTL
        return env


# ------------------------------------------------------------------ the hello-world behind the edge


@contextmanager
def hello_world(topology: Topology, replicas: int = 2) -> Iterator[tuple[list[int], list[int]]]:
    """Hello-world processes (the services' uvicorn flags), then the same edge config for them."""
    ports = [free_port() for _ in range(replicas)]
    logs = topology.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = [subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hello_app:app", "--app-dir", str(REPO_ROOT / "bench"),
         "--host", "127.0.0.1", "--port", str(port), "--no-server-header", "--no-access-log", "--proxy-headers",
         "--root-path", "/api/hello"],
        cwd=REPO_ROOT, stdout=(logs / f"hello-{index}.log").open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True) for index, port in enumerate(ports)]
    try:
        yield ports, [process.pid for process in processes]
    finally:
        for name in [name for name in topology.pids if name.startswith("hello-")]:
            del topology.pids[name]
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def add_hello_to_edge(topology: Topology, ports: list[int]) -> None:
    """A `hello_upstream` copied from catalog's (least_conn, keepalive, passive health parameters)
    and a /api/hello/ location copied from /api/playback/ (rate limit, API headers, proxy), then a
    reload."""
    conf = topology.run_dir / "nginx" / "conf.d" / "gateway.conf"
    text = conf.read_text()
    upstream_start = text.index("upstream catalog_upstream {")
    upstream = text[upstream_start:text.index("}", upstream_start) + 1]
    servers = nginx.server_lines(f"127.0.0.1:{port}" for port in ports)
    hello_upstream = "\n".join(line for line in upstream.replace("catalog_upstream", "hello_upstream").splitlines()
                               if not line.strip().startswith("server "))
    hello_upstream = hello_upstream.replace("least_conn;", f"least_conn;\n    {servers}")
    location_start = text.index("    location /api/playback/ {")
    location = text[location_start:text.index("}", location_start) + 1]
    hello_location = location.replace("/api/playback/", "/api/hello/").replace("playback_upstream", "hello_upstream")
    text = text.replace(upstream, f"{upstream}\n{hello_upstream}", 1)
    text = text.replace(location, f"{location}\n{hello_location}", 1)
    conf.write_text(text)
    main_conf = topology.run_dir / "nginx" / "nginx.conf"
    nginx.check(main_conf)
    subprocess.run([nginx.nginx_binary(), "-p", str(main_conf.parent), "-c", str(main_conf), "-s", "reload"],
                   check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{topology.gateway_url}/api/hello/hello", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the hello-world never answered through the edge")


# ------------------------------------------------------------------ data


@contextmanager
def synthetic_renditions() -> Iterator[dict[int, str]]:
    """Renditions of 10 and 2,000 four-second segments next to the demo video (removed after)."""
    names = {count: f"bench-{count}" for count in SEGMENT_COUNTS}
    for count, name in names.items():
        folder = MEDIA_ROOT / DEMO_ASSET / name
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:4", "#EXT-X-MEDIA-SEQUENCE:0",
                 "#EXT-X-PLAYLIST-TYPE:VOD"]
        for index in range(count):
            lines += ["#EXTINF:4.000,", f"segment_{index:05d}.ts"]
        (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    try:
        yield names
    finally:
        for name in names.values():
            shutil.rmtree(MEDIA_ROOT / DEMO_ASSET / name, ignore_errors=True)


@dataclass
class Learner:
    user_id: str
    email: str
    bearer: str


async def enrol_learners(base_url: str, count: int) -> list[Learner]:
    """Register, sign in and (admin grant) enrol `count` learners in the paid demo course."""
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        admin = (await client.post("/api/auth/login", json=ADMIN)).json()["access_token"]
        gate = asyncio.Semaphore(6)

        async def one(index: int) -> Learner:
            async with gate:
                email = f"bench-{index}-{uuid.uuid4().hex[:8]}@example.com"
                created = await client.post("/api/auth/register", json={
                    "email": email, "password": PASSWORD, "full_name": f"Bench Learner {index}"})
                created.raise_for_status()
                user_id = created.json()["id"]
                login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
                login.raise_for_status()
                granted = await client.post("/api/catalog/admin/enrollments/grant",
                                            headers={"Authorization": f"Bearer {admin}"},
                                            json={"user_id": user_id, "course_id": PAID_COURSE,
                                                  "reason": "benchmark"})
                granted.raise_for_status()
                return Learner(user_id, email, f"Bearer {login.json()['access_token']}")

        return list(await asyncio.gather(*(one(index) for index in range(count))))


async def issue_tokens(base_url: str, learners: list[Learner]) -> list[dict[str, str]]:
    """One fresh playback token (90 s) per learner: the manifest runs fetch with these."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=16)) as client:
        gate = asyncio.Semaphore(16)

        async def one(learner: Learner) -> dict[str, str]:
            async with gate:
                response = await client.post("/api/playback/token", headers={"Authorization": learner.bearer},
                                             json={"lesson_id": PAID_VIDEO_LESSON})
                response.raise_for_status()
                answer: dict[str, str] = response.json()
                return answer

        return list(await asyncio.gather(*(one(learner) for learner in learners)))


# ------------------------------------------------------------------ wrk scripts


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for these values


def spread_script(path: Path, method: str, requests: list[tuple[str, dict[str, str], str | None]]) -> str:
    """A wrk script cycling through `requests` (path, headers, body), each wrk thread from its own offset."""
    entries = []
    for url_path, headers, body in requests:
        header_table = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
        entries.append(f"  {{{lua_string(url_path)}, {{{header_table}}}, {lua_string(body) if body else 'nil'}}},")
    path.write_text("\n".join([
        "local requests = {", *entries, "}",
        "local offset = 0",
        "function setup(thread) thread:set('start', offset); offset = offset + 7919 end",
        "function init(args) i = start or 0 end",
        "function request()",
        "  i = i + 1",
        "  local r = requests[(i % #requests) + 1]",
        f"  return wrk.format({lua_string(method)}, r[1], r[2], r[3])",
        "end", ""]))
    return str(path)


# ------------------------------------------------------------------ measuring


@dataclass
class Row:
    name: str
    runs: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(run[key] for run in self.runs)


# Where a replica's samples go. Walking a stack from its innermost frame out, the first frame that is
# a library below (driver, Redis, JSON...), our own code, or a framework frame decides: a psycopg
# call made by application code counts as the driver's. Needles match py-spy's "function (file:line)".
# Idle: with uvloop the loop waits in C, so the innermost Python frame is asyncio's Runner.run.
IDLE_FRAME = "Runner.run (asyncio/runners.py"
LIBRARY_BUCKETS = (
    ("PostgreSQL driver + SQLAlchemy", ("psycopg", "sqlalchemy", "greenlet")),
    ("Redis client", ("redis/",)),
    ("peer HTTP calls (httpx)", ("httpx", "httpcore")),
    ("JWT / token and URL signatures", ("jwt/", "cryptography", "signing.py", "cdn.py")),
    ("metrics, tracing, logging", ("opentelemetry", "prometheus_client", "logging/", "observability",
                                   "querycount.py", "telemetry")),
    ("pydantic / JSON", ("pydantic", "json/", "encoders.py")),
)
OWN_CODE = ("(common/", "(catalog/", "(playback/", "(auth/", "(billing/")
FRAMEWORK_BUCKETS = (
    ("FastAPI / Starlette routing and dependencies", ("fastapi/", "starlette/")),
    ("uvicorn / HTTP parsing", ("uvicorn/", "httptools")),
    ("asyncio (streams, scheduling)", ("asyncio/",)),
)


# A thread-pool worker (argon2, file reads) waiting for work: py-spy samples it as a Python frame.
IDLE_WORKER_FRAME = "_worker (concurrent/futures/thread.py"


def _bucket(frames: list[str]) -> str:
    if not frames or not frames[-1]:
        return "native (no Python frame)"
    if frames[-1].startswith(IDLE_FRAME) or frames[-1].startswith(IDLE_WORKER_FRAME):
        return "idle"
    for frame in reversed(frames):
        for name, needles in LIBRARY_BUCKETS:
            if any(needle in frame for needle in needles):
                return name
        if any(own in frame for own in OWN_CODE):
            return "application code"
        for name, needles in FRAMEWORK_BUCKETS:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def profile_buckets(raw: Path) -> dict[str, int]:
    """Samples per bucket from `py-spy record --format raw` (one "frames;... count" line per stack)."""
    totals: dict[str, int] = {}
    for entry in raw.read_text().splitlines():
        stack, _, count = entry.rpartition(" ")
        if count.isdigit():
            bucket = _bucket(stack.strip().split(";") if stack.strip() else [])
            totals[bucket] = totals.get(bucket, 0) + int(count)
    return totals


def profile_summary(raw: Path) -> str:
    """Busy samples per bucket as shares (idle left out), and how busy the replica was."""
    totals = profile_buckets(raw)
    idle = totals.pop("idle", 0)
    busy = sum(totals.values())
    if not busy:
        return "no busy samples"
    shares = ", ".join(f"{name} {100 * n / busy:.0f}%" for name, n in sorted(totals.items(), key=lambda i: -i[1]))
    return f"busy {100 * busy / (busy + idle):.0f}% of samples; of those: {shares}"


@dataclass
class Bench:
    gateway_url: str
    seconds: float
    connections: int
    repeats: int
    rows: list[Row] = field(default_factory=list)
    hello: list[dict[str, float]] = field(default_factory=list)
    # --profile: a folder for py-spy recordings, and the replica pid to record for a path prefix.
    profile_dir: Path | None = None
    profile_pids: dict[str, int] = field(default_factory=dict)
    # The processes serving a path prefix (every replica): their CPU time per request is the
    # measure that a loaded machine disturbs least.
    service_pids: dict[str, list[int]] = field(default_factory=dict)

    def cpu_seconds(self, path: str) -> float:
        prefix = next((p for p in self.service_pids if path.startswith(p)), None)
        return sum(process_cpu_seconds(pid) for pid in self.service_pids.get(prefix or "", []))

    def run(self, url: str, headers: dict[str, str] | None = None, script: str | None = None,
            connections: int | None = None) -> dict[str, float]:
        path = httpx.URL(url).path
        cpu_before = self.cpu_seconds(path)
        result = wrk(url, seconds=self.seconds, connections=connections or self.connections, headers=headers,
                     script=script)
        requests = result["rps"] * max(1, round(self.seconds))
        result["cpu_ms"] = 1000 * (self.cpu_seconds(path) - cpu_before) / requests if requests else 0.0
        if result["errors"] or result["socket_errors"]:
            raise SystemExit(f"{url}: {result['errors']:.0f} non-2xx and {result['socket_errors']:.0f} socket "
                             f"errors: the benchmark only counts successful requests")
        return result

    def hello_run(self) -> dict[str, float]:
        result = self.run(f"{self.gateway_url}/api/hello/hello")
        self.hello.append(result)
        return result

    def measure(self, name: str, path: str, *, headers: dict[str, str] | None = None,
                script: Callable[[], str | None] | None = None) -> Row:
        """`repeats` x (hello-world run, then this path), after a 1 s warm-up of the path."""
        row = Row(name)
        url = f"{self.gateway_url}{path}"
        wrk(url, seconds=1, connections=self.connections, headers=headers, script=script() if script else None)
        for repeat in range(self.repeats):
            hello = self.hello_run()
            profiler = self.profile(name, path) if repeat == 0 else None
            result = self.run(url, headers, script() if script else None)
            result["ratio"] = result["rps"] / hello["rps"]
            result["cpu_ratio"] = result["cpu_ms"] / hello["cpu_ms"] if hello["cpu_ms"] else 0.0
            row.runs.append(result)
            if profiler is not None:
                profiler[0].wait()
                print(f"  profile of one replica: {profile_summary(profiler[1])} ({profiler[1]})", flush=True)
        self.rows.append(row)
        print(f"  {line(row)}", flush=True)
        return row

    def profile(self, name: str, path: str) -> tuple[subprocess.Popen[bytes], Path] | None:
        """py-spy on one replica of the path's service for the run (raw stacks, idle included)."""
        pid = next((pid for prefix, pid in self.profile_pids.items() if path.startswith(prefix)), None)
        if self.profile_dir is None or pid is None:
            return None
        out = self.profile_dir / ("".join(c if c.isalnum() else "-" for c in name).strip("-") + ".txt")
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(round(self.seconds)),
                                 "--rate", "250", "--idle", "--format", "raw", "--nonblocking", "-o", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out


def line(row: Row) -> str:
    return (f"| {row.name} | {row.median('rps'):,.0f} | {row.median('p50'):.1f} ms | {row.median('p99'):.1f} ms "
            f"| {row.median('ratio'):.2f} | {row.median('cpu_ms'):.2f} ms | {row.median('cpu_ratio'):.1f}x |")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def storm(bench: Bench, row: Row, path: str, login_script: str, *, headers: dict[str, str] | None = None,
          script: Callable[[], str | None] | None = None) -> None:
    """`path` again while a login storm (argon2, spread over every learner) runs alongside it."""
    p99s = []
    for _ in range(bench.repeats):
        logins = subprocess.Popen(["wrk", "-t", "2", "-c", "32", "-d", f"{round(bench.seconds) + 2}s", "-s",
                                   login_script, f"{bench.gateway_url}/api/auth/login"], stdout=subprocess.DEVNULL)
        time.sleep(1)
        p99s.append(bench.run(f"{bench.gateway_url}{path}", headers, script() if script else None)["p99"])
        logins.wait()
    quiet = row.median("p99")
    print(f"  | {row.name}, during a login storm | p99 {statistics.median(p99s):.1f} ms (quiet {quiet:.1f} ms) "
          f"| {statistics.median(p99s) / quiet:.2f}x quiet |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--learners", type=int, default=200)
    parser.add_argument("--only", default="", help="comma-separated: floor,catalog,token,master,variant,login,storm")
    parser.add_argument("--summarize", type=Path, help="only print the summaries of a --profile folder")
    parser.add_argument("--profile", type=Path, help="py-spy one replica of each path's service into this folder")
    args = parser.parse_args()
    if args.summarize:
        for raw in sorted(args.summarize.glob("*.txt")):
            print(f"{raw.stem}: {profile_summary(raw)}")
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    wanted = (set(filter(None, args.only.split(",")))
              or {"floor", "catalog", "token", "master", "variant", "login", "storm"})

    with tempfile.TemporaryDirectory(prefix="hot-paths-") as tmp, synthetic_renditions() as renditions:
        topology = BenchTopology.ephemeral(Path(tmp), replicas={"catalog": 2, "playback": 2}, limits=EDGE_LIMITS)
        try:
            try:
                topology.start()
            except RuntimeError:
                for log_file in sorted((topology.run_dir / "logs").glob("*.log")):
                    print(f"--- {log_file.name}\n" + "\n".join(log_file.read_text().splitlines()[-15:]))
                raise
            with hello_world(topology) as (hello_ports, hello_pids):
                add_hello_to_edge(topology, hello_ports)
                topology.pids.update({f"hello-{i}": pid for i, pid in enumerate(hello_pids)})
                try:
                    run_all(topology, args, wanted, renditions)
                except SystemExit:
                    for log_file in sorted((topology.run_dir / "logs").glob("*.log")):
                        problems = [entry for entry in log_file.read_text(errors="replace").splitlines()
                                    if '"level": "WARNING"' in entry or '"level": "ERROR"' in entry]
                        for entry in problems[-3:]:
                            print(f"{log_file.name}: {entry[:400]}")
                        if problems:  # the cause sits at the end of a traceback
                            print(f"{log_file.name} (last, end): {problems[-1][-1500:]}")
                    raise
        finally:
            topology.stop(drop_database=True)
            asyncio.run(delete_broker_objects(topology))


def run_all(topology: Topology, args: argparse.Namespace, wanted: set[str], renditions: dict[int, str]) -> None:
    base = topology.gateway_url
    learners = asyncio.run(enrol_learners(base, args.learners))
    time.sleep(2)  # the grant events reach playback's read model
    scripts = Path(topology.run_dir)
    bench = Bench(base, args.seconds, args.connections, args.repeats)
    bench.service_pids = {f"/api/{service}": [pid for name, pid in topology.pids.items()
                                               if name.startswith(f"{service}-") and "worker" not in name]
                          for service in ("catalog", "playback", "auth", "hello")}
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        bench.profile_dir = args.profile
        bench.profile_pids = {f"/api/{service}": topology.pids[f"{service}-0"]
                              for service in ("catalog", "playback", "auth")}
    print(f"hot paths through the edge: {args.connections} connections, {args.seconds:.0f} s per run, "
          f"median of {args.repeats} runs, each after a hello-world run; catalog x2, playback x2, "
          f"{len(learners)} learners, {POOL_SIZE} database connections per process. Raised for the benchmark: "
          f"{EDGE_LIMITS}, auth access tokens {ACCESS_TOKEN_TTL} s.", flush=True)
    print("| path | rps | p50 | p99 | share of hello-world | service CPU per request | CPU vs hello-world |\n"
          "|---|---|---|---|---|---|---|", flush=True)
    quiet: dict[str, Row] = {}
    one = learners[0]
    cookie = {"Cookie": "bench=bypass-the-microcache"}
    bearer = {"Authorization": one.bearer}
    course = f"/api/catalog/courses/{PAID_COURSE}"
    if "floor" in wanted:  # what any route costs before it does anything: the goals' lower bound
        bench.measure("GET /api/playback/health/live (the service's stack, no work: the floor)",
                      "/api/playback/health/live")
    if "catalog" in wanted or "storm" in wanted:
        bench.measure("GET /api/catalog/courses, anonymous (microcache)", "/api/catalog/courses")
        bench.measure("GET /api/catalog/courses, reaches catalog (cookie)", "/api/catalog/courses", headers=cookie)
        bench.measure("GET /api/catalog/courses, signed in (Bearer)", "/api/catalog/courses", headers=bearer)
        bench.measure("GET /api/catalog/courses/{id}, reaches catalog (cookie)", course, headers=cookie)
        quiet["detail"] = bench.measure("GET /api/catalog/courses/{id}, signed in, enrolled", course,
                                        headers=bearer)

    token_body = json.dumps({"lesson_id": PAID_VIDEO_LESSON})
    json_headers = {"Content-Type": "application/json"}

    def token_script(group: list[Learner], name: str) -> Callable[[], str]:
        return lambda: spread_script(scripts / name, "POST", [
            ("/api/playback/token", {**json_headers, "Authorization": learner.bearer}, token_body)
            for learner in group])

    if "token" in wanted or "storm" in wanted:
        quiet["token"] = bench.measure(f"POST /api/playback/token, {len(learners)} learners",
                                       "/api/playback/token", script=token_script(learners, "token-all.lua"))
        bench.measure("POST /api/playback/token, one learner", "/api/playback/token",
                      script=token_script([one], "token-one.lua"))

    def manifest_script(group: list[Learner], rendition: str | None, name: str) -> Callable[[], str]:
        def fresh() -> str:
            issued = asyncio.run(issue_tokens(base, group))
            paths: list[tuple[str, dict[str, str], str | None]] = []
            for answer in issued:
                url = httpx.URL(answer["manifest_url"])
                path = url.raw_path.decode()
                if rendition:
                    path = path.replace("/master.m3u8", f"/{rendition}/index.m3u8")
                paths.append((path, {}, None))
            return spread_script(scripts / name, "GET", paths)
        return fresh

    if "master" in wanted:
        bench.measure(f"GET master.m3u8, {len(learners)} learners", "/api/playback/manifests",
                      script=manifest_script(learners, None, "master-all.lua"))
        bench.measure("GET master.m3u8, one learner", "/api/playback/manifests",
                      script=manifest_script([one], None, "master-one.lua"))
    if "variant" in wanted:
        for count, rendition in renditions.items():
            bench.measure(f"GET variant playlist, {count:,} segments, {len(learners)} learners",
                          "/api/playback/manifests",
                          script=manifest_script(learners, rendition, f"variant-{count}.lua"))
    login_script = spread_script(scripts / "login.lua", "POST", [
        ("/api/auth/login", json_headers, json.dumps({"email": learner.email, "password": PASSWORD}))
        for learner in learners])
    if "login" in wanted:
        bench.measure("POST /api/auth/login (argon2)", "/api/auth/login", script=lambda: login_script)
    if "storm" in wanted:
        storm(bench, quiet["detail"], course, login_script, headers=bearer)
        storm(bench, quiet["token"], "/api/playback/token", login_script,
              script=token_script(learners, "token-all.lua"))
    print(f"| hello-world behind the same Nginx (all runs) | {statistics.median(h['rps'] for h in bench.hello):,.0f} "
          f"| {statistics.median(h['p50'] for h in bench.hello):.1f} ms "
          f"| {statistics.median(h['p99'] for h in bench.hello):.1f} ms | 1.00 "
          f"| {statistics.median(h['cpu_ms'] for h in bench.hello):.2f} ms | 1.0x |", flush=True)
    print(f"hello-world rps range {min(h['rps'] for h in bench.hello):,.0f}-"
          f"{max(h['rps'] for h in bench.hello):,.0f}", flush=True)


if __name__ == "__main__":
    main()
