"""STOW-RS (PS3.18 10.5): store every part of a multipart/related request, report each."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response

from sonobridge.common.auth import Principal
from sonobridge.common.handoff import to_thread
from sonobridge.common.http import CurrentPrincipal
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound, Problem
from sonobridge.common.problems import UnsupportedMediaType as UnsupportedMedia
from sonobridge.ingest.domain.model import Channel, require_uid
from sonobridge.ingest.entrypoints.dependencies import Deps, PublicBaseUrl
from sonobridge.ingest.entrypoints.dicomweb.multipart import read_parts
from sonobridge.ingest.entrypoints.dicomweb.paths import base_url, router
from sonobridge.ingest.entrypoints.dicomweb.views import DICOM_JSON, attr
from sonobridge.ingest.handlers import IngestDeps, instances

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


async def stow(
    request: Request, principal: Principal, deps: IngestDeps, base: str, study: str | None
) -> Response:
    """Store each part; answer 200, 202 (some failed) or 409 (all failed) with the outcome."""
    if study is not None:
        require_uid("StudyInstanceUID", study)
    boundary, _ = _boundary_of(request.headers.get("content-type", ""))
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
                # One hand-off per part: the worker validates, writes and indexes it.
                stored = await to_thread(
                    instances.store_instance,
                    deps,
                    principal,
                    part.body,
                    channel=Channel.STOW,
                    expected_study=study,
                )
            except Problem as problem:
                if isinstance(problem, (NotFound,)) or problem.status >= 500:
                    raise
                sop_class, sop_instance = await to_thread(instances.identify, deps, part.body)
                failed.append(
                    {
                        "00081150": attr("UI", sop_class),
                        "00081155": attr("UI", sop_instance),
                        "00081197": attr("US", _failure_code(problem)),
                    }
                )
                detail = problem.detail.replace('"', "'")
                warnings.append(f'299 sonobridge "part {len(referenced) + len(failed)}: {detail}"')
                continue
            instance = stored.instance
            stored_studies.add(instance.study_instance_uid)
            referenced.append(
                {
                    "00081150": attr("UI", instance.sop_class_uid),
                    "00081155": attr("UI", instance.sop_instance_uid),
                    "00081190": attr(
                        "UR",
                        f"{base}/studies/{instance.study_instance_uid}/series/"
                        f"{instance.series_instance_uid}/instances/{instance.sop_instance_uid}",
                    ),
                }
            )
    if not referenced and not failed:
        raise InvalidInput("STOW-RS request holds no parts", reason="empty_request")
    body: dict[str, Any] = {}
    # The study's URL, when the request names it or everything stored belongs to one.
    target = study or (next(iter(stored_studies)) if len(stored_studies) == 1 else None)
    if target:
        body["00081190"] = attr("UR", f"{base}/studies/{target}")
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else (202 if referenced else 409)
    headers = {"Warning": ", ".join(warnings)} if warnings else None
    return Response(json.dumps(body), status_code=status, media_type=DICOM_JSON, headers=headers)


@router.post("/studies")
async def stow_studies(
    request: Request, principal: CurrentPrincipal, deps: Deps, public: PublicBaseUrl
) -> Response:
    return await stow(request, principal, deps, base_url(request, public), None)


@router.post("/studies/{study}")
async def stow_study(
    study: str, request: Request, principal: CurrentPrincipal, deps: Deps, public: PublicBaseUrl
) -> Response:
    return await stow(request, principal, deps, base_url(request, public), study)
