"""QIDO-RS (PS3.18 10.6): search studies, series and instances the caller may see."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from sonobridge.common.inputs import parse_int
from sonobridge.common.problems import InvalidInput
from sonobridge.ingest.domain.model import require_uid
from sonobridge.ingest.domain.query import FIELDS, Criterion, criteria_for, within
from sonobridge.ingest.entrypoints.dicomweb.negotiation import check_accept_json
from sonobridge.ingest.entrypoints.dicomweb.paths import Call, DicomWebRequest, router
from sonobridge.ingest.entrypoints.dicomweb.views import (
    BadQuery,
    group,
    include_tag,
    instance_json,
    json_response,
    series_json,
    study_json,
)
from sonobridge.ingest.handlers import reads

_KEYWORDS = {
    "0020000D": "StudyInstanceUID",
    "0020000E": "SeriesInstanceUID",
    "00080018": "SOPInstanceUID",
    "00080016": "SOPClassUID",
    "00100020": "PatientID",
    "00100010": "PatientName",
    "00080020": "StudyDate",
    "00080050": "AccessionNumber",
    "00200010": "StudyID",
    "00080061": "ModalitiesInStudy",
    "00080060": "Modality",
    "00200011": "SeriesNumber",
    "00200013": "InstanceNumber",
    "00081030": "StudyDescription",
    "0008103E": "SeriesDescription",
}
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}


def _query(
    request: Request,
) -> tuple[list[Criterion], set[str], int, int, list[str], list[str]]:
    """Return matching criteria, modalities filter, offset, limit, includefields, warnings."""
    criteria: list[Criterion] = []
    modalities: set[str] = set()
    includes: list[str] = []
    warnings: list[str] = []
    offset, limit = 0, 1000
    for name, value in request.query_params.multi_items():
        if name == "limit" or name == "offset":
            number = parse_int(value, name=name)
            if name == "limit":
                limit = min(number, 1000)
            else:
                offset = number
            continue
        if name == "includefield":
            includes.extend(include_tag(v.strip()) for v in value.split(",") if v.strip())
            continue
        if name in _CONTROL:
            continue
        keyword = _KEYWORDS.get(name.upper(), name)
        if keyword == "ModalitiesInStudy":
            modalities.update(v.strip() for v in value.replace("\\", ",").split(",") if v)
            continue
        if keyword not in FIELDS:
            warnings.append(f'299 sonobridge "matching on {name} is not supported; ignored"')
            continue
        if value == "":
            continue
        criteria.extend(criteria_for(keyword, value))
    return criteria, modalities, offset, limit, includes, warnings


async def qido(
    call: DicomWebRequest, level: str, study: str | None = None, series: str | None = None
) -> Response:
    """Answer one QIDO-RS search at `level`, a page of DICOM JSON (204 when empty)."""
    check_accept_json(call.accept)
    try:
        # A query the server cannot run is a bad request (PS3.18 8.3.4), not a domain error.
        criteria, modalities, offset, limit, includes, warnings = _query(call.request)
        for name, value in (("StudyInstanceUID", study), ("SeriesInstanceUID", series)):
            if value is not None:
                require_uid(name, value)
    except InvalidInput as problem:
        raise BadQuery(problem.detail, **problem.extensions) from problem
    found = await run_in_threadpool(
        reads.find_instances,
        call.deps,
        call.principal,
        [*criteria, *within(study, series)],
        action=f"search_{level}",
        resource_id=study or "*",
    )
    base = call.base
    page = slice(offset, offset + limit)
    items: list[dict[str, Any]]
    # The page is cut before rendering: study and series answers read stored metadata.
    if level == "studies":
        groups = list(group(found, "study_instance_uid").values())
        if modalities:
            groups = [g for g in groups if modalities & {i.modality for i in g}]
        items = [study_json(g, base, includes) for g in groups[page]]
    elif level == "series":
        series_groups = list(group(found, "series_instance_uid").values())
        items = [series_json(g, base, includes) for g in series_groups[page]]
    else:
        items = [instance_json(i, base, includes) for i in found[page]]
    return json_response(items, warnings)


@router.get("/studies")
async def search_studies(call: Call) -> Response:
    return await qido(call, "studies")


@router.get("/series")
async def search_all_series(call: Call) -> Response:
    return await qido(call, "series")


@router.get("/studies/{study}/series")
async def search_series(study: str, call: Call) -> Response:
    return await qido(call, "series", study)


@router.get("/instances")
async def search_all_instances(call: Call) -> Response:
    return await qido(call, "instances")


@router.get("/studies/{study}/instances")
async def search_study_instances(study: str, call: Call) -> Response:
    return await qido(call, "instances", study)


@router.get("/studies/{study}/series/{series}/instances")
async def search_instances(study: str, series: str, call: Call) -> Response:
    return await qido(call, "instances", study, series)
