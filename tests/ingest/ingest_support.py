"""Test support for ingest: a running service on given adapters, tokens and synthetic DICOM."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from sonobridge.api.events.v1 import topics
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.ports import EventBus
from sonobridge.common.db import create_db_engine
from sonobridge.common.envelope import unpack
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.ingest.bootstrap import build
from sonobridge.ingest.domain.records import Instance
from sonobridge.ingest.settings import Settings

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
PYDICOM_US_FILES = (
    "examples_ybr_color.dcm",
    "examples_rgb_color.dcm",
    "examples_palette.dcm",
    "examples_jpeg2k.dcm",
)


@dataclass
class RunningIngest:
    """An ingest service listening on loopback, with the adapters it was built on."""

    host: Any
    settings: Settings
    bus: EventBus
    store: ObjectStore
    engine: Any
    issuer: LocalIssuer

    @property
    def base_url(self) -> str:
        """The HTTP root."""
        return f"http://127.0.0.1:{self.host.http_port}"

    @property
    def dimse_port(self) -> int:
        """The bound DICOM port."""
        scp = self.host.app.state.dimse
        assert scp.ready.wait(10), "DICOM SCP did not start"
        return int(scp.port)

    def token(
        self,
        user: str = "nurse-1",
        roles: tuple[str, ...] = ("operator",),
        institution: str = "township-a",
        consortium: str = "county-1",
    ) -> str:
        """Issue a bearer token."""
        return self.issuer.issue(user, roles, institution, consortium=consortium)

    def client(self, **token_args: Any) -> httpx.Client:
        """Return an HTTP client that sends a token for the given identity."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token(**token_args)}"},
            timeout=60,
        )

    def register_caller(self, ae_title: str, institution: str) -> None:
        """Register a DIMSE calling AE title through the admin API, as county IT does."""
        with self.client(user="county-admin", roles=("admin",), institution="county") as client:
            response = client.put(
                f"/v1/admin/dimse-callers/{ae_title}", json={"institution_id": institution}
            )
            assert response.status_code in (200, 201), response.text

    def stored_keys(self, prefix: str = "dicom/") -> list[str]:
        """Return object keys under `prefix`."""
        return list(self.store.list(prefix))

    def object_bytes(self, key: str) -> bytes:
        """Read an object whole (test data is small)."""
        with self.store.open(key) as chunks:
            return b"".join(chunks)

    def count(self, table: str) -> int:
        """Count rows of an ingest table."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())  # noqa: S608


# Who serves whom in the tests' consortium: the county hospital reads for its townships.
TEST_INSTITUTIONS = {
    "institutions": [
        {"id": "county-hospital", "tier": "county", "consortium": "county-1"},
        *(
            {
                "id": town,
                "tier": "township",
                "consortium": "county-1",
                "served_by": ["county-hospital"],
            }
            for town in ("township-a", "township-b")
        ),
    ]
}


@contextmanager
def running_ingest(
    data_dir: Path,
    issuer: LocalIssuer,
    *,
    bus: EventBus | None = None,
    store: ObjectStore | None = None,
    engine: Any = None,
    institutions: dict[str, Any] | None = None,
    http: dict[str, Any] | None = None,
    **ingest: Any,
) -> Iterator[RunningIngest]:
    """Build and start ingest on the given adapters (single-node ones by default)."""
    registry = data_dir / "institutions.json"
    registry.write_text(json.dumps(institutions or TEST_INSTITUTIONS), encoding="utf-8")
    settings = Settings(
        data_dir=data_dir,
        access={"institutions_file": registry},
        http={"host": "127.0.0.1", "port": 0, **(http or {})},
        grpc={"host": "127.0.0.1", "port": 0},
        delivery={"relay_interval_seconds": 0.05},
        ingest={"dimse_port": 0, **ingest},
    )
    with ExitStack() as made:
        # What this builds it closes: the web framework keeps each app's endpoints, and what
        # they reach, for the life of the test process.
        if bus is None:
            bus = EmbeddedEventBus(data_dir / "events.sqlite3")
            made.callback(bus.close)
        if engine is None:
            engine = create_db_engine(f"sqlite:///{data_dir / 'ingest.sqlite3'}")
            made.callback(engine.dispose)
        store = store or LocalDirObjectStore(data_dir / "objects")
        host = build(settings, bus=bus, store=store, engine=engine, verifier=issuer.verifier())
        host.start()
        try:
            yield RunningIngest(host, settings, bus, store, engine, issuer)
        finally:
            host.stop()


def synthetic_instance(
    *,
    study: str | None = None,
    series: str | None = None,
    sop: str | None = None,
    frames: int = 1,
    rows: int = 48,
    columns: int = 64,
    seed: int = 0,
    patient_id: str = "PAT-1",
) -> bytes:
    """Build an uncompressed RGB ultrasound instance with pydicom; return its file bytes."""
    rng = np.random.default_rng(seed)
    ds = Dataset()
    ds.SOPClassUID = US_MULTIFRAME if frames > 1 else US_IMAGE
    ds.SOPInstanceUID = sop or generate_uid()
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    ds.Modality = "US"
    ds.PatientID = patient_id
    ds.PatientName = "Test^Synthetic"
    ds.StudyDate = "20260301"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "NECK"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
        shape: tuple[int, ...] = (frames, rows, columns, 3)
    else:
        shape = (rows, columns, 3)
    ds.PixelData = rng.integers(0, 256, size=shape, dtype=np.uint8).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def pydicom_file(name: str) -> bytes:
    """Return the bytes of one of pydicom's shipped test files."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path).read_bytes()


def uids(data: bytes) -> tuple[str, str, str]:
    """Return (study, series, sop) of a DICOM file's bytes."""
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def collect_events(
    bus: EventBus,
    topic: str,
    *,
    count: int,
    timeout: float = 15.0,
    settle: float = 0.5,
    where: Callable[[Any], bool] | None = None,
) -> list[Any]:
    """Read a topic from its start as a fresh group until `count` events came (then `settle`).

    With `where`, only events it accepts are kept and counted: on a broker other tests share, a
    topic's first events may be theirs.
    """
    subscription = bus.subscribe(f"test-{uuid.uuid4().hex[:8]}", [topic])
    messages: list[Any] = []

    def take(records: Any) -> None:
        for record in records:
            event = unpack(record.cloud_event())
            if where is None or where(event):
                messages.append(event)

    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(messages) < count:
            take(subscription.poll(0.2))
        end = time.monotonic() + settle
        while time.monotonic() < end:
            take(subscription.poll(0.1))
    finally:
        subscription.close()
    return messages


EXAM_COMPLETED = topics.EXAM_COMPLETED
INSTANCE_STORED = topics.INSTANCE_STORED


def new_exam(client: httpx.Client, institution: str = "township-a", **extra: Any) -> str:
    """Create an exam through the REST API; return its id."""
    exam_id = str(uuid.uuid4())
    body = {
        "exam_id": exam_id,
        "institution_id": institution,
        "device_serial": "PROBE-1",
        "exam_type": "carotid",
        "patient_ref": "p-123",
        **extra,
    }
    response = client.post("/v1/exams", json=body)
    assert response.status_code == 201, response.text
    return exam_id


def tus_metadata(values: dict[str, str]) -> str:
    """Encode tus Upload-Metadata: `key base64value` pairs."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def tus_create(
    client: httpx.Client, exam_id: str, length: int, metadata: dict[str, str] | None = None
) -> str:
    """Open a tus upload; return its URL path."""
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": str(length)}
    if metadata:
        headers["Upload-Metadata"] = tus_metadata(metadata)
    response = client.post(f"/v1/exams/{exam_id}/uploads", headers=headers)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def tus_patch(client: httpx.Client, url: str, offset: int, chunk: bytes) -> httpx.Response:
    """Send one PATCH."""
    return client.patch(
        url,
        content=chunk,
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )


def app_upload(
    client: httpx.Client, exam_id: str, data: bytes, metadata: dict[str, str] | None = None
) -> httpx.Response:
    """Upload a whole instance in one tus PATCH; return the final response."""
    url = tus_create(client, exam_id, len(data), metadata)
    return tus_patch(client, url, 0, data)


def instance_row(
    n: int, study: str, scope: tuple[str, str], *, claimed_at: datetime
) -> dict[str, object]:
    """An `instances` row of a stored instance, for tests that fill the index directly."""
    text = {f.name: "x" for f in fields(Instance) if f.type == "str"}
    return text | {
        "sop_instance_uid": f"1.2.{n}",
        "status": "stored",
        "claimed_at": claimed_at,
        "study_instance_uid": study,
        "exam_id": None,
        "size_bytes": 1,
        "number_of_frames": 1,
        "rows": 1,
        "columns": 1,
        "institution_id": scope[0],
        "consortium_id": scope[1],
    }


def edited_instance(data: bytes | None = None, **values: object) -> bytes:
    """Return an instance (a synthetic one by default) with the attributes set as given."""
    ds = pydicom.dcmread(io.BytesIO(data if data is not None else synthetic_instance()))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


# What a real device names itself with: stored, and read back as sent.
DEVICE_TEXT = {
    "Manufacturer": "Acme Medical",
    "ManufacturerModelName": "Probe X1",
    "DeviceSerialNumber": "SN-0001",
    "StationName": "US-ROOM-1",
    "SoftwareVersions": ["1.0.2", "fw 7"],
}
# Text values that break their VR, one attribute each, indexed and device-naming ones both.
HOSTILE_TEXT: dict[str, dict[str, object]] = {
    "manufacturer with a control character": {"Manufacturer": "Acme\x01Medical"},
    "model name over 4 times LO's 64": {"ManufacturerModelName": "M" * 257},
    "serial number with NUL and a tag": {"DeviceSerialNumber": "SN\x00\x10\x00\x10\x00PN"},
    "station name over 4 times SH's 16": {"StationName": "S" * 65},
    "second software version with a control": {"SoftwareVersions": ["1.0", "2.0\x1f"]},
    "patient name group over 4 times 64": {"PatientName": "A" * 257},
    "study description over 4 times LO's 64": {"StudyDescription": "x" * 257},
    "modality with ESC, which CS never holds": {"Modality": "U\x1bS"},
    # What QIDO-RS returns at study and series level (includefield=all).
    "institution name with a control character": {"InstitutionName": "General\x02Hospital"},
    "referring physician with a control character": {"ReferringPhysicianName": "DOE^JOHN\x05"},
    "operator with a control character": {"OperatorsName": "SMITH\x07^ANN"},
    "performing physician with DEL": {"PerformingPhysicianName": "ROE\x7f^JANE"},
    "protocol name with a vertical tab": {"ProtocolName": "Thyroid\x0bleft"},
}
# A part of each hostile value that no refusal may echo (the value may be a patient's).
HOSTILE_MARKS = (
    "Acme\x01",
    "M" * 257,
    "SN\x00",
    "S" * 65,
    "2.0\x1f",
    "A" * 257,
    "x" * 257,
    "U\x1b",
    "General\x02",
    "JOHN\x05",
    "SMITH\x07",
    "ROE\x7f",
    "Thyroid\x0b",
)


def hostile_text_instances(study: str | None = None) -> dict[str, bytes]:
    """Return each hostile text value in an instance of its own, plus the swallowing one."""
    from hostile_dicom import swallowing

    def named(**values: object) -> bytes:
        return edited_instance(synthetic_instance(study=study), **{**DEVICE_TEXT, **values})

    made = {name: named(**values) for name, values in HOSTILE_TEXT.items()}
    made["manufacturer swallowing the patient's name and ID"] = swallowing(named())
    return made
