"""Signing and amending over fakes: versions, documents, events, follow-up, audit sampling."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sonobridge.common.problems import Conflict, InvalidInput, NotFound
from sonobridge.reporting.domain.events import FollowupAlerted, ReadRouted, ReportSigned
from sonobridge.reporting.handlers import drafts, reads, signing

from .fakes import harness, person, routed

EXPERT = person("dr-a", "expert")


def _ready(h):
    read_id = routed(h)
    with h.work() as work:
        reads.claim_read(work, h.deps, EXPERT, read_id)
        drafts.create_draft(work, h.deps, EXPERT, read_id, "en")
    drafts.record_verdicts(
        h.deps, EXPERT, read_id, [{"finding_code": "237495005", "verdict": "agree"}]
    )
    return read_id


def _sign(h, read_id):
    with h.work() as work:
        return signing.sign_read(work, h.deps, EXPERT, read_id)


def test_signing_stores_version_one_with_its_documents_and_publishes_it():
    h = harness(fhir_endpoint="http://fhir.test/r4")
    read_id = _ready(h)
    version = _sign(h, read_id)
    assert (version.version, version.signed_by) == (1, "dr-a")
    assert version.ai_agreement[0]["verdict"] == "agree"
    document = json.loads(h.store.objects[version.json_key])
    assert document["report_id"] == version.report_id
    assert h.store.objects[version.pdf_key].startswith(b"%PDF")
    read = h.tables.reads[read_id]
    assert (read.state, read.report_id) == ("signed", version.report_id)
    assert read_id not in h.tables.drafts
    assert any(isinstance(e, ReportSigned) for e, _key in h.tables.events)
    assert [d.channel for d in h.tables.deliveries] == ["fhir"]
    assert h.deps.metrics.ai_verdicts.labels("thyroid-net", "1.0", "agree")._value.get() == 1


def test_a_nodule_in_the_report_raises_one_follow_up_alert():
    h = harness()
    read_id = _ready(h)
    version = _sign(h, read_id)
    [alert] = h.tables.alerts.values()
    assert (alert.report_id, alert.matched_terms) == (version.report_id, ["nodule"])
    assert any(isinstance(e, FollowupAlerted) for e, _key in h.tables.events)


def test_signing_needs_a_verdict_on_every_ai_finding():
    h = harness()
    read_id = routed(h)
    with h.work() as work:
        reads.claim_read(work, h.deps, EXPERT, read_id)
        drafts.create_draft(work, h.deps, EXPERT, read_id, "en")
    with pytest.raises(InvalidInput, match="237495005"):
        _sign(h, read_id)
    assert h.tables.versions == [] and h.tables.reads[read_id].state == "claimed"


def test_an_unclaimed_read_is_not_signed():
    h = harness()
    read_id = routed(h, findings=[])
    with pytest.raises(Conflict, match="claim it"):
        _sign(h, read_id)


def test_signing_without_a_draft_is_a_conflict():
    h = harness()
    read_id = routed(h, findings=[])
    with h.work() as work:
        reads.claim_read(work, h.deps, EXPERT, read_id)
    with pytest.raises(Conflict, match="no draft"):
        _sign(h, read_id)


def test_a_sampled_self_confirmed_read_gets_an_audit_read_once_signed():
    h = harness()
    read_id = _ready(h)
    h.tables.reads[read_id] = replace(h.tables.reads[read_id], audit_sampled=True)
    _sign(h, read_id)
    [audit] = [r for r in h.tables.reads.values() if r.kind == "audit"]
    assert (audit.audit_of, audit.worklist, audit.state) == (read_id, "county-audit", "queued")
    assert any(
        isinstance(e, ReadRouted) and e.read_id == audit.read_id for e, _k in h.tables.events
    )


def test_an_amendment_is_a_new_version_that_keeps_the_agreement():
    h = harness()
    first = _sign(h, _ready(h))
    with h.work() as work:
        second = signing.amend_report(
            work,
            h.deps,
            EXPERT,
            first.report_id,
            conclusion="revised",
            findings_text=None,
            findings=None,
            reason="typo",
        )
    assert (second.version, second.amended_from_version, second.amend_reason) == (2, 1, "typo")
    assert second.conclusion == "revised" and second.findings_text == first.findings_text
    assert second.ai_agreement == first.ai_agreement
    assert [v.version for v in h.tables.versions] == [1, 2]


@pytest.mark.parametrize(
    ("report_id", "reason", "error"), [("r", " ", InvalidInput), ("nope", "x", NotFound)]
)
def test_an_amendment_needs_a_reason_and_a_report(report_id, reason, error):
    h = harness()
    with pytest.raises(error), h.work() as work:
        signing.amend_report(
            work,
            h.deps,
            EXPERT,
            report_id,
            conclusion=None,
            findings_text=None,
            findings=None,
            reason=reason,
        )
