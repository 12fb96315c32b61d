"""DICOM JSON (PS3.18 F.2) views of indexed instances for QIDO-RS and WADO-RS metadata."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from typing import Any

from fastapi import Response

from sonobridge.common.problems import Problem
from sonobridge.ingest.domain.media import PIXEL_BULKDATA, bulk_uri
from sonobridge.ingest.domain.records import Instance
from sonobridge.ingest.domain.validation import ENCAPSULATED_TRANSFER_SYNTAXES
from sonobridge.ingest.entrypoints.dicomweb.paths import instance_url

DICOM_JSON = "application/dicom+json"


class NotAcceptable(Problem):
    """No representation the client accepts can be produced."""

    status, title, type_slug = 406, "Not acceptable", "not-acceptable"


class BadQuery(Problem):
    """A QIDO-RS query the server cannot run as written (PS3.18 8.3.4: 400)."""

    status, title, type_slug = 400, "Bad request", "bad-request"


def attr(vr: str, *values: Any) -> dict[str, Any]:
    """Return a DICOM JSON attribute of `vr` holding the non-empty values."""
    present = [v for v in values if v not in (None, "")]
    if not present:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(v)} for v in present]}
    return {"vr": vr, "Value": present}


_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


ALL = "all"


@cache
def _tags(*keywords: str) -> frozenset[str]:
    # pydicom's dictionary on first use, not at import: pydicom loads numpy and ~30 MB with it.
    from pydicom.datadict import tag_for_keyword

    return frozenset(f"{tag_for_keyword(k):08X}" for k in keywords)


# What includefield=all adds at study and series level: the patient, study and series modules
# (PS3.3 C.7.1.1, C.7.2.1, C.7.2.2, C.7.3.1, C.7.5.1) as the first instance carries them.
_STUDY_LEVEL = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "OtherPatientIDsSequence",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "EthnicGroup",
    "PatientComments",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "StudyDescription",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "ProcedureCodeSequence",
    "AdmittingDiagnosesDescription",
    "TimezoneOffsetFromUTC",
)


_SERIES_LEVEL = (
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "Laterality",
    "SeriesDate",
    "SeriesTime",
    "PerformingPhysicianName",
    "ProtocolName",
    "SeriesDescription",
    "OperatorsName",
    "BodyPartExamined",
    "PatientPosition",
    "PerformedProcedureStepID",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepDescription",
    "RequestAttributesSequence",
    "Manufacturer",
    "InstitutionName",
    "StationName",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "TimezoneOffsetFromUTC",
)


# Returned by default at study level (PS3.18 Table 10.6.3-3), present even when empty.
_STUDY_DEFAULTS = ("ReferringPhysicianName", "PatientBirthDate", "PatientSex")


def include_tag(name: str) -> str:
    """Return the 8-digit tag an includefield value names (tag or keyword), or "all"."""
    if name == ALL or _TAG.match(name):
        return name.upper() if name != ALL else ALL
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(name)
    if tag is None:
        raise BadQuery(
            f"includefield {name!r} is neither a tag (8 hex digits) nor a DICOM keyword",
            reason="bad_includefield",
        )
    return f"{tag:08X}"


def _absolute_bulk_uris(body: dict[str, Any], instance_url: str) -> dict[str, Any]:
    """Resolve stored relative BulkDataURIs against the instance's URL, in sequences too."""
    for attribute in body.values():
        if "BulkDataURI" in attribute:
            attribute["BulkDataURI"] = bulk_uri(instance_url, attribute["BulkDataURI"])
        elif attribute.get("vr") == "SQ":
            for item in attribute.get("Value", ()):
                _absolute_bulk_uris(item, instance_url)
    return body


def instance_metadata(row: Instance, base: str) -> dict[str, Any]:
    """Return an instance's DICOM JSON with its transfer syntax and absolute BulkDataURIs."""
    url = instance_url(base, row)
    body = _absolute_bulk_uris(json.loads(row.metadata_json), url)
    body["00020010"] = attr("UI", row.transfer_syntax_uid)
    if row.rows and "7FE00010" not in body:
        # Indexed before pixel data got a BulkDataURI: the pixel route serves it without offset.
        vr = "OB" if row.transfer_syntax_uid in ENCAPSULATED_TRANSFER_SYNTAXES else "OW"
        body["7FE00010"] = {"vr": vr, "BulkDataURI": f"{url}/{PIXEL_BULKDATA}"}
    return dict(sorted(body.items()))


def _level_fields(
    rows: Sequence[Instance], base: str, includes: Sequence[str], level: frozenset[str]
) -> dict[str, Any]:
    """Return requested attributes as the first instance carries them (they are shared)."""
    metadata = instance_metadata(rows[0], base)
    wanted = set(includes) | (level if ALL in includes else set())
    return {tag: value for tag, value in metadata.items() if tag in wanted}


def _empty(tag: str) -> dict[str, Any]:
    from pydicom.datadict import dictionary_VR

    vr = dictionary_VR(int(tag, 16))
    return {"vr": vr}


def study_json(rows: Sequence[Instance], base: str, includes: Sequence[str] = ()) -> dict[str, Any]:
    """Return the QIDO-RS study answer for one study's instances."""
    first = rows[0]
    study_defaults = _tags(*_STUDY_DEFAULTS)
    extra = _level_fields(rows, base, [*includes, *study_defaults], _tags(*_STUDY_LEVEL))
    defaults = {tag: extra.get(tag) or _empty(tag) for tag in study_defaults}
    return (
        extra
        | defaults
        | {
            "00080020": attr("DA", first.study_date),
            "00080030": attr("TM", first.study_time),
            "00080050": attr("SH", first.accession_number),
            "00080061": attr("CS", *sorted({r.modality for r in rows if r.modality})),
            "00081030": attr("LO", first.study_description),
            "00100010": attr("PN", first.patient_name),
            "00100020": attr("LO", first.patient_id),
            "0020000D": attr("UI", first.study_instance_uid),
            "00200010": attr("SH", first.study_id),
            "00201206": attr("IS", len({r.series_instance_uid for r in rows})),
            "00201208": attr("IS", len(rows)),
            "00081190": attr("UR", f"{base}/studies/{first.study_instance_uid}"),
        }
    )


def series_json(
    rows: Sequence[Instance], base: str, includes: Sequence[str] = ()
) -> dict[str, Any]:
    """Return the QIDO-RS series answer for one series' instances."""
    first = rows[0]
    extra = _level_fields(rows, base, includes, _tags(*_SERIES_LEVEL)) if includes else {}
    return extra | {
        "00080060": attr("CS", first.modality),
        "0008103E": attr("LO", first.series_description),
        "0020000D": attr("UI", first.study_instance_uid),
        "0020000E": attr("UI", first.series_instance_uid),
        "00200011": attr("IS", first.series_number),
        "00201209": attr("IS", len(rows)),
        "00081190": attr(
            "UR",
            f"{base}/studies/{first.study_instance_uid}/series/{first.series_instance_uid}",
        ),
    }


def instance_json(row: Instance, base: str, includes: Sequence[str]) -> dict[str, Any]:
    """Return the QIDO-RS instance answer, with the requested include fields."""
    body: dict[str, Any] = {}
    if includes:
        metadata = instance_metadata(row, base)
        wanted = set(metadata) if ALL in includes else set(includes)
        body.update({tag: value for tag, value in metadata.items() if tag in wanted})
    body.update(
        {
            "00080016": attr("UI", row.sop_class_uid),
            "00080018": attr("UI", row.sop_instance_uid),
            "00080060": attr("CS", row.modality),
            "00083002": attr("UI", row.transfer_syntax_uid),
            "0020000D": attr("UI", row.study_instance_uid),
            "0020000E": attr("UI", row.series_instance_uid),
            "00200013": attr("IS", row.instance_number),
            "00081190": attr("UR", instance_url(base, row)),
        }
    )
    if row.number_of_frames:
        # Reports and waveforms have no image geometry to state.
        body.update(
            {
                "00280008": attr("IS", row.number_of_frames),
                "00280010": attr("US", row.rows),
                "00280011": attr("US", row.columns),
            }
        )
    return dict(sorted(body.items()))


def group(rows: Sequence[Instance], attribute: str) -> dict[str, list[Instance]]:
    """Group instances by one of their UID fields, in the order found."""
    groups: dict[str, list[Instance]] = defaultdict(list)
    for row in rows:
        groups[getattr(row, attribute)].append(row)
    return groups


def json_response(items: list[dict[str, Any]], warnings: Sequence[str] = ()) -> Response:
    """Answer DICOM JSON items, or 204 when there are none."""
    headers = {"Warning": ", ".join(warnings)} if warnings else None
    if not items:
        return Response(status_code=204, headers=headers)
    return Response(json.dumps(items), media_type=DICOM_JSON, headers=headers)
