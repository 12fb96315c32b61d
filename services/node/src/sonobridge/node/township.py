"""A simulated township phone app: opens exams, uploads instances with tus, completes them."""

from __future__ import annotations

import base64
import hashlib
import io
import time
import uuid
from dataclasses import dataclass

import httpx
import pydicom

from sonobridge.node.scenario import PlannedExam

TUS = "1.0.0"


class UploadRefused(RuntimeError):
    """The server refused part of an upload; the message carries its problem+json."""


@dataclass
class UploadedExam:
    """An exam the app handed over: its ids and when the server accepted it as complete."""

    plan: PlannedExam
    exam_id: str
    study_instance_uid: str
    bytes_sent: int
    upload_started: float
    upload_completed: float
    state: str


def sop_uid(data: bytes) -> str:
    """Return the SOP Instance UID of a DICOM file (the app names its uploads by it)."""
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


def exam_opening(plan: PlannedExam, exam_id: str) -> dict[str, str]:
    """Return the body of the app's POST /v1/exams for a planned exam."""
    return {
        "exam_id": exam_id,
        "institution_id": plan.institution,
        "operator_id": plan.operator,
        "device_serial": plan.device_serial,
        "exam_type": plan.exam_type,
        "patient_ref": plan.patient_ref,
        "study_instance_uid": plan.study_instance_uid,
    }


def upload_creation(size: int, metadata: dict[str, str]) -> dict[str, str]:
    """Return the tus creation headers of an upload of `size` bytes with its metadata."""
    encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
    return {"Tus-Resumable": TUS, "Upload-Length": str(size), "Upload-Metadata": encoded}


def chunk_headers(offset: int, chunk: bytes) -> dict[str, str]:
    """Return the tus PATCH headers of a chunk at `offset`, with its SHA-256 checksum."""
    digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
    return {
        "Tus-Resumable": TUS,
        "Upload-Offset": str(offset),
        "Upload-Checksum": f"sha256 {digest}",
        "Content-Type": "application/offset+octet-stream",
    }


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise UploadRefused(f"{what}: HTTP {response.status_code} {response.text[:500]}")


class TownshipApp:
    """Talks to ingest's REST API exactly as the phone app does (tus 1.0 + manifest)."""

    def __init__(self, ingest_url: str, token: str, *, chunk_bytes: int = 256 * 1024) -> None:
        self.chunk_bytes = chunk_bytes
        self.client = httpx.Client(
            base_url=ingest_url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def __enter__(self) -> TownshipApp:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def open_exam(self, plan: PlannedExam, exam_id: str | None = None) -> str:
        """Open the exam under an app-generated id (a repeat returns the same exam)."""
        exam_id = exam_id or str(uuid.uuid4())
        response = self.client.post(
            "/v1/exams",
            json=exam_opening(plan, exam_id),
            headers={"Idempotency-Key": f"open-{exam_id}"},
        )
        _raise_for(response, f"opening exam {plan.label}")
        return exam_id

    def upload_instance(
        self, exam_id: str, data: bytes, declared: dict[str, str] | None = None
    ) -> None:
        """Send one instance by tus in checksummed chunks, resuming from HEAD after a break."""
        sop = sop_uid(data)
        sent = {"filename": f"{sop}.dcm", "sop_instance_uid": sop, **(declared or {})}
        created = self.client.post(
            f"/v1/exams/{exam_id}/uploads", headers=upload_creation(len(data), sent)
        )
        _raise_for(created, "creating upload")
        location = created.headers["Location"]
        offset = 0
        attempts = 0
        while offset < len(data):
            chunk = data[offset : offset + self.chunk_bytes]
            try:
                response = self.client.patch(
                    location, content=chunk, headers=chunk_headers(offset, chunk)
                )
            except httpx.TransportError:
                # Weak 4G: ask where the server got to, then go on from there.
                attempts += 1
                if attempts > 5:
                    raise
                time.sleep(0.5 * attempts)
                head = self.client.head(location, headers={"Tus-Resumable": TUS})
                _raise_for(head, "resuming upload")
                offset = int(head.headers["Upload-Offset"])
                continue
            _raise_for(response, "sending chunk")
            offset = int(response.headers["Upload-Offset"])

    def complete(self, exam_id: str, plan: PlannedExam, scan_seconds: float) -> dict:
        """Send the manifest (every instance's SOP UID and SHA-256); return the exam's status."""
        manifest = {
            "instances": [
                {"sop_instance_uid": sop_uid(d), "sha256": hashlib.sha256(d).hexdigest()}
                for d in plan.instances
            ],
            "scan_seconds": scan_seconds,
        }
        response = self.client.post(f"/v1/exams/{exam_id}/complete", json=manifest)
        _raise_for(response, f"completing {plan.label}")
        return response.json()

    def send(self, plan: PlannedExam, *, scan_seconds: float = 90.0) -> UploadedExam:
        """Open, upload every instance and complete one exam."""
        started = time.time()
        exam_id = self.open_exam(plan)
        declared = {}
        if plan.app_gestational_age_weeks is not None:
            declared["gestational_age_weeks"] = f"{plan.app_gestational_age_weeks:.2f}"
        for data in plan.instances:
            self.upload_instance(exam_id, data, declared)
        status = self.complete(exam_id, plan, scan_seconds)
        return UploadedExam(
            plan=plan,
            exam_id=exam_id,
            study_instance_uid=plan.study_instance_uid,
            bytes_sent=sum(len(d) for d in plan.instances),
            upload_started=started,
            upload_completed=time.time(),
            state=status["state"],
        )
