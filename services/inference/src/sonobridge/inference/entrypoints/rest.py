"""REST for the app under /v1: a fast quality check and model download for offline use."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sonobridge.common.conditional import IfNoneMatch, conditional, matches
from sonobridge.common.http import CurrentPrincipal, app_deps
from sonobridge.common.inputs import INT32_MAX
from sonobridge.common.problems import PayloadTooLarge
from sonobridge.inference.domain.errors import ModelNotFound
from sonobridge.inference.domain.quality import REASONS
from sonobridge.inference.domain.validation import (
    DeviceModel,
    DeviceValidation,
    ExpertLabel,
    StateChange,
)
from sonobridge.inference.entrypoints.comparison import comparison_document
from sonobridge.inference.handlers import Dependencies, models, quality, shadow, validation
from sonobridge.inference.handlers.models import StoredModel

# Sync routes run in FastAPI's threadpool, off the event loop.
router = APIRouter(prefix="/v1", tags=["inference"])


def max_image_bytes(request: Request) -> int:
    """Return the largest image body the quality check accepts."""
    limit: int = request.app.state.max_image_bytes
    return limit


Deps = Annotated[Dependencies, Depends(app_deps)]
ImageLimit = Annotated[int, Depends(max_image_bytes)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/v1"


def _summary(found: StoredModel, base: str) -> dict[str, Any]:
    card = found.card
    return {
        "name": card.name,
        "version": card.version,
        "task": card.task,
        "exam_types": list(card.exam_types),
        "sha256": card.sha256 or "",
        "size_bytes": int(card.raw.get("size_bytes", 0)),
        "loaded": found.loaded,
        "pinned": found.pinned,
        "links": {
            "model": f"{base}/models/{card.name}/{card.version}/model.onnx",
            "card": f"{base}/models/{card.name}/{card.version}/card.json",
        },
    }


@router.post("/quality-checks", summary="Judge one frame: acceptable or rescan")
async def check_quality(
    request: Request,
    principal: CurrentPrincipal,
    deps: Deps,
    limit: ImageLimit,
    frame_index: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    manufacturer: Annotated[str, Query(max_length=128)] = "",
    model_name: Annotated[str, Query(max_length=128)] = "",
) -> dict[str, Any]:
    """Judge the frame in the body (JPEG, PNG or a DICOM instance); say why to rescan.

    `manufacturer` and `model_name` name the app's device for images that carry none.
    """
    body = await _read_limited(request, limit)
    media_type = request.headers.get("content-type", "")
    check, latency_ms = await run_in_threadpool(
        quality.check_image_quality,
        deps,
        body,
        media_type,
        frame_index,
        institution=principal.institution,
        operator=principal.user,
        manufacturer=manufacturer,
        model_name=model_name,
    )
    a = check.assessment
    return {
        "acceptable": a.acceptable,
        "reasons": list(a.reasons),
        "score": a.score,
        "confidence": a.confidence,
        "advice": a.advice,
        "validation": a.validation,
        "model_acceptable": a.model_acceptable,
        "device_model": a.device_model,
        "model": check.model,
        "model_version": check.model_version,
        "probabilities": check.verdict.probabilities,
        "latency_ms": latency_ms,
    }


@router.get("/models")
def list_models(request: Request, principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """List the registry's models with download links."""
    return {"models": [_summary(m, _base(request)) for m in models.list_models(deps)]}


@router.get("/models/{name}/{version}")
def get_model(
    name: str, version: str, request: Request, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Return one model version's summary and card."""
    found = models.get_model(deps, name, version)
    return {**_summary(found, _base(request)), "card": found.card.raw}


@router.post("/models/{name}/{version}/load", summary="Load and warm up a version (admin)")
def load_model(
    name: str, version: str, request: Request, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Load a stored model version into this replica at run time."""
    return _summary(models.load_model(deps, principal, name, version), _base(request))


@router.post("/models/{name}/{version}/unload", summary="Unload a version (admin)")
def unload_model(
    name: str, version: str, request: Request, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Free a loaded model version; the pinned version of a required model is refused."""
    return _summary(models.unload_model(deps, principal, name, version), _base(request))


@router.post("/models/{name}/{version}/pin", summary="Pin a loaded version (admin)")
def pin_model(
    name: str, version: str, request: Request, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Serve this version when a request names none."""
    return _summary(models.pin_model(deps, principal, name, version), _base(request))


@router.get("/models/{name}/{version}/card.json")
def model_card(
    name: str,
    version: str,
    principal: CurrentPrincipal,
    deps: Deps,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """Download card.json exactly as stored."""
    found = models.get_model(deps, name, version)
    return conditional(models.card_json(deps, found.card).encode(), if_none_match)


@router.get("/models/{name}/{version}/model.onnx")
def model_file(
    name: str,
    version: str,
    principal: CurrentPrincipal,
    deps: Deps,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """Download the ONNX file (hash-checked) so the app can run the same model offline."""
    found = models.get_model(deps, name, version)
    if not found.card.sha256:
        raise ModelNotFound(f"model {name} {version} has no ONNX file (a measurement module)")
    # The card's hash of the ONNX bytes is their strong ETag: no need to read them for a 304.
    etag = f'"{found.card.sha256}"'
    headers = {
        "ETag": etag,
        "X-Model-SHA256": found.card.sha256,
        "Digest": f"sha-256={_b64_sha256(found.card.sha256)}",
        "Content-Disposition": f'attachment; filename="{name}-{version}.onnx"',
    }
    if matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    _, data = models.model_artifact(deps, name, version)
    return Response(data, media_type="application/octet-stream", headers=headers)


class DeviceModelBody(BaseModel):
    """A device model as the DICOM or the app names it."""

    manufacturer: str = Field(max_length=128)
    model_name: str = Field(max_length=128)


class PromotionBody(BaseModel):
    """A validation report (as the report command wrote it) and the state asked for."""

    report: dict[str, Any]
    to_state: str = "gating"
    reason: str = Field("", max_length=500)


class QualityLabelBody(BaseModel):
    """An expert's quality label of one instance and what the model said of it."""

    model: str = Field(max_length=64)
    device_model: DeviceModelBody
    sop_instance_uid: str = Field(min_length=1, max_length=128)
    label: str = Field(pattern="^(acceptable|rescan)$")
    reason: str | None = Field(None, max_length=32)
    model_flagged: bool


class QualityLabelsBody(BaseModel):
    """A batch of quality labels, as an expert's read produces them."""

    labels: list[QualityLabelBody] = Field(min_length=1, max_length=1000)


def _validation(v: DeviceValidation) -> dict[str, Any]:
    return {
        "model": v.model_name,
        "device_model": v.device.key,
        "state": v.state.value,
        "model_version": v.model_version,
        "changed_at": v.changed_at.isoformat() if v.changed_at else None,
        "changed_by": v.changed_by,
        "reason": v.reason,
    }


def _change(c: StateChange) -> dict[str, Any]:
    return {
        **_validation(c.validation),
        "from_state": c.from_state.value,
        "to_state": c.to_state.value,
    }


@router.get("/validation/device-models", summary="Validation states per device model")
def list_device_validations(principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """List the stored states; a device model not listed has its card's default (shadow)."""
    return {"device_models": [_validation(v) for v in validation.list_validations(deps)]}


@router.post(
    "/validation/promotions",
    status_code=201,
    summary="Promote a model on a device model on its validation report (admin)",
)
def promote_device_model(
    body: PromotionBody, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Promote when the report meets the card's thresholds; 409 names what falls short."""
    change = validation.promote_device_model(
        deps, principal, body.report, to_state=body.to_state, reason=body.reason
    )
    return _change(change)


@router.post("/validation/quality-labels", summary="Record experts' quality labels")
def record_quality_labels(
    body: QualityLabelsBody, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Keep the labels; answer with any demotion they caused."""
    now = deps.clock()
    labels = [
        ExpertLabel(
            model_name=item.model,
            device=DeviceModel.of(item.device_model.manufacturer, item.device_model.model_name),
            sop_instance_uid=item.sop_instance_uid,
            expert_fault=None if item.label == "acceptable" else _reason(item.reason),
            model_flagged=item.model_flagged,
            labelled_by=principal.user,
            labelled_at=now,
        )
        for item in body.labels
    ]
    changes = validation.record_quality_labels(deps, principal, labels)
    shadow.follow_labels(deps, labels)
    return {"recorded": len(labels), "demotions": [_change(c) for c in changes]}


@router.get(
    "/validation/comparisons",
    summary="Shadow versus serving versions on live traffic against expert labels (admin)",
)
def compare_versions(
    principal: CurrentPrincipal,
    deps: Deps,
    model: Annotated[str, Query(min_length=1, max_length=64)],
) -> dict[str, Any]:
    """Per device model and version: labelled instances, false rescans, faults caught,
    agreement with the serving version and whether promotion would meet the card."""
    return comparison_document(shadow.compare_served_versions(deps, principal, model))


def _reason(reason: str | None) -> str:
    return reason if reason in REASONS else "other"


def _b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"image is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"image is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
