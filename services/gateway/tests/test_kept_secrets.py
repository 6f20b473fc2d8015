"""`make migrate`, `make up`, `make down` in any order agree on the topology's secrets: each command
builds a new Topology, and auth's signing key stored by the first must stay readable for the next
(a per-run key-encryption key made every login answer 500).

Kept cheap, auth alone: a real `migrate` (Topology.bootstrap) as far as auth, then auth started
twice from fresh Topology objects, as `up`, `down`, `up` would; a demo login must work each time,
with the same signing key.
"""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import aio_pika
import httpx
import jwt
import pytest

from common import pgbootstrap
from common.testing import PG_ADMIN_DSN, RABBITMQ_URL, REDIS_URL, unique_name
from gateway import distributed
from gateway.distributed import Topology, free_port

ADMIN = {"email": "admin@triple.academy", "password": "Admin-Demo-2026!"}


def _topology(run_dir: Path, namespace: str, ports: dict[str, list[int]]) -> Topology:
    """What each `make` command builds: a new object over the same run folder."""
    return Topology(namespace=namespace, run_dir=run_dir, ports=ports, pg_admin_dsn=PG_ADMIN_DSN,
                    redis_url=REDIS_URL, broker_url=RABBITMQ_URL)


def _auth_up_login(topology: Topology) -> str:
    """`up` as far as auth: its process from the kept secrets, ready, a login; the token's key id."""
    topology.run_dir.mkdir(parents=True, exist_ok=True)
    topology._ensure_secrets()
    topology.pids["auth-0"] = topology._spawn("auth-0")
    base = f"http://127.0.0.1:{topology.ports['auth'][0]}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (topology.run_dir / "logs" / "auth-0.log").read_text()[-3000:]
        time.sleep(0.3)
    login = httpx.post(f"{base}/login", json=ADMIN, timeout=10)
    assert login.status_code == 200, login.text
    return str(jwt.get_unverified_header(login.json()["access_token"])["kid"])


async def _delete_exchange(namespace: str) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(f"{namespace}.events")


def test_migrate_then_up_down_up_keep_the_secrets_and_logins_work(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "SERVICES", ("auth",))  # the other services' migrations cost ~15 s
    namespace = unique_name("tkeep")
    ports = {"auth": [free_port()]}
    migrate, first_up, second_up = (_topology(tmp_path, namespace, ports) for _ in range(3))
    try:
        migrate.bootstrap()  # `make migrate`: creates secrets.json and auth's first key under the KEK
        assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
        kid = _auth_up_login(first_up)
        first_up.stop()  # `make down`
        assert _auth_up_login(second_up) == kid
        kek = "auth_key_encryption_key"
        assert migrate.secrets[kek] == first_up.secrets[kek] == second_up.secrets[kek]
        assert migrate.secrets == second_up.secrets
    finally:
        for topology in (first_up, second_up):
            topology.stop()
        pgbootstrap.drop_database(PG_ADMIN_DSN, namespace, roles=[f"{namespace}_auth"])
        asyncio.run(_delete_exchange(namespace))
