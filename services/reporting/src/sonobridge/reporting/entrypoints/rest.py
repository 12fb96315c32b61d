"""REST /v1 for experts, physicians, coordinators and the app: translate, call a use case."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from sonobridge.common.conditional import IfNoneMatch, polled
from sonobridge.common.http import CurrentPrincipal, app_deps
from sonobridge.common.inputs import INT32_MAX
from sonobridge.common.problems import InvalidInput
from sonobridge.reporting.entrypoints import views
from sonobridge.reporting.entrypoints.bodies import (
    AlertAction,
    AmendRequest,
    DraftEdit,
    DraftRequest,
    QualityLabelsRequest,
    ReassignRequest,
    RosterRequest,
    VerdictsRequest,
)
from sonobridge.reporting.entrypoints.http import Keyed, KeyedRequest
from sonobridge.reporting.handlers import alerts, drafts, labels, reads, reports, rosters, signing
from sonobridge.reporting.ports import Dependencies, Work

Deps = Annotated[Dependencies, Depends(app_deps)]
router = APIRouter(prefix="/v1")


@router.get("/worklists")
def worklists(
    deps: Deps, principal: CurrentPrincipal, if_none_match: IfNoneMatch = None
) -> Response:
    listed = reads.list_worklists(deps, principal)
    return polled({"worklists": [views.worklist_view(s, n) for s, n in listed]}, if_none_match)


@router.get("/reads")
def list_reads(
    deps: Deps,
    principal: CurrentPrincipal,
    worklist: str | None = None,
    state: Annotated[list[str] | None, Query()] = None,
    assigned_to: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    if_none_match: IfNoneMatch = None,
) -> Response:
    page, following = reads.list_reads(
        deps,
        principal,
        worklist=worklist,
        states=state,
        assigned_to=assigned_to,
        cursor=cursor,
        limit=limit,
    )
    now = deps.clock()
    body = {"reads": [views.read_summary(r, now) for r in page], "next_cursor": following}
    return polled(body, if_none_match)


@router.get("/worklists/{worklist}/reads")
def worklist_reads(
    worklist: str,
    deps: Deps,
    principal: CurrentPrincipal,
    state: Annotated[list[str] | None, Query()] = None,
    assigned_to: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    if_none_match: IfNoneMatch = None,
) -> Response:
    return list_reads(deps, principal, worklist, state, assigned_to, cursor, limit, if_none_match)


@router.get("/reads/{read_id}")
def read(
    read_id: str, deps: Deps, principal: CurrentPrincipal, if_none_match: IfNoneMatch = None
) -> Response:
    detail = reads.view_read(deps, principal, read_id)
    body = views.read_detail(detail, deps.clock(), deps.settings.wado_base_url)
    return polled(body, if_none_match)


@router.post("/reads/{read_id}/claim")
def claim(read_id: str, keyed: Keyed) -> JSONResponse:
    deps, principal = keyed.deps, keyed.principal

    def change(work: Work) -> dict[str, Any]:
        return views.read_summary(reads.claim_read(work, deps, principal, read_id), deps.clock())

    return keyed.run(200, change)


@router.post("/reads/{read_id}/release")
def release(read_id: str, keyed: Keyed) -> JSONResponse:
    deps, principal = keyed.deps, keyed.principal

    def change(work: Work) -> dict[str, Any]:
        return views.read_summary(reads.release_read(work, deps, principal, read_id), deps.clock())

    return keyed.run(200, change)


@router.post("/reads/{read_id}/reassign")
def reassign(read_id: str, body: ReassignRequest, keyed: Keyed) -> JSONResponse:
    deps, principal = keyed.deps, keyed.principal

    def change(work: Work) -> dict[str, Any]:
        moved = reads.reassign_read(work, deps, principal, read_id, body.to_user)
        return views.read_summary(moved, deps.clock())

    return keyed.run(200, change, body)


@router.post("/reads/{read_id}/draft", status_code=201)
def new_draft(read_id: str, body: DraftRequest, keyed: Keyed) -> JSONResponse:
    deps, principal = keyed.deps, keyed.principal

    def change(work: Work) -> dict[str, Any]:
        return views.draft_view(drafts.create_draft(work, deps, principal, read_id, body.language))

    return keyed.run(201, change, body)


@router.patch("/reads/{read_id}/draft")
def change_draft(
    read_id: str, body: DraftEdit, deps: Deps, principal: CurrentPrincipal
) -> dict[str, Any]:
    changes = body.model_dump(exclude={"revision"})
    edited = drafts.edit_draft(deps, principal, read_id, changes=changes, revision=body.revision)
    return views.draft_view(edited)


@router.put("/reads/{read_id}/verdicts")
def verdicts(
    read_id: str, body: VerdictsRequest, deps: Deps, principal: CurrentPrincipal
) -> dict[str, Any]:
    given = [v.model_dump() for v in body.verdicts]
    stored = drafts.record_verdicts(deps, principal, read_id, given)
    return {"verdicts": [views.verdict_view(v) for v in stored]}


@router.put("/reads/{read_id}/quality-labels")
def quality_labels(
    read_id: str, body: QualityLabelsRequest, deps: Deps, principal: CurrentPrincipal
) -> dict[str, Any]:
    given = [label.model_dump() for label in body.labels]
    stored = labels.label_quality(deps, principal, read_id, given)
    return {"labels": [views.quality_label_view(label) for label in stored]}


@router.post("/reads/{read_id}/sign", status_code=201)
def sign(read_id: str, keyed: Keyed) -> JSONResponse:
    deps, principal = keyed.deps, keyed.principal

    def change(work: Work) -> dict[str, Any]:
        return views.version_view(signing.sign_read(work, deps, principal, read_id))

    return keyed.run(201, change)


@router.get("/reports/{report_id}")
def report(
    report_id: str,
    deps: Deps,
    principal: CurrentPrincipal,
    version: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    if_none_match: IfNoneMatch = None,
) -> Response:
    chosen = reports.get_report(deps, principal, report_id, version)
    return polled(views.chosen_view(chosen), if_none_match)


@router.post("/reports/{report_id}/amend", status_code=201)
def amend(report_id: str, body: AmendRequest, keyed: Keyed) -> JSONResponse:
    deps, principal = keyed.deps, keyed.principal

    def change(work: Work) -> dict[str, Any]:
        amended = signing.amend_report(
            work,
            deps,
            principal,
            report_id,
            conclusion=body.conclusion,
            findings_text=body.findings_text,
            findings=body.findings,
            reason=body.reason,
        )
        return views.version_view(amended)

    return keyed.run(201, change, body)


@router.get("/reports/{report_id}/versions/{version}/pdf")
def pdf(report_id: str, version: int, deps: Deps, principal: CurrentPrincipal) -> Response:
    content = reports.report_document_bytes(deps, principal, report_id, version, "pdf")
    return Response(content, media_type="application/pdf")


@router.get("/reports/{report_id}/versions/{version}/json")
def document(report_id: str, version: int, deps: Deps, principal: CurrentPrincipal) -> Response:
    content = reports.report_document_bytes(deps, principal, report_id, version, "json")
    return Response(content, media_type="application/json")


@router.get("/reports/{report_id}/fhir")
def fhir(
    report_id: str,
    deps: Deps,
    principal: CurrentPrincipal,
    version: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> Response:
    bundle = reports.report_fhir(deps, principal, report_id, version)
    return Response(json.dumps(bundle, ensure_ascii=False), media_type="application/fhir+json")


@router.get("/alerts")
def list_alerts(
    deps: Deps,
    principal: CurrentPrincipal,
    state: Annotated[list[str] | None, Query()] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    listed = alerts.list_alerts(deps, principal, state)
    return polled({"alerts": [views.alert_view(a) for a in listed]}, if_none_match)


def _change_alert(
    alert_id: str, action: str, keyed: KeyedRequest, body: AlertAction | None
) -> JSONResponse:
    deps, principal = keyed.deps, keyed.principal
    note = body.note if body else ""

    def change(work: Work) -> dict[str, Any]:
        return views.alert_view(alerts.change_alert(work, deps, principal, alert_id, action, note))

    return keyed.run(200, change, body)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge(alert_id: str, keyed: Keyed, body: AlertAction | None = None) -> JSONResponse:
    return _change_alert(alert_id, "acknowledge", keyed, body)


@router.post("/alerts/{alert_id}/close")
def close(alert_id: str, keyed: Keyed, body: AlertAction | None = None) -> JSONResponse:
    return _change_alert(alert_id, "close", keyed, body)


@router.get("/notifications")
def feed(
    deps: Deps,
    principal: CurrentPrincipal,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    if_none_match: IfNoneMatch = None,
) -> Response:
    after = alerts.decode_cursor(cursor)
    items = alerts.notifications(deps, principal, after, limit)
    last = items[-1].id if items else after
    body = {
        "notifications": [views.notification_view(n) for n in items],
        "next_cursor": alerts.encode_cursor(last),
    }
    return polled(body, if_none_match)


@router.get("/notifications/stream")
async def stream(
    request: Request,
    deps: Deps,
    principal: CurrentPrincipal,
    cursor: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    after = alerts.decode_cursor(last_event_id or cursor)
    limit_s = deps.settings.sse_max_seconds

    async def events() -> AsyncIterator[bytes]:
        nonlocal after
        # Bounded streams: the client reconnects with Last-Event-ID, so shutdown never waits.
        ends = time.monotonic() + limit_s
        yield b"retry: 1000\n\n"
        while time.monotonic() < ends and not await request.is_disconnected():
            items = await run_in_threadpool(alerts.notifications, deps, principal, after, 100)
            for item in items:
                after = item.id
                data = json.dumps(views.notification_view(item), ensure_ascii=False)
                yield (
                    f"id: {alerts.encode_cursor(after)}\nevent: {item.kind}\ndata: {data}\n\n"
                ).encode()
            if not items:
                yield b": keep-alive\n\n"
                await asyncio.sleep(0.5)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.get("/rosters/{worklist}")
def roster(worklist: str, deps: Deps, principal: CurrentPrincipal) -> dict[str, Any]:
    shifts = rosters.get_roster(deps, principal, worklist)
    return {"worklist": worklist, "shifts": [views.shift_view(s) for s in shifts]}


@router.put("/rosters/{worklist}")
def set_roster(
    worklist: str, body: RosterRequest, deps: Deps, principal: CurrentPrincipal
) -> dict[str, Any]:
    for s in body.shifts:
        if s.starts_at.tzinfo is None or s.ends_at.tzinfo is None:
            raise InvalidInput("shift times need a UTC offset")
    given = [s.model_dump() for s in body.shifts]
    shifts = rosters.set_roster(deps, principal, worklist, given)
    return {"worklist": worklist, "shifts": [views.shift_view(s) for s in shifts]}


@router.get("/audit")
def audit(
    deps: Deps,
    principal: CurrentPrincipal,
    read_id: str | None = None,
    report_id: str | None = None,
) -> dict[str, Any]:
    records = rosters.audit_trail(deps, principal, read_id=read_id, report_id=report_id)
    return {"records": [views.audit_view(r) for r in records]}
