"""Routing use cases over fakes: exams in, AI results in, probe tickets in."""

from __future__ import annotations

import pytest

from sonobridge.common.problems import InvalidInput
from sonobridge.reporting.domain.events import (
    ExamCompleted,
    InferenceCompleted,
    ReadRouted,
    TicketOpened,
)
from sonobridge.reporting.handlers import routing

from .fakes import T0, context, finding, harness, on_duty, routed


def test_a_completed_exam_waits_for_ai_on_a_timer_and_is_recorded_once():
    h = harness()
    event = ExamCompleted(context=context(), completed_at=T0, instances=[{"sop": "1"}])
    with h.work() as work:
        routing.record_exam_completed(work, h.deps, event)
        routing.record_exam_completed(work, h.deps, event)
    assert list(h.tables.exams) == ["1.2.3"]
    [(timer, fired)] = h.tables.timers
    assert (timer.kind, timer.subject, fired) == ("inference_wait", "1.2.3", None)
    assert timer.fire_at > T0


def test_an_exam_without_a_study_uid_is_refused():
    h = harness()
    with pytest.raises(InvalidInput), h.work() as work:
        routing.record_exam_completed(
            work, h.deps, ExamCompleted(context=context(study_uid=""), completed_at=None)
        )


def test_an_abnormal_ai_finding_routes_to_the_specialty_worklist_and_its_least_loaded_reader():
    h = harness()
    on_duty(h, "county-thyroid", "dr-a", "dr-b")
    read_id = routed(h)
    read = h.tables.reads[read_id]
    assert (read.route, read.worklist, read.priority) == ("expert", "county-thyroid", "priority")
    assert read.assigned_to == "dr-a"
    assert read.due_at is not None and read.inference_id == "inf-1"
    [(event, key)] = h.tables.events
    assert isinstance(event, ReadRouted) and key == "1.2.3" and event.assigned_to == "dr-a"
    assert [k for t, _f in h.tables.timers for k in [t.kind]] == ["target"]
    kinds = [(n.kind, user) for n, user, _r, _i in h.tables.notifications]
    assert kinds == [("read_assigned", "dr-a")]
    assert h.deps.metrics.reads_routed.labels("expert")._value.get() == 1


def test_a_repeated_ai_result_creates_no_second_read():
    h = harness()
    routed(h)
    again = InferenceCompleted(
        context=context(), inference_id="inf-2", status="completed", quality=None
    )
    with h.work() as work:
        assert routing.route_inference_result(work, h.deps, again) is None
    assert len(h.tables.reads) == 1


def test_poor_quality_asks_the_operator_to_rescan_without_a_clock():
    h = harness()
    event = InferenceCompleted(
        context=context(),
        inference_id="inf-1",
        status="completed",
        quality={"acceptable": False, "score": 0.2, "advice": "more gel"},
        findings=[finding()],
    )
    with h.work() as work:
        read_id = routing.route_inference_result(work, h.deps, event)
    assert read_id is not None
    read = h.tables.reads[read_id]
    assert (read.route, read.state, read.due_at) == ("rescan", "rescan_requested", None)
    [(note, user, _role, _inst)] = h.tables.notifications
    assert (note.kind, user, note.payload["advice"]) == ("rescan_requested", "op-1", "more gel")
    assert h.tables.timers == []


def test_a_probe_ticket_flags_each_open_read_of_the_probe_once():
    h = harness()
    on_duty(h, "county-thyroid", "dr-a")
    read_id = routed(h)
    ticket = TicketOpened(device_serial="US-1", ticket_id="t-9", symptom="dead rows", opened_at=T0)
    with h.work() as work:
        assert routing.flag_reads_of_faulty_probe(work, h.deps, ticket) == 1
        assert routing.flag_reads_of_faulty_probe(work, h.deps, ticket) == 0
    assert [e.kind for e in h.tables.history[read_id]] == ["routed", "probe_ticket"]
    assert h.tables.notifications[-1][0].kind == "probe_under_repair"


def test_a_ticket_without_serial_or_id_is_refused():
    h = harness()
    with pytest.raises(InvalidInput), h.work() as work:
        routing.flag_reads_of_faulty_probe(
            work, h.deps, TicketOpened(device_serial="", ticket_id="t", symptom="", opened_at=None)
        )
