"""The chaos auditor, serverless: what a lost, doubled or wrongly routed exam looks like to it."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pydicom
import pytest
from chaos.chaos_audit import Auditor, DeadLetter
from chaos.chaos_oracle import CalmRead
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

from sonobridge.api.events.v1 import events_pb2, topics
from sonobridge.node.flow import SeenEvent, Trail
from sonobridge.node.scenario import Expect, PlannedExam
from sonobridge.node.township import UploadedExam

PROBE, BROKEN = "PROBE-01L", "PROBE-09C"


def _instance(study: str) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID, ds.SOPInstanceUID, ds.Modality = study, generate_uid(), "US"
    ds.SOPClassUID = UltrasoundImageStorage
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def _plan(n: int, expect: Expect, serial: str = PROBE) -> PlannedExam:
    study = generate_uid()
    return PlannedExam(
        label=f"thyroid #{n}",
        exam_type="thyroid",
        institution="township-east",
        operator="nurse-east",
        device_serial=serial,
        patient_ref=f"chaos-{n}",
        instances=[_instance(study)],
        expect=expect,
    )


def _calm(worklist: str = "county-thyroid") -> CalmRead:
    return CalmRead("county", worklist, "routine", "completed", True, ("1234",))


@dataclass
class FakeCluster:
    """The public APIs of a cluster after a run, held in dicts (QIDO, exams, reads, tickets)."""

    urls: dict[str, str] = field(
        default_factory=lambda: {s: f"http://{s}" for s in ("ingest", "reporting", "maintenance")}
    )
    admin: str = "admin"
    exams: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: dict[str, list[str]] = field(default_factory=dict)
    reads: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    tickets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if m := re.fullmatch(r"/v1/exams/(.+)", path):
            return httpx.Response(200, json=self.exams[m[1]])
        if m := re.fullmatch(r"/dicomweb/studies/(.+)/instances", path):
            listed = [{"00080060": {"Value": [mod]}} for mod in self.instances.get(m[1], [])]
            return httpx.Response(200, json=listed)
        if m := re.fullmatch(r"/v1/reads/(.+)", path):
            return httpx.Response(200, json=next(r for r in self.reads if r["read_id"] == m[1]))
        if re.fullmatch(r"/v1/reports/.+", path):
            return httpx.Response(200, json={"version": 1})
        if path == "/v1/alerts":
            return httpx.Response(200, json={"alerts": self.alerts})
        if path == "/v1/tickets":
            serial = request.url.params["device_serial"]
            return httpx.Response(200, json={"tickets": self.tickets.get(serial, [])})
        return httpx.Response(404)

    def client(self, user: str) -> httpx.Client:
        """A client whose requests this fake answers."""
        return httpx.Client(transport=httpx.MockTransport(self._answer))

    def reads_by_study(self) -> dict[str, list[dict[str, Any]]]:
        """The reads grouped by study, as FlowTracker gives them."""
        found: dict[str, list[dict[str, Any]]] = {}
        for r in self.reads:
            found.setdefault(r["study_instance_uid"], []).append(r)
        return found


@dataclass
class FakeWatch:
    """The event log, as the events an observer group saw per record key."""

    seen: dict[str, list[SeenEvent]] = field(default_factory=dict)

    def add(self, key: str, topic: str, event_id: str, message: Any = None) -> None:
        """Record one event on `topic` keyed `key`."""
        self.seen.setdefault(key, []).append(SeenEvent(topic, event_id, 0.0, message))

    def events(self, key: str, topic: str | None = None) -> list[SeenEvent]:
        """The events of a key, optionally of one topic."""
        return [e for e in self.seen.get(key, []) if topic is None or e.topic == topic]

    def distinct(self, key: str, topic: str) -> int:
        """Distinct event ids of a key on a topic."""
        return len({e.event_id for e in self.events(key, topic)})

    def keys(self) -> set[str]:
        """Every key seen."""
        return set(self.seen)


@dataclass
class Run:
    """A finished chaos run as the auditor finds it: planned exams, the cluster, the log."""

    planned: list[PlannedExam] = field(default_factory=list)
    trails: list[Trail] = field(default_factory=list)
    cluster: FakeCluster = field(default_factory=FakeCluster)
    watch: FakeWatch = field(default_factory=FakeWatch)
    calm: dict[str, CalmRead] = field(default_factory=dict)

    def settled(self, plan: PlannedExam, **read: Any) -> Trail:
        """Add an exam that went where its calm run went: events, read, report, alert."""
        study, n = plan.study_instance_uid, len(self.planned)
        self.planned.append(plan)
        trail = Trail(UploadedExam(plan, f"exam-{n}", study, 1, 0.0, 0.0, "completed"))
        self.trails.append(trail)
        self.cluster.exams[f"exam-{n}"] = {"state": "completed", "received_instance_count": 1}
        self.cluster.instances[study] = ["US", "SR", "OT"]
        rescan = plan.expect.rescan
        calm = _calm(plan.expect.worklist or "rescan")
        if rescan:
            calm = CalmRead("rescan", "rescan", "routine", "completed", False, ())
        self.calm[study] = calm
        self.cluster.reads.append(
            {
                "read_id": f"read-{n}",
                "study_instance_uid": study,
                "kind": "primary",
                "route": calm.route,
                "worklist": calm.worklist,
                "priority": calm.priority,
                "state": "rescan_requested" if rescan else "signed",
                "escalation_level": 0,
                "report_id": None if rescan else f"report-{n}",
                "inference_status": calm.inference_status,
                "exam_quality": {"acceptable": calm.quality_acceptable},
                "ai_findings": [{"code": c} for c in calm.finding_codes],
                **read,
            }
        )
        app = events_pb2.InstanceStored(received_via=events_pb2.RECEIVED_VIA_APP_UPLOAD)
        self.watch.add(study, topics.INSTANCE_STORED, f"stored-{n}", app)
        ai = events_pb2.InstanceStored(received_via=events_pb2.RECEIVED_VIA_AI_RESULT)
        self.watch.add(study, topics.INSTANCE_STORED, f"ai-stored-{n}", ai)
        for topic in (topics.EXAM_COMPLETED, topics.INFERENCE_COMPLETED, topics.REPORT_ROUTED):
            self.watch.add(study, topic, f"{topic}-{n}")
        if not rescan:
            self.watch.add(study, topics.REPORT_SIGNED, f"signed-{n}")
        if plan.expect.followup:
            self.watch.add(study, topics.FOLLOWUP_ALERTED, f"alerted-{n}")
            self.cluster.alerts.append({"study_instance_uid": study})
        if plan.expect.ticket_device and not self.cluster.tickets.get(plan.expect.ticket_device):
            self.cluster.tickets[plan.expect.ticket_device] = [{"source": "probe-health"}]
            self.watch.add(plan.expect.ticket_device, topics.TICKET_OPENED, f"ticket-{n}")
        return trail

    def audit(self, letters: list[DeadLetter] | None = None) -> Any:
        """The auditor's findings on this run."""
        auditor = Auditor(self.cluster, self.watch, self.calm)
        return auditor.audit(self.planned, self.trails, [], letters or [])


@pytest.fixture
def run() -> Run:
    """A run of four exams that all ended where their calm runs did."""
    r = Run()
    r.settled(_plan(1, Expect(worklist="county-thyroid")))
    r.settled(_plan(2, Expect(worklist="county-thyroid", followup=True)))
    r.settled(_plan(3, Expect(rescan=True, worklist="rescan", ticket_device=BROKEN), BROKEN))
    r.settled(_plan(4, Expect(worklist="county-thyroid")))
    return r


def test_a_run_where_every_exam_ended_as_in_its_calm_run_is_clean(run: Run) -> None:
    found = run.audit()
    assert found.problems() == []
    assert found.exams == 4
    assert found.checked["reads compared with the calm run"] == 4
    assert found.checked["signed reports"] == 3
    assert found.checked["probe tickets"] == found.checked["ticket-opened events"] == 1
    assert found.checked["follow-up alerts listed"] == 1


def test_an_exam_routed_without_its_ai_result_is_wrong_though_signed_on_its_list(
    run: Run,
) -> None:
    # The AI result came after reporting's wait ran out: same list, same signature, no AI.
    run.cluster.reads[0].update(inference_status="missing", exam_quality=None, ai_findings=[])
    found = run.audit()
    assert [p.split(": read ")[1] for p in found.wrong_state] == [
        "inference_status 'missing', calm run 'completed'",
        "quality_acceptable None, calm run True",
        "finding_codes (), calm run ('1234',)",
    ]
    assert found.lost == found.doubled == []


def test_an_exam_its_app_neither_delivered_nor_gave_up_on_is_lost(run: Run) -> None:
    silent = _plan(5, Expect(worklist="county-thyroid"))
    run.planned.append(silent)
    found = run.audit()
    assert found.exams == 5
    assert found.lost == [
        f"thyroid #5 ({silent.study_instance_uid}): neither delivered nor given up"
    ]


def test_a_ticket_on_a_healthy_probe_is_a_wrong_state(run: Run) -> None:
    run.cluster.tickets[PROBE] = [{"source": "probe-health"}]
    run.watch.add(PROBE, topics.TICKET_OPENED, "ticket-x")
    found = run.audit()
    assert found.wrong_state == [
        f"probe {PROBE}: 1 automatic tickets, want 0",
        f"probe {PROBE}: 1 ticket-opened events, want 0",
    ]


def test_a_ticket_opened_event_published_twice_is_doubled(run: Run) -> None:
    run.watch.add(BROKEN, topics.TICKET_OPENED, "ticket-again")
    assert run.audit().doubled == [f"probe {BROKEN}: 2 ticket-opened events, want 1"]


def test_a_second_routed_event_for_one_read_is_doubled(run: Run) -> None:
    study = run.trails[0].study
    run.watch.add(study, topics.REPORT_ROUTED, "routed-again")
    assert run.audit().doubled == [f"thyroid #1 ({study}): 2 distinct report-routed events, want 1"]


def test_a_second_alert_row_for_one_study_is_doubled(run: Run) -> None:
    study = run.trails[1].study
    run.cluster.alerts.append({"study_instance_uid": study})
    assert run.audit().doubled == [f"thyroid #2 ({study}): 2 follow-up alerts listed, want 1"]


def test_events_for_a_study_no_app_sent_are_reported(run: Run) -> None:
    run.watch.add("1.2.3.999", topics.EXAM_COMPLETED, "ghost")
    assert run.audit().doubled == ["1 events keyed '1.2.3.999', which no planned exam is"]


def test_a_dead_letter_makes_the_run_unclean(run: Run) -> None:
    letter = DeadLetter(topics.INFERENCE_COMPLETED + ".dlq", "1.2.3", "PermanentFailure: x")
    found = run.audit([letter])
    assert not found.clean and found.dead_letters == [letter]


def test_an_instance_sent_again_and_announced_as_a_duplicate_is_not_a_second_store(
    run: Run,
) -> None:
    # The long run's kidney #397: a C-STORE retried on the other replica while the first one
    # was paused; the late replica found the instance stored and said so (duplicate, nothing
    # written). Two such notices made the auditor call the exam doubled.
    study = run.trails[0].study
    notice = events_pb2.InstanceStored(received_via=events_pb2.RECEIVED_VIA_C_STORE, duplicate=True)
    run.watch.add(study, topics.INSTANCE_STORED, "resent-1", notice)
    found = run.audit()
    assert found.problems() == []
    assert found.checked["instance re-receipts announced as duplicates"] == 1


def test_an_instance_stored_twice_without_the_duplicate_mark_is_doubled(run: Run) -> None:
    study = run.trails[0].study
    again = events_pb2.InstanceStored(received_via=events_pb2.RECEIVED_VIA_C_STORE)
    run.watch.add(study, topics.INSTANCE_STORED, "stored-again", again)
    assert run.audit().doubled == [
        f"thyroid #1 ({study}): 2 distinct instance-stored events, want 1"
    ]
