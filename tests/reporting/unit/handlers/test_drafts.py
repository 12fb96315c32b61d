"""Draft and verdict use cases over fakes."""

from __future__ import annotations

import pytest

from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound
from sonobridge.reporting.handlers import drafts

from .fakes import harness, person, routed

EXPERT = person("dr-a", "expert")


def _drafted(h):
    read_id = routed(h)
    with h.work() as work:
        drafts.create_draft(work, h.deps, EXPERT, read_id, "en")
    return read_id


def test_a_draft_starts_from_the_template_and_the_ai_findings():
    h = harness()
    read_id = _drafted(h)
    draft = h.tables.drafts[read_id]
    assert (draft.language, draft.revision, draft.updated_by) == ("en", 1, "dr-a")
    assert draft.findings == h.tables.reads[read_id].ai_findings
    assert draft.title
    with h.work() as work:
        again = drafts.create_draft(work, h.deps, EXPERT, read_id, "zh")
    assert again.revision == 2


def test_only_a_signer_may_start_a_draft():
    h = harness()
    read_id = routed(h)
    with pytest.raises(Forbidden), h.work() as work:
        drafts.create_draft(work, h.deps, person("op", "operator"), read_id, "en")


def test_no_draft_on_a_closed_read():
    h = harness()
    read_id = routed(h)
    h.tables.reads[read_id] = h.tables.reads[read_id].__class__(
        **{**h.tables.reads[read_id].__dict__, "state": "signed"}
    )
    with pytest.raises(Conflict), h.work() as work:
        drafts.create_draft(work, h.deps, EXPERT, read_id, "en")


def test_an_edit_changes_only_given_fields_and_normalizes_findings():
    h = harness()
    read_id = _drafted(h)
    edited = drafts.edit_draft(
        h.deps,
        EXPERT,
        read_id,
        changes={"conclusion": "benign", "title": None, "findings": [{"code": "x"}]},
        revision=1,
    )
    assert (edited.conclusion, edited.revision) == ("benign", 2)
    assert edited.title == h.tables.drafts[read_id].title
    assert edited.findings == [{"code": "x", "normalized": True}]
    assert h.tables.audit[-1].detail == "conclusion,findings"


def test_an_edit_based_on_an_old_revision_is_refused():
    h = harness()
    read_id = _drafted(h)
    with pytest.raises(Conflict):
        drafts.edit_draft(h.deps, EXPERT, read_id, changes={"conclusion": "x"}, revision=7)


def test_editing_a_missing_draft_is_not_found():
    h = harness()
    read_id = routed(h)
    with pytest.raises(NotFound):
        drafts.edit_draft(h.deps, EXPERT, read_id, changes={}, revision=None)


def test_verdicts_record_the_model_version_of_the_finding():
    h = harness()
    read_id = routed(h)
    stored = drafts.record_verdicts(
        h.deps, EXPERT, read_id, [{"finding_code": "237495005", "verdict": "agree"}]
    )
    [verdict] = stored
    assert (verdict.model_name, verdict.model_version, verdict.verdict) == (
        "thyroid-net",
        "1.0",
        "agree",
    )


@pytest.mark.parametrize(
    "given",
    [
        {"finding_code": "237495005", "verdict": "maybe"},
        {"finding_code": "nope", "verdict": "agree"},
        {"finding_code": "237495005", "model_name": "other-net", "verdict": "agree"},
    ],
)
def test_a_verdict_on_an_unknown_finding_or_of_an_unknown_kind_is_refused(given):
    h = harness()
    read_id = routed(h)
    with pytest.raises(InvalidInput):
        drafts.record_verdicts(h.deps, EXPERT, read_id, [given])
    assert h.tables.verdicts == {}
