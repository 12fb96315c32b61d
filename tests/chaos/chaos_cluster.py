"""A private cluster edition for chaos: its own servers, two replicas of ingest and inference."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sonobridge.api.events.v1 import topics
from sonobridge.node.cluster import (
    CONSUMERS,
    ClusterEdition,
    Infra,
    _wait_http,
    free_port,
    issuer_command,
)
from sonobridge.node.consortium import Consortium
from sonobridge.node.edition import SERVICES

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "deploy" / "local"
INFRA = ("kafka", "minio", "postgres")
# Ingest and inference scale out; reporting and maintenance stay single (as in the HA overlay).
REPLICATED = ("ingest", "inference")
CONSUMED_TOPICS = (
    topics.EXAM_COMPLETED,
    topics.INFERENCE_COMPLETED,
    topics.REPORT_SIGNED,
    topics.TICKET_OPENED,
)


@dataclass
class PrivateServers:
    """Kafka, MinIO and PostgreSQL of deploy/local, on free ports under a run dir of our own.

    The chaos run restarts and pauses them, so it never touches the shared servers.
    """

    run_dir: Path
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ports:
            names = ("KAFKA", "KAFKA_CONTROLLER", "MINIO", "MINIO_CONSOLE", "PG")
            self.ports = {n: free_port() for n in names}

    @property
    def env(self) -> dict[str, str]:
        """The environment deploy/local's scripts read."""
        env = dict(os.environ)
        env["SONOBRIDGE_RUN_DIR"] = str(self.run_dir)
        env.update({f"SONOBRIDGE_{n}_PORT": str(p) for n, p in self.ports.items()})
        return env

    def _script(self, name: str, *args: str) -> None:
        done = subprocess.run(
            ["bash", str(LOCAL / name), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def up(self, component: str = "all") -> None:
        """Start one server (or all three) and wait until it is ready."""
        for name in INFRA if component == "all" else (component,):
            self._script("up.sh", name)

    def down(self, component: str = "all") -> None:
        """Stop one server (or all three; then their data goes too)."""
        # PostgreSQL's data lands under /tmp when its user cannot reach a private run dir.
        elsewhere = self._pg_pidfile()
        for name in INFRA if component == "all" else (component,):
            self._script("down.sh", name)
        if component == "all" and elsewhere is not None and self.run_dir not in elsewhere.parents:
            shutil.rmtree(elsewhere.parent.parent, ignore_errors=True)

    def _pg_pidfile(self) -> Path | None:
        candidates = list(self.run_dir.glob("postgres/data/postmaster.pid"))
        candidates += list(Path("/tmp").glob("sonobridge-pg-*/data/postmaster.pid"))
        mine = [p for p in candidates if _pg_port(p) == self.ports["PG"]]
        return mine[0] if mine else None

    def restart(self, component: str) -> None:
        """Stop and start one server, as an operator's rolling restart does."""
        self.down(component)
        self.up(component)

    def pid(self, component: str) -> int | None:
        """The server's main process id, from deploy/local's pid file."""
        if component == "postgres":
            pidfile = self._pg_pidfile()
            return int(pidfile.read_text().split()[0]) if pidfile else None
        path = self.run_dir / component / f"{component}.pid"
        return int(path.read_text().strip()) if path.exists() else None

    def infra(self) -> Infra:
        """Where the services reach these servers."""
        return Infra(
            f"127.0.0.1:{self.ports['KAFKA']}",
            f"127.0.0.1:{self.ports['MINIO']}",
            "sonobridge",
            "sonobridge-secret",
            f"postgresql+psycopg://sonobridge:sonobridge@127.0.0.1:{self.ports['PG']}/sonobridge",
        )


def _pg_port(pidfile: Path) -> int:
    lines = pidfile.read_text().splitlines()
    return int(lines[3]) if len(lines) > 3 and lines[3].isdigit() else -1


@dataclass
class Replica:
    """One service process: how to start it again after a kill."""

    name: str
    service: str
    argv: list[str]
    env: dict[str, str]
    http_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its base HTTP URL."""
        return f"http://127.0.0.1:{self.http_port}"


class ReplicatedCluster:
    """The cluster edition's processes, ingest and inference twice, restarted when they die."""

    def __init__(self, run_dir: Path, servers: PrivateServers, consortium: Consortium) -> None:
        self.run_dir = run_dir
        self.edition = ClusterEdition.ephemeral(
            run_dir, servers.infra(), consortium, deployment="chaos"
        )
        self.replicas: dict[str, Replica] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.restarts: list[tuple[float, str]] = []
        self.issuer: Replica | None = None

    def _replica(self, service: str, n: int) -> Replica:
        env = self.edition.env(service)
        http = self.edition.http[service]
        if n > 1:
            http = free_port()
            env["HTTP__PORT"] = str(http)
            env["GRPC__PORT"] = str(free_port())
            env["DATA_DIR"] = str((self.run_dir / f"{service}-{n}").resolve())
            if service == "ingest":
                env["INGEST__DIMSE_PORT"] = str(free_port())
        env["KAFKA__CLIENT_ID"] = f"sonobridge-{service}-{n}"
        argv = [sys.executable, "-m", f"sonobridge.{service}"]
        return Replica(f"{service}-{n}", service, argv, env, http)

    def start(self, timeout: float = 300.0) -> None:
        """Start the issuer and every replica; wait until all answer /readyz."""
        self.edition.prepare(fresh=True)
        # The JWKS issuer is never a fault target; services are ours so a kill can be undone.
        self.issuer = Replica(
            "issuer",
            "issuer",
            issuer_command(self.run_dir, self.edition.issuer_port),
            dict(os.environ),
            self.edition.issuer_port,
        )
        self._spawn(self.issuer)
        _wait_http(f"{self.issuer.url}/healthz", 60, "issuer")
        # First replicas together (each migrates its own database), then the second ones, so
        # two replicas never race over one schema.
        for n in (1, 2):
            wave = [self._replica(s, n) for s in SERVICES if n == 1 or s in REPLICATED]
            for replica in wave:
                self.replicas[replica.name] = replica
                self._spawn(replica)
            for replica in wave:
                self.wait_ready(replica, timeout)
        self._watchdog = threading.Thread(target=self._supervise, name="watchdog", daemon=True)
        self._watchdog.start()

    def _spawn(self, replica: Replica) -> None:
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{replica.name}.log", "ab") as log:
            replica.proc = subprocess.Popen(
                replica.argv,
                env=replica.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, replica: Replica, timeout: float = 180.0) -> None:
        """Wait for a replica's /readyz."""
        _wait_http(f"{replica.url}/readyz", timeout, replica.name)

    def _supervise(self) -> None:
        # A Deployment's controller: a dead pod is replaced after a short back-off.
        while not self._stop.wait(0.5):
            with self._lock:
                for replica in self.replicas.values():
                    if replica.proc is not None and replica.proc.poll() is not None:
                        self.restarts.append((time.time(), replica.name))
                        time.sleep(1.0)
                        self._spawn(replica)

    def kill(self, name: str) -> None:
        """SIGKILL one replica (the watchdog starts it again)."""
        replica = self.replicas[name]
        assert replica.proc is not None
        os.killpg(replica.proc.pid, signal.SIGKILL)

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send a signal to one replica's process group (SIGSTOP/SIGCONT pauses)."""
        replica = self.replicas[name]
        assert replica.proc is not None
        os.killpg(replica.proc.pid, sig)

    def not_ready(self) -> list[str]:
        """The replicas that do not answer /readyz with 200 right now."""
        import httpx

        down = []
        with httpx.Client(timeout=2.0) as client:
            for r in self.replicas.values():
                try:
                    if client.get(f"{r.url}/readyz").status_code != 200:
                        down.append(r.name)
                except httpx.HTTPError:
                    down.append(r.name)
        return down

    def urls(self) -> dict[str, str]:
        """The first replica of each service (the auditor's view)."""
        return {s: self.replicas[f"{s}-1"].url for s in SERVICES}

    def ingest_urls(self) -> list[str]:
        """Every ingest replica, as a load balancer sees them."""
        return [r.url for r in self.replicas.values() if r.service == "ingest"]

    def groups(self) -> list[str]:
        """The consumer groups of the services."""
        return [self.edition.group(s) for s in CONSUMERS]

    def stop(self) -> None:
        """Stop the watchdog, then every replica and the issuer."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        with self._lock:
            for replica in self.replicas.values():
                if replica.proc is None or replica.proc.poll() is not None:
                    continue
                os.killpg(replica.proc.pid, signal.SIGCONT)
                os.killpg(replica.proc.pid, signal.SIGTERM)
            for replica in self.replicas.values():
                if replica.proc is None:
                    continue
                try:
                    replica.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(replica.proc.pid, signal.SIGKILL)
                    replica.proc.wait(timeout=5)
            if self.issuer is not None and self.issuer.proc is not None:
                self.issuer.proc.terminate()
                self.issuer.proc.wait(timeout=15)

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of one replica's log."""
        path = self.run_dir / "logs" / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class LagProbe:
    """Total consumer lag of the services' groups, read from the broker."""

    def __init__(self, bootstrap: str, groups: list[str]) -> None:
        self.bootstrap = bootstrap
        self.groups = groups

    def total(self) -> int | None:
        """Sum of (log end - committed) over the groups' partitions; None if the broker is away."""
        from kafka import KafkaAdminClient, KafkaConsumer

        admin = consumer = None
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            # end_offsets needs the topics' metadata first (it raises KeyError without it).
            consumer.topics()
            lag = 0
            for committed in admin.list_group_offsets(self.groups).values():
                if committed:
                    ends = consumer.end_offsets(list(committed))
                    lag += sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items())
            return lag
        # kafka-python raises assorted errors (KeyError included) while a broker restarts.
        except Exception:
            return None
        finally:
            for client in (admin, consumer):
                if client is not None:
                    client.close()


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Poll `check` until it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
