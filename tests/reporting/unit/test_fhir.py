"""FHIR DiagnosticReport built from a signed version: conclusion codes of bound AI findings."""

from __future__ import annotations

from sonobridge.reporting.adapters.fhir import build_diagnostic_report

SNOMED = "http://snomed.info/sct"
LOCAL = "urn:sonobridge:finding"


def _version(findings: list[dict]) -> dict:
    return {
        "report_id": "rep-1",
        "version": 1,
        "amended_from_version": None,
        "signed_at": "2026-11-22T08:00:00Z",
        "signed_by": "dr-liu",
        "conclusion": "Thyroid nodule 8 mm, solid.",
        "pdf_key": "reports/rep-1/v1.pdf",
        "language": "en",
        "title": "Thyroid ultrasound report",
        "findings": findings,
    }


READ = {
    "exam_type": "thyroid",
    "patient_ref": "p-123",
    "study_uid": "1.2.826.0.1.3680043.8.498.1",
    "exam_completed_at": "2026-11-22T07:50:00Z",
}


def test_a_bound_finding_carries_its_snomed_code_its_local_code_and_its_text():
    nodule = {
        "code": "237495005",
        "code_system": SNOMED,
        "display": "Focal lesion 1: nodule 8 mm, solid",
        "attributes": {"local_code": "focal-lesion-solid", "concept_display": "Thyroid nodule"},
    }
    report = build_diagnostic_report(_version([nodule]), READ)
    (concept,) = report.conclusionCode
    assert [(c.system, c.code, c.display) for c in concept.coding] == [
        (SNOMED, "237495005", "Thyroid nodule"),
        (LOCAL, "focal-lesion-solid", None),
    ]
    assert concept.text == "Focal lesion 1: nodule 8 mm, solid"


def test_a_finding_with_only_a_local_code_is_exported_once_under_the_local_system():
    imt = {
        "code": "carotid-far-wall-imt",
        "code_system": LOCAL,
        "display": "Carotid far-wall intima-media thickness (mean)",
        "attributes": {"local_code": "carotid-far-wall-imt", "finding_site": "32062004"},
    }
    expert = {"code": "126851005", "code_system": SNOMED, "display": "Neoplasm of liver"}
    report = build_diagnostic_report(_version([imt, expert, {"code": ""}]), READ)
    codings = [[(c.system, c.code, c.display) for c in cc.coding] for cc in report.conclusionCode]
    assert codings == [
        [(LOCAL, "carotid-far-wall-imt", "Carotid far-wall intima-media thickness (mean)")],
        [(SNOMED, "126851005", "Neoplasm of liver")],
    ]
