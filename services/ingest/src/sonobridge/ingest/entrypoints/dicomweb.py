"""DICOMweb (PS3.18): STOW-RS, QIDO-RS and WADO-RS over the ingest handlers."""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydicom.datadict import dictionary_VR, tag_for_keyword
from sqlalchemy import Row
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from sonobridge.common.auth import Principal
from sonobridge.common.http import CurrentPrincipal
from sonobridge.common.inputs import INT32_MAX, INT32_MIN, parse_int
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound, Problem
from sonobridge.common.problems import UnsupportedMediaType as UnsupportedMedia
from sonobridge.ingest import handlers
from sonobridge.ingest.adapters.bulkdata import BulkKey, bulk_uri, open_element, parse_bulk_key
from sonobridge.ingest.adapters.dicomfile import PIXEL_BULKDATA
from sonobridge.ingest.adapters.frames import (
    OCTET_STREAM,
    check_frames,
    frame_media_type,
    parse_frame_numbers,
    read_frames,
    served_transfer_syntax,
)
from sonobridge.ingest.adapters.multipart import read_parts
from sonobridge.ingest.adapters.orm import instances as t
from sonobridge.ingest.adapters.rendering import MEDIA_TYPES, render_frame
from sonobridge.ingest.domain.model import Channel, require_uid
from sonobridge.ingest.domain.validation import (
    ENCAPSULATED_TRANSFER_SYNTAXES,
    EXPLICIT_VR_LITTLE_ENDIAN,
)
from sonobridge.ingest.handlers import IngestDeps

DICOM_JSON = "application/dicom+json"
PREFIX = "/dicomweb"
_PIXEL_DATA = 0x7FE00010
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORWARDING_HEADERS = ("forwarded", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-for")

# PS3.18 Table 10.5.3-1 / PS3.4 Annex B failure reasons.
_FAILURE_REASONS = {
    "oversize": 0xA700,
    "uid_mismatch": 0xA900,
    # PS3.18 I.2.2: Referenced Transfer Syntax not supported.
    "unsupported_transfer_syntax": 0xC122,
}
_PROCESSING_FAILURE = 0x0110
_CANNOT_UNDERSTAND = 0xC000
_DUPLICATE_INSTANCE = 0x0111
_NOT_AUTHORIZED = 0x0124


class NotAcceptable(Problem):
    """No representation the client accepts can be produced."""

    status, title, type_slug = 406, "Not acceptable", "not-acceptable"


class BadQuery(Problem):
    """A QIDO-RS query the server cannot run as written (PS3.18 8.3.4: 400)."""

    status, title, type_slug = 400, "Bad request", "bad-request"


def _attr(vr: str, *values: Any) -> dict[str, Any]:
    present = [v for v in values if v not in (None, "")]
    if not present:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(v)} for v in present]}
    return {"vr": vr, "Value": present}


def _failure_code(problem: Problem) -> int:
    reason = str(problem.extensions.get("reason", ""))
    if reason in _FAILURE_REASONS:
        return _FAILURE_REASONS[reason]
    if isinstance(problem, Conflict):
        return _DUPLICATE_INSTANCE
    if isinstance(problem, Forbidden):
        return _NOT_AUTHORIZED
    if problem.status >= 500:
        return _PROCESSING_FAILURE
    return _CANNOT_UNDERSTAND


def _boundary_of(content_type: str) -> tuple[str, str]:
    """Return (boundary, type parameter) of a multipart/related content type."""
    main, *params = content_type.split(";")
    if main.strip().lower() != "multipart/related":
        raise UnsupportedMedia(
            'STOW-RS needs Content-Type multipart/related; type="application/dicom"',
            reason="bad_content_type",
        )
    values: dict[str, str] = {}
    for param in params:
        name, _, value = param.strip().partition("=")
        values[name.strip().lower()] = value.strip().strip('"')
    if not values.get("boundary"):
        raise InvalidInput("multipart/related without a boundary", reason="malformed_multipart")
    kind = values.get("type", "application/dicom").lower()
    if kind != "application/dicom":
        raise UnsupportedMedia(
            f'STOW-RS accepts type="application/dicom" parts, not {kind!r}',
            reason="bad_content_type",
        )
    return values["boundary"], kind


# ---------------------------------------------------------------------------------------------
# QIDO-RS matching
# ---------------------------------------------------------------------------------------------

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
_COLUMNS = {
    "StudyInstanceUID": t.c.study_instance_uid,
    "SeriesInstanceUID": t.c.series_instance_uid,
    "SOPInstanceUID": t.c.sop_instance_uid,
    "SOPClassUID": t.c.sop_class_uid,
    "PatientID": t.c.patient_id,
    "PatientName": t.c.patient_name,
    "StudyDate": t.c.study_date,
    "AccessionNumber": t.c.accession_number,
    "StudyID": t.c.study_id,
    "Modality": t.c.modality,
    "SeriesNumber": t.c.series_number,
    "InstanceNumber": t.c.instance_number,
    "StudyDescription": t.c.study_description,
    "SeriesDescription": t.c.series_description,
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
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}
_DATE = re.compile(r"^\d{8}$")
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_ALL = "all"


def _tags(*keywords: str) -> frozenset[str]:
    return frozenset(f"{tag_for_keyword(k):08X}" for k in keywords)


# What includefield=all adds at study and series level: the patient, study and series modules
# (PS3.3 C.7.1.1, C.7.2.1, C.7.2.2, C.7.3.1, C.7.5.1) as the first instance carries them.
_STUDY_LEVEL = _tags(
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
_SERIES_LEVEL = _tags(
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
_STUDY_DEFAULTS = _tags("ReferringPhysicianName", "PatientBirthDate", "PatientSex")


def _include_tag(name: str) -> str:
    """Return the 8-digit tag an includefield value names (tag or keyword), or "all"."""
    if name == _ALL or _TAG.match(name):
        return name.upper() if name != _ALL else _ALL
    tag = tag_for_keyword(name)
    if tag is None:
        raise BadQuery(
            f"includefield {name!r} is neither a tag (8 hex digits) nor a DICOM keyword",
            reason="bad_includefield",
        )
    return f"{tag:08X}"


def _condition(keyword: str, raw: str) -> Any:
    column = _COLUMNS[keyword]
    if keyword in _UID_KEYS:
        uids = [u.strip() for u in raw.replace("\\", ",").split(",") if u.strip()]
        for uid in uids:
            require_uid(keyword, uid)
        return column.in_(uids)
    if keyword == "StudyDate":
        if "-" in raw:
            start, _, end = raw.partition("-")
            for part in (start, end):
                if part and not _DATE.match(part):
                    raise InvalidInput(f"StudyDate range {raw!r} is not YYYYMMDD-YYYYMMDD")
            clauses = []
            if start:
                clauses.append(column >= start)
            if end:
                clauses.append(column <= end)
            from sqlalchemy import and_

            return and_(*clauses) if clauses else None
        if not _DATE.match(raw):
            raise InvalidInput(f"StudyDate {raw!r} is not YYYYMMDD")
        return column == raw
    if keyword in _INT_KEYS:
        return column == parse_int(raw, name=keyword, minimum=INT32_MIN, maximum=INT32_MAX)
    if keyword in _WILDCARD_KEYS and ("*" in raw or "?" in raw):
        pattern = raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(pattern.replace("*", "%").replace("?", "_"), escape="\\")
    return column == raw


def _query(request: Request) -> tuple[list[Any], set[str], int, int, list[str], list[str]]:
    """Return SQL conditions, modalities filter, offset, limit, includefields, warnings."""
    conditions: list[Any] = []
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
            includes.extend(_include_tag(v.strip()) for v in value.split(",") if v.strip())
            continue
        if name in _CONTROL:
            continue
        keyword = _KEYWORDS.get(name.upper(), name)
        if keyword == "ModalitiesInStudy":
            modalities.update(v.strip() for v in value.replace("\\", ",").split(",") if v)
            continue
        if keyword not in _COLUMNS:
            warnings.append(f'299 sonobridge "matching on {name} is not supported; ignored"')
            continue
        if value == "":
            continue
        clause = _condition(keyword, value)
        if clause is not None:
            conditions.append(clause)
    return conditions, modalities, offset, limit, includes, warnings


def _request_base(request: Request) -> str:
    """Return the URL the client called, with the port even when its Host header left it out.

    dicomweb-client sends `Host: <host>` without the port; a client that reached us directly
    came through our listening port, so that port belongs in the URLs we hand back. Through a
    proxy (forwarding headers present) the Host header is taken as is.
    """
    url = request.base_url
    server = request.scope.get("server")
    forwarded = any(h in request.headers for h in _FORWARDING_HEADERS)
    if url.port is None and server and not forwarded:
        port = int(server[1])
        if port != _DEFAULT_PORTS.get(url.scheme):
            url = url.replace(port=port)
    return str(url)


def _instance_url(base: str, row: Row[Any]) -> str:
    return (
        f"{base}/studies/{row.study_instance_uid}/series/{row.series_instance_uid}"
        f"/instances/{row.sop_instance_uid}"
    )


def _absolute_bulk_uris(body: dict[str, Any], instance_url: str) -> dict[str, Any]:
    """Resolve stored relative BulkDataURIs against the instance's URL, in sequences too."""
    for attribute in body.values():
        if "BulkDataURI" in attribute:
            attribute["BulkDataURI"] = bulk_uri(instance_url, attribute["BulkDataURI"])
        elif attribute.get("vr") == "SQ":
            for item in attribute.get("Value", ()):
                _absolute_bulk_uris(item, instance_url)
    return body


def _instance_metadata(row: Row[Any], base: str) -> dict[str, Any]:
    """Return an instance's DICOM JSON with its transfer syntax and absolute BulkDataURIs."""
    url = _instance_url(base, row)
    body = _absolute_bulk_uris(json.loads(row.metadata_json), url)
    body["00020010"] = _attr("UI", row.transfer_syntax_uid)
    if row.rows and "7FE00010" not in body:
        # Indexed before pixel data got a BulkDataURI: the pixel route serves it without offset.
        vr = "OB" if row.transfer_syntax_uid in ENCAPSULATED_TRANSFER_SYNTAXES else "OW"
        body["7FE00010"] = {"vr": vr, "BulkDataURI": f"{url}/{PIXEL_BULKDATA}"}
    return dict(sorted(body.items()))


def _level_fields(
    rows: Sequence[Row[Any]], base: str, includes: Sequence[str], level: frozenset[str]
) -> dict[str, Any]:
    """Return requested attributes as the first instance carries them (they are shared)."""
    metadata = _instance_metadata(rows[0], base)
    wanted = set(includes) | (level if _ALL in includes else set())
    return {tag: value for tag, value in metadata.items() if tag in wanted}


def _empty(tag: str) -> dict[str, Any]:
    vr = dictionary_VR(int(tag, 16))
    return {"vr": vr}


def _study_json(
    rows: Sequence[Row[Any]], base: str, includes: Sequence[str] = ()
) -> dict[str, Any]:
    first = rows[0]
    extra = _level_fields(rows, base, [*includes, *_STUDY_DEFAULTS], _STUDY_LEVEL)
    defaults = {tag: extra.get(tag) or _empty(tag) for tag in _STUDY_DEFAULTS}
    return (
        extra
        | defaults
        | {
            "00080020": _attr("DA", first.study_date),
            "00080030": _attr("TM", first.study_time),
            "00080050": _attr("SH", first.accession_number),
            "00080061": _attr("CS", *sorted({r.modality for r in rows if r.modality})),
            "00081030": _attr("LO", first.study_description),
            "00100010": _attr("PN", first.patient_name),
            "00100020": _attr("LO", first.patient_id),
            "0020000D": _attr("UI", first.study_instance_uid),
            "00200010": _attr("SH", first.study_id),
            "00201206": _attr("IS", len({r.series_instance_uid for r in rows})),
            "00201208": _attr("IS", len(rows)),
            "00081190": _attr("UR", f"{base}/studies/{first.study_instance_uid}"),
        }
    )


def _series_json(
    rows: Sequence[Row[Any]], base: str, includes: Sequence[str] = ()
) -> dict[str, Any]:
    first = rows[0]
    extra = _level_fields(rows, base, includes, _SERIES_LEVEL) if includes else {}
    return extra | {
        "00080060": _attr("CS", first.modality),
        "0008103E": _attr("LO", first.series_description),
        "0020000D": _attr("UI", first.study_instance_uid),
        "0020000E": _attr("UI", first.series_instance_uid),
        "00200011": _attr("IS", first.series_number),
        "00201209": _attr("IS", len(rows)),
        "00081190": _attr(
            "UR",
            f"{base}/studies/{first.study_instance_uid}/series/{first.series_instance_uid}",
        ),
    }


def _instance_json(row: Row[Any], base: str, includes: Sequence[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if includes:
        metadata = _instance_metadata(row, base)
        wanted = set(metadata) if _ALL in includes else set(includes)
        body.update({tag: value for tag, value in metadata.items() if tag in wanted})
    body.update(
        {
            "00080016": _attr("UI", row.sop_class_uid),
            "00080018": _attr("UI", row.sop_instance_uid),
            "00080060": _attr("CS", row.modality),
            "00083002": _attr("UI", row.transfer_syntax_uid),
            "0020000D": _attr("UI", row.study_instance_uid),
            "0020000E": _attr("UI", row.series_instance_uid),
            "00200013": _attr("IS", row.instance_number),
            "00081190": _attr("UR", _instance_url(base, row)),
        }
    )
    if row.number_of_frames:
        # Reports and waveforms have no image geometry to state.
        body.update(
            {
                "00280008": _attr("IS", row.number_of_frames),
                "00280010": _attr("US", row.rows),
                "00280011": _attr("US", row.columns),
            }
        )
    return dict(sorted(body.items()))


def _group(rows: Sequence[Row[Any]], attribute: str) -> dict[str, list[Row[Any]]]:
    groups: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        groups[getattr(row, attribute)].append(row)
    return groups


def _check_accept_json(accept: str | None) -> None:
    """Allow DICOM JSON (or anything); refuse application/dicom+xml and other formats."""
    if not accept:
        return
    for candidate in accept.split(","):
        main, _ = _media_range(candidate)
        if main in ("*/*", "application/*", DICOM_JSON, "application/json"):
            return
    raise NotAcceptable(
        f"search results and metadata are served as {DICOM_JSON} only (not application/dicom+xml)",
        reason="not_acceptable",
    )


def _json_response(items: list[dict[str, Any]], warnings: Sequence[str] = ()) -> Response:
    headers = {"Warning": ", ".join(warnings)} if warnings else None
    if not items:
        return Response(status_code=204, headers=headers)
    return Response(json.dumps(items), media_type=DICOM_JSON, headers=headers)


# ---------------------------------------------------------------------------------------------
# WADO-RS
# ---------------------------------------------------------------------------------------------


def _check_accept_dicom(accept: str | None, rows: Sequence[Row[Any]]) -> None:
    """Allow multipart/related; type=application/dicom with the stored (or any) syntax."""
    if not accept or accept.strip() in ("*/*", "multipart/related"):
        return
    for candidate in accept.split(","):
        main, *params = candidate.split(";")
        main = main.strip().lower()
        values = {}
        for param in params:
            name, _, value = param.strip().partition("=")
            values[name.strip().lower()] = value.strip().strip('"')
        if main in ("*/*", "multipart/*"):
            return
        if main != "multipart/related":
            continue
        if values.get("type", "application/dicom").lower() != "application/dicom":
            continue
        syntax = values.get("transfer-syntax", "*")
        if syntax == "*" or all(r.transfer_syntax_uid == syntax for r in rows):
            return
    raise NotAcceptable(
        'instances are served as stored: multipart/related; type="application/dicom"; '
        "transfer-syntax=* (no transcoding)",
        reason="not_acceptable",
    )


def _multipart_stream(deps: IngestDeps, rows: Sequence[Row[Any]], boundary: str) -> Iterator[bytes]:
    for row in rows:
        yield (
            f"--{boundary}\r\nContent-Type: application/dicom; "
            f"transfer-syntax={row.transfer_syntax_uid}\r\n"
            f"Content-Length: {row.size_bytes}\r\n\r\n"
        ).encode()
        with handlers.open_instance(deps, row) as chunks:
            yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _spool_object(deps: IngestDeps, row: Row[Any]) -> Path:
    fd, name = tempfile.mkstemp(dir=deps.spool.directory, suffix=".render.dcm")
    with open(fd, "wb") as out, handlers.open_instance(deps, row) as chunks:
        for chunk in chunks:
            out.write(chunk)
    return Path(name)


def _media_range(candidate: str) -> tuple[str, dict[str, str]]:
    main, *params = candidate.split(";")
    values: dict[str, str] = {}
    for param in params:
        name, _, value = param.strip().partition("=")
        values[name.strip().lower()] = value.strip().strip('"')
    return main.strip().lower(), values


def _frame_representation(accept: str | None, stored_syntax: str) -> tuple[str, str]:
    """Pick (media type, transfer syntax) for frames from Accept; frames are never transcoded."""
    natural = frame_media_type(stored_syntax)
    syntax = served_transfer_syntax(stored_syntax)
    if not accept:
        return natural, syntax
    for candidate in accept.split(","):
        main, params = _media_range(candidate)
        kind = params.get("type", "*/*").lower() if main == "multipart/related" else main
        wanted = params.get("transfer-syntax")
        matches = kind == "*/*" or kind == natural
        matches = matches or (kind.endswith("/*") and natural.startswith(kind[:-1]))
        if matches and wanted in (None, "*", syntax):
            return natural, syntax
        if kind == OCTET_STREAM and natural != OCTET_STREAM and wanted in ("*", stored_syntax):
            # Cornerstone (OHIF) asks for octet-stream with transfer-syntax=* and picks its
            # decoder from the part's transfer-syntax, so the compressed bitstream suits it.
            return OCTET_STREAM, stored_syntax
    raise NotAcceptable(
        f"frames of this instance are served as stored: {natural}; transfer-syntax={syntax} "
        f"(or application/octet-stream; transfer-syntax=*); no transcoding",
        reason="not_acceptable",
    )


def _frame_stream(
    path: Path, numbers: Sequence[int], media_type: str, syntax: str, boundary: str
) -> Iterator[bytes]:
    try:
        for data in read_frames(path, numbers):
            yield (
                f"--{boundary}\r\nContent-Type: {media_type}; transfer-syntax={syntax}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            yield data
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()
    finally:
        path.unlink(missing_ok=True)


def _prepare_frames(deps: IngestDeps, row: Row[Any], numbers: Sequence[int]) -> Path:
    """Spool the instance and check the frames exist, so errors come before streaming starts."""
    path = _spool_object(deps, row)
    try:
        check_frames(path, numbers)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _render(deps: IngestDeps, row: Row[Any], frame: int, media_type: str) -> bytes:
    path = _spool_object(deps, row)
    try:
        return render_frame(path, frame, media_type)
    finally:
        path.unlink(missing_ok=True)


def _check_accept_bulk(accept: str | None) -> None:
    """Allow multipart/related with octet-stream (or any) parts: bulk data is never transcoded."""
    if not accept:
        return
    for candidate in accept.split(","):
        main, params = _media_range(candidate)
        kind = params.get("type", "*/*").lower() if main == "multipart/related" else main
        if main in ("*/*", "multipart/*") or kind in ("*/*", "application/*", OCTET_STREAM):
            return
    raise NotAcceptable(
        f'bulk data is served as multipart/related; type="{OCTET_STREAM}"',
        reason="not_acceptable",
    )


def _open_bulk(
    deps: IngestDeps, row: Row[Any], key: BulkKey
) -> tuple[int, Iterator[bytes], Callable[[], None]]:
    """Open the stored object at the element; errors come before the response starts."""
    stack = ExitStack()
    try:
        chunks = stack.enter_context(handlers.open_instance(deps, row))
        length, body = open_element(chunks, key, row.transfer_syntax_uid)
    except BaseException:
        stack.close()
        raise
    return length, body, stack.close


def _bulk_stream(
    body: Iterator[bytes], length: int, boundary: str, close: Callable[[], None]
) -> Iterator[bytes]:
    try:
        yield (
            f"--{boundary}\r\nContent-Type: {OCTET_STREAM}\r\nContent-Length: {length}\r\n\r\n"
        ).encode()
        yield from body
        yield f"\r\n--{boundary}--\r\n".encode()
    finally:
        close()


def _prepare_pixels(deps: IngestDeps, row: Row[Any]) -> tuple[Path, int]:
    """Spool the instance and count its frames, so errors come before streaming starts."""
    path = _spool_object(deps, row)
    try:
        frames = check_frames(path, [])
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, frames


def _pixel_stream(path: Path, frames: int, stored_syntax: str, boundary: str) -> Iterator[bytes]:
    """Native pixel data as one part; encapsulated pixel data as one part per frame (8.7.3)."""
    numbers = list(range(1, frames + 1))
    try:
        if stored_syntax in ENCAPSULATED_TRANSFER_SYNTAXES:
            yield from _frame_stream(path, numbers, OCTET_STREAM, stored_syntax, boundary)
            return
        yield (
            f"--{boundary}\r\nContent-Type: {OCTET_STREAM}; "
            f"transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}\r\n\r\n"
        ).encode()
        yield from read_frames(path, numbers)
        yield f"\r\n--{boundary}--\r\n".encode()
    finally:
        path.unlink(missing_ok=True)


def _rendered_type(accept: str | None) -> str:
    if not accept:
        return "image/jpeg"
    for candidate in accept.split(","):
        main = candidate.split(";")[0].strip().lower()
        if main in MEDIA_TYPES:
            return main
        if main in ("*/*", "image/*"):
            return "image/jpeg"
    raise NotAcceptable("rendered frames are available as image/jpeg or image/png")


def build_router(deps: IngestDeps, public_base_url: str | None = None) -> APIRouter:
    """Return the DICOMweb router; URLs in answers start with `public_base_url` when given."""
    router = APIRouter(prefix=PREFIX)

    def lookup(
        principal: Principal,
        action: str,
        study: str | None = None,
        series: str | None = None,
        sop: str | None = None,
        extra: Sequence[Any] = (),
    ) -> list[Row[Any]]:
        conditions = list(extra)
        for name, value, column in (
            ("StudyInstanceUID", study, t.c.study_instance_uid),
            ("SeriesInstanceUID", series, t.c.series_instance_uid),
            ("SOPInstanceUID", sop, t.c.sop_instance_uid),
        ):
            if value is not None:
                conditions.append(column == require_uid(name, value))
        return handlers.find_instances(
            deps,
            principal,
            conditions,
            action=action,
            resource_id=study or "*",
            order=(
                t.c.study_instance_uid,
                t.c.series_number,
                t.c.series_instance_uid,
                t.c.instance_number,
                t.c.sop_instance_uid,
            ),
        )

    # --- STOW-RS ------------------------------------------------------------------------------

    def base_url(request: Request) -> str:
        # Behind a proxy or port mapping, the configured public URL is what clients can reach.
        return (public_base_url or _request_base(request)).rstrip("/") + PREFIX

    async def stow(request: Request, principal: Principal, study: str | None) -> Response:
        if study is not None:
            require_uid("StudyInstanceUID", study)
        boundary, _ = _boundary_of(request.headers.get("content-type", ""))
        base = base_url(request)
        stored_studies: set[str] = set()
        referenced: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        warnings: list[str] = []
        async for part in read_parts(request.stream(), boundary, deps.spool):
            with part.body:
                try:
                    if part.content_type not in ("application/dicom", ""):
                        raise UnsupportedMedia(
                            f"part of type {part.content_type!r} is not application/dicom",
                            reason="bad_content_type",
                        )
                    stored = await run_in_threadpool(
                        handlers.store_instance,
                        deps,
                        principal,
                        part.body,
                        channel=Channel.STOW,
                        expected_study=study,
                    )
                except Problem as problem:
                    if isinstance(problem, (NotFound,)) or problem.status >= 500:
                        raise
                    sop_class, sop_instance = await run_in_threadpool(handlers.identify, part.body)
                    failed.append(
                        {
                            "00081150": _attr("UI", sop_class),
                            "00081155": _attr("UI", sop_instance),
                            "00081197": _attr("US", _failure_code(problem)),
                        }
                    )
                    detail = problem.detail.replace('"', "'")
                    warnings.append(
                        f'299 sonobridge "part {len(referenced) + len(failed)}: {detail}"'
                    )
                    continue
                ref = stored.ref
                stored_studies.add(ref.study_instance_uid)
                referenced.append(
                    {
                        "00081150": _attr("UI", ref.sop_class_uid),
                        "00081155": _attr("UI", ref.sop_instance_uid),
                        "00081190": _attr(
                            "UR",
                            f"{base}/studies/{ref.study_instance_uid}/series/"
                            f"{ref.series_instance_uid}/instances/{ref.sop_instance_uid}",
                        ),
                    }
                )
        if not referenced and not failed:
            raise InvalidInput("STOW-RS request holds no parts", reason="empty_request")
        body: dict[str, Any] = {}
        # The study's URL, when the request names it or everything stored belongs to one.
        target = study or (next(iter(stored_studies)) if len(stored_studies) == 1 else None)
        if target:
            body["00081190"] = _attr("UR", f"{base}/studies/{target}")
        if referenced:
            body["00081199"] = {"vr": "SQ", "Value": referenced}
        if failed:
            body["00081198"] = {"vr": "SQ", "Value": failed}
        status = 200 if not failed else (202 if referenced else 409)
        headers = {"Warning": ", ".join(warnings)} if warnings else None
        return Response(
            json.dumps(body), status_code=status, media_type=DICOM_JSON, headers=headers
        )

    @router.post("/studies")
    async def stow_studies(request: Request, principal: CurrentPrincipal) -> Response:
        return await stow(request, principal, None)

    @router.post("/studies/{study}")
    async def stow_study(study: str, request: Request, principal: CurrentPrincipal) -> Response:
        return await stow(request, principal, study)

    # --- QIDO-RS ------------------------------------------------------------------------------

    async def qido(
        request: Request,
        principal: Principal,
        level: str,
        study: str | None = None,
        series: str | None = None,
    ) -> Response:
        _check_accept_json(request.headers.get("accept"))
        try:
            # A query the server cannot run is a bad request (PS3.18 8.3.4), not a domain error.
            conditions, modalities, offset, limit, includes, warnings = _query(request)
            for name, value in (("StudyInstanceUID", study), ("SeriesInstanceUID", series)):
                if value is not None:
                    require_uid(name, value)
        except InvalidInput as problem:
            raise BadQuery(problem.detail, **problem.extensions) from problem
        rows = await run_in_threadpool(
            lookup, principal, f"search_{level}", study, series, None, conditions
        )
        base = base_url(request)
        page = slice(offset, offset + limit)
        items: list[dict[str, Any]]
        # The page is cut before rendering: study and series answers read stored metadata.
        if level == "studies":
            groups = list(_group(rows, "study_instance_uid").values())
            if modalities:
                groups = [g for g in groups if modalities & {r.modality for r in g}]
            items = [_study_json(g, base, includes) for g in groups[page]]
        elif level == "series":
            series_rows = list(_group(rows, "series_instance_uid").values())
            items = [_series_json(g, base, includes) for g in series_rows[page]]
        else:
            items = [_instance_json(r, base, includes) for r in rows[page]]
        return _json_response(items, warnings)

    @router.get("/studies")
    async def search_studies(request: Request, principal: CurrentPrincipal) -> Response:
        return await qido(request, principal, "studies")

    @router.get("/series")
    async def search_all_series(request: Request, principal: CurrentPrincipal) -> Response:
        return await qido(request, principal, "series")

    @router.get("/studies/{study}/series")
    async def search_series(study: str, request: Request, principal: CurrentPrincipal) -> Response:
        return await qido(request, principal, "series", study)

    @router.get("/instances")
    async def search_all_instances(request: Request, principal: CurrentPrincipal) -> Response:
        return await qido(request, principal, "instances")

    @router.get("/studies/{study}/instances")
    async def search_study_instances(
        study: str, request: Request, principal: CurrentPrincipal
    ) -> Response:
        return await qido(request, principal, "instances", study)

    @router.get("/studies/{study}/series/{series}/instances")
    async def search_instances(
        study: str, series: str, request: Request, principal: CurrentPrincipal
    ) -> Response:
        return await qido(request, principal, "instances", study, series)

    # --- WADO-RS ------------------------------------------------------------------------------

    async def retrieve(
        request: Request,
        principal: Principal,
        study: str,
        series: str | None = None,
        sop: str | None = None,
    ) -> Response:
        rows = await run_in_threadpool(lookup, principal, "retrieve", study, series, sop)
        if not rows:
            raise NotFound("no such instances")
        _check_accept_dicom(request.headers.get("accept"), rows)
        boundary = uuid.uuid4().hex
        return StreamingResponse(
            _multipart_stream(deps, rows, boundary),
            media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        )

    async def metadata(
        request: Request,
        principal: Principal,
        study: str,
        series: str | None = None,
        sop: str | None = None,
    ) -> Response:
        _check_accept_json(request.headers.get("accept"))
        rows = await run_in_threadpool(lookup, principal, "retrieve_metadata", study, series, sop)
        if not rows:
            raise NotFound("no such instances")
        base = base_url(request)
        body = [_instance_metadata(r, base) for r in rows]
        return Response(json.dumps(body), media_type=DICOM_JSON)

    @router.get("/studies/{study}")
    async def retrieve_study(study: str, request: Request, principal: CurrentPrincipal) -> Response:
        return await retrieve(request, principal, study)

    @router.get("/studies/{study}/series/{series}")
    async def retrieve_series(
        study: str, series: str, request: Request, principal: CurrentPrincipal
    ) -> Response:
        return await retrieve(request, principal, study, series)

    @router.get("/studies/{study}/series/{series}/instances/{sop}")
    async def retrieve_instance(
        study: str, series: str, sop: str, request: Request, principal: CurrentPrincipal
    ) -> Response:
        return await retrieve(request, principal, study, series, sop)

    @router.get("/studies/{study}/metadata")
    async def study_metadata(study: str, request: Request, principal: CurrentPrincipal) -> Response:
        return await metadata(request, principal, study)

    @router.get("/studies/{study}/series/{series}/metadata")
    async def series_metadata(
        study: str, series: str, request: Request, principal: CurrentPrincipal
    ) -> Response:
        return await metadata(request, principal, study, series)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/metadata")
    async def instance_metadata(
        study: str, series: str, sop: str, request: Request, principal: CurrentPrincipal
    ) -> Response:
        return await metadata(request, principal, study, series, sop)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{key}")
    async def retrieve_bulkdata(
        study: str, series: str, sop: str, key: str, request: Request, principal: CurrentPrincipal
    ) -> Response:
        bulk = parse_bulk_key(key)
        rows = await run_in_threadpool(lookup, principal, "retrieve_bulkdata", study, series, sop)
        if not rows:
            raise NotFound("no such instance")
        row = rows[0]
        _check_accept_bulk(request.headers.get("accept"))
        boundary = uuid.uuid4().hex
        media_type = f'multipart/related; type="{OCTET_STREAM}"; boundary={boundary}'
        if bulk.offset is not None:
            length, body, close = await run_in_threadpool(_open_bulk, deps, row, bulk)
            return StreamingResponse(
                _bulk_stream(body, length, boundary, close),
                media_type=media_type,
                background=BackgroundTask(close),
            )
        if bulk.tag != _PIXEL_DATA:
            raise NotFound("no such bulk data in this instance")
        path, frames = await run_in_threadpool(_prepare_pixels, deps, row)
        return StreamingResponse(
            _pixel_stream(path, frames, row.transfer_syntax_uid, boundary),
            media_type=media_type,
            background=BackgroundTask(path.unlink, missing_ok=True),
        )

    async def rendered(
        request: Request,
        principal: Principal,
        study: str,
        series: str | None,
        sop: str | None,
        frame: int,
    ) -> Response:
        # Study and series rendering show the first frame of the first instance in series and
        # instance number order: enough for a viewer's preview, not a rendering of every image.
        media_type = _rendered_type(request.headers.get("accept"))
        rows = await run_in_threadpool(lookup, principal, "retrieve_rendered", study, series, sop)
        if not rows:
            raise NotFound("no such instance")
        image = await run_in_threadpool(_render, deps, rows[0], frame, media_type)
        return Response(image, media_type=media_type)

    @router.get("/studies/{study}/rendered")
    async def rendered_study(study: str, request: Request, principal: CurrentPrincipal) -> Response:
        return await rendered(request, principal, study, None, None, 1)

    @router.get("/studies/{study}/series/{series}/rendered")
    async def rendered_series(
        study: str, series: str, request: Request, principal: CurrentPrincipal
    ) -> Response:
        return await rendered(request, principal, study, series, None, 1)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}")
    async def retrieve_frames(
        study: str,
        series: str,
        sop: str,
        frames: str,
        request: Request,
        principal: CurrentPrincipal,
    ) -> Response:
        numbers = parse_frame_numbers(frames)
        rows = await run_in_threadpool(lookup, principal, "retrieve_frames", study, series, sop)
        if not rows:
            raise NotFound("no such instance")
        row = rows[0]
        media_type, syntax = _frame_representation(
            request.headers.get("accept"), row.transfer_syntax_uid
        )
        path = await run_in_threadpool(_prepare_frames, deps, row, numbers)
        boundary = uuid.uuid4().hex
        return StreamingResponse(
            _frame_stream(path, numbers, media_type, syntax, boundary),
            media_type=f'multipart/related; type="{media_type}"; boundary={boundary}',
            # A client gone before the body starts never runs the stream's own clean-up.
            background=BackgroundTask(path.unlink, missing_ok=True),
        )

    @router.get("/studies/{study}/series/{series}/instances/{sop}/rendered")
    async def rendered_instance(
        study: str, series: str, sop: str, request: Request, principal: CurrentPrincipal
    ) -> Response:
        return await rendered(request, principal, study, series, sop, 1)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/rendered")
    async def rendered_frame(
        study: str,
        series: str,
        sop: str,
        frames: str,
        request: Request,
        principal: CurrentPrincipal,
    ) -> Response:
        numbers = [f.strip() for f in frames.split(",")]
        if len(numbers) != 1:
            raise InvalidInput("rendered retrieval takes exactly one frame number")
        number = parse_int(numbers[0], name="frame number", minimum=1, maximum=INT32_MAX)
        return await rendered(request, principal, study, series, sop, number)

    return router
