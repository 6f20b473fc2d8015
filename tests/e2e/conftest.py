"""Start the platform like a user would and talk to it over real HTTP.

`distributed`: each service its own uvicorn process (catalog with two replicas), Nginx in front,
real PostgreSQL, Redis and RabbitMQ, unique names per run. `embedded`: `python -m gateway`, one
process, SQLite files in a temporary folder.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from common.testing import RABBITMQ_URL
from gateway.distributed import REPO_ROOT, SERVICES, Topology, free_port
from gateway.limits import EdgeLimits


async def _delete_broker_objects(topology: Topology) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        for service in SERVICES:
            for suffix in ("", ".retry", ".dlq"):
                await channel.queue_delete(f"{topology.namespace}.{service}.events{suffix}")
        for suffix in ("", ".retry"):  # playback's transcoding job queue (playback.assets.jobs)
            await channel.queue_delete(f"{topology.namespace}.playback.transcode{suffix}")
        await channel.exchange_delete(f"{topology.namespace}.events")


@contextmanager
def running(topology: Topology) -> Iterator[Topology]:
    """Start a topology and always take it down again: processes, database and broker objects."""
    try:
        topology.start()
        yield topology
    finally:
        topology.stop(drop_database=True)
        asyncio.run(_delete_broker_objects(topology))


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint in the test process: the platform's processes export their
    spans here (standard OTEL_EXPORTER_OTLP_ENDPOINT), the tests read them back."""

    def __init__(self) -> None:
        self.spans: list[dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                receiver._add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _add(self, request: Any) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append({"service": service, "name": span.name, "trace_id": span.trace_id.hex(),
                                  "span_id": span.span_id.hex(), "parent_span_id": span.parent_span_id.hex(),
                                  "kind": str(span.kind), "status": str(span.status.code)})
        with self._lock:
            self.spans.extend(spans)

    def trace(self, trace_id: str) -> list[dict[str, str]]:
        with self._lock:
            return [span for span in self.spans if span["trace_id"] == trace_id]


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()


@pytest.fixture(scope="session")
def distributed(tmp_path_factory: pytest.TempPathFactory, otlp_receiver: OtlpReceiver) -> Iterator[Topology]:
    """The shared platform of the e2e tests. Every test logs in from 127.0.0.1, so the strict login
    zone is widened here; test_failover.py runs its own topology with the production 5/min.
    `gateway_url` is the edge's loopback plain-HTTP listener (same config as the TLS one, which is
    at `https_url`; trust `ca_file` for it). Its processes export traces to `otlp_receiver`."""
    topology = Topology.ephemeral(tmp_path_factory.mktemp("distributed"), replicas={"catalog": 2},
                                  limits=EdgeLimits(login_rate_limit="1200r/m", login_burst=200))
    with pytest.MonkeyPatch.context() as env:  # inherited by the processes the topology starts
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "500")
        with running(topology):
            env.undo()
            yield topology


@pytest.fixture(scope="module")
def failover(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """Two processes of every service behind the edge, with the production rate limits (the tests
    kill replicas, so this platform is never shared beyond its module)."""
    topology = Topology.ephemeral(tmp_path_factory.mktemp("failover"), replicas=dict.fromkeys(SERVICES, 2))
    with running(topology):
        yield topology


@contextmanager
def embedded_platform(data_dir: Path, **env: str) -> Iterator[str]:
    """`python -m gateway` on a free port with its SQLite files in `data_dir`; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GATEWAY_PORT": str(port), "GATEWAY_PUBLIC_BASE_URL": url,
           "GATEWAY_DATA_DIR": str(data_dir), **env}
    log = (data_dir / "gateway.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=REPO_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        _wait_ready(url, [f"/api/{s}/health/ready" for s in SERVICES], data_dir / "gateway.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Every test logs in from 127.0.0.1: the strict login limit (5/min) is widened as for `distributed`.
    with embedded_platform(tmp_path_factory.mktemp("embedded"), GATEWAY_LOGIN_RATE_LIMIT="1200r/m",
                           GATEWAY_LOGIN_BURST="200") as url:
        yield url


@pytest.fixture(scope="module")
def fresh_embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A platform of its own, as `make run` starts it (demo data, production rate limits), for tests
    that change the demo accounts' state; uploaded media go to a copy of the media folder."""
    data_dir = tmp_path_factory.mktemp("fresh-embedded")
    media = data_dir / "media"
    shutil.copytree(REPO_ROOT / "services" / "playback" / "media", media)
    with embedded_platform(data_dir, PLAYBACK_MEDIA_ROOT=str(media)) as url:
        yield url


def _wait_ready(base_url: str, paths: list[str], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(httpx.get(base_url + p, timeout=2).status_code == 200 for p in paths):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"embedded platform not ready: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session", params=["distributed", "embedded"])
def base_url(request: pytest.FixtureRequest) -> str:
    if request.param == "distributed":
        topology: Topology = request.getfixturevalue("distributed")
        return topology.gateway_url
    url: str = request.getfixturevalue("embedded")
    return url
