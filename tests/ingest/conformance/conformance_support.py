"""The server a conformance suite's stock clients talk to, whichever edition runs it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from dicomweb_client.api import DICOMwebClient
from infra_fixtures import unique_name
from ingest.ingest_support import running_ingest
from sqlalchemy import text

from sonobridge.common.auth import LocalIssuer
from sonobridge.node.edition import NodePorts, SingleNode

CONSORTIUM = "county-1"
IDENTITY = {"user": "nurse-1", "roles": ("operator",), "institution": "township-a"}
ADMIN = {"user": "county-admin", "roles": ("admin",), "institution": "county"}
# A browser viewer's origin, allowed on every server of the suite (CORS is a setting).
VIEWER = "http://127.0.0.1:3999"


@dataclass
class Server:
    """An ingest service under test: where it listens, its host and the issuer it trusts."""

    edition: str
    base_url: str
    host: Any
    issuer: LocalIssuer

    def token(self, **identity: Any) -> str:
        """A bearer token for `identity` (by default a township-a operator)."""
        who = {**IDENTITY, **identity}
        return self.issuer.issue(
            who["user"], tuple(who["roles"]), who["institution"], consortium=CONSORTIUM
        )

    def dicomweb(self) -> DICOMwebClient:
        """A stock dicomweb-client with the bearer token."""
        return DICOMwebClient(
            url=f"{self.base_url}/dicomweb",
            headers={"Authorization": f"Bearer {self.token()}"},
        )

    def http(self, **identity: Any) -> httpx.Client:
        """A plain HTTP client with the bearer token, for what the stock clients hide."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token(**identity)}"},
            timeout=60,
        )

    def retrieve_file(self, study: str, series: str, sop: str) -> bytes:
        """The stored instance as WADO-RS serves it, in the transfer syntax it was stored in."""
        with self.http() as client:
            response = client.get(
                f"/dicomweb/studies/{study}/series/{series}/instances/{sop}",
                headers={
                    "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'
                },
            )
        assert response.status_code == 200, response.text
        boundary = response.headers["content-type"].split("boundary=")[1].strip('"')
        part = response.content.split(f"--{boundary}".encode())[1]
        return part.split(b"\r\n\r\n", 1)[1][:-2]

    @property
    def dimse_port(self) -> int:
        """The bound DICOM port of the C-STORE SCP."""
        scp = self.host.app.state.dimse
        assert scp.ready.wait(10), "DICOM SCP did not start"
        return int(scp.port)

    def register_caller(self, ae_title: str, institution: str) -> None:
        """Register a DIMSE calling AE title through the admin API, as county IT does."""
        with self.http(**ADMIN) as client:
            answer = client.put(
                f"/v1/admin/dimse-callers/{ae_title}", json={"institution_id": institution}
            )
        assert answer.status_code in (200, 201), answer.text

    def rows(self, sop: str) -> list[Any]:
        """The `instances` rows of one SOP Instance UID, read from the edition's database."""
        query = text("SELECT * FROM instances WHERE sop_instance_uid = :sop")
        with self.host.app.state.deps.unit() as work:
            return list(work.session.execute(query, {"sop": sop}))

    def stored_keys(self, prefix: str) -> list[str]:
        """Object keys under `prefix` in the edition's object store."""
        return list(self.host.app.state.deps.store.list(prefix))


# Every server of the suite: one consortium for DIMSE-stored instances and tokens alike, and
# the viewer's origin allowed.
INGEST_SETTINGS: dict[str, Any] = {"consortium_id": CONSORTIUM}
HTTP_SETTINGS: dict[str, Any] = {"cors_origins": [VIEWER]}


@contextmanager
def single_server(data_dir: Path, **ingest: Any) -> Iterator[Server]:
    """Ingest of the single-node edition (SQLite, a directory, the embedded log)."""
    node = SingleNode(
        data_dir,
        ports=NodePorts.ephemeral(),
        services=("ingest",),
        extra_settings={
            "common": {"http": HTTP_SETTINGS},
            "ingest": {**INGEST_SETTINGS, **ingest},
        },
    )
    node.start()
    try:
        yield Server("single", node.urls()["ingest"], node.hosts["ingest"], node.issuer)
    finally:
        node.stop()


@contextmanager
def cluster_server(
    data_dir: Path,
    issuer: LocalIssuer,
    minio: Any,
    postgres_url: str,
    name: str,
    origins: Sequence[str] = (),
) -> Iterator[Server]:
    """Ingest on MinIO and PostgreSQL (the cluster adapters), with its own bucket and database.

    `origins` are allowed besides the suite's viewer (a real viewer's port is only known late).
    """
    from sqlalchemy import create_engine

    from sonobridge.common.db import create_db_engine, drop_database
    from sonobridge.common.objects.minio import MinioObjectStore

    store = MinioObjectStore(minio.endpoint, minio.access_key, minio.secret_key, unique_name(name))
    store.ensure_bucket()
    database = unique_name(name).replace("-", "_")
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    engine = create_db_engine(
        admin.url.set(database=database).render_as_string(hide_password=False)
    )
    try:
        with running_ingest(
            data_dir,
            issuer,
            store=store,
            engine=engine,
            http={**HTTP_SETTINGS, "cors_origins": [VIEWER, *origins]},
            **INGEST_SETTINGS,
        ) as running:
            yield Server("cluster", running.base_url, running.host, issuer)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            drop_database(conn, database)
        admin.dispose()
