"""Report views, documents and FHIR export over fakes."""

from __future__ import annotations

import pytest

from sonobridge.common.problems import NotFound
from sonobridge.reporting.handlers import drafts, reads, reports, signing

from .fakes import harness, person, routed

EXPERT = person("dr-a", "expert")


def _signed(h):
    read_id = routed(h, findings=[])
    with h.work() as work:
        reads.claim_read(work, h.deps, EXPERT, read_id)
        drafts.create_draft(work, h.deps, EXPERT, read_id, "en")
    with h.work() as work:
        return signing.sign_read(work, h.deps, EXPERT, read_id)


def test_the_latest_version_is_the_default_and_older_ones_are_superseded():
    h = harness()
    first = _signed(h)
    with h.work() as work:
        signing.amend_report(
            work,
            h.deps,
            EXPERT,
            first.report_id,
            conclusion="v2",
            findings_text=None,
            findings=None,
            reason="typo",
        )
    latest = reports.get_report(h.deps, EXPERT, first.report_id)
    assert (latest.version.version, latest.versions, latest.superseded) == (2, [1, 2], False)
    assert reports.get_report(h.deps, EXPERT, first.report_id, 1).superseded
    with pytest.raises(NotFound):
        reports.get_report(h.deps, EXPERT, first.report_id, 3)


def test_a_report_the_caller_may_not_see_does_not_exist():
    h = harness()
    first = _signed(h)
    with pytest.raises(NotFound):
        reports.get_report(h.deps, person("x", "expert", institution="far"), first.report_id)
    with pytest.raises(NotFound):
        reports.get_report(h.deps, EXPERT, "no-such-report")


def test_documents_and_fhir_come_from_the_stored_version_and_are_audited():
    h = harness()
    first = _signed(h)
    pdf = reports.report_document_bytes(h.deps, EXPERT, first.report_id, 1, "pdf")
    assert pdf == h.store.objects[first.pdf_key]
    bundle = reports.report_fhir(h.deps, EXPERT, first.report_id)
    assert bundle == {"resourceType": "Bundle", "id": first.report_id}
    assert [a.action for a in h.tables.audit][-2:] == ["download_pdf", "export_fhir"]
    with pytest.raises(NotFound):
        reports.report_object_key(h.deps, EXPERT, first.report_id, 9, "json")
