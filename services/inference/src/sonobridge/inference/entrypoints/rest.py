"""REST for the app under /v1: a fast quality check and model download for offline use."""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.http import CurrentPrincipal
from sonobridge.common.inputs import INT32_MAX
from sonobridge.common.problems import PayloadTooLarge
from sonobridge.inference import handlers
from sonobridge.inference.adapters import messages
from sonobridge.inference.domain.errors import ModelNotFound


def _summary(found: handlers.StoredModel, base: str) -> dict[str, Any]:
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


def _not_modified(if_none_match: str | None, etag: str) -> bool:
    return if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]


def build_router(deps: handlers.Dependencies, max_image_bytes: int) -> APIRouter:
    """Return the /v1 routes; sync handlers run in FastAPI's threadpool, off the event loop."""
    router = APIRouter(prefix="/v1", tags=["inference"])

    @router.post("/quality-checks", summary="Judge one frame: acceptable or rescan")
    async def check_quality(
        request: Request,
        principal: CurrentPrincipal,
        frame_index: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    ) -> dict[str, Any]:
        """Judge the frame in the body (JPEG, PNG or a DICOM instance); say why to rescan."""
        body = await _read_limited(request, max_image_bytes)
        media_type = request.headers.get("content-type", "")
        check, latency_ms = await run_in_threadpool(
            handlers.check_image_quality,
            deps,
            body,
            media_type,
            frame_index,
            institution=principal.institution,
            operator=principal.user,
        )
        a = messages.quality_assessment(check.verdict, check.model_version)
        return {
            "acceptable": a.acceptable,
            "reasons": [
                events_pb2.QualityReason.Name(r).removeprefix("QUALITY_REASON_").lower()
                for r in a.reasons
            ],
            "score": a.score,
            "confidence": a.confidence,
            "advice": a.advice,
            "model": check.model,
            "model_version": check.model_version,
            "probabilities": check.verdict.probabilities,
            "latency_ms": latency_ms,
        }

    @router.get("/models")
    def list_models(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
        """List the registry's models with download links."""
        base = str(request.base_url).rstrip("/") + "/v1"
        return {"models": [_summary(m, base) for m in handlers.list_models(deps)]}

    @router.get("/models/{name}/{version}")
    def get_model(
        name: str, version: str, request: Request, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        """Return one model version's summary and card."""
        found = handlers.get_model(deps, name, version)
        base = str(request.base_url).rstrip("/") + "/v1"
        return {**_summary(found, base), "card": found.card.raw}

    @router.post("/models/{name}/{version}/load", summary="Load and warm up a version (admin)")
    def load_model(
        name: str, version: str, request: Request, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        """Load a stored model version into this replica at run time."""
        found = handlers.load_model(deps, principal, name, version)
        return _summary(found, str(request.base_url).rstrip("/") + "/v1")

    @router.post("/models/{name}/{version}/unload", summary="Unload a version (admin)")
    def unload_model(
        name: str, version: str, request: Request, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        """Free a loaded model version; the pinned version of a required model is refused."""
        found = handlers.unload_model(deps, principal, name, version)
        return _summary(found, str(request.base_url).rstrip("/") + "/v1")

    @router.post("/models/{name}/{version}/pin", summary="Pin a loaded version (admin)")
    def pin_model(
        name: str, version: str, request: Request, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        """Serve this version when a request names none."""
        found = handlers.pin_model(deps, principal, name, version)
        return _summary(found, str(request.base_url).rstrip("/") + "/v1")

    @router.get("/models/{name}/{version}/card.json")
    def model_card(
        name: str,
        version: str,
        principal: CurrentPrincipal,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Download card.json exactly as stored."""
        found = handlers.get_model(deps, name, version)
        body = handlers.card_json(deps, found.card)
        etag = f'"{hashlib.sha256(body.encode()).hexdigest()}"'
        headers = {"ETag": etag}
        if _not_modified(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @router.get("/models/{name}/{version}/model.onnx")
    def model_file(
        name: str,
        version: str,
        principal: CurrentPrincipal,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Download the ONNX file (hash-checked) so the app can run the same model offline."""
        found = handlers.get_model(deps, name, version)
        if not found.card.sha256:
            raise ModelNotFound(f"model {name} {version} has no ONNX file (a measurement module)")
        etag = f'"{found.card.sha256}"'
        headers = {
            "ETag": etag,
            "X-Model-SHA256": found.card.sha256,
            "Digest": f"sha-256={_b64_sha256(found.card.sha256)}",
            "Content-Disposition": f'attachment; filename="{name}-{version}.onnx"',
        }
        if _not_modified(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        _, data = handlers.model_artifact(deps, name, version)
        return Response(data, media_type="application/octet-stream", headers=headers)

    return router


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
