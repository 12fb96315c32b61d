"""WADO-RS (PS3.18 10.4): retrieve instances, metadata, bulk data, frames and renderings."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from fastapi import Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from sonobridge.common.inputs import INT32_MAX, parse_int
from sonobridge.common.problems import InvalidInput, NotFound
from sonobridge.ingest.domain.media import (
    OCTET_STREAM,
    PIXEL_DATA_TAG,
    parse_bulk_key,
    parse_frame_numbers,
)
from sonobridge.ingest.domain.query import within
from sonobridge.ingest.domain.records import Instance
from sonobridge.ingest.domain.validation import (
    ENCAPSULATED_TRANSFER_SYNTAXES,
    EXPLICIT_VR_LITTLE_ENDIAN,
)
from sonobridge.ingest.entrypoints.dicomweb.negotiation import (
    check_accept_bulk,
    check_accept_dicom,
    check_accept_json,
    frame_representation,
    rendered_type,
)
from sonobridge.ingest.entrypoints.dicomweb.paths import Call, DicomWebRequest, router
from sonobridge.ingest.entrypoints.dicomweb.views import DICOM_JSON, instance_metadata
from sonobridge.ingest.handlers import IngestDeps, reads


def _multipart_stream(deps: IngestDeps, rows: Sequence[Instance], boundary: str) -> Iterator[bytes]:
    for row in rows:
        yield (
            f"--{boundary}\r\nContent-Type: application/dicom; "
            f"transfer-syntax={row.transfer_syntax_uid}\r\n"
            f"Content-Length: {row.size_bytes}\r\n\r\n"
        ).encode()
        with reads.open_instance(deps, row) as chunks:
            yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _frame_stream(
    deps: IngestDeps,
    path: Path,
    numbers: Sequence[int],
    media_type: str,
    syntax: str,
    boundary: str,
) -> Iterator[bytes]:
    try:
        for data in reads.read_frames(deps, path, numbers):
            yield (
                f"--{boundary}\r\nContent-Type: {media_type}; transfer-syntax={syntax}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            yield data
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()
    finally:
        path.unlink(missing_ok=True)


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


def _pixel_stream(
    deps: IngestDeps, path: Path, frames: int, stored_syntax: str, boundary: str
) -> Iterator[bytes]:
    """Native pixel data as one part; encapsulated pixel data as one part per frame (8.7.3)."""
    numbers = list(range(1, frames + 1))
    try:
        if stored_syntax in ENCAPSULATED_TRANSFER_SYNTAXES:
            yield from _frame_stream(deps, path, numbers, OCTET_STREAM, stored_syntax, boundary)
            return
        yield (
            f"--{boundary}\r\nContent-Type: {OCTET_STREAM}; "
            f"transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}\r\n\r\n"
        ).encode()
        yield from reads.read_frames(deps, path, numbers)
        yield f"\r\n--{boundary}--\r\n".encode()
    finally:
        path.unlink(missing_ok=True)


async def _find(
    call: DicomWebRequest, action: str, study: str, series: str | None, sop: str | None
) -> list[Instance]:
    criteria = within(study, series, sop)
    return await run_in_threadpool(
        reads.find_instances, call.deps, call.principal, criteria, action=action, resource_id=study
    )


async def _found(
    call: DicomWebRequest,
    action: str,
    study: str,
    series: str | None = None,
    sop: str | None = None,
    missing: str = "no such instance",
) -> list[Instance]:
    found = await _find(call, action, study, series, sop)
    if not found:
        raise NotFound(missing)
    return found


async def retrieve(
    call: DicomWebRequest, study: str, series: str | None = None, sop: str | None = None
) -> Response:
    """Stream the named instances as stored, one multipart part each."""
    found = await _found(call, "retrieve", study, series, sop, missing="no such instances")
    check_accept_dicom(call.accept, found)
    boundary = uuid.uuid4().hex
    return StreamingResponse(
        _multipart_stream(call.deps, found, boundary),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )


async def metadata(
    call: DicomWebRequest, study: str, series: str | None = None, sop: str | None = None
) -> Response:
    """Answer the named instances' DICOM JSON."""
    check_accept_json(call.accept)
    found = await _found(call, "retrieve_metadata", study, series, sop, missing="no such instances")
    base = call.base
    body = [instance_metadata(i, base) for i in found]
    return Response(json.dumps(body), media_type=DICOM_JSON)


@router.get("/studies/{study}")
async def retrieve_study(study: str, call: Call) -> Response:
    return await retrieve(call, study)


@router.get("/studies/{study}/series/{series}")
async def retrieve_series(study: str, series: str, call: Call) -> Response:
    return await retrieve(call, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}")
async def retrieve_instance(study: str, series: str, sop: str, call: Call) -> Response:
    return await retrieve(call, study, series, sop)


@router.get("/studies/{study}/metadata")
async def study_metadata(study: str, call: Call) -> Response:
    return await metadata(call, study)


@router.get("/studies/{study}/series/{series}/metadata")
async def series_metadata(study: str, series: str, call: Call) -> Response:
    return await metadata(call, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata")
async def instance_metadata_route(study: str, series: str, sop: str, call: Call) -> Response:
    return await metadata(call, study, series, sop)


@router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{key}")
async def retrieve_bulkdata(study: str, series: str, sop: str, key: str, call: Call) -> Response:
    bulk = parse_bulk_key(key)
    deps = call.deps
    found = await _found(call, "retrieve_bulkdata", study, series, sop)
    instance = found[0]
    check_accept_bulk(call.accept)
    boundary = uuid.uuid4().hex
    media_type = f'multipart/related; type="{OCTET_STREAM}"; boundary={boundary}'
    if bulk.offset is not None:
        length, body, close = await run_in_threadpool(reads.open_bulk, deps, instance, bulk)
        return StreamingResponse(
            _bulk_stream(body, length, boundary, close),
            media_type=media_type,
            background=BackgroundTask(close),
        )
    if bulk.tag != PIXEL_DATA_TAG:
        raise NotFound("no such bulk data in this instance")
    path, frames = await run_in_threadpool(reads.prepare_pixels, deps, instance)
    return StreamingResponse(
        _pixel_stream(deps, path, frames, instance.transfer_syntax_uid, boundary),
        media_type=media_type,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


async def rendered(
    call: DicomWebRequest, study: str, series: str | None, sop: str | None, frame: int
) -> Response:
    """Render one frame of the first instance the path names."""
    # Study and series rendering show the first frame of the first instance in series and
    # instance number order: enough for a viewer's preview, not a rendering of every image.
    media_type = rendered_type(call.accept)
    found = await _found(call, "retrieve_rendered", study, series, sop)
    image = await run_in_threadpool(reads.render, call.deps, found[0], frame, media_type)
    return Response(image, media_type=media_type)


@router.get("/studies/{study}/rendered")
async def rendered_study(study: str, call: Call) -> Response:
    return await rendered(call, study, None, None, 1)


@router.get("/studies/{study}/series/{series}/rendered")
async def rendered_series(study: str, series: str, call: Call) -> Response:
    return await rendered(call, study, series, None, 1)


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}")
async def retrieve_frames(study: str, series: str, sop: str, frames: str, call: Call) -> Response:
    numbers = parse_frame_numbers(frames)
    deps = call.deps
    found = await _found(call, "retrieve_frames", study, series, sop)
    instance = found[0]
    media_type, syntax = frame_representation(call.accept, instance.transfer_syntax_uid)
    path = await run_in_threadpool(reads.prepare_frames, deps, instance, numbers)
    boundary = uuid.uuid4().hex
    return StreamingResponse(
        _frame_stream(deps, path, numbers, media_type, syntax, boundary),
        media_type=f'multipart/related; type="{media_type}"; boundary={boundary}',
        # A client gone before the body starts never runs the stream's own clean-up.
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.get("/studies/{study}/series/{series}/instances/{sop}/rendered")
async def rendered_instance(study: str, series: str, sop: str, call: Call) -> Response:
    return await rendered(call, study, series, sop, 1)


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/rendered")
async def rendered_frame(study: str, series: str, sop: str, frames: str, call: Call) -> Response:
    numbers = [f.strip() for f in frames.split(",")]
    if len(numbers) != 1:
        raise InvalidInput("rendered retrieval takes exactly one frame number")
    number = parse_int(numbers[0], name="frame number", minimum=1, maximum=INT32_MAX)
    return await rendered(call, study, series, sop, number)
