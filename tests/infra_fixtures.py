"""Pytest plugin that starts the real local Kafka, MinIO and PostgreSQL once per test session."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_LOCAL = REPO_ROOT / "deploy" / "local"

# Cold installs build MinIO from source (minutes); starting is seconds.
INSTALL_TIMEOUT_S = int(os.environ.get("SONOBRIDGE_INSTALL_TIMEOUT", "3600"))
UP_TIMEOUT_S = int(os.environ.get("SONOBRIDGE_UP_TIMEOUT", "120")) + 60


@dataclass(frozen=True)
class MinioEndpoint:
    """Where the local MinIO listens and the root credentials for it."""

    endpoint: str
    access_key: str
    secret_key: str


class LocalInfraError(RuntimeError):
    """A deploy/local script failed; the message carries its output and log tail."""


def _run_script(script: str, component: str, timeout_s: int) -> subprocess.CompletedProcess[str]:
    """Run one deploy/local script for a component and return the finished process."""
    try:
        return subprocess.run(
            ["bash", str(DEPLOY_LOCAL / script), component],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalInfraError(
            f"deploy/local/{script} {component} did not finish within {timeout_s}s\n"
            f"{exc.stdout or ''}{exc.stderr or ''}"
        ) from exc


def _checked(script: str, component: str, timeout_s: int) -> None:
    """Run a deploy/local script and raise LocalInfraError with its output if it fails."""
    proc = _run_script(script, component, timeout_s)
    if proc.returncode != 0:
        raise LocalInfraError(
            f"deploy/local/{script} {component} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )


def local_env() -> dict[str, str]:
    """Return the SONOBRIDGE_TEST_* variables printed by deploy/local/env.sh."""
    proc = _run_script("env.sh", "", 30)
    if proc.returncode != 0:
        raise LocalInfraError(f"deploy/local/env.sh failed:\n{proc.stderr}")
    values: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        match = re.fullmatch(r"export (\w+)=(.*)", line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


class LocalServer:
    """One deploy/local component, started at most once per session and stopped if we started it."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.started_here = False
        self._ready = False

    def is_up(self) -> bool:
        """Report whether the component answers its readiness probe right now."""
        return _run_script("status.sh", self.component, 60).returncode == 0

    def ensure_up(self) -> None:
        """Install and start the component unless it is already running."""
        if self._ready:
            return
        if not self.is_up():
            _checked("install.sh", self.component, INSTALL_TIMEOUT_S)
            _checked("up.sh", self.component, UP_TIMEOUT_S)
            self.started_here = True
        self._ready = True

    def stop_if_started_here(self) -> None:
        """Stop the component if this session started it, unless asked to keep it running."""
        keep = os.environ.get("SONOBRIDGE_KEEP_INFRA") == "1"
        # Under xdist every worker is its own session; stopping would pull the server from
        # under the other workers, so leave it running for `make down`.
        shared = "PYTEST_XDIST_WORKER" in os.environ
        if self.started_here and not keep and not shared:
            _checked("down.sh", self.component, 120)
        self.started_here = False
        self._ready = False


def _server_fixture(request: pytest.FixtureRequest, component: str) -> LocalServer:
    """Start a component for the session and register its conditional stop."""
    server = LocalServer(component)
    try:
        server.ensure_up()
    except LocalInfraError as exc:
        # A missing server must fail the tests that need it, never skip them.
        pytest.fail(f"local {component} could not be started:\n{exc}", pytrace=False)
    request.addfinalizer(server.stop_if_started_here)
    return server


@pytest.fixture(scope="session")
def local_infra_env() -> dict[str, str]:
    """Return the connection settings for the local servers, from deploy/local/env.sh."""
    return local_env()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest, local_infra_env: dict[str, str]) -> str:
    """Return host:port of a running local Kafka broker."""
    _server_fixture(request, "kafka")
    return local_infra_env["SONOBRIDGE_TEST_KAFKA"]


@pytest.fixture(scope="session")
def minio_endpoint(
    request: pytest.FixtureRequest, local_infra_env: dict[str, str]
) -> MinioEndpoint:
    """Return the endpoint and credentials of a running local MinIO."""
    _server_fixture(request, "minio")
    return MinioEndpoint(
        endpoint=local_infra_env["SONOBRIDGE_TEST_MINIO"],
        access_key=local_infra_env["SONOBRIDGE_TEST_MINIO_ACCESS_KEY"],
        secret_key=local_infra_env["SONOBRIDGE_TEST_MINIO_SECRET_KEY"],
    )


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest, local_infra_env: dict[str, str]) -> str:
    """Return the SQLAlchemy URL (psycopg 3 driver) of the local sonobridge database."""
    _server_fixture(request, "postgres")
    return local_infra_env["SONOBRIDGE_TEST_PG_URL"]


def unique_name(prefix: str) -> str:
    """Return a name unique to this call, valid as a Kafka topic, bucket or database name."""
    # Lowercase letters, digits and dashes satisfy S3 bucket rules (3-63 chars) and Kafka's.
    cleaned = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:40] or "t"
    if len(cleaned) < 3:
        cleaned = f"{cleaned}-x"
    return f"{cleaned}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> str:
    """Return a Kafka topic name no other test uses."""
    return unique_name(f"t-{request.node.name}")


@pytest.fixture
def unique_bucket() -> str:
    """Return a MinIO bucket name no other test uses."""
    return unique_name("b")


def _with_database(url: str, database: str) -> str:
    """Return the URL with its database part replaced."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """Create a fresh database for one test, yield its URL, and drop it afterwards."""
    from sqlalchemy import create_engine, text

    name = unique_name("test").replace("-", "_")
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield _with_database(postgres_url, name)
        with admin.connect() as conn:
            # FORCE ends connections a test left open (pools), so the drop cannot hang.
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
