"""The auditor: walk every exam through the public APIs and the event log after a chaos run."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from chaos.chaos_oracle import CalmRead

from sonobridge.api.events.v1 import events_pb2, topics
from sonobridge.common.bus.kafka import KafkaEventBus, received
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.node.flow import EventWatch, SeenEvent, Trail
from sonobridge.node.scenario import PlannedExam

# Ingest writes each run's results into the study as DICOM (a report and overlay captures): not
# the app's instances, and deterministic, so a redelivered run never lists them twice.
AI_MODALITIES = frozenset({"SR", "OT"})

AUDITED_TOPICS = (
    topics.EXAM_COMPLETED,
    topics.INSTANCE_STORED,
    topics.INFERENCE_COMPLETED,
    topics.REPORT_ROUTED,
    topics.REPORT_SIGNED,
    topics.FOLLOWUP_ALERTED,
    topics.TICKET_OPENED,
)


@dataclass
class DeadLetter:
    """One dead-lettered record and the error the consumer gave."""

    topic: str
    key: str
    error: str


@dataclass
class Audit:
    """The auditor's findings: counts that must be zero, and what each problem was."""

    exams: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    wrong_state: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    checked: Counter[str] = field(default_factory=Counter)

    @property
    def clean(self) -> bool:
        """True when nothing was lost, doubled, left in the wrong state or dead-lettered."""
        return not (self.lost or self.doubled or self.wrong_state or self.dead_letters)

    def problems(self) -> list[str]:
        """Every finding, one line each."""
        return [
            *(f"lost: {p}" for p in self.lost),
            *(f"doubled: {p}" for p in self.doubled),
            *(f"wrong state: {p}" for p in self.wrong_state),
            *(f"dead letter on {d.topic} ({d.key}): {d.error}" for d in self.dead_letters),
        ]


class Services(Protocol):
    """The public APIs as the auditor reaches them (FlowTracker, or a test's fake)."""

    urls: dict[str, str]
    admin: str

    def client(self, user: str) -> httpx.Client: ...

    def reads_by_study(self) -> dict[str, list[dict[str, Any]]]: ...


class Watch(Protocol):
    """The event log as the auditor reads it (EventWatch on the broker, or a test's fake)."""

    def events(self, key: str, topic: str | None = None) -> list[SeenEvent]: ...

    def distinct(self, key: str, topic: str) -> int: ...

    def keys(self) -> set[str]: ...


class LogReader:
    """Every partition of the audited topics, read from its start with no consumer group.

    A group member can sit without partitions (it joined before the broker listed the topics)
    or be fenced when a loaded host misses heartbeats; a chaos run once audited 0 events so
    while every exam was delivered. An auditor needs neither a group nor committed offsets.
    """

    def __init__(self, bootstrap: str, names: tuple[str, ...]) -> None:
        from kafka import KafkaConsumer

        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            metadata_max_age_ms=5000,
        )
        self._names = names
        self._assigned: set[Any] = set()
        self._next_check = 0.0

    def _assign(self) -> None:
        from kafka import TopicPartition

        self._consumer.topics()  # a metadata fetch, so that new topics' partitions are known
        wanted = {
            TopicPartition(t, p)
            for t in self._names
            for p in self._consumer.partitions_for_topic(t) or ()
        }
        if new := wanted - self._assigned:
            # A partition read again from its start only repeats events, counted by distinct id.
            self._consumer.assign(sorted(wanted))
            self._consumer.seek_to_beginning(*new)
            self._assigned = wanted

    def poll(self, timeout: float) -> list[ReceivedEvent]:
        """Return the next records of any audited partition."""
        if {tp.topic for tp in self._assigned} != set(self._names):
            if time.monotonic() >= self._next_check:
                self._next_check = time.monotonic() + 1.0
                self._assign()
            if not self._assigned:
                time.sleep(timeout)
                return []
        return received(self._consumer.poll(timeout_ms=int(timeout * 1000)))

    def close(self) -> None:
        """Stop reading."""
        self._consumer.close()


class AuditWatch(EventWatch):
    """EventWatch on a group-less LogReader, that can also say which keys it saw events for."""

    def __init__(self, bus: KafkaEventBus, names: tuple[str, ...] = AUDITED_TOPICS) -> None:
        # EventWatch's loop and index, reading through LogReader instead of a group member.
        bus.ensure_topics(list(names))
        self._subscription = LogReader(bus.bootstrap_servers, names)  # type: ignore[assignment]
        self._lock = threading.Lock()
        self._events: dict[str, list[SeenEvent]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-watch", daemon=True)
        self._thread.start()

    def keys(self) -> set[str]:
        """Every record key seen so far."""
        with self._lock:
            return set(self._events)


def expected_events(trail: Trail) -> dict[str, int]:
    """How many distinct events of each topic one exam must leave on the log."""
    expect = trail.uploaded.plan.expect
    signed = 0 if expect.rescan else 1
    return {
        topics.EXAM_COMPLETED: 1,
        topics.INSTANCE_STORED: len(trail.uploaded.plan.instances),
        topics.INFERENCE_COMPLETED: 1,
        topics.REPORT_SIGNED: signed,
        topics.FOLLOWUP_ALERTED: 1 if expect.followup else 0,
    }


class Auditor:
    """Check every exam against its expected outcome through REST, DICOMweb and the event log."""

    def __init__(
        self,
        tracker: Services,
        watch: Watch,
        calm: Mapping[str, CalmRead] | None = None,
    ) -> None:
        self.tracker = tracker
        self.watch = watch
        # The calm run's primary read per study: the read the chaos run must also have given.
        self.calm = calm or {}

    def _get(self, user: str, service: str, path: str, **params: Any) -> httpx.Response:
        client = self.tracker.client(user)
        return client.get(f"{self.tracker.urls[service]}{path}", params=params or None)

    def audit(
        self,
        planned: list[PlannedExam],
        trails: list[Trail],
        undelivered: list[tuple[PlannedExam, str]],
        letters: list[DeadLetter],
    ) -> Audit:
        """Walk every planned exam; then the probes' tickets, stray events and dead letters."""
        found = Audit(exams=len(planned))
        found.lost.extend(f"never delivered by its app: {p.label}: {why}" for p, why in undelivered)
        self._accounted(planned, trails, undelivered, found)
        reads = self.tracker.reads_by_study()
        alerts = Counter(a["study_instance_uid"] for a in self._alerts(found))
        for trail in trails:
            self._exam(trail, reads.get(trail.study, []), alerts[trail.study], found)
        self._tickets(planned, trails, found)
        self._strays(planned, found)
        found.dead_letters = list(letters)
        return found

    def _accounted(
        self,
        planned: list[PlannedExam],
        trails: list[Trail],
        undelivered: list[tuple[PlannedExam, str]],
        found: Audit,
    ) -> None:
        """Every planned exam was either delivered once or reported undelivered by its app."""
        delivered = Counter(t.study for t in trails)
        given_up = {p.study_instance_uid for p, _ in undelivered}
        for plan in planned:
            study = plan.study_instance_uid
            if delivered[study] > 1:
                found.doubled.append(f"{plan.label} ({study}): delivered {delivered[study]} times")
            elif not delivered[study] and study not in given_up:
                found.lost.append(f"{plan.label} ({study}): neither delivered nor given up")

    def _alerts(self, found: Audit) -> list[dict[str, Any]]:
        response = self._get(self.tracker.admin, "reporting", "/v1/alerts")
        if response.status_code != 200:
            found.lost.append(f"follow-up alerts: reporting answers {response.status_code}")
            return []
        return list(response.json()["alerts"])

    def _exam(self, trail: Trail, reads: list[dict[str, Any]], alerts: int, found: Audit) -> None:
        plan, label = trail.uploaded.plan, f"{trail.uploaded.plan.label} ({trail.study})"
        exam = self._get(plan.operator, "ingest", f"/v1/exams/{trail.uploaded.exam_id}")
        if exam.status_code != 200 or exam.json()["state"] != "completed":
            found.lost.append(f"{label}: ingest answers {exam.status_code} {exam.text[:200]}")
            return
        found.checked["exams completed in ingest"] += 1
        if exam.json()["received_instance_count"] != len(plan.instances):
            found.doubled.append(
                f"{label}: {exam.json()['received_instance_count']} instances received, "
                f"{len(plan.instances)} sent"
            )
        self._instances(trail, label, found)
        self._events(trail, label, reads, found)
        want_alerts = 1 if plan.expect.followup else 0
        if alerts != want_alerts:
            bucket = found.doubled if alerts > want_alerts > 0 else found.lost
            bucket = found.wrong_state if want_alerts == 0 else bucket
            bucket.append(f"{label}: {alerts} follow-up alerts listed, want {want_alerts}")
        found.checked["follow-up alerts listed"] += alerts
        audit_reads = [r for r in reads if r["kind"] == "audit"]
        if len(audit_reads) > 1:
            found.doubled.append(f"{label}: {len(audit_reads)} audit reads")
        primary = [r for r in reads if r["kind"] == "primary"]
        if len(primary) != 1:
            bucket = found.doubled if len(primary) > 1 else found.lost
            bucket.append(f"{label}: {len(primary)} primary reads")
            return
        self._read(trail, label, primary[0], found)

    def _instances(self, trail: Trail, label: str, found: Audit) -> None:
        plan = trail.uploaded.plan
        stored = self._get(plan.operator, "ingest", f"/dicomweb/studies/{trail.study}/instances")
        listed = stored.json() if stored.status_code == 200 else []
        ai = [i for i in listed if _modality(i) in AI_MODALITIES]
        count = len(listed) - len(ai)
        if count != len(plan.instances):
            bucket = found.doubled if count > len(plan.instances) else found.lost
            bucket.append(f"{label}: QIDO lists {count} instances of {len(plan.instances)}")
        if sum(1 for i in ai if _modality(i) == "SR") > 1:
            found.doubled.append(f"{label}: more than one AI measurement report in the study")
        found.checked["instances listed by QIDO-RS"] += count
        found.checked["AI objects listed by QIDO-RS"] += len(ai)

    def _events(self, trail: Trail, label: str, reads: list[dict[str, Any]], found: Audit) -> None:
        want_events = expected_events(trail)
        # Each read is announced once when routed; only a tier escalation announces it again.
        escalated = any(r.get("escalation_level") for r in reads)
        routed = self.watch.distinct(trail.study, topics.REPORT_ROUTED)
        if not escalated:
            want_events[topics.REPORT_ROUTED] = max(1, len(reads))
        elif routed < len(reads):
            found.lost.append(f"{label}: {routed} routed events for {len(reads)} reads")
        for topic, want in want_events.items():
            seen = self._distinct(trail.study, topic)
            if seen != want:
                # One where none was expected is the content's verdict, not a redelivery.
                bucket = found.doubled if seen > want > 0 else found.lost
                bucket = found.wrong_state if want == 0 else bucket
                bucket.append(f"{label}: {seen} distinct {topic.split('.')[2]} events, want {want}")
        for topic in AUDITED_TOPICS:
            if topic != topics.TICKET_OPENED:
                found.checked[f"{topic.split('.')[2]} events"] += self._distinct(trail.study, topic)
        resent = len(self._stores(trail.study, duplicate=True))
        found.checked["instance re-receipts announced as duplicates"] += resent

    def _read(self, trail: Trail, label: str, read: dict[str, Any], found: Audit) -> None:
        plan = trail.uploaded.plan
        found.checked["primary reads"] += 1
        expect = plan.expect
        want_state = "rescan_requested" if expect.rescan else "signed"
        if read["state"] != want_state:
            found.wrong_state.append(f"{label}: read {read['state']}, want {want_state}")
        if expect.worklist and not expect.rescan and read["worklist"] != expect.worklist:
            found.wrong_state.append(
                f"{label}: worklist {read['worklist']}, want {expect.worklist}"
            )
        if expect.rescan and read["route"] != "rescan":
            found.wrong_state.append(f"{label}: routed {read['route']}, want a rescan")
        view = self._get(self.tracker.admin, "reporting", f"/v1/reads/{read['read_id']}")
        if view.status_code != 200:
            found.lost.append(f"{label}: read {read['read_id']} answers {view.status_code}")
            return
        calm = self.calm.get(trail.study)
        if calm is not None:
            # Routed without its AI (a late result), on other findings, or escalated: not calm.
            found.wrong_state.extend(f"{label}: read {d}" for d in calm.departures(view.json()))
            found.checked["reads compared with the calm run"] += 1
        if read["state"] == "signed":
            self._report(label, view.json(), found)

    def _distinct(self, study: str, topic: str) -> int:
        """Distinct events of a topic for a study; AI objects' instance-stored events apart."""
        if topic != topics.INSTANCE_STORED:
            return self.watch.distinct(study, topic)
        return len(self._stores(study, duplicate=False))

    def _stores(self, study: str, *, duplicate: bool) -> set[str]:
        """Event ids of the app's instance-stored events: first stores, or re-receipt notices.

        An instance sent again (a retry after a timeout) is announced with `duplicate` set and
        nothing written (events.proto): a notice of the retry, not a second store.
        """
        ai = events_pb2.RECEIVED_VIA_AI_RESULT
        return {
            e.event_id
            for e in self.watch.events(study, topics.INSTANCE_STORED)
            if e.message.received_via != ai and e.message.duplicate == duplicate
        }

    def _report(self, label: str, view: dict[str, Any], found: Audit) -> None:
        report_id = view.get("report_id")
        if not report_id:
            found.lost.append(f"{label}: signed read without a report")
            return
        report = self._get(self.tracker.admin, "reporting", f"/v1/reports/{report_id}")
        if report.status_code != 200:
            found.lost.append(f"{label}: report {report_id} answers {report.status_code}")
            return
        # One sign, one version: a retried sign must not write a second one.
        if report.json()["version"] != 1:
            found.doubled.append(f"{label}: report {report_id} is at v{report.json()['version']}")
        found.checked["signed reports"] += 1

    def _tickets(self, planned: list[PlannedExam], trails: list[Trail], found: Audit) -> None:
        """One automatic ticket (and one opened event) per failing probe; none on the others."""
        ticketed = {t.uploaded.plan.expect.ticket_device for t in trails} - {None}
        for serial in sorted({p.device_serial for p in planned}):
            answer = self._get(
                self.tracker.admin, "maintenance", "/v1/tickets", device_serial=serial
            )
            if answer.status_code != 200:
                found.lost.append(f"probe {serial}: tickets answer {answer.status_code}")
                continue
            tickets = answer.json()["tickets"]
            opened = [t for t in tickets if t.get("source") != "operator"]
            events = self.watch.distinct(serial, topics.TICKET_OPENED)
            want = 1 if serial in ticketed else 0
            for what, n in (("automatic tickets", len(opened)), ("ticket-opened events", events)):
                if n != want:
                    bucket = found.doubled if n > want > 0 else found.lost
                    bucket = found.wrong_state if want == 0 else bucket
                    bucket.append(f"probe {serial}: {n} {what}, want {want}")
            found.checked["probe tickets"] += len(opened)
            found.checked["ticket-opened events"] += events

    def _strays(self, planned: list[PlannedExam], found: Audit) -> None:
        """Events about a study no app sent (or a probe no app used) are doubled or misfiled."""
        known = {p.study_instance_uid for p in planned} | {p.device_serial for p in planned}
        for key in sorted(self.watch.keys() - known):
            count = len(self.watch.events(key))
            found.doubled.append(f"{count} events keyed {key!r}, which no planned exam is")


def _modality(instance: dict[str, Any]) -> str:
    return str(instance.get("00080060", {}).get("Value", [""])[0])


def dead_letters(bootstrap: str) -> list[DeadLetter]:
    """Every record on a `.dlq` topic of the broker, with its error header."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        names = [t for t in consumer.topics() if t.endswith(topics.DLQ_SUFFIX)]
        partitions = [
            TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        letters = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    headers = dict(r.headers or [])
                    letters.append(
                        DeadLetter(
                            r.topic,
                            (r.key or b"").decode(errors="replace"),
                            headers.get("dlq_error", b"").decode(errors="replace"),
                        )
                    )
        return letters
    finally:
        consumer.close()
