"""The clock over fakes: routing without AI, breaches and escalation, the depth gauge."""

from __future__ import annotations

from sonobridge.reporting.domain.events import ExamCompleted
from sonobridge.reporting.handlers import clock, routing

from .fakes import T0, context, harness, on_duty, routed


def test_an_exam_whose_ai_never_answers_is_routed_when_its_timer_fires():
    h = harness()
    with h.work() as work:
        routing.record_exam_completed(
            work, h.deps, ExamCompleted(context=context(), completed_at=T0)
        )
    # Past the AI wait, before the new read's own target.
    h.clock.advance(minutes=11)
    assert clock.fire_due_timers(h.deps) == 1
    [read] = h.tables.reads.values()
    assert (read.inference_status, read.rule) == ("missing", "ai-unavailable")
    assert read.exam_completed_at == T0
    assert clock.fire_due_timers(h.deps) == 0


def test_a_missed_target_is_a_breach_and_passes_the_read_to_the_backup():
    h = harness()
    on_duty(h, "county-thyroid", "dr-a")
    on_duty(h, "county-thyroid", "dr-b", role="backup")
    read_id = routed(h)
    # Past the 30-minute priority target, inside the backup's 15 minutes of grace.
    h.clock.advance(minutes=35)
    clock.fire_due_timers(h.deps)
    read = h.tables.reads[read_id]
    assert (read.assigned_to, read.escalation_level) == ("dr-b", 1)
    assert [e.kind for e in h.tables.history[read_id]] == [
        "routed",
        "sla_breached",
        "escalated_backup",
    ]
    assert h.deps.metrics.sla_breaches.labels("priority")._value.get() == 1


def test_an_unsigned_read_moves_up_a_tier_after_the_backup_grace():
    h = harness()
    read_id = routed(h)
    h.clock.advance(hours=3)
    clock.fire_due_timers(h.deps)
    read = h.tables.reads[read_id]
    assert (read.worklist, read.route, read.state) == ("provincial", "provincial", "escalated")
    assert h.tables.events[-1][0].worklist == "provincial"


def test_the_depth_gauge_counts_open_reads_per_worklist():
    h = harness()
    routed(h, "1.1")
    routed(h, "1.2")
    clock.refresh_worklist_depth(h.deps)
    assert h.deps.metrics.worklist_depth.labels("county-thyroid")._value.get() == 2
    assert h.deps.metrics.worklist_depth.labels("provincial")._value.get() == 0
