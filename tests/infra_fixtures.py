"""Pytest plugin that starts the real local servers (Kafka, MinIO, PostgreSQL...) per session."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_LOCAL = REPO_ROOT / "deploy" / "local"
# Must match RUN_DIR in deploy/local/lib.sh.
RUN_DIR = Path(os.environ.get("SONOBRIDGE_RUN_DIR") or REPO_ROOT / "var" / "local")

# Cold installs build MinIO from source (minutes); starting is seconds.
INSTALL_TIMEOUT_S = int(os.environ.get("SONOBRIDGE_INSTALL_TIMEOUT", "3600"))
UP_TIMEOUT_S = int(os.environ.get("SONOBRIDGE_UP_TIMEOUT", "120")) + 60
# Keycloak's first start on a fresh unpack rebuilds Quarkus (80-140 s on two cores).
KEYCLOAK_UP_TIMEOUT_S = int(os.environ.get("SONOBRIDGE_KEYCLOAK_UP_TIMEOUT", "300")) + 60


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
            env={**os.environ, "SONOBRIDGE_FIXTURE": "1"},
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
    """One deploy/local component shared by concurrent test sessions through lease files.

    Each session holding the server leaves a lease file named after its pid. A server a fixture
    started is stopped by the last session to let go of it; one started by hand (`make up`) is
    never stopped here.
    """

    def __init__(self, component: str, up_timeout_s: int = UP_TIMEOUT_S) -> None:
        self.component = component
        self.up_timeout_s = up_timeout_s
        self._leases = RUN_DIR / "leases"
        self._lease = self._leases / f"{component}.{os.getpid()}"
        self._started_marker = self._leases / f"{component}.fixture-started"
        self._held = False

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start, lease and stop decisions across processes."""
        self._leases.mkdir(parents=True, exist_ok=True)
        with open(self._leases / f"{self.component}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def is_up(self) -> bool:
        """Report whether the component answers its readiness probe right now."""
        return _run_script("status.sh", self.component, 60).returncode == 0

    def ensure_up(self) -> None:
        """Install and start the component unless it is already running, and take a lease."""
        if self._held:
            return
        with self._locked():
            if not self.is_up():
                _checked("install.sh", self.component, INSTALL_TIMEOUT_S)
                _checked("up.sh", self.component, self.up_timeout_s)
                self._started_marker.touch()
            self._lease.touch()
            self._held = True

    def _other_live_leases(self) -> list[Path]:
        """Return leases of other processes that are still alive, deleting stale ones."""
        live = []
        for lease in self._leases.glob(f"{self.component}.*"):
            pid = lease.name.rpartition(".")[2]
            if not pid.isdigit() or lease == self._lease:
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                lease.unlink(missing_ok=True)
                continue
            except PermissionError:
                pass
            live.append(lease)
        return live

    def release(self) -> None:
        """Drop this session's lease; stop the server if a fixture started it and none remain."""
        if not self._held:
            return
        self._held = False
        with self._locked():
            self._lease.unlink(missing_ok=True)
            if os.environ.get("SONOBRIDGE_KEEP_INFRA") == "1":
                return
            if self._started_marker.exists() and not self._other_live_leases():
                _checked("down.sh", self.component, 120)
                self._started_marker.unlink(missing_ok=True)


def _server_fixture(
    request: pytest.FixtureRequest, component: str, up_timeout_s: int = UP_TIMEOUT_S
) -> LocalServer:
    """Start a component for the session and register its conditional stop."""
    server = LocalServer(component, up_timeout_s)
    failure = None
    try:
        server.ensure_up()
    except LocalInfraError as exc:
        failure = str(exc)
    if failure is not None:
        # A missing server must fail the tests that need it, never skip them.
        pytest.fail(f"local {component} could not be started:\n{failure}", pytrace=False)
    request.addfinalizer(server.release)
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
def toxiproxy_api(request: pytest.FixtureRequest, local_infra_env: dict[str, str]) -> str:
    """Return host:port of the API of a running local Toxiproxy (the link emulator)."""
    _server_fixture(request, "toxiproxy")
    return local_infra_env["SONOBRIDGE_TEST_TOXIPROXY"]


@pytest.fixture(scope="session")
def seaweedfs_s3_endpoint(
    request: pytest.FixtureRequest, local_infra_env: dict[str, str]
) -> MinioEndpoint:
    """Return the S3 endpoint and keys of a running local SeaweedFS (the second S3 server)."""
    _server_fixture(request, "seaweedfs")
    return MinioEndpoint(
        endpoint=local_infra_env["SONOBRIDGE_TEST_SEAWEEDFS_S3"],
        access_key=local_infra_env["SONOBRIDGE_TEST_MINIO_ACCESS_KEY"],
        secret_key=local_infra_env["SONOBRIDGE_TEST_MINIO_SECRET_KEY"],
    )


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest, local_infra_env: dict[str, str]) -> str:
    """Return the SQLAlchemy URL (psycopg 3 driver) of the local sonobridge database."""
    _server_fixture(request, "postgres")
    return local_infra_env["SONOBRIDGE_TEST_PG_URL"]


@dataclass(frozen=True)
class KeycloakRealm:
    """The local Keycloak's `sonobridge` realm (deploy/keycloak), with the demo users imported."""

    base_url: str
    realm: str = "sonobridge"

    @property
    def issuer(self) -> str:
        """The realm's issuer URL (the `iss` of its tokens)."""
        return f"{self.base_url}/realms/{self.realm}"

    @property
    def jwks_url(self) -> str:
        """Where the realm publishes its signing keys (AUTH__JWKS_URL)."""
        return f"{self.issuer}/protocol/openid-connect/certs"

    def discovery(self) -> dict[str, Any]:
        """Fetch the realm's OpenID discovery document."""
        import httpx

        found: dict[str, Any] = httpx.get(
            f"{self.issuer}/.well-known/openid-configuration", timeout=30
        ).json()
        return found

    def master_admin_token(self) -> str:
        """An access token of the local bootstrap admin, from the `master` realm."""
        import httpx

        admin = httpx.post(
            f"{self.base_url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": "admin",
                "password": "sonobridge-admin",
            },
            timeout=60,
        )
        admin.raise_for_status()
        return str(admin.json()["access_token"])

    def _admin(self) -> Any:
        """An HTTP client on the realm's admin API, as the local bootstrap admin."""
        import httpx

        return httpx.Client(
            base_url=f"{self.base_url}/admin/realms/{self.realm}",
            headers={"Authorization": f"Bearer {self.master_admin_token()}"},
            timeout=60,
        )

    def _client(self, api: Any, client_id: str) -> dict[str, Any]:
        [client] = api.get("/clients", params={"clientId": client_id}).json()
        found: dict[str, Any] = client
        return found

    def allow_origin(self, client_id: str, origin: str) -> None:
        """Let a browser app on `origin` (e.g. a test's OHIF port) use `client_id`.

        The realm allows loopback redirects on any port, but Keycloak checks a browser's
        `Origin` exactly; this adds it (and its redirects) as county IT does in the console.
        """
        with self._admin() as api:
            client = self._client(api, client_id)
            origins = set(client.get("webOrigins", [])) | {origin}
            redirects = set(client.get("redirectUris", [])) | {f"{origin}/*"}
            client |= {"webOrigins": sorted(origins), "redirectUris": sorted(redirects)}
            api.put(f"/clients/{client['id']}", json=client).raise_for_status()

    def client_secret(self, client_id: str) -> str:
        """The secret Keycloak generated for a confidential client at import."""
        with self._admin() as api:
            client = self._client(api, client_id)
            answer = api.get(f"/clients/{client['id']}/client-secret")
            answer.raise_for_status()
            return str(answer.json()["value"])


@pytest.fixture(scope="session")
def keycloak(request: pytest.FixtureRequest, local_infra_env: dict[str, str]) -> KeycloakRealm:
    """Start the local Keycloak once per session (deploy/local, realm from deploy/keycloak)."""
    _server_fixture(request, "keycloak", KEYCLOAK_UP_TIMEOUT_S)
    return KeycloakRealm(local_infra_env["SONOBRIDGE_TEST_KEYCLOAK"])


def unique_name(prefix: str) -> str:
    """Return a name unique to this call, valid as a Kafka topic, bucket or database name."""
    # Lowercase letters, digits and dashes satisfy S3 bucket rules (3-63 chars) and Kafka's.
    cleaned = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:40] or "t"
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

    from sonobridge.common.db import drop_database

    name = unique_name("test").replace("-", "_")
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield _with_database(postgres_url, name)
        with admin.connect() as conn:
            drop_database(conn, name)
    finally:
        admin.dispose()
