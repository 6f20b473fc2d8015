"""The distributed transcode path: the API queues the job on RabbitMQ, `python -m playback.worker`
(a real process) runs it. A worker SIGKILLed mid-job loses nothing: RabbitMQ redelivers the
unacked job, the next worker redoes it, and exactly one ready asset (and one event) results.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import httpx
import pytest

from common.testing import RABBITMQ_URL, postgres_database, unique_name
from gateway.distributed import REPO_ROOT, free_port
from playback import forensic
from playback.assets.models import VideoAsset

from .test_assets import INSTRUCTOR, Ingest, make_video, serve_ingest

pytestmark = pytest.mark.timeout(240)


def _children(pid: int, name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if fields.get("PPid", "").strip() == str(pid) and fields.get("Name", "").strip() == name:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.output = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "playback.worker"], cwd=REPO_ROOT,
            env={**env, "PLAYBACK_WORKER_PORT": str(self.port)},
            stdout=self.output, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    with postgres_database(["auth", "playback"]) as urls:
        yield urls


@pytest.fixture(scope="module")
def broker_names() -> Iterator[dict[str, str]]:
    names = {"broker_exchange": unique_name("ingest") + ".events", "broker_queue_prefix": unique_name("ingest") + "."}
    yield names

    async def clean() -> None:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            prefix = names["broker_queue_prefix"]
            for queue in ("playback.transcode", "playback.transcode.retry", "playback.events",
                          "playback.events.retry", "playback.events.dlq"):
                await channel.queue_delete(prefix + queue)
            await channel.exchange_delete(names["broker_exchange"])

    asyncio.run(clean())


@pytest.fixture(scope="module")
async def distributed_ingest(databases: dict[str, str], broker_names: dict[str, str],
                             tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ingest]:
    media = tmp_path_factory.mktemp("worker-media")
    async with serve_ingest(databases, media, shared_bus=False, broker_url=RABBITMQ_URL,
                            **broker_names) as served:
        yield served


def worker_env(ingest: Ingest, work: Path) -> dict[str, str]:
    settings = ingest.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBACK_")}
    return {**env, "PLAYBACK_DATABASE_URL": settings.database_url.get_secret_value(),
            "PLAYBACK_MIGRATE_ON_START": "false",
            "PLAYBACK_BROKER_URL": RABBITMQ_URL, "PLAYBACK_BROKER_EXCHANGE": settings.broker_exchange,
            "PLAYBACK_BROKER_QUEUE_PREFIX": settings.broker_queue_prefix,
            "PLAYBACK_MEDIA_ROOT": str(ingest.media_root), "PLAYBACK_TRANSCODE_WORK_DIR": str(work),
            "PLAYBACK_TRANSCODE_RETRY_DELAY_MS": "200", "PLAYBACK_LOG_JSON": "false"}


async def _attempts(ingest: Ingest, asset_id: str) -> int:
    async with ingest.runtime.db.session() as session:
        row = await session.get(VideoAsset, uuid.UUID(asset_id))
    assert row is not None
    return row.attempts


async def test_worker_killed_mid_job_still_ends_with_one_ready_asset(distributed_ingest: Ingest,
                                                                      tmp_path: Path) -> None:
    ingest = distributed_ingest
    source = make_video(tmp_path / "long.mp4", size="1280x720", seconds=8)
    work = tmp_path / "work"
    work.mkdir()
    env = worker_env(ingest, work)
    instructor = await ingest.login(INSTRUCTOR)

    first = Worker(env, tmp_path / "worker-1.log")
    try:
        await asyncio.to_thread(first.wait_ready)
        asset = await ingest.upload(instructor, source.read_bytes())
        asset_id = asset["asset_id"]
        # Mid-job: the attempt is counted and ffmpeg is encoding.
        async with asyncio.timeout(60):
            while True:
                if _children(first.process.pid, "ffmpeg") and await _attempts(ingest, asset_id) == 1:
                    break
                await asyncio.sleep(0.05)
        encoders = _children(first.process.pid, "ffmpeg")
        await asyncio.sleep(0.5)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        first.stop()
    async with asyncio.timeout(10):
        while True:  # ffmpeg dies with its worker (PR_SET_PDEATHSIG)
            if not any(_alive(pid) for pid in encoders):
                break
            await asyncio.sleep(0.05)
    mid = (await ingest.client.get(f"/api/playback/assets/{asset_id}", headers=instructor)).json()
    assert mid["status"] == "processing", mid

    assert [p.name for p in work.iterdir()], "the killed worker left its scratch folder"
    second = Worker(env, tmp_path / "worker-2.log")
    try:
        await asyncio.to_thread(second.wait_ready)
        ready = await ingest.wait_final(asset_id, instructor, limit=150)
    finally:
        second.stop()
    assert ready["status"] == "ready", (ready, (tmp_path / "worker-2.log").read_text()[-3000:])
    assert "transcoding progress" in (tmp_path / "worker-2.log").read_text(), "a long encode shows no progress"
    assert await _attempts(ingest, asset_id) == 2, "the redelivered job was the second attempt"
    assert not list(work.iterdir()), "the next worker cleared the scratch of the killed one"
    assert 7.9 <= ready["duration_seconds"] <= 8.1

    # Exactly one ready asset: one event, one set of outputs, no job left in the queue.
    assert len(await ingest.events("playback.asset.ready.v1", asset_id)) == 1
    root = ingest.media_root / asset_id
    names_key = forensic.names_key(ingest.settings.secure_link_secret.get_secret_value())
    for rendition in ("360p", "720p"):
        playlist = (root / rendition / "index.m3u8").read_text()
        listed = sorted(line for line in playlist.splitlines() if line.endswith(".ts"))
        # Each listed position exists as its A and B variant, nothing else.
        variants = [forensic.variant_file(names_key, asset_id, rendition, name, variant)
                    for name in listed for variant in forensic.VARIANTS]
        assert sorted(p.name for p in (root / rendition).iterdir()) == sorted([*variants, "index.m3u8"])
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{ingest.settings.broker_queue_prefix}playback.transcode",
                                            passive=True)
        assert queue.declaration_result.message_count == 0


async def test_failed_attempts_go_through_the_retry_queue_and_stop(databases: dict[str, str],
                                                                   broker_names: dict[str, str],
                                                                   tmp_path: Path) -> None:
    """RabbitMQ path of a transient failure: parked in the retry queue, redelivered, bounded by the row."""
    async with serve_ingest(databases, tmp_path, shared_bus=False, broker_url=RABBITMQ_URL, **broker_names,
                            transcode_in_process=True, transcode_timeout_seconds=0.05,
                            transcode_max_attempts=2) as ingest:
        instructor = await ingest.login(INSTRUCTOR)
        asset = await ingest.upload(instructor, make_video(tmp_path / "clip.mp4", size="640x360", seconds=2)
                                    .read_bytes())
        failed = await ingest.wait_final(asset["asset_id"], instructor, limit=60)
        assert failed["status"] == "failed"
        assert failed["failure_reason"].startswith("transcoding gave up after 2 attempts: attempt 2: TimeoutError")
        assert await _attempts(ingest, asset["asset_id"]) == 2
        assert len(await ingest.events("playback.asset.failed.v1", asset["asset_id"])) == 1


async def test_migrate_declares_the_transcode_queues_before_any_process_starts() -> None:
    """`python -m playback migrate` alone: a job published right after finds its queue (no API, no worker)."""
    exchange, prefix = unique_name("migrate") + ".events", unique_name("migrate") + "."
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBACK_")}
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        try:
            with postgres_database(["playback"]) as urls:
                done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "playback", "migrate"],
                                               cwd=REPO_ROOT, capture_output=True, timeout=120, env={
                    **env, "PLAYBACK_DATABASE_URL": urls["playback"], "PLAYBACK_BROKER_URL": RABBITMQ_URL,
                    "PLAYBACK_BROKER_EXCHANGE": exchange, "PLAYBACK_BROKER_QUEUE_PREFIX": prefix})
            assert done.returncode == 0, done.stderr.decode()[-3000:]
            queue = await channel.declare_queue(f"{prefix}playback.transcode", passive=True)
            await channel.declare_queue(f"{prefix}playback.transcode.retry", passive=True)
            bound = await channel.get_exchange(exchange)
            await bound.publish(aio_pika.Message(b"{}"), routing_key="playback.transcode.requested.v1")
            async with asyncio.timeout(10):
                while True:
                    message = await queue.get(fail=False)
                    if message is not None:
                        break
                    await asyncio.sleep(0.05)
            await message.ack()
        finally:
            for name in ("playback.transcode", "playback.transcode.retry", "playback.events",
                         "playback.events.retry", "playback.events.dlq"):
                await channel.queue_delete(prefix + name)
            await channel.exchange_delete(exchange)
