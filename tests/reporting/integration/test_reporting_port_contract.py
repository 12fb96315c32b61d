"""One contract for the Reporting port: the SQLAlchemy repository (SQLite, PostgreSQL), the fake."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sonobridge.common.audit import AuditRecord
from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.reporting.adapters import orm
from sonobridge.reporting.adapters.repository import ReportingRepository
from sonobridge.reporting.domain.access import ReadScope
from sonobridge.reporting.domain.assignment import DutyRole, Shift
from sonobridge.reporting.domain.records import (
    Alert,
    Delivery,
    Draft,
    Exam,
    HistoryEntry,
    QualityLabel,
    ReadRecord,
    ReportVersion,
    Verdict,
)

from ..unit.handlers.fakes import T0, FakeReporting, FakeTables


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The port's adapter under test, inside one open transaction."""
    if request.param == "fake":
        yield FakeReporting(FakeTables())
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/contract.sqlite3"
    else:
        url = request.getfixturevalue("pg_database")
    engine = create_db_engine(url)
    orm.metadata.create_all(engine)
    with session_factory(engine).begin() as session:
        yield ReportingRepository(session)
    engine.dispose()


def _read(read_id: str, **changes: Any) -> ReadRecord:
    base = ReadRecord(
        read_id=read_id,
        study_uid=f"study-{read_id}",
        kind="primary",
        exam_id="e",
        institution="th-1",
        operator="op",
        device_serial="US-1",
        exam_type="thyroid",
        patient_ref="p",
        route="expert",
        worklist="county-thyroid",
        priority="routine",
        state="queued",
        assigned_to=None,
        created_at=T0,
        due_at=T0 + timedelta(hours=2),
        first_due_at=T0 + timedelta(hours=2),
        exam_completed_at=None,
        escalation_level=0,
        policy_version="v1",
        rule="r",
        reason="why",
        audit_sampled=False,
        inference_status="completed",
        ai_findings=[{"code": "x"}],
        ai_models=[],
        exam_quality={"score": 0.9},
    )
    return replace(base, **changes)


def test_an_exam_is_recorded_once_and_comes_back_as_written(repo):
    exam = Exam("1.2", "e", "th-1", "op", "US-1", "thyroid", "p", T0, T0, [{"sop": "1"}])
    assert repo.add_exam(exam) is True
    assert repo.add_exam(replace(exam, exam_id="other")) is False
    assert repo.exam("1.2") == exam and repo.exam("nope") is None


def test_a_read_round_trips_and_changes_field_by_field(repo):
    read = _read("r1")
    repo.add_read(read)
    assert repo.read("r1") == read
    assert repo.read_for_study("study-r1") == read
    assert repo.read_for_study("study-r1", "audit") is None
    repo.update_read("r1", state="claimed", assigned_to="dr-a")
    assert repo.read("r1", lock=True) == replace(read, state="claimed", assigned_to="dr-a")


def test_open_reads_of_a_device_and_the_depth_and_load(repo):
    repo.add_read(_read("r1", assigned_to="dr-a"))
    repo.add_read(_read("r2", state="signed", assigned_to="dr-a"))
    repo.add_read(_read("r3", device_serial="US-2"))
    assert [r.read_id for r in repo.open_reads_of_device("US-1")] == ["r1"]
    assert repo.open_load() == {"dr-a": 1}
    assert repo.depth_by_worklist() == {"county-thyroid": 2}
    assert repo.open_depth(ReadScope(institutions=frozenset({"elsewhere"}))) == {}


def test_a_page_is_in_worklist_order_and_resumes_after_a_position(repo):
    repo.add_read(_read("b", priority="urgent"))
    repo.add_read(_read("a", priority="urgent"))
    repo.add_read(_read("c", due_at=None))
    repo.add_read(_read("d", due_at=T0))
    everything = ReadScope(everything=True)
    page = repo.read_page(
        scope=everything,
        worklists=None,
        states=["queued"],
        assigned_to=None,
        after=None,
        limit=10,
    )
    assert [r.read_id for r in page] == ["a", "b", "d", "c"]
    rest = repo.read_page(
        scope=everything,
        worklists=["county-thyroid"],
        states=["queued"],
        assigned_to=None,
        after=page[1].position(),
        limit=1,
    )
    assert [r.read_id for r in rest] == ["d"]
    hidden = ReadScope(institutions=frozenset({"th-2"}))
    assert (
        repo.read_page(
            scope=hidden, worklists=None, states=["queued"], assigned_to=None, after=None, limit=10
        )
        == []
    )


def test_history_is_kept_in_order_and_can_be_searched(repo):
    first = HistoryEntry(
        at=T0,
        kind="routed",
        actor="system",
        worklist="county-thyroid",
        assigned_to=None,
        detail="rule: why",
    )
    repo.add_history("r1", first)
    repo.add_history("r1", replace(first, kind="claimed", actor="dr-a", detail=""))
    assert [h.kind for h in repo.history("r1")] == ["routed", "claimed"]
    assert repo.history("r1")[0] == first
    assert repo.has_history("r1", kind="routed", detail="rule: why")
    assert not repo.has_history("r1", kind="routed", detail="other")


def test_a_timer_is_armed_once_and_fires_once(repo):
    repo.arm_timer("target", "r1", T0, T0)
    repo.arm_timer("target", "r1", T0, T0)
    repo.arm_timer("backup", "r1", T0 + timedelta(hours=1), T0)
    [timer_id] = repo.due_timer_ids(T0, 10)
    timer = repo.claim_timer(timer_id)
    assert timer is not None and (timer.kind, timer.subject, timer.fire_at) == ("target", "r1", T0)
    assert repo.mark_fired(timer_id, T0) is True
    assert repo.mark_fired(timer_id, T0) is False
    assert repo.claim_timer(timer_id) is None
    assert repo.due_timer_ids(T0, 10) == []


def test_a_roster_is_replaced_whole(repo):
    shift = Shift("dr-a", "county-thyroid", DutyRole.PRIMARY, T0, T0 + timedelta(hours=8))
    repo.replace_shifts("county-thyroid", [shift])
    repo.replace_shifts("county-thyroid", [replace(shift, user="dr-b", institution="th-1")])
    assert repo.shifts("county-thyroid") == [replace(shift, user="dr-b", institution="th-1")]
    assert repo.shifts("provincial") == []


def test_drafts_and_verdicts_are_replaced_not_duplicated(repo):
    draft = Draft("r1", "en", "t", "text", "ok", [{"code": "x"}], "dr-a", T0, 1)
    repo.put_draft(draft)
    repo.put_draft(replace(draft, revision=2))
    assert repo.draft("r1") == replace(draft, revision=2)
    repo.delete_draft("r1")
    assert repo.draft("r1") is None
    verdict = Verdict("r1", "x", "m", "1", "agree", "", "dr-a", T0)
    repo.put_verdict(verdict)
    repo.put_verdict(replace(verdict, verdict="reject"))
    assert repo.verdicts("r1") == [replace(verdict, verdict="reject")]


def test_a_quality_label_is_replaced_per_instance_and_keeps_its_time_in_utc(repo):
    label = QualityLabel("r1", "1.2.3.1", "1.2.3.9", "acceptable", "", "dr-a", "expert", T0)
    repo.put_quality_label(label)
    rescan = replace(label, label="rescan", reason="low_gain")
    repo.put_quality_label(rescan)
    repo.put_quality_label(replace(label, sop_instance_uid="1.2.3.2"))
    got = sorted(repo.quality_labels("r1"), key=lambda lb: lb.sop_instance_uid)
    assert got == [rescan, replace(label, sop_instance_uid="1.2.3.2")]
    assert got[0].labelled_at.tzinfo is not None
    assert repo.quality_labels("r2") == []


def test_report_versions_come_back_oldest_first(repo):
    first = ReportVersion(
        "rep", 1, "r1", "s", "th-1", "en", "t", "f", "c", [], [], "dr", T0, 0, "", "p", "j"
    )
    repo.add_report_version(replace(first, version=2, amended_from_version=1))
    repo.add_report_version(first)
    assert [v.version for v in repo.report_versions("rep")] == [1, 2]
    assert repo.report_versions("rep")[0] == first


def test_alerts_are_filtered_changed_and_remember_their_terms(repo):
    alert = Alert("a1", "rep", 1, "r1", "s", "th-1", ["nodule"], "open", T0)
    repo.add_alert(alert)
    repo.add_alert(replace(alert, alert_id="a2", report_version=2, institution="th-2"))
    assert repo.alerted_terms("rep") == {"nodule"}
    repo.update_alert("a1", state="closed", closed_by="co", closed_at=T0)
    assert repo.alert("a1") == replace(alert, state="closed", closed_by="co", closed_at=T0)
    mine = repo.alerts(institutions=frozenset({"th-1"}), states=None)
    assert [a.alert_id for a in mine] == ["a1"]
    assert [a.alert_id for a in repo.alerts(institutions=None, states=["open"])] == ["a2"]


def test_the_feed_holds_a_users_and_their_roles_notifications(repo):
    repo.notify(kind="a", at=T0, payload={"n": 1}, user="u")
    repo.notify(kind="b", at=T0, payload={}, role="coordinator")
    repo.notify(kind="c", at=T0, payload={}, role="coordinator", institution="th-2")
    repo.notify(kind="d", at=T0, payload={}, user="v")
    feed = repo.notifications_after(
        user="u", roles=["coordinator"], institution="th-1", after=0, limit=10
    )
    assert [(n.kind, n.payload) for n in feed] == [("a", {"n": 1}), ("b", {})]
    later = repo.notifications_after(
        user="u", roles=[], institution="th-1", after=feed[0].id, limit=10
    )
    assert later == []


def test_a_delivery_is_due_until_delivered(repo):
    repo.add_delivery(Delivery("webhook", "http://x", "report.signed", "d1", "{}", T0))
    [due] = repo.due_deliveries(T0, 10)
    assert (due.delivery_id, due.attempts) == ("d1", 0)
    repo.update_delivery(due.id, attempts=1, last_error="503", next_attempt_at=T0 + timedelta(1))
    assert repo.due_deliveries(T0, 10) == []
    [retry] = repo.due_deliveries(T0 + timedelta(days=1), 10)
    assert (retry.attempts, retry.last_error) == (1, "503")
    repo.update_delivery(due.id, attempts=2, delivered_at=T0)
    assert repo.due_deliveries(T0 + timedelta(days=2), 10) == []


def test_audit_records_are_found_by_read_or_report(repo):
    on_read = AuditRecord(
        at=T0,
        actor="dr-a",
        action="signed",
        resource_type="read",
        resource_id="r1",
        related_id="rep",
        roles=frozenset({"expert"}),
    )
    on_report = AuditRecord(
        at=T0, actor="co", action="x", resource_type="report", resource_id="rep"
    )
    repo.audit(on_read)
    repo.audit(on_report)
    assert [r.action for r in repo.audit_trail(read_id="r1", report_id=None)] == ["signed"]
    assert [r.action for r in repo.audit_trail(read_id=None, report_id="rep")] == ["signed", "x"]
    [found] = repo.audit_trail(read_id="r1", report_id="rep")
    assert (found.actor, found.roles, found.related_id) == ("dr-a", frozenset({"expert"}), "rep")
