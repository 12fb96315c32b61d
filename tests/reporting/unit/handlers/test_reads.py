"""Worklist and read use cases over fakes: paging, viewing, claiming, reassigning."""

from __future__ import annotations

import pytest

from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound
from sonobridge.reporting.handlers import reads

from .fakes import harness, on_duty, person, routed

EXPERT = person("dr-a", "expert", institution="th-1")


def test_worklists_count_only_the_reads_the_caller_may_see():
    h = harness()
    routed(h)
    depth = dict((spec.name, n) for spec, n in reads.list_worklists(h.deps, EXPERT))
    assert depth["county-thyroid"] == 1
    stranger = person("dr-z", "expert", institution="elsewhere")
    assert all(n == 0 for _spec, n in reads.list_worklists(h.deps, stranger))


def test_pages_follow_the_cursor_and_every_listing_is_audited():
    h = harness()
    ids = {routed(h, f"1.{i}") for i in range(3)}
    first, cursor = reads.list_reads(
        h.deps, EXPERT, worklist=None, states=None, assigned_to=None, cursor=None, limit=2
    )
    assert len(first) == 2 and cursor is not None
    rest, following = reads.list_reads(
        h.deps, EXPERT, worklist=None, states=None, assigned_to=None, cursor=cursor, limit=2
    )
    assert following is None
    assert {r.read_id for r in first + rest} == ids
    assert [a.action for a in h.tables.audit] == ["list_reads", "list_reads"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"worklist": "nowhere"}, NotFound),
        ({"states": ["lost"]}, InvalidInput),
        ({"cursor": "not-a-cursor"}, InvalidInput),
    ],
)
def test_bad_listing_arguments_are_refused(changes, error):
    h = harness()
    args = {"worklist": None, "states": None, "assigned_to": None, "cursor": None, "limit": 5}
    with pytest.raises(error):
        reads.list_reads(h.deps, EXPERT, **{**args, **changes})


def test_the_exam_view_brings_exam_draft_verdicts_and_history():
    h = harness()
    read_id = routed(h)
    detail = reads.view_read(h.deps, EXPERT, read_id)
    assert detail.read.read_id == read_id and detail.draft is None
    assert [e.kind for e in detail.history] == ["routed"]
    assert h.tables.audit[-1].action == "view_read"


def test_a_read_the_caller_may_not_see_does_not_exist():
    h = harness()
    read_id = routed(h)
    with pytest.raises(NotFound):
        reads.view_read(h.deps, person("dr-z", "expert", institution="elsewhere"), read_id)


def test_an_expert_claims_and_releases_a_read():
    h = harness()
    read_id = routed(h)
    with h.work() as work:
        claimed = reads.claim_read(work, h.deps, EXPERT, read_id)
    assert (claimed.state, claimed.assigned_to) == ("claimed", "dr-a")
    with pytest.raises(Conflict), h.work() as work:
        reads.claim_read(work, h.deps, person("dr-b", "expert"), read_id)
    with h.work() as work:
        released = reads.release_read(work, h.deps, EXPERT, read_id)
    assert released.state == "queued"
    assert [e.kind for e in h.tables.history[read_id]][-2:] == ["claimed", "released"]


def test_a_caller_without_a_signer_role_may_not_claim():
    h = harness()
    read_id = routed(h)
    with pytest.raises(Forbidden), h.work() as work:
        reads.claim_read(work, h.deps, person("ph-1", "physician"), read_id)
    assert h.tables.reads[read_id].state == "queued"


def test_a_dispatcher_reassigns_only_to_a_rostered_reader():
    h = harness()
    on_duty(h, "county-thyroid", "dr-b")
    read_id = routed(h)
    admin = person("boss", "admin")
    with pytest.raises(InvalidInput), h.work() as work:
        reads.reassign_read(work, h.deps, admin, read_id, "dr-x")
    with h.work() as work:
        moved = reads.reassign_read(work, h.deps, admin, read_id, "dr-b")
    assert moved.assigned_to == "dr-b"
    assert h.tables.notifications[-1][0].payload["by"] == "boss"
    with pytest.raises(Forbidden), h.work() as work:
        reads.reassign_read(work, h.deps, EXPERT, read_id, "dr-b")
