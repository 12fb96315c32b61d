"""QIDO-RS matching (PS3.18 8.3.4) as criteria on indexed instance fields."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sonobridge.common.inputs import INT32_MAX, INT32_MIN, parse_int
from sonobridge.common.problems import InvalidInput
from sonobridge.ingest.domain.model import require_uid

Operator = Literal["in", "eq", "ge", "le", "like"]


@dataclass(frozen=True)
class Criterion:
    """One condition on an indexed instance field; `like` patterns escape with a backslash."""

    field: str
    op: Operator
    value: str | int | tuple[str, ...]


# Matching keys the index can answer, by keyword, with the instance field holding each.
FIELDS = {
    "StudyInstanceUID": "study_instance_uid",
    "SeriesInstanceUID": "series_instance_uid",
    "SOPInstanceUID": "sop_instance_uid",
    "SOPClassUID": "sop_class_uid",
    "PatientID": "patient_id",
    "PatientName": "patient_name",
    "StudyDate": "study_date",
    "AccessionNumber": "accession_number",
    "StudyID": "study_id",
    "Modality": "modality",
    "SeriesNumber": "series_number",
    "InstanceNumber": "instance_number",
    "StudyDescription": "study_description",
    "SeriesDescription": "series_description",
}
_UID_KEYS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"}
_WILDCARD_KEYS = {
    "PatientName",
    "PatientID",
    "AccessionNumber",
    "StudyDescription",
    "SeriesDescription",
    "StudyID",
}
_INT_KEYS = {"SeriesNumber", "InstanceNumber"}
_DATE = re.compile(r"^\d{8}$")


def criteria_for(keyword: str, raw: str) -> list[Criterion]:
    """Return the criteria a QIDO-RS matching parameter means, or raise InvalidInput."""
    field = FIELDS[keyword]
    if keyword in _UID_KEYS:
        uids = [u.strip() for u in raw.replace("\\", ",").split(",") if u.strip()]
        for uid in uids:
            require_uid(keyword, uid)
        return [Criterion(field, "in", tuple(uids))]
    if keyword == "StudyDate":
        if "-" in raw:
            start, _, end = raw.partition("-")
            for part in (start, end):
                if part and not _DATE.match(part):
                    raise InvalidInput(f"StudyDate range {raw!r} is not YYYYMMDD-YYYYMMDD")
            bounds: list[Criterion] = []
            if start:
                bounds.append(Criterion(field, "ge", start))
            if end:
                bounds.append(Criterion(field, "le", end))
            return bounds
        if not _DATE.match(raw):
            raise InvalidInput(f"StudyDate {raw!r} is not YYYYMMDD")
        return [Criterion(field, "eq", raw)]
    if keyword in _INT_KEYS:
        number = parse_int(raw, name=keyword, minimum=INT32_MIN, maximum=INT32_MAX)
        return [Criterion(field, "eq", number)]
    if keyword in _WILDCARD_KEYS and ("*" in raw or "?" in raw):
        pattern = raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [Criterion(field, "like", pattern.replace("*", "%").replace("?", "_"))]
    return [Criterion(field, "eq", raw)]


def within(
    study: str | None = None, series: str | None = None, sop: str | None = None
) -> list[Criterion]:
    """Return criteria naming one study, series or instance from a request path."""
    found: list[Criterion] = []
    for name, value, field in (
        ("StudyInstanceUID", study, "study_instance_uid"),
        ("SeriesInstanceUID", series, "series_instance_uid"),
        ("SOPInstanceUID", sop, "sop_instance_uid"),
    ):
        if value is not None:
            found.append(Criterion(field, "eq", require_uid(name, value)))
    return found
