"""Fixtures for reporting tests: an injectable clock, event builders and a running service."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.ports import EventBus, publish
from sonobridge.common.db import create_db_engine
from sonobridge.common.envelope import wrap
from sonobridge.common.host import ServiceHost
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.reporting.bootstrap import build
from sonobridge.reporting.settings import Settings


class FakeClock:
    """A clock the test moves by hand; thread-safe because workers read it."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward."""
        with self._lock:
            self._now += delta
            return self._now

    def set(self, at: datetime) -> None:
        """Jump to an instant (never backwards)."""
        with self._lock:
            assert at >= self._now
            self._now = at


DAY0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def finding(
    code: str,
    display: str,
    confidence: float,
    *,
    abnormal: bool = False,
    low: bool | None = None,
    model: str = "thyroid-nodule",
    version: str = "1.2.0",
) -> events_pb2.Finding:
    """Build an AI finding."""
    return events_pb2.Finding(
        code=code,
        code_system="http://snomed.info/sct",
        display=display,
        confidence=confidence,
        low_confidence=confidence < 0.8 if low is None else low,
        abnormal=abnormal,
        model_name=model,
        model_version=version,
    )


def exam_context(
    study: str,
    *,
    exam_type: int = events_pb2.EXAM_TYPE_THYROID,
    institution: str = "township-a",
    operator: str = "nurse-li",
    exam_id: str | None = None,
) -> events_pb2.ExamContext:
    """Build an ExamContext."""
    return events_pb2.ExamContext(
        exam_id=exam_id or f"exam-{study}",
        study_instance_uid=study,
        institution_id=institution,
        operator_id=operator,
        device_serial="PROBE-001",
        exam_type=exam_type,
        patient_ref=f"patient-{study[-4:]}",
    )


def inference_completed(
    study: str,
    *,
    findings: list[events_pb2.Finding] | None = None,
    acceptable: bool = True,
    status: int = events_pb2.INFERENCE_STATUS_COMPLETED,
    **ctx: Any,
) -> events_pb2.InferenceCompleted:
    """Build an InferenceCompleted event."""
    msg = events_pb2.InferenceCompleted(
        context=exam_context(study, **ctx),
        exam_quality=events_pb2.QualityAssessment(
            acceptable=acceptable,
            score=0.9 if acceptable else 0.3,
            confidence=0.95,
            model_version="q-1.0",
            advice="" if acceptable else "increase gain",
        ),
        findings=findings or [],
        models=[events_pb2.ModelRef(name="thyroid-nodule", version="1.2.0", sha256="ab" * 32)],
        status=status,
        inference_id=f"inf-{study}",
    )
    return msg


def exam_completed(study: str, *, instances: int = 2, **ctx: Any) -> events_pb2.ExamCompleted:
    """Build an ExamCompleted event with still-frame instances."""
    refs = [
        events_pb2.InstanceRef(
            study_instance_uid=study,
            series_instance_uid=f"{study}.1",
            sop_instance_uid=f"{study}.1.{n}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.6.1",
            object_key=f"dicom/{study}/{study}.1/{study}.1.{n}.dcm",
            sha256="cd" * 32,
            size_bytes=1000,
            transfer_syntax_uid="1.2.840.10008.1.2.4.50",
            number_of_frames=1,
            modality="US",
        )
        for n in range(1, instances + 1)
    ]
    msg = events_pb2.ExamCompleted(
        context=exam_context(study, **ctx),
        instances=refs,
        instance_count=len(refs),
        total_bytes=1000 * len(refs),
    )
    msg.completed_at.FromDatetime(DAY0)
    return msg


def send(bus: EventBus, message: Any, *, source: str = "inference") -> str:
    """Publish an event as its producer would; return its event id."""
    topic = (
        INFERENCE_COMPLETED
        if isinstance(message, events_pb2.InferenceCompleted)
        else (EXAM_COMPLETED)
    )
    event = wrap(message, source=source, key=message.context.study_instance_uid)
    publish(bus, topic, event)
    return event.id


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll until `predicate` returns something truthy; fail loudly on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


@dataclass
class Node:
    """One running reporting service on single-node adapters, plus ways to talk to it."""

    host: ServiceHost
    bus: EventBus
    store: ObjectStore
    clock: FakeClock
    issuer: LocalIssuer
    db_url: str
    engine: Engine
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """Where the REST API listens."""
        return f"http://127.0.0.1:{self.host.http_port}"

    def client(self, user: str, roles: list[str], institution: str | None) -> httpx.Client:
        """Return an HTTP client carrying a token for `user`."""
        token = self.issuer.issue(
            user, roles, institution, consortium="pujiang", ttl_seconds=24 * 3600
        )
        client = httpx.Client(
            base_url=self.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        self.clients[f"{user}-{len(self.clients)}"] = client
        return client

    @property
    def deps(self) -> Any:
        """The use cases' dependencies."""
        return self.host.app.state.deps

    @property
    def sessions(self) -> Any:
        """The service's session factory (to inspect the database in assertions)."""
        return self.host.app.state.sessions

    def stop(self) -> None:
        """Stop the service, close clients, the log and the database pool."""
        for client in self.clients.values():
            client.close()
        if not self.host.stop_event.is_set():
            self.host.stop()
        # Not left to the collector: the web framework keeps each app's endpoints, and what
        # they reach, for the life of the test process.
        self.bus.close()
        self.engine.dispose()


# The county hospital reads for townships a to c; township-z is in no one's care.
INSTITUTIONS = {
    "institutions": [
        {"id": "county-hospital", "tier": "county", "consortium": "pujiang"},
        *(
            {
                "id": f"township-{town}",
                "tier": "township",
                "consortium": "pujiang",
                "served_by": ["county-hospital"],
            }
            for town in "abc"
        ),
        {"id": "township-z", "tier": "township", "consortium": "pujiang"},
    ]
}


def write_institutions(directory: Path) -> Path:
    """Write the tests' institution registry into `directory`; return its path."""
    registry = directory / "institutions.json"
    registry.write_text(json.dumps(INSTITUTIONS), encoding="utf-8")
    return registry


@pytest.fixture
def start_node(tmp_path: Path, issuer: LocalIssuer) -> Iterator[Callable[..., Node]]:
    """Start a reporting service on SQLite, the embedded log and a local directory store."""
    started: list[Node] = []

    def start(clock: FakeClock | None = None, **reporting: Any) -> Node:
        clock = clock or FakeClock(DAY0)
        settings = Settings(
            data_dir=tmp_path,
            access={"institutions_file": write_institutions(tmp_path)},
            http={"host": "127.0.0.1", "port": 0},
            grpc={"host": "127.0.0.1", "port": 0},
            delivery={"relay_interval_seconds": 0.05, "retry_backoff_seconds": 0.01},
            reporting={
                "timer_interval_seconds": 0.02,
                "delivery_interval_seconds": 0.05,
                "sse_max_seconds": 3,
                **reporting,
            },
        )
        db_url = f"sqlite:///{tmp_path / 'reporting.sqlite3'}"
        bus = EmbeddedEventBus(tmp_path / "events.sqlite3")
        store = LocalDirObjectStore(tmp_path / "objects")
        engine = create_db_engine(db_url)
        host = build(
            settings, bus=bus, store=store, engine=engine, verifier=issuer.verifier(), clock=clock
        )
        host.start()
        node = Node(host, bus, store, clock, issuer, db_url, engine)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


NODULE = "237495005"


def route_nodule_exam(node: Node, study: str, timeout: float = 20.0) -> tuple[httpx.Client, str]:
    """Roster dr-wang on county-thyroid, route a thyroid-nodule exam; return his client and read."""
    admin = node.client("admin-1", ["admin"], "county-hospital")
    shift = {
        "user": "dr-wang",
        "role": "primary",
        "starts_at": DAY0.isoformat(),
        "ends_at": (DAY0 + timedelta(days=1)).isoformat(),
    }
    admin.put("/v1/rosters/county-thyroid", json={"shifts": [shift]}).raise_for_status()
    send(node.bus, exam_completed(study), source="ingest")
    nodule = finding(NODULE, "thyroid nodule", 0.91, abnormal=True)
    send(node.bus, inference_completed(study, findings=[nodule]))
    expert = node.client("dr-wang", ["expert"], "county-hospital")
    found = wait_until(
        lambda: [
            r for r in expert.get("/v1/reads").json()["reads"] if r["study_instance_uid"] == study
        ],
        timeout=timeout,
        what="routed read",
    )
    return expert, str(found[0]["read_id"])


def prepare_to_sign(expert: httpx.Client, read_id: str) -> None:
    """Claim the read, draft a nodule conclusion and agree with the AI finding."""
    expert.post(f"/v1/reads/{read_id}/claim").raise_for_status()
    expert.post(f"/v1/reads/{read_id}/draft", json={"language": "zh"}).raise_for_status()
    expert.patch(
        f"/v1/reads/{read_id}/draft", json={"conclusion": "甲状腺右叶结节，建议随访。"}
    ).raise_for_status()
    expert.put(
        f"/v1/reads/{read_id}/verdicts",
        json={"verdicts": [{"finding_code": NODULE, "verdict": "agree"}]},
    ).raise_for_status()
