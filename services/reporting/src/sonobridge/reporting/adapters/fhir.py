"""FHIR R4 DiagnosticReport + ImagingStudy for a signed report, validated by fhir.resources."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

# The R4B models: R4B (4.3) keeps DiagnosticReport and ImagingStudy as in R4 (4.0.1).
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy

from sonobridge.reporting.domain.records import Exam, ReadRecord, ReportVersion, iso

DICOM_UID = "urn:dicom:uid"
PATIENT_SYSTEM = "urn:sonobridge:patient-ref"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
LOINC = "http://loinc.org"
LOCAL_FINDING = "urn:sonobridge:finding"
# LOINC document codes for ultrasound reports by region; the generic code otherwise.
_LOINC_BY_EXAM = {
    "carotid": ("24547-2", "US Carotid artery"),
    "thyroid": ("24842-7", "US Thyroid"),
    "abdomen": ("24558-9", "US Abdomen"),
    "kidney": ("24785-8", "US Kidney"),
    "liver": ("24799-9", "US Liver"),
    "obstetric": ("11525-3", "US Pelvis Fetus for pregnancy"),
    "cardiac": ("34552-0", "Cardiac 2D echo panel"),
}
_GENERIC = ("18760-9", "Ultrasound study")


def _uid_urn(uid: str) -> str:
    return f"urn:oid:{uid}"


def build_imaging_study(exam: dict[str, Any], study_uid: str, patient_ref: str) -> ImagingStudy:
    """Return the ImagingStudy of an exam (series and instances as stored by ingest)."""
    series: dict[str, list[dict[str, Any]]] = {}
    for inst in exam.get("instances", []):
        series.setdefault(inst["series_instance_uid"], []).append(inst)
    series_json = [
        {
            "uid": uid,
            "modality": {"system": DCM, "code": items[0].get("modality") or "US"},
            "numberOfInstances": len(items),
            "instance": [
                {
                    "uid": i["sop_instance_uid"],
                    "sopClass": {"system": DICOM_UID, "code": _uid_urn(i["sop_class_uid"])},
                    "number": n,
                }
                for n, i in enumerate(items, start=1)
            ],
        }
        for uid, items in series.items()
    ]
    body: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": _fhir_id(study_uid),
        "status": "available",
        "identifier": [{"system": DICOM_UID, "value": _uid_urn(study_uid)}],
        "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": patient_ref}},
        "modality": [{"system": DCM, "code": "US"}],
        "numberOfSeries": len(series_json),
        "numberOfInstances": sum(s["numberOfInstances"] for s in series_json),
    }
    if exam.get("completed_at"):
        body["started"] = exam["completed_at"]
    if series_json:
        body["series"] = series_json
    return ImagingStudy.parse_obj(body)


def _finding_concept(f: dict[str, Any]) -> dict[str, Any]:
    """Return a finding as a CodeableConcept: its code, the local code too when bound, its text."""
    attributes = f.get("attributes") or {}
    system = f.get("code_system") or LOCAL_FINDING
    coding = [
        {
            "system": system,
            "code": f["code"],
            "display": attributes.get("concept_display") or f.get("display") or f["code"],
        }
    ]
    local = attributes.get("local_code")
    if local and (system, f["code"]) != (LOCAL_FINDING, local):
        coding.append({"system": LOCAL_FINDING, "code": local})
    concept: dict[str, Any] = {"coding": coding}
    if f.get("display"):
        concept["text"] = f["display"]
    return concept


def build_diagnostic_report(version: dict[str, Any], read: dict[str, Any]) -> DiagnosticReport:
    """Return the DiagnosticReport of one signed report version."""
    code, display = _LOINC_BY_EXAM.get(read["exam_type"], _GENERIC)
    conclusion_codes = [_finding_concept(f) for f in version["findings"] if f.get("code")]
    body: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": _fhir_id(f"{version['report_id']}-v{version['version']}"),
        "identifier": [{"system": "urn:sonobridge:report", "value": version["report_id"]}],
        "status": "amended" if version["amended_from_version"] else "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "RAD",
                        "display": "Radiology",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": read["patient_ref"]}},
        "issued": version["signed_at"],
        "effectiveDateTime": read.get("exam_completed_at") or version["signed_at"],
        "performer": [
            {"identifier": {"system": "urn:sonobridge:user", "value": version["signed_by"]}}
        ],
        "imagingStudy": [{"reference": f"ImagingStudy/{_fhir_id(read['study_uid'])}"}],
        "conclusion": version["conclusion"],
        "presentedForm": [
            {
                "contentType": "application/pdf",
                "url": version["pdf_key"],
                "language": "zh-CN" if version["language"] == "zh" else "en",
                "title": version["title"],
            }
        ],
    }
    if conclusion_codes:
        body["conclusionCode"] = conclusion_codes
    return DiagnosticReport.parse_obj(body)


def build_bundle(
    version: dict[str, Any], read: dict[str, Any], exam: dict[str, Any]
) -> dict[str, Any]:
    """Return a validated transaction Bundle (ImagingStudy + DiagnosticReport) as JSON data."""
    study = build_imaging_study(exam, read["study_uid"], read["patient_ref"])
    report = build_diagnostic_report(version, read)
    bundle = Bundle.parse_obj(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{resource.id}",
                    "resource": json.loads(resource.json()),
                    "request": {"method": "PUT", "url": f"{resource.resource_type}/{resource.id}"},
                }
                for resource in (study, report)
            ],
        }
    )
    document: dict[str, Any] = json.loads(bundle.json())
    return document


def _fhir_id(value: str) -> str:
    # FHIR ids allow [A-Za-z0-9-.]{1,64}; DICOM UIDs fit, other ids are cleaned and trimmed.
    cleaned = "".join(c if c.isalnum() or c in "-." else "-" for c in value)
    return cleaned[:64]


def bundle_of(version: ReportVersion, read: ReadRecord, exam: Exam | None) -> dict[str, Any]:
    """Return the FHIR Bundle of a signed version (dates as ISO strings, as FHIR wants)."""
    return build_bundle(
        {**asdict(version), "signed_at": iso(version.signed_at)},
        {**asdict(read), "exam_completed_at": iso(read.exam_completed_at)},
        {**asdict(exam), "completed_at": iso(exam.completed_at)} if exam else {"instances": []},
    )
