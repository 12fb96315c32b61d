"""What the reporting use cases need from the outside: persistence, events, idempotency, outputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sonobridge.common.access import AccessPolicy
from sonobridge.common.audit import AuditRecord
from sonobridge.common.idempotency import Outcome, RequestKey
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.reporting.domain.access import ReadScope
from sonobridge.reporting.domain.assignment import Shift
from sonobridge.reporting.domain.events import Published
from sonobridge.reporting.domain.followup import TermSpec
from sonobridge.reporting.domain.policy import Policy
from sonobridge.reporting.domain.records import (
    Alert,
    Delivery,
    Draft,
    Exam,
    HistoryEntry,
    JsonObject,
    Notification,
    QualityLabel,
    ReadPosition,
    ReadRecord,
    ReportVersion,
    Timer,
    Verdict,
)
from sonobridge.reporting.metrics import ReportingMetrics
from sonobridge.reporting.settings import ReportingSettings

Clock = Callable[[], datetime]


class Reporting(Protocol):
    """The reporting tables, inside one transaction."""

    def exam(self, study_uid: str) -> Exam | None: ...
    def add_exam(self, exam: Exam) -> bool: ...
    def read(self, read_id: str, *, lock: bool = False) -> ReadRecord | None: ...
    def read_for_study(self, study_uid: str, kind: str = "primary") -> ReadRecord | None: ...
    def add_read(self, read: ReadRecord) -> None: ...
    def update_read(self, read_id: str, **values: Any) -> None: ...
    def open_reads_of_device(self, device_serial: str) -> list[ReadRecord]: ...
    def read_page(
        self,
        *,
        scope: ReadScope,
        worklists: Iterable[str] | None,
        states: Iterable[str],
        assigned_to: str | None,
        after: ReadPosition | None,
        limit: int,
    ) -> list[ReadRecord]: ...
    def open_depth(self, scope: ReadScope) -> dict[str, int]: ...
    def open_load(self) -> dict[str, int]: ...
    def depth_by_worklist(self) -> dict[str, int]: ...
    def add_history(self, read_id: str, entry: HistoryEntry) -> None: ...
    def has_history(self, read_id: str, *, kind: str, detail: str) -> bool: ...
    def history(self, read_id: str) -> list[HistoryEntry]: ...
    def arm_timer(self, kind: str, subject: str, fire_at: datetime, now: datetime) -> None: ...
    def due_timer_ids(self, now: datetime, limit: int) -> list[int]: ...
    def claim_timer(self, timer_id: int) -> Timer | None: ...
    def mark_fired(self, timer_id: int, now: datetime) -> bool: ...
    def shifts(self, worklist: str) -> list[Shift]: ...
    def replace_shifts(self, worklist: str, shifts: Iterable[Shift]) -> None: ...
    def draft(self, read_id: str) -> Draft | None: ...
    def put_draft(self, draft: Draft) -> None: ...
    def delete_draft(self, read_id: str) -> None: ...
    def verdicts(self, read_id: str) -> list[Verdict]: ...
    def put_verdict(self, verdict: Verdict) -> None: ...
    def quality_labels(self, read_id: str) -> list[QualityLabel]: ...
    def put_quality_label(self, label: QualityLabel) -> None: ...
    def report_versions(self, report_id: str) -> list[ReportVersion]: ...
    def add_report_version(self, version: ReportVersion) -> None: ...
    def add_alert(self, alert: Alert) -> None: ...
    def alert(self, alert_id: str) -> Alert | None: ...
    def alerts(
        self, *, institutions: frozenset[str] | None, states: Iterable[str] | None
    ) -> list[Alert]: ...
    def alerted_terms(self, report_id: str) -> set[str]: ...
    def update_alert(self, alert_id: str, **values: Any) -> None: ...
    def notify(
        self,
        *,
        kind: str,
        at: datetime,
        payload: JsonObject,
        user: str | None = None,
        role: str | None = None,
        institution: str | None = None,
    ) -> None: ...
    def notifications_after(
        self, *, user: str, roles: Iterable[str], institution: str | None, after: int, limit: int
    ) -> list[Notification]: ...
    def add_delivery(self, delivery: Delivery) -> None: ...
    def due_deliveries(self, now: datetime, limit: int) -> list[Delivery]: ...
    def update_delivery(self, delivery_pk: int, **values: Any) -> None: ...
    def audit(self, record: AuditRecord) -> None: ...
    def audit_trail(self, *, read_id: str | None, report_id: str | None) -> list[AuditRecord]: ...


class Work(Protocol):
    """One transaction: the tables, the outbox, and effects to apply once it commits."""

    @property
    def reporting(self) -> Reporting: ...

    def emit(self, event: Published, key: str) -> JsonObject:
        """Stage an event in the outbox; return its JSON form (what webhooks carry)."""
        ...

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Run `effect` only if the transaction commits (metrics must not count rollbacks)."""
        ...


class Once(Protocol):
    """Run a change in one transaction with its Idempotency-Key, or replay the key's answer."""

    def __call__(
        self,
        user: str,
        key: RequestKey | None,
        status: int,
        change: Callable[[Work], dict[str, Any]],
    ) -> Outcome: ...


class Attempt(Protocol):
    """How one delivery attempt went."""

    @property
    def ok(self) -> bool: ...
    @property
    def retryable(self) -> bool: ...
    @property
    def error(self) -> str: ...


class Sender(Protocol):
    """Posts one outbound delivery."""

    def post(
        self,
        url: str,
        body: str,
        *,
        channel: str,
        event_type: str,
        delivery_id: str,
        timestamp: str,
    ) -> Attempt: ...


@dataclass
class Dependencies:
    """What the use cases need, built once by bootstrap (tests build it with fakes)."""

    unit: Callable[[], AbstractContextManager[Work]]
    joined: Callable[[Any], Work]
    once: Once
    policy: Policy
    clock: Clock
    store: ObjectStore
    metrics: ReportingMetrics
    settings: ReportingSettings
    render_pdf: Callable[[dict[str, Any]], bytes]
    fhir_bundle: Callable[[ReportVersion, ReadRecord, Exam | None], dict[str, Any]]
    normalize_findings: Callable[[Sequence[JsonObject]], list[JsonObject]]
    access: AccessPolicy = field(default_factory=AccessPolicy)

    @property
    def terms(self) -> list[TermSpec]:
        """The configured follow-up terms."""
        return [TermSpec(t.term, t.words, t.codes) for t in self.settings.followup_terms]
