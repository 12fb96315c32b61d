"""Helpers for inference tests: a started service, synthetic exams stored as DICOM, their events."""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
from pydicom.uid import generate_uid

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.inference.v1 import inference_pb2_grpc
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.db import create_db_engine
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.common.settings import GrpcSettings, HttpSettings
from sonobridge.inference.bootstrap import build
from sonobridge.inference.settings import InferenceSettings, Settings
from sonobridge.lab.synthetic import AcquisitionSpec, Fault, generate_exam
from sonobridge.lab.synthetic.dicom import SyntheticExamContext, ultrasound_dicom_bytes


class Service:
    """A started inference host and what a test needs to talk to it."""

    def __init__(self, tmp: Path, issuer: LocalIssuer, config: InferenceSettings) -> None:
        settings = Settings(
            data_dir=tmp,
            http=HttpSettings(host="127.0.0.1", port=0),
            grpc=GrpcSettings(host="127.0.0.1", port=0),
            inference=config,
        )
        self.bus = EmbeddedEventBus(tmp / "events.sqlite3")
        self.store = LocalDirObjectStore(tmp / "objects")
        self.engine = create_db_engine(f"sqlite:///{tmp / 'inference.sqlite3'}")
        self.host = build(
            settings, bus=self.bus, store=self.store, engine=self.engine, verifier=issuer.verifier()
        )
        self.host.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.host.http_port}", timeout=60)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.host.grpc_port}")
        self.grpc = inference_pb2_grpc.InferenceServiceStub(self.channel)
        self.issuer = issuer

    def token(self, user: str = "nurse-1", institution: str = "township-a") -> str:
        return self.issuer.issue(user, ["operator"], institution)

    def headers(self, **kw: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kw)}"}

    def metadata(self, **kw: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token(**kw)}")]

    def close(self) -> None:
        self.http.close()
        self.channel.close()
        self.host.stop()
        self.engine.dispose()
        self.bus.close()


def start_service(tmp: Path, issuer: LocalIssuer, **config: object) -> Service:
    """Start a service with CPU-only sessions and the given inference settings."""
    return Service(tmp, issuer, InferenceSettings(providers="CPUExecutionProvider", **config))


def exam_spec(
    exam_type: str = "abdomen",
    faults: tuple[Fault, ...] = (),
    size: int = 256,
    n_lesions: int | None = None,
) -> AcquisitionSpec:
    """Return the acquisition spec store_exam uses for these options."""
    return AcquisitionSpec(
        exam_type=exam_type,
        faults=frozenset(faults),
        height=size,
        width=size,
        n_lesions=n_lesions,
    )


def store_exam(
    store: ObjectStore,
    *,
    exam_type: str = "abdomen",
    instances: int = 2,
    frames: int = 4,
    faults: tuple[Fault, ...] = (),
    seed: int = 7,
    device_serial: str = "SYN-PROBE-0001",
    encoding: str = "native",
    size: int = 256,
    n_lesions: int | None = None,
) -> events_pb2.ExamCompleted:
    """Generate a synthetic exam, put its instances under dicom/..., return its ExamCompleted.

    Instance i is the cine generate_exam(seed + i, exam_spec(...)) gives, so a test can
    regenerate its ground truth.
    """
    study, series = generate_uid(), generate_uid()
    refs = []
    for i in range(instances):
        exam = generate_exam(seed + i, exam_spec(exam_type, faults, size, n_lesions), frames)
        spacing = exam.frames[0].truth.pixel_spacing_mm
        data = ultrasound_dicom_bytes(
            exam.pixels(),
            spacing,
            context=SyntheticExamContext(
                study_uid=study, series_uid=series, device_serial=device_serial
            ),
            encoding=encoding,
        )
        from pydicom import dcmread

        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
        key = f"dicom/{study}/{series}/{ds.SOPInstanceUID}.dcm"
        store.put(key, io.BytesIO(data), length=len(data), content_type="application/dicom")
        refs.append(
            events_pb2.InstanceRef(
                study_instance_uid=study,
                series_instance_uid=series,
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                object_key=key,
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
                transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
                number_of_frames=int(ds.get("NumberOfFrames", 1) or 1),
                modality="US",
            )
        )
    manifest = "\n".join(sorted(f"{r.sop_instance_uid}:{r.sha256}" for r in refs))
    return events_pb2.ExamCompleted(
        context=events_pb2.ExamContext(
            exam_id=str(uuid.uuid4()),
            study_instance_uid=study,
            institution_id="township-a",
            operator_id="nurse-1",
            device_serial=device_serial,
            exam_type=events_pb2.ExamType.Value(f"EXAM_TYPE_{exam_type.upper()}"),
            patient_ref="synthetic-patient",
        ),
        instances=refs,
        instance_count=len(refs),
        total_bytes=sum(r.size_bytes for r in refs),
        manifest_sha256=hashlib.sha256(manifest.encode()).hexdigest(),
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll until predicate returns something truthy; fail with the timeout otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
