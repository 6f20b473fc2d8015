"""The distributed topology as local processes: one uvicorn per service replica, Nginx in front,
against the local PostgreSQL, Redis and RabbitMQ. `make up` / `make down` and the e2e tests use it.

Each run gets its own database, exchange, queue and key prefixes (the namespace), secrets created
once per run folder and kept there (secrets.json, 0600), and direct service-to-service URLs (the
gateway is for the public only). `up` supervises the service processes: one that dies is started
again with backoff, as a process manager would.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common import pgbootstrap, preflight
from gateway import nginx
from gateway.devcert import ensure_dev_cert
from gateway.limits import EDGE_LIMITS, EdgeLimits
from gateway.processes import alive, free_port, wait_gone

__all__ = ["REPO_ROOT", "Topology", "free_port", "main"]

SERVICES = ("auth", "catalog", "billing", "playback")
REPO_ROOT = nginx.REPO_ROOT
DEFAULT_PORTS = {"auth": 8101, "catalog": 8102, "billing": 8103, "playback": 8104}
# Where peers call each service: Nginx balances over its replicas (nginx.INTERNAL_SERVER).
DEFAULT_INTERNAL_PORTS = {"auth": 8091, "catalog": 8092, "billing": 8093, "playback": 8094}
# `make up`: the TLS edge, and the plain listener that only redirects to it.
DEFAULT_TLS_PORT = 8443
DEFAULT_REDIRECT_PORT = 8081
# Video ingestion: Nginx serves media from here, and playback's local storage writes here.
MEDIA_ROOT = REPO_ROOT / "services" / "playback" / "media"


@dataclass
class Topology:
    """One local distributed platform.

    The gateway listens three ways: `gateway_url` (plain HTTP on loopback with the whole API, for
    tests and tools that do not trust the dev CA), `https_url` (the TLS edge, certificate signed by
    the dev CA in `cert_dir`) and `redirect_port` (plain HTTP that redirects to HTTPS, as in compose).
    """

    namespace: str = "triple"
    gateway_port: int = 8080
    tls_port: int = DEFAULT_TLS_PORT
    redirect_port: int = DEFAULT_REDIRECT_PORT
    cert_dir: Path = REPO_ROOT / "var" / "dev-certs"
    ports: dict[str, list[int]] = field(default_factory=lambda: {s: [p] for s, p in DEFAULT_PORTS.items()})
    internal_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_INTERNAL_PORTS))
    run_dir: Path = REPO_ROOT / "var" / "distributed"
    pg_admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    seed_demo_data: bool = True
    # The edge limits (gateway.limits); `make up` and benchmarks may raise them.
    limits: EdgeLimits = EDGE_LIMITS
    secrets: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    # `make up` says what it is doing (migrations, waiting for services); tests keep it quiet.
    verbose: bool = False
    # `make up` restarts crashed processes (run_supervisor); tests that kill on purpose leave it off.
    supervise: bool = False
    supervisor_pid: int = 0
    worker_port: int = 0

    @classmethod
    def ephemeral(cls, run_dir: Path, replicas: dict[str, int] | None = None, **settings: Any) -> Topology:
        """A throw-away topology on free ports with unique names (tests); `settings` are fields
        such as `limits=EdgeLimits(...)`."""
        replicas = replicas or {}
        from common.testing import PG_ADMIN_DSN, RABBITMQ_URL, REDIS_URL  # TEST_* variables: tests' infrastructure

        settings = {"pg_admin_dsn": PG_ADMIN_DSN, "redis_url": REDIS_URL, "broker_url": RABBITMQ_URL, **settings}
        return cls(namespace=f"t{secrets.token_hex(5)}", gateway_port=free_port(), tls_port=free_port(),
                   redirect_port=free_port(), cert_dir=run_dir / "certs",
                   ports={s: [free_port() for _ in range(replicas.get(s, 1))] for s in SERVICES},
                   internal_ports={s: free_port() for s in SERVICES},
                   run_dir=run_dir, **settings)

    @property
    def database(self) -> str:
        return self.namespace

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        """The dev CA that signed the edge's certificate (`curl --cacert`, SSL_CERT_FILE)."""
        return self.cert_dir / "ca.pem"

    @property
    def secrets_file(self) -> Path:
        return self.run_dir / "secrets.json"

    def _ensure_secrets(self) -> None:
        """The topology's secrets are created once and kept (mode 0600) in the run folder, so
        `make migrate`, `make up` and `make down` in any order agree on them: a new key-encryption
        key per run made auth's stored signing keys unreadable, and every login failed."""
        if self.secrets:
            return
        kept = json.loads(self.secrets_file.read_text()) if self.secrets_file.exists() else {}
        key_file = Path(kept.get("playback_token_key_file") or self.run_dir / "playback-token-key.pem")
        if not key_file.exists():
            key = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            key_file.write_bytes(key)
            key_file.chmod(0o600)
        if kept:
            self.secrets = kept
            return
        self.secrets = {f"{s}_db_password": secrets.token_urlsafe(18) for s in SERVICES}
        self.secrets.update({f"{s}_client_secret": secrets.token_urlsafe(24) for s in SERVICES})
        self.secrets.update({
            "secure_link_secret": secrets.token_urlsafe(24),
            "stripe_webhook_secret": "whsec_" + secrets.token_urlsafe(24),
            "playback_token_key_file": str(key_file),
            # auth's private signing keys are stored encrypted with this key (AES-256-GCM).
            "auth_key_encryption_key": base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
        })
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.secrets, out)

    def env_for(self, service: str) -> dict[str, str]:
        prefix = service.upper() + "_"
        pw = self.secrets[f"{service}_db_password"]
        env = {
            "ENVIRONMENT": "development",
            "DATABASE_URL": pgbootstrap.role_url(self.pg_admin_dsn, self.database, f"{self.namespace}_{service}", pw),
            "DATABASE_SCHEMA": service,
            "MIGRATE_ON_START": "false",
            "REDIS_URL": self.redis_url,
            "REDIS_KEY_PREFIX": f"{self.namespace}:{service}:",
            "BROKER_URL": self.broker_url,
            "BROKER_EXCHANGE": f"{self.namespace}.events",
            "BROKER_QUEUE_PREFIX": f"{self.namespace}.",
            "BROKER_RETRY_DELAY_MS": "500",
            "PUBLIC_BASE_URL": self.gateway_url,
            "SERVICE_CLIENT_SECRET": self.secrets[f"{service}_client_secret"],
            "LOG_JSON": "true",
            "SEED_DEMO_DATA": "true" if self.seed_demo_data else "false",
        }
        for other in SERVICES:  # service to service: balanced over the peer's replicas, not the public edge
            env[f"{other.upper()}_URL"] = f"http://127.0.0.1:{self.internal_ports[other]}"
        if service == "auth":
            env["SERVICE_CLIENTS"] = ",".join(f"{s}:{self.secrets[f'{s}_client_secret']}" for s in SERVICES)
            if "auth_key_encryption_key" in self.secrets:  # topologies saved before keys were encrypted
                env["SIGNING_KEY_ENCRYPTION_KEYS"] = self.secrets["auth_key_encryption_key"]
        if service == "billing":
            env["PAYMENT_PROVIDER"] = "local"
            env["STRIPE_WEBHOOK_SECRET"] = self.secrets["stripe_webhook_secret"]
        if service == "playback":
            env["SECURE_LINK_SECRET"] = self.secrets["secure_link_secret"]
            env["MEDIA_BASE_URL"] = f"{self.gateway_url}/media"
            env["TOKEN_PRIVATE_KEY_FILE"] = self.secrets["playback_token_key_file"]
            # Transcoded assets land where Nginx serves /media from (local storage).
            env["STORAGE_BACKEND"] = "local"
            env["MEDIA_ROOT"] = str(MEDIA_ROOT)
        base = {k: v for k, v in os.environ.items() if not k.startswith(tuple(s.upper() + "_" for s in SERVICES))}
        return {**base, **{(k if k == "ENVIRONMENT" else prefix + k): v for k, v in env.items()}}

    def bootstrap(self) -> None:
        """Database, roles and schemas, then each service's migrations and queues."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_secrets()
        roles = {s: (f"{self.namespace}_{s}", self.secrets[f"{s}_db_password"]) for s in SERVICES}
        self.say(f"database {self.database}: roles and schemas")
        pgbootstrap.bootstrap(self.pg_admin_dsn, self.database, roles)
        for service in SERVICES:
            self.say(f"migrating {service} (python -m {service} migrate)")
            subprocess.run([sys.executable, "-m", service, "migrate"], env=self.env_for(service), check=True,
                           cwd=REPO_ROOT, stdout=subprocess.DEVNULL)

    def _spawn(self, name: str) -> int:
        """Start one process of the topology (`catalog-1`, `playback-worker-0`); returns its pid."""
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        service, index = name.rsplit("-", 1)
        if service == "playback-worker":
            # The transcode worker (`python -m playback.worker`), its own process as in k8s.
            if not self.worker_port:
                self.worker_port = free_port()
            command = [sys.executable, "-m", "playback.worker"]
            env = {**self.env_for("playback"), "PLAYBACK_WORKER_PORT": str(self.worker_port)}
        else:
            command = [sys.executable, "-m", "uvicorn", f"{service}.main:create_app", "--factory",
                       "--host", "127.0.0.1", "--port", str(self.ports[service][int(index)]), "--no-server-header",
                       "--no-access-log", "--proxy-headers", "--root-path", f"/api/{service}"]
            env = self.env_for(service)
        with (logs / f"{name}.log").open("ab") as log_file:
            process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        return process.pid

    def start(self) -> None:
        self.bootstrap()
        for service in SERVICES:
            for index in range(len(self.ports[service])):
                self.pids[f"{service}-{index}"] = self._spawn(f"{service}-{index}")
        self.pids["playback-worker-0"] = self._spawn("playback-worker-0")
        self.say(f"started {len(self.pids)} processes (logs: {self.run_dir / 'logs'}); starting nginx")
        cert = ensure_dev_cert(self.cert_dir)
        main_conf = nginx.render(nginx.GatewayConfig(
            https_listen=f"127.0.0.1:{self.tls_port}", http_listen=f"127.0.0.1:{self.redirect_port}",
            plain_listen=f"127.0.0.1:{self.gateway_port}", tls_cert=cert.cert, tls_key=cert.key,
            upstreams={s: [f"127.0.0.1:{p}" for p in self.ports[s]] for s in SERVICES},
            internal_listens={s: f"127.0.0.1:{p}" for s, p in self.internal_ports.items()},
            media_root=MEDIA_ROOT,
            secure_link_secret=self.secrets["secure_link_secret"], limits=self.limits),
            self.run_dir / "nginx")
        nginx.check(main_conf)
        nginx.start(main_conf)
        self.save()
        if self.supervise:
            self.supervisor_pid = subprocess.Popen(
                [sys.executable, "-m", "gateway.distributed", "supervise", "--run-dir", str(self.run_dir)],
                cwd=REPO_ROOT, stdout=(self.run_dir / "logs" / "supervisor.log").open("ab"),
                stderr=subprocess.STDOUT, start_new_session=True).pid
            self.save()
        self.wait_ready()

    def run_supervisor(self, *, check_every: float = 0.5, first_backoff: float = 0.5, max_backoff: float = 30.0,
                       healthy_after: float = 60.0) -> None:
        """Restart every process of the topology that died (crash, OOM kill, kill -9), with an
        exponential backoff per process (`first_backoff` doubling up to `max_backoff`) that resets
        once it has run for `healthy_after` seconds. Runs until SIGTERM (`make down` sends it before
        stopping the processes)."""
        stopping = False

        def on_term(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, on_term)
        backoff: dict[str, float] = {}
        started: dict[str, float] = dict.fromkeys(self.pids, time.monotonic())
        due: dict[str, float] = {}
        while not stopping:
            now = time.monotonic()
            for name, pid in list(self.pids.items()):
                if alive(pid):
                    if now - started.get(name, now) >= healthy_after:
                        backoff.pop(name, None)
                    continue
                if name not in due:
                    delay = backoff.get(name, first_backoff)
                    backoff[name] = min(delay * 2, max_backoff)
                    due[name] = now + delay
                    print(json.dumps({"event": "process exited", "process": name, "pid": pid,
                                      "restart_in_seconds": delay}), flush=True)
                elif now >= due[name]:
                    del due[name]
                    self.pids[name] = self._spawn(name)
                    started[name] = now
                    self.save()
                    print(json.dumps({"event": "process restarted", "process": name, "pid": self.pids[name]}),
                          flush=True)
            time.sleep(check_every)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        pending = {f"{s}:{p}" for s in SERVICES for p in self.ports[s]}
        next_report = 0.0
        while pending and time.monotonic() < deadline:
            if time.monotonic() >= next_report:
                self.say(f"waiting for {', '.join(sorted(pending))} to be ready")
                next_report = time.monotonic() + 5
            for item in list(pending):
                port = item.split(":")[1]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                        pending.discard(item)
                except httpx.HTTPError:
                    pass
            if pending:
                time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not ready after {timeout}s: {sorted(pending)}; see {self.run_dir / 'logs'}")

    def say(self, message: str) -> None:
        if self.verbose:
            print(f"make up: {message}", file=sys.stderr, flush=True)

    def stop(self, *, drop_database: bool = False) -> None:
        if self.supervisor_pid:  # first, or it would restart what is being stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.supervisor_pid, signal.SIGTERM)
            wait_gone(self.supervisor_pid, time.monotonic() + 5)
            self.supervisor_pid = 0
            saved = Topology.load(self.run_dir)
            if saved is not None:
                self.pids = saved.pids  # the supervisor may have restarted some
        nginx.stop(self.run_dir / "nginx" / "nginx.conf")
        for pid in self.pids.values():
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 10
        for pid in self.pids.values():
            if not wait_gone(pid, deadline):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        self.pids.clear()
        if drop_database:
            pgbootstrap.drop_database(self.pg_admin_dsn, self.database,
                                      roles=[f"{self.namespace}_{s}" for s in SERVICES])
        state = self.run_dir / "state.json"
        state.unlink(missing_ok=True)

    def save(self) -> None:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        data["cert_dir"] = str(self.cert_dir)
        # Replaced whole: the supervisor rewrites it while `make down` (or a test) may be reading it.
        partial = self.run_dir / f"state.json.{os.getpid()}"
        partial.write_text(json.dumps(data, indent=2))
        partial.replace(self.run_dir / "state.json")

    @classmethod
    def load(cls, run_dir: Path) -> Topology | None:
        state = run_dir / "state.json"
        if not state.exists():
            return None
        data = json.loads(state.read_text())
        data["run_dir"] = Path(data["run_dir"])
        data["cert_dir"] = Path(data.get("cert_dir", REPO_ROOT / "var" / "dev-certs"))
        data["limits"] = EdgeLimits(**data.get("limits", {}))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.distributed", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "migrate", "supervise"])
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / "var" / "distributed",
                        help=argparse.SUPPRESS)
    parser.add_argument("--replicas", action="append", default=[], metavar="SERVICE=N",
                        help="run N processes of a service behind the gateway (least_conn)")
    parser.add_argument("--api-rate-limit", default=EDGE_LIMITS.api_rate_limit,
                        help="nginx limit_req rate per client IP on /api (benchmarks raise it)")
    parser.add_argument("--login-rate-limit", default=EDGE_LIMITS.login_rate_limit,
                        help="the strict zone (login, register, password) per client IP (load tests raise it)")
    parser.add_argument("--pg-admin-dsn", default=Topology.pg_admin_dsn,
                        help="a PostgreSQL superuser DSN: the database, roles and schemas are created through it")
    parser.add_argument("--redis-url", default=Topology.redis_url)
    parser.add_argument("--broker-url", default=Topology.broker_url, help="RabbitMQ (amqp://user:password@host:port/)")
    args = parser.parse_args()
    run_dir = args.run_dir
    existing = Topology.load(run_dir)
    if args.command == "supervise":
        if existing is None:
            raise SystemExit(f"no topology in {run_dir}")
        existing.run_supervisor()
        return
    infrastructure = {"pg_admin_dsn": args.pg_admin_dsn, "redis_url": args.redis_url, "broker_url": args.broker_url}
    if args.command != "down":
        lines = preflight.problems([preflight.postgres(args.pg_admin_dsn, "--pg-admin-dsn (make up UP_ARGS=...)"),
                                    preflight.redis_server(args.redis_url, "--redis-url"),
                                    preflight.rabbitmq(args.broker_url, "--broker-url")])
        lines += preflight.missing_tools({"nginx": "nginx", "ffmpeg": "ffmpeg"} if args.command == "up" else {})
        if lines:
            raise SystemExit("\n".join(lines))
    if args.command == "down":
        if existing is None:
            print("nothing is running")
            return
        existing.stop()
        print("stopped")
        return
    if args.command == "migrate":
        # A running topology keeps its secrets (the roles' passwords must not change under it).
        (existing or Topology(run_dir=run_dir, verbose=True, **infrastructure)).bootstrap()
        print("migrated")
        return
    if existing is not None:
        existing.stop()
    limits = dataclasses.replace(EDGE_LIMITS, api_rate_limit=args.api_rate_limit,
                                 login_rate_limit=args.login_rate_limit)
    topology = Topology(run_dir=run_dir, limits=limits, verbose=True, supervise=True, **infrastructure)
    for spec in args.replicas:
        service, count = spec.split("=", 1)
        first = DEFAULT_PORTS[service]
        topology.ports[service] = [first + 10 * i for i in range(int(count))]
    topology.start()
    print(f"Triple Academy (distributed) at {topology.https_url} (CA: {topology.ca_file}) and "
          f"{topology.gateway_url} (loopback plain HTTP)  logs: {run_dir / 'logs'}")


if __name__ == "__main__":
    main()
