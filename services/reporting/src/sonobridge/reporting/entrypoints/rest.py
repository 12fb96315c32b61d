"""REST /v1 for experts, physicians, coordinators and the app: translate, call a use case."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sonobridge.common.http import CurrentPrincipal
from sonobridge.common.inputs import INT32_MAX, Int64, PlausibleDatetime
from sonobridge.common.objects.ports import read_all
from sonobridge.common.problems import InvalidInput
from sonobridge.reporting import handlers
from sonobridge.reporting.handlers import Dependencies, Outcome, RequestKey


class DraftRequest(BaseModel):
    """Start a draft in a language."""

    language: Literal["zh", "en"] = "zh"


class DraftEdit(BaseModel):
    """Fields of a draft to change; absent fields stay."""

    title: str | None = None
    findings_text: str | None = None
    conclusion: str | None = None
    findings: list[dict[str, Any]] | None = None
    revision: Int64 | None = Field(None, description="revision the edit is based on")


class Verdict(BaseModel):
    """The reader's verdict on one AI finding."""

    finding_code: str = Field(min_length=1)
    model_name: str | None = None
    verdict: Literal["agree", "modify", "reject"]
    comment: str = ""


class VerdictsRequest(BaseModel):
    """Verdicts on AI findings."""

    verdicts: list[Verdict] = Field(min_length=1)


class ReassignRequest(BaseModel):
    """Who should take the read."""

    to_user: str = Field(min_length=1)


class AmendRequest(BaseModel):
    """A new version's changes and the reason."""

    reason: str = Field(min_length=1)
    conclusion: str | None = None
    findings_text: str | None = None
    findings: list[dict[str, Any]] | None = None


class AlertAction(BaseModel):
    """An optional note on an alert change."""

    note: str = ""


class ShiftIn(BaseModel):
    """One reader's duty on a worklist."""

    user: str = Field(min_length=1)
    role: Literal["primary", "backup"]
    starts_at: PlausibleDatetime
    ends_at: PlausibleDatetime
    institution: str | None = None


class RosterRequest(BaseModel):
    """A worklist's whole roster."""

    shifts: list[ShiftIn]


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
"""Clients send one per create; a retry with the same key returns the first response."""


def request_key(key: str | None, request: Request, body: BaseModel | None) -> RequestKey | None:
    """Pair an Idempotency-Key with a digest of the method, path and parsed body it came with."""
    if key is None:
        return None
    payload = body.model_dump(mode="json") if body is not None else None
    canonical = json.dumps(
        [request.method, request.url.path, payload], sort_keys=True, separators=(",", ":")
    )
    return RequestKey(key, hashlib.sha256(canonical.encode()).hexdigest())


def answer(outcome: Outcome) -> JSONResponse:
    """Render a change's outcome; a replay says so in `Idempotent-Replayed`."""
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)


IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match")]
"""The ETags a polling client already holds."""


def entity_tag(content: bytes) -> str:
    """Return the strong ETag of a representation: a digest of exactly the bytes sent."""
    return f'"{hashlib.sha256(content).hexdigest()[:32]}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """True when If-None-Match names `etag` (weak comparison, as RFC 9110 asks) or is `*`."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in (t.removeprefix("W/") for t in tags)


def polled(body: dict[str, Any], if_none_match: str | None) -> Response:
    """Answer a polled read with its ETag; 304 without a body when the client's copy is current."""
    # The tag hashes the representation itself, so it moves exactly when what the client would
    # see moves: a claim, a new draft revision, an amendment, an `overdue` flag turning true.
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    etag = entity_tag(content)
    # no-cache: shared caches must not answer for another reader; clients revalidate each poll.
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)


def create_router(deps: Dependencies) -> APIRouter:
    """Build the /v1 routes over the use cases."""
    router = APIRouter(prefix="/v1")

    @router.get("/worklists")
    def worklists(principal: CurrentPrincipal, if_none_match: IfNoneMatch = None) -> Response:
        return polled({"worklists": handlers.list_worklists(deps, principal)}, if_none_match)

    @router.get("/reads")
    def reads(
        principal: CurrentPrincipal,
        worklist: str | None = None,
        state: Annotated[list[str] | None, Query()] = None,
        assigned_to: str | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        page, following = handlers.list_reads(
            deps,
            principal,
            worklist=worklist,
            states=state,
            assigned_to=assigned_to,
            cursor=cursor,
            limit=limit,
        )
        return polled({"reads": page, "next_cursor": following}, if_none_match)

    @router.get("/worklists/{worklist}/reads")
    def worklist_reads(
        worklist: str,
        principal: CurrentPrincipal,
        state: Annotated[list[str] | None, Query()] = None,
        assigned_to: str | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        return reads(principal, worklist, state, assigned_to, cursor, limit, if_none_match)

    @router.get("/reads/{read_id}")
    def read(
        read_id: str, principal: CurrentPrincipal, if_none_match: IfNoneMatch = None
    ) -> Response:
        return polled(handlers.view_read(deps, principal, read_id), if_none_match)

    @router.post("/reads/{read_id}/claim")
    def claim(
        read_id: str,
        request: Request,
        principal: CurrentPrincipal,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        key = request_key(idempotency_key, request, None)
        return answer(handlers.claim_read(deps, principal, read_id, key))

    @router.post("/reads/{read_id}/release")
    def release(
        read_id: str,
        request: Request,
        principal: CurrentPrincipal,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        key = request_key(idempotency_key, request, None)
        return answer(handlers.release_read(deps, principal, read_id, key))

    @router.post("/reads/{read_id}/reassign")
    def reassign(
        read_id: str,
        body: ReassignRequest,
        request: Request,
        principal: CurrentPrincipal,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        key = request_key(idempotency_key, request, body)
        return answer(handlers.reassign_read(deps, principal, read_id, body.to_user, key))

    @router.post("/reads/{read_id}/draft", status_code=201)
    def new_draft(
        read_id: str,
        body: DraftRequest,
        request: Request,
        principal: CurrentPrincipal,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        key = request_key(idempotency_key, request, body)
        return answer(handlers.create_draft(deps, principal, read_id, body.language, key))

    @router.patch("/reads/{read_id}/draft")
    def change_draft(read_id: str, body: DraftEdit, principal: CurrentPrincipal) -> dict[str, Any]:
        changes = body.model_dump(exclude={"revision"})
        return handlers.edit_draft(
            deps, principal, read_id, changes=changes, revision=body.revision
        )

    @router.put("/reads/{read_id}/verdicts")
    def verdicts(
        read_id: str, body: VerdictsRequest, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        stored = handlers.record_verdicts(
            deps, principal, read_id, [v.model_dump() for v in body.verdicts]
        )
        return {"verdicts": stored}

    @router.post("/reads/{read_id}/sign", status_code=201)
    def sign(
        read_id: str,
        request: Request,
        principal: CurrentPrincipal,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        key = request_key(idempotency_key, request, None)
        return answer(handlers.sign_read(deps, principal, read_id, key))

    @router.get("/reports/{report_id}")
    def report(
        report_id: str,
        principal: CurrentPrincipal,
        version: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        return polled(handlers.get_report(deps, principal, report_id, version), if_none_match)

    @router.post("/reports/{report_id}/amend", status_code=201)
    def amend(
        report_id: str,
        body: AmendRequest,
        request: Request,
        principal: CurrentPrincipal,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        key = request_key(idempotency_key, request, body)
        outcome = handlers.amend_report(
            deps,
            principal,
            report_id,
            conclusion=body.conclusion,
            findings_text=body.findings_text,
            findings=body.findings,
            reason=body.reason,
            key=key,
        )
        return answer(outcome)

    @router.get("/reports/{report_id}/versions/{version}/pdf")
    def pdf(report_id: str, version: int, principal: CurrentPrincipal) -> Response:
        key = handlers.report_object_key(deps, principal, report_id, version, "pdf")
        return Response(read_all(deps.store, key), media_type="application/pdf")

    @router.get("/reports/{report_id}/versions/{version}/json")
    def document(report_id: str, version: int, principal: CurrentPrincipal) -> Response:
        key = handlers.report_object_key(deps, principal, report_id, version, "json")
        return Response(read_all(deps.store, key), media_type="application/json")

    @router.get("/reports/{report_id}/fhir")
    def fhir(
        report_id: str,
        principal: CurrentPrincipal,
        version: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    ) -> Response:
        bundle = handlers.report_fhir(deps, principal, report_id, version)
        return Response(json.dumps(bundle, ensure_ascii=False), media_type="application/fhir+json")

    @router.get("/alerts")
    def alerts(
        principal: CurrentPrincipal,
        state: Annotated[list[str] | None, Query()] = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        return polled({"alerts": handlers.list_alerts(deps, principal, state)}, if_none_match)

    @router.post("/alerts/{alert_id}/acknowledge")
    def acknowledge(
        alert_id: str,
        request: Request,
        principal: CurrentPrincipal,
        body: AlertAction | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        key = request_key(idempotency_key, request, body)
        note = body.note if body else ""
        return answer(handlers.change_alert(deps, principal, alert_id, "acknowledge", note, key))

    @router.post("/alerts/{alert_id}/close")
    def close(
        alert_id: str,
        request: Request,
        principal: CurrentPrincipal,
        body: AlertAction | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        key = request_key(idempotency_key, request, body)
        note = body.note if body else ""
        return answer(handlers.change_alert(deps, principal, alert_id, "close", note, key))

    @router.get("/notifications")
    def feed(
        principal: CurrentPrincipal,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        after = handlers.decode_cursor(cursor)
        items = handlers.notifications(deps, principal, after, limit)
        last = items[-1]["id"] if items else after
        body = {"notifications": items, "next_cursor": handlers.encode_cursor(last)}
        return polled(body, if_none_match)

    @router.get("/notifications/stream")
    async def stream(
        request: Request,
        principal: CurrentPrincipal,
        cursor: str | None = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        after = handlers.decode_cursor(last_event_id or cursor)
        limit_s = deps.settings.sse_max_seconds

        async def events() -> AsyncIterator[bytes]:
            nonlocal after
            # Bounded streams: the client reconnects with Last-Event-ID, so shutdown never waits.
            ends = time.monotonic() + limit_s
            yield b"retry: 1000\n\n"
            while time.monotonic() < ends and not await request.is_disconnected():
                items = await run_in_threadpool(handlers.notifications, deps, principal, after, 100)
                for item in items:
                    after = item["id"]
                    data = json.dumps(item, ensure_ascii=False)
                    yield (
                        f"id: {handlers.encode_cursor(after)}\nevent: {item['kind']}\n"
                        f"data: {data}\n\n"
                    ).encode()
                if not items:
                    yield b": keep-alive\n\n"
                    await asyncio.sleep(0.5)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    @router.get("/rosters/{worklist}")
    def roster(worklist: str, principal: CurrentPrincipal) -> dict[str, Any]:
        return {"worklist": worklist, "shifts": handlers.get_roster(deps, principal, worklist)}

    @router.put("/rosters/{worklist}")
    def set_roster(
        worklist: str, body: RosterRequest, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        for s in body.shifts:
            if s.starts_at.tzinfo is None or s.ends_at.tzinfo is None:
                raise InvalidInput("shift times need a UTC offset")
        shifts = handlers.set_roster(
            deps, principal, worklist, [s.model_dump() for s in body.shifts]
        )
        return {"worklist": worklist, "shifts": shifts}

    @router.get("/audit")
    def audit(
        principal: CurrentPrincipal, read_id: str | None = None, report_id: str | None = None
    ) -> dict[str, Any]:
        return {
            "records": handlers.audit_trail(deps, principal, read_id=read_id, report_id=report_id)
        }

    return router
