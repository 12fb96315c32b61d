"""The chaos load's exams: every channel, every expected outcome, known before anything is sent."""

from __future__ import annotations

from collections import Counter

import pytest
from chaos.chaos_audit import expected_events
from chaos.chaos_load import BROKEN_PROBE, DIMSE_CALLERS, LoadPlan, prefecture_exams

from sonobridge.api.events.v1 import topics
from sonobridge.node.flow import Trail
from sonobridge.node.township import UploadedExam


@pytest.fixture(scope="module")
def loads() -> list[LoadPlan]:
    """The first exams of a chaos load (generated once: synthetic images take a moment)."""
    return prefecture_exams(20, seed=3)


def test_the_load_mixes_channels_and_outcomes_a_prefecture_sees(loads: list[LoadPlan]) -> None:
    channels = Counter(lp.channel for lp in loads)
    assert set(channels) == {"tus", "stow", "cstore"} and channels["tus"] > channels["stow"]
    assert all(lp.plan.institution in DIMSE_CALLERS for lp in loads if lp.channel == "cstore")
    expects = [lp.plan.expect for lp in loads]
    assert any(e.rescan and not e.ticket_device for e in expects)  # poor images
    assert any(e.followup for e in expects)  # a nodule the coordinator must hear of
    # Three exams in a row on the failing probe: enough for maintenance to open a ticket.
    assert [e.ticket_device for e in expects[2:5]] == [BROKEN_PROBE] * 3
    assert any(len(lp.plan.instances) > 1 for lp in loads)  # stills and a cine loop
    assert len({lp.plan.study_instance_uid for lp in loads}) == len(loads)


def test_each_exam_expects_one_of_each_event_and_a_signature_unless_sent_back(
    loads: list[LoadPlan],
) -> None:
    for lp in loads:
        trail = Trail(UploadedExam(lp.plan, "exam", lp.plan.study_instance_uid, 0, 0.0, 0.0, ""))
        want = expected_events(trail)
        assert want[topics.EXAM_COMPLETED] == want[topics.INFERENCE_COMPLETED] == 1
        assert want[topics.INSTANCE_STORED] == len(lp.plan.instances)
        assert want[topics.REPORT_SIGNED] == (0 if lp.plan.expect.rescan else 1)
        assert want[topics.FOLLOWUP_ALERTED] == (1 if lp.plan.expect.followup else 0)
