"""The cluster edition on one machine: one process per service on Kafka, MinIO and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sonobridge.api.events.v1 import topics
from sonobridge.common.db import drop_database
from sonobridge.node.consortium import Consortium, node_settings_for
from sonobridge.node.edition import SERVICES
from sonobridge.node.issuer import JWKS_PATH

CONSUMERS = ("inference", "reporting", "maintenance")
DEFAULT_HTTP = {"ingest": 8091, "inference": 8092, "reporting": 8093, "maintenance": 8094}
DEFAULT_GRPC = {"ingest": 50071, "inference": 50072, "reporting": 50073, "maintenance": 50074}
DEFAULT_DIMSE = 11113
DEFAULT_ISSUER = 8099


@dataclass(frozen=True)
class Infra:
    """Where the real servers listen (deploy/local/env.sh prints these)."""

    kafka: str
    minio: str
    minio_access_key: str
    minio_secret_key: str
    pg_url: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Infra:
        """Read SONOBRIDGE_TEST_* (run `eval "$(deploy/local/env.sh)"` first)."""
        env = dict(os.environ if env is None else env)
        missing = [
            n
            for n in (
                "SONOBRIDGE_TEST_KAFKA",
                "SONOBRIDGE_TEST_MINIO",
                "SONOBRIDGE_TEST_MINIO_ACCESS_KEY",
                "SONOBRIDGE_TEST_MINIO_SECRET_KEY",
                "SONOBRIDGE_TEST_PG_URL",
            )
            if not env.get(n)
        ]
        if missing:
            raise SystemExit(
                f"missing {', '.join(missing)}: run deploy/local/up.sh all and "
                'eval "$(deploy/local/env.sh)"'
            )
        return cls(
            env["SONOBRIDGE_TEST_KAFKA"],
            env["SONOBRIDGE_TEST_MINIO"],
            env["SONOBRIDGE_TEST_MINIO_ACCESS_KEY"],
            env["SONOBRIDGE_TEST_MINIO_SECRET_KEY"],
            env["SONOBRIDGE_TEST_PG_URL"],
        )


def free_port() -> int:
    """Ask the OS for a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def issuer_command(run_dir: Path, port: int) -> list[str]:
    """Return the command line of the node's JWKS issuer serving on `port`."""
    data_dir = str(run_dir.resolve())
    return [
        sys.executable,
        "-m",
        "sonobridge.node",
        "--data-dir",
        data_dir,
        "issuer",
        "--port",
        str(port),
    ]


@dataclass
class ClusterEdition:
    """Four service processes plus a JWKS server, with pid files and logs under `run_dir`."""

    run_dir: Path
    infra: Infra
    consortium: Consortium
    deployment: str = "local"
    http: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_HTTP))
    grpc: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_GRPC))
    dimse: int = DEFAULT_DIMSE
    issuer_port: int = DEFAULT_ISSUER
    # Inference's InferStream port; None leaves inference's default (its gRPC port + 100).
    inference_stream: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def ephemeral(cls, run_dir: Path, infra: Infra, consortium: Consortium, deployment: str):
        """Every listener on a free port (tests)."""
        return cls(
            run_dir,
            infra,
            consortium,
            deployment,
            http={s: free_port() for s in SERVICES},
            grpc={s: free_port() for s in SERVICES},
            dimse=free_port(),
            issuer_port=free_port(),
            inference_stream=free_port(),
        )

    # -- names ----------------------------------------------------------------------------

    def database(self, service: str) -> str:
        """The service's own PostgreSQL database."""
        return f"sonobridge_{self.deployment}_{service}".replace("-", "_")

    def database_url(self, service: str) -> str:
        """SQLAlchemy URL of the service's database."""
        url = make_url(self.infra.pg_url).set(database=self.database(service))
        return url.render_as_string(hide_password=False)

    @property
    def bucket(self) -> str:
        """The deployment's object-store bucket."""
        return f"sonobridge-{self.deployment}".replace("_", "-")

    def group(self, service: str) -> str:
        """The service's consumer group."""
        return f"sonobridge-{service}-{self.deployment}"

    def urls(self) -> dict[str, str]:
        """Base HTTP URL of each service."""
        return {s: f"http://127.0.0.1:{self.http[s]}" for s in SERVICES}

    @property
    def jwks_url(self) -> str:
        """AUTH__JWKS_URL of the services."""
        return f"http://127.0.0.1:{self.issuer_port}{JWKS_PATH}"

    # -- preparation ----------------------------------------------------------------------

    def drop_databases(self) -> None:
        """Drop each service's database, ending connections left open in it."""
        admin = create_engine(self.infra.pg_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                for service in SERVICES:
                    drop_database(conn, self.database(service))
        finally:
            admin.dispose()

    def prepare(self, *, fresh: bool) -> None:
        """Create each service's database (dropping it first when `fresh`) and start groups."""
        admin = create_engine(self.infra.pg_url, isolation_level="AUTOCOMMIT")
        created = []
        try:
            with admin.connect() as conn:
                for service in SERVICES:
                    name = self.database(service)
                    if fresh:
                        drop_database(conn, name)
                    exists = conn.execute(
                        text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                    ).first()
                    if not exists:
                        conn.execute(text(f'CREATE DATABASE "{name}"'))
                        created.append(service)
        finally:
            admin.dispose()
        if created:
            # A new deployment on a shared broker starts at the log end: older events on these
            # topics belong to other deployments and reference objects it does not have.
            skip_history(self.infra.kafka, [self.group(s) for s in CONSUMERS])

    def env(self, service: str) -> dict[str, str]:
        """The environment one service process runs with."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("INGEST__", "INFERENCE__", "REPORTING__", "MAINTENANCE__"))
        }
        env.update(
            {
                "EDITION": "cluster",
                "DATA_DIR": str((self.run_dir / service).resolve()),
                "HTTP__HOST": "127.0.0.1",
                "HTTP__PORT": str(self.http[service]),
                "GRPC__HOST": "127.0.0.1",
                "GRPC__PORT": str(self.grpc[service]),
                "KAFKA__BOOTSTRAP_SERVERS": self.infra.kafka,
                "KAFKA__CLIENT_ID": f"sonobridge-{service}-{self.deployment}",
                "STORAGE__ENDPOINT": self.infra.minio,
                "STORAGE__ACCESS_KEY": self.infra.minio_access_key,
                "STORAGE__SECRET_KEY": self.infra.minio_secret_key,
                "STORAGE__BUCKET": self.bucket,
                "DB__URL": self.database_url(service),
                "AUTH__JWKS_URL": self.jwks_url,
                "AUTH__ISSUER": "sonobridge-local",
                "LOG__LEVEL": env.get("LOG__LEVEL", "INFO"),
                "LOG__JSON_FORMAT": "true",
            }
        )
        if service in CONSUMERS:
            env[f"{service.upper()}__CONSUMER_GROUP"] = self.group(service)
        if service == "ingest":
            env["INGEST__DIMSE_PORT"] = str(self.dimse)
            env["INGEST__DIMSE_HOST"] = "127.0.0.1"
        if service == "inference" and self.inference_stream is not None:
            env["INFERENCE__GRPC_STREAM_PORT"] = str(self.inference_stream)
        settings = node_settings_for(self.consortium, self.run_dir)
        env["ACCESS__INSTITUTIONS_FILE"] = settings["common"]["access"]["institutions_file"]
        for section, values in settings.items():
            if section == service:
                for key, value in values.items():
                    text = value if isinstance(value, str) else json.dumps(value)
                    env[f"{section.upper()}__{key.upper()}"] = text
        env.update(self.extra_env)
        return env

    # -- processes ------------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / "pids" / f"{name}.pid"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "pids").mkdir(parents=True, exist_ok=True)
        log = open(self.run_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._pid_file(name).write_text(str(proc.pid))
        return proc.pid

    def running(self, name: str) -> int | None:
        """The pid of a process this edition started and that still runs, else None."""
        path = self._pid_file(name)
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        # A recycled pid belongs to someone else: only ours carry the sonobridge module name.
        return pid if "sonobridge" in cmdline else None

    def start(self, timeout: float = 240.0) -> None:
        """Start the JWKS server and the four services; wait until every /readyz answers 200."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.running("issuer") is None:
            self._spawn("issuer", issuer_command(self.run_dir, self.issuer_port), dict(os.environ))
        _wait_http(f"http://127.0.0.1:{self.issuer_port}/healthz", 30, "issuer")
        for service in SERVICES:
            if self.running(service) is None:
                self._spawn(
                    service, [sys.executable, "-m", f"sonobridge.{service}"], self.env(service)
                )
        deadline = time.monotonic() + timeout
        for service, url in self.urls().items():
            left = max(1.0, deadline - time.monotonic())
            if self.running(service) is None:
                raise RuntimeError(f"{service} exited at start:\n{self.log_tail(service)}")
            try:
                _wait_http(f"{url}/readyz", left, service)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{self.log_tail(service)}") from exc

    def stop(self, grace: float = 15.0) -> list[str]:
        """SIGTERM every process this edition started, SIGKILL after `grace`; return their names."""
        stopped = []
        for name in (*reversed(SERVICES), "issuer"):
            pid = self.running(name)
            if pid is None:
                self._pid_file(name).unlink(missing_ok=True)
                continue
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.running(name) is not None and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.2)
            if self.running(name) is not None:
                os.killpg(pid, signal.SIGKILL)
                _reap(pid)
            self._pid_file(name).unlink(missing_ok=True)
            stopped.append(name)
        return stopped

    def status(self) -> dict[str, str]:
        """Each process's state: ready, not ready, or stopped."""
        state = {}
        with httpx.Client(timeout=3.0) as client:
            for name in ("issuer", *SERVICES):
                if self.running(name) is None:
                    state[name] = "stopped"
                    continue
                url = (
                    f"http://127.0.0.1:{self.issuer_port}/healthz"
                    if name == "issuer"
                    else f"{self.urls()[name]}/readyz"
                )
                try:
                    ok = client.get(url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                state[name] = "ready" if ok else "not ready"
        return state

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log."""
        path = self.run_dir / "logs" / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_http(url: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    with httpx.Client(timeout=3.0) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.5)
    raise RuntimeError(f"{what} not ready at {url} after {timeout:.0f}s: {last}")


def skip_history(bootstrap: str, groups: list[str]) -> None:
    """Commit the current log end of every consumed topic for `groups`."""
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata, TopicPartition

    wanted = (topics.EXAM_COMPLETED, topics.INFERENCE_COMPLETED)
    for group in groups:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        try:
            existing = consumer.topics()
            partitions = [
                TopicPartition(t, p)
                for t in wanted
                if t in existing
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            if not partitions:
                continue
            ends = consumer.end_offsets(partitions)
            consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in ends.items()})
        finally:
            consumer.close()
