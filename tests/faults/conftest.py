"""The distributed topology with a TCP fault proxy between the services and each dependency.

Every service's PostgreSQL, Redis and AMQP URL points at its proxy (`common.faultproxy`), so a test
can cut, refuse or stall one dependency for every process at once, as an operator saw it happen.
`make up`'s supervisor runs too (crashed processes come back). The scenarios print their counts.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx
import psycopg
import psycopg.sql
import pytest

from common.faultproxy import ThreadedFaultProxy
from common.testing import PG_ADMIN_DSN, RABBITMQ_URL, REDIS_URL
from common.testing import eventually as eventually
from gateway.distributed import SERVICES, Topology
from gateway.limits import EdgeLimits

from ..e2e.conftest import running

DEMO_COURSE = "10000000-0000-4000-8000-000000000001"
# A video lesson of the demo course that only enrolled learners may watch.
PAID_LESSON = "30000000-0000-4000-8000-000000000003"


PASSWORD = "a long enough passphrase"


@dataclass
class Faults:
    topology: Topology
    postgres: ThreadedFaultProxy
    redis: ThreadedFaultProxy
    broker: ThreadedFaultProxy

    def heal(self) -> None:
        for proxy in (self.postgres, self.redis, self.broker):
            if proxy.mode != "up":
                proxy.set_mode("up")


def _proxy(url: str, default_port: int) -> ThreadedFaultProxy:
    parts = urlsplit(url)
    return ThreadedFaultProxy(parts.hostname or "127.0.0.1", parts.port or default_port)


@pytest.fixture(scope="session")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    postgres = _proxy(PG_ADMIN_DSN, 5432)
    redis = _proxy(REDIS_URL, 6379)
    broker = _proxy(RABBITMQ_URL, 5672)
    amqp, pg = urlsplit(RABBITMQ_URL), urlsplit(PG_ADMIN_DSN)
    # The services' URLs derive from the admin DSN's host: through the proxy, like everything else.
    pg_credentials = pg.netloc.rsplit("@", 1)[0] + "@" if "@" in pg.netloc else ""
    topology = Topology.ephemeral(
        tmp_path_factory.mktemp("faults"), replicas=dict.fromkeys(SERVICES, 2),
        pg_admin_dsn=pg._replace(netloc=f"{pg_credentials}127.0.0.1:{postgres.port}").geturl(),
        redis_url=f"redis://127.0.0.1:{redis.port}/0",
        broker_url=amqp._replace(netloc=f"{amqp.username}:{amqp.password}@127.0.0.1:{broker.port}").geturl(),
        limits=EdgeLimits(login_rate_limit="6000r/m", login_burst=500, api_rate_limit="2000r/s"), supervise=True)
    try:
        with running(topology):
            yield Faults(topology, postgres, redis, broker)
    finally:
        for proxy in (postgres, redis, broker):
            proxy.close()


@pytest.fixture
def healed(faults: Faults) -> Iterator[Faults]:
    """Each scenario starts, and ends, with every dependency reachable and every process ready."""
    faults.heal()
    faults.topology.wait_ready(timeout=60)
    yield faults
    faults.heal()


@dataclass
class Tally:
    """Counts of one scenario, printed as one line."""

    name: str
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, status: int) -> None:
        self.sent += 1
        self.statuses[status] += 1

    @property
    def errors(self) -> dict[int, int]:
        return {s: n for s, n in sorted(self.statuses.items()) if s >= 400}

    def report(self) -> None:
        print(f"\n[fault scenario] {self.name}: " + json.dumps(
            {"sent": self.sent, "errors_by_status": self.errors, **self.extra}, default=str))


def user_id(client: httpx.Client, learner: dict[str, str]) -> str:
    return str(client.get("/api/auth/me", headers=learner).json()["id"])


def entitled(topology: Topology, user_ids: list[str]) -> int:
    """How many of these users playback's read model lets watch the demo course."""
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{topology.database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM playback.entitlements WHERE active AND course_id = %s "
                           "AND user_id::text = ANY(%s)", (DEMO_COURSE, user_ids)).fetchone()
    return int(row[0]) if row else 0


def new_learner(client: httpx.Client) -> dict[str, str]:
    email = f"fault-{uuid.uuid4().hex[:10]}@example.com"
    registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD,
                                                         "full_name": "Learner"})
    assert registered.status_code == 201, registered.text
    token = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def buy(client: httpx.Client, learner: dict[str, str]) -> str:
    """Checkout and pay with the local provider (its signed webhook reaches billing); the order id."""
    checkout = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE},
                           headers={**learner, "Idempotency-Key": uuid.uuid4().hex})
    assert checkout.status_code == 201, checkout.text
    paid = client.post(checkout.json()["checkout_url"] + "/pay")
    assert paid.status_code == 200, paid.text
    return str(checkout.json()["order_id"])


def enrollments(client: httpx.Client, learner: dict[str, str]) -> int:
    """How many enrollments in the demo course the learner has (1 expected, never 2)."""
    answer = client.get("/api/catalog/me/enrollments", headers=learner)
    if answer.status_code != 200:
        return -1
    return sum(1 for item in answer.json()["items"] if item["course_id"] == DEMO_COURSE)


def dead_outbox_rows(topology: Topology) -> dict[str, int]:
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{topology.database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = {}
        for service in SERVICES:
            query = psycopg.sql.SQL("SELECT count(*) FROM {}.outbox WHERE dead_at IS NOT NULL").format(
                psycopg.sql.Identifier(service))
            row = conn.execute(query).fetchone()
            found[service] = int(row[0]) if row else 0
        return found


def dead_letters(topology: Topology) -> dict[str, int]:
    async def count() -> dict[str, int]:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            found = {}
            for service in SERVICES:
                try:
                    queue = await channel.declare_queue(f"{topology.namespace}.{service}.events.dlq", passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    channel = await connection.channel()
                    continue
                found[service] = queue.declaration_result.message_count or 0
            return found

    return asyncio.run(count())


def readiness(topology: Topology, service: str, index: int = 0) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{topology.ports[service][index]}/health/ready", timeout=5).status_code
    except httpx.HTTPError:
        return 0



def instances(topology: Topology) -> list[tuple[str, int]]:
    return [(service, index) for service in SERVICES for index in range(len(topology.ports[service]))]


def seconds_until_readiness(topology: Topology, *, ready: bool, within: float) -> float:
    """Poll every instance's /health/ready at once (a stalled dependency makes each probe take its
    check budget) until all are ready (or all are not); the seconds it took."""
    started = time.monotonic()
    with ThreadPoolExecutor(len(instances(topology))) as pool:
        def settled() -> bool:
            statuses = list(pool.map(lambda item: readiness(topology, *item), instances(topology)))
            return all((status == 200) == ready for status in statuses)

        eventually(settled, within=within, interval=0.2, what=f"every instance {'ready' if ready else 'not ready'}")
    return time.monotonic() - started


def process_ids(topology: Topology) -> dict[str, int]:
    """The topology's processes as the supervisor last saved them (a restart changes a pid)."""
    saved = Topology.load(topology.run_dir)
    return dict(saved.pids if saved else topology.pids)


def signed_in_learners(base_url: str, count: int) -> list[dict[str, str]]:
    """`count` signed-in learners, registered a few at a time."""
    def one(_: int) -> dict[str, str]:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            return new_learner(client)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))
