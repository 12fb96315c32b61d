"""The reading station's pages: each translates a request, calls one use case, renders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sonobridge.common.problems import InvalidInput
from sonobridge.reporting.entrypoints.reading.login import LoginStart
from sonobridge.reporting.entrypoints.reading.sessions import (
    COOKIE,
    LANGUAGE_COOKIE,
    PendingLogin,
)
from sonobridge.reporting.entrypoints.reading.web import (
    PREFIX,
    CurrentVisit,
    Form,
    back_to,
    field,
    render,
    station_of,
)
from sonobridge.reporting.entrypoints.reading.words import LANGUAGES
from sonobridge.reporting.handlers import alerts, drafts, labels, reads, reports, signing, station
from sonobridge.reporting.ports import Dependencies, Work

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _deps(request: Request) -> Dependencies:
    found: Dependencies = request.app.state.deps
    return found


Deps = Annotated[Dependencies, Depends(_deps)]


def _safe_next(target: str | None) -> str:
    # Only our own pages: an open redirect would hand a logged-in browser to another site.
    if target and target.startswith(PREFIX) and not target.startswith("//"):
        return target
    return f"{PREFIX}/"


def _minutes_left(due: datetime | None, now: datetime) -> int | None:
    return None if due is None else int((due - now).total_seconds() // 60)


@router.get("/login")
def login(request: Request, next: str | None = None) -> Response:
    """Send the browser to the identity provider's login page (authorization code + PKCE)."""
    station = station_of(request)
    if station.client is None:
        return render(request, "error.html", None, status=503, code=503, heading="error", detail="")
    sessions = station.sessions
    session = sessions.get(request.cookies.get(COOKIE)) or sessions.create()
    start: LoginStart = station.client.begin(station.redirect_uri(request))
    sessions.remember(
        session, PendingLogin(start.state, start.nonce, start.code_verifier, _safe_next(next))
    )
    answer = RedirectResponse(start.url, status_code=303)
    _set_session_cookie(request, answer, session.id)
    return answer


@router.get("/callback")
def callback(request: Request, state: str = "", code: str = "") -> Response:
    """Finish a login: match the state, trade the code, rotate the session."""
    station = station_of(request)
    session = station.sessions.get(request.cookies.get(COOKIE))
    pending = session.pending.pop(state, None) if session else None
    if session is None or pending is None or not code or station.client is None:
        # A stale or forged callback: start over rather than explain.
        return RedirectResponse(f"{PREFIX}/login", status_code=303)
    tokens = station.client.exchange(
        code, pending.code_verifier, station.redirect_uri(request), pending.nonce
    )
    session = station.sessions.rotate(session)
    session.pending.clear()
    session.access_token = tokens.access_token
    session.refresh_token = tokens.refresh_token
    session.id_token = tokens.id_token
    session.token_expires_at = tokens.expires_at
    answer = RedirectResponse(pending.next_path, status_code=303)
    _set_session_cookie(request, answer, session.id)
    return answer


@router.post("/logout")
def logout(request: Request, visitor: CurrentVisit, form: Form) -> Response:
    """End the session here and at the identity provider (RP-initiated logout)."""
    station = station_of(request)
    station.sessions.end(visitor.session.id)
    after = station.home_url(request)
    target = station.client.logout_url(visitor.session.id_token, after) if station.client else None
    answer = RedirectResponse(target or after, status_code=303)
    answer.delete_cookie(COOKIE, path=PREFIX)
    return answer


@router.get("/language/{language}")
def choose_language(request: Request, language: str, next: str | None = None) -> Response:
    """Remember the visitor's language and go back."""
    if language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}")
    answer = RedirectResponse(_safe_next(next), status_code=303)
    answer.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax", path="/")
    return answer


@router.get("/", response_class=HTMLResponse)
def worklist(request: Request, deps: Deps, visitor: CurrentVisit) -> Response:
    """The visitor's worklist: priority, due time and clock, AI flags, probe warnings."""
    rows = station.station_worklist(deps, visitor.principal)
    now = deps.clock()
    return render(
        request,
        "worklist.html",
        visitor,
        rows=rows,
        now=now,
        minutes_left={r.read.read_id: _minutes_left(r.read.due_at, now) for r in rows},
    )


@router.get("/reads/{read_id}", response_class=HTMLResponse)
def exam(request: Request, read_id: str, deps: Deps, visitor: CurrentVisit) -> Response:
    """An exam: AI findings, images, verdicts, quality labels, draft, sign, report versions."""
    page = station.exam_page(deps, visitor.principal, read_id)
    read = page.detail.read
    now = deps.clock()
    verdicts = {v.finding_code: v for v in page.detail.verdicts}
    return render(
        request,
        "exam.html",
        visitor,
        page=page,
        read=read,
        exam=page.detail.exam,
        images=station.images_of(page.detail),
        verdicts=verdicts,
        labels={lb.sop_instance_uid: lb for lb in page.labels},
        minutes_left=_minutes_left(read.due_at, now),
        viewer_link=station_of(request).viewer_link(read.study_uid),
        mine=read.assigned_to == visitor.principal.user,
    )


@router.get("/reads/{read_id}/evidence")
def evidence(read_id: str, key: str, deps: Deps, visitor: CurrentVisit) -> Response:
    """One of the AI's overlay images of a read."""
    content, media_type = station.evidence(deps, visitor.principal, read_id, key)
    return Response(content, media_type=media_type, headers={"Cache-Control": "private"})


def _change(deps: Dependencies, visitor: CurrentVisit, use_case: Callable[[Work], object]) -> None:
    # Pages change state in one transaction, like the API, without an Idempotency-Key: a
    # repeated post meets the read's state machine (already claimed, already signed).
    def change(work: Work) -> dict[str, Any]:
        use_case(work)
        return {}

    deps.once(visitor.principal.user, None, 200, change)


@router.post("/reads/{read_id}/claim")
def claim(read_id: str, deps: Deps, visitor: CurrentVisit, form: Form) -> Response:
    """Claim a read."""
    station.require_station(visitor.principal)
    _change(deps, visitor, lambda work: reads.claim_read(work, deps, visitor.principal, read_id))
    return back_to(f"{PREFIX}/reads/{read_id}", "saved", visitor)


@router.post("/reads/{read_id}/draft")
def new_draft(read_id: str, deps: Deps, visitor: CurrentVisit, form: Form) -> Response:
    """Start a draft from the exam type's template in the chosen language."""
    language = field(form, "language", visitor.language)
    if language not in LANGUAGES:
        raise InvalidInput("unknown language")
    _change(
        deps,
        visitor,
        lambda work: drafts.create_draft(work, deps, visitor.principal, read_id, language),
    )
    return back_to(f"{PREFIX}/reads/{read_id}#draft", "saved", visitor)


@router.post("/reads/{read_id}/draft/edit")
def edit_draft(read_id: str, deps: Deps, visitor: CurrentVisit, form: Form) -> Response:
    """Save the draft's text (the revision guards against overwriting another edit)."""
    revision = field(form, "revision")
    drafts.edit_draft(
        deps,
        visitor.principal,
        read_id,
        changes={k: field(form, k) for k in ("title", "findings_text", "conclusion")},
        revision=int(revision) if revision.isdigit() else None,
    )
    return back_to(f"{PREFIX}/reads/{read_id}#draft", "saved", visitor)


@router.post("/reads/{read_id}/verdicts")
def verdicts(read_id: str, deps: Deps, visitor: CurrentVisit, form: Form) -> Response:
    """Record a verdict on each AI finding the form judged."""
    given = []
    for code, model in zip(form.get("finding_code", []), form.get("model_name", []), strict=False):
        chosen = field(form, f"verdict:{code}")
        if chosen:
            given.append(
                {
                    "finding_code": code,
                    "model_name": model or None,
                    "verdict": chosen,
                    "comment": field(form, f"comment:{code}"),
                }
            )
    if not given:
        raise InvalidInput("choose a verdict for at least one finding")
    drafts.record_verdicts(deps, visitor.principal, read_id, given)
    return back_to(f"{PREFIX}/reads/{read_id}#findings", "saved", visitor)


@router.post("/reads/{read_id}/quality-labels")
def quality_labels(read_id: str, deps: Deps, visitor: CurrentVisit, form: Form) -> Response:
    """Label each image's quality (the API's PUT quality-labels use case)."""
    given = []
    for sop in form.get("sop_instance_uid", []):
        chosen = field(form, f"label:{sop}")
        if chosen:
            reason = field(form, f"reason:{sop}") or None
            given.append({"sop_instance_uid": sop, "label": chosen, "reason": reason})
    if not given:
        raise InvalidInput("label at least one image")
    labels.label_quality(deps, visitor.principal, read_id, given)
    return back_to(f"{PREFIX}/reads/{read_id}#images", "saved", visitor)


@router.post("/reads/{read_id}/sign")
def sign(read_id: str, deps: Deps, visitor: CurrentVisit, form: Form) -> Response:
    """Sign the read's draft into a report version."""
    _change(deps, visitor, lambda work: signing.sign_read(work, deps, visitor.principal, read_id))
    return back_to(f"{PREFIX}/reads/{read_id}#report", "signed", visitor)


@router.post("/reports/{report_id}/amend")
def amend(report_id: str, deps: Deps, visitor: CurrentVisit, form: Form) -> Response:
    """Amend a signed report with a reason; the new version is signed at once."""
    read_id = field(form, "read_id")
    if not field(form, "reason").strip():
        raise InvalidInput("an amendment needs a reason")
    _change(
        deps,
        visitor,
        lambda work: signing.amend_report(
            work,
            deps,
            visitor.principal,
            report_id,
            conclusion=field(form, "conclusion") or None,
            findings_text=field(form, "findings_text") or None,
            findings=None,
            reason=field(form, "reason"),
        ),
    )
    return back_to(f"{PREFIX}/reads/{read_id}#report", "saved", visitor)


@router.get("/reports/{report_id}/versions/{version}/pdf")
def pdf(report_id: str, version: int, deps: Deps, visitor: CurrentVisit) -> Response:
    """Download a signed version's PDF."""
    station.require_station(visitor.principal)
    content = reports.report_document_bytes(deps, visitor.principal, report_id, version, "pdf")
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="report-v{version}.pdf"'},
    )


@router.get("/alerts", response_class=HTMLResponse)
def alert_list(request: Request, deps: Deps, visitor: CurrentVisit) -> Response:
    """Follow-up alerts of the institutions the visitor reads for."""
    station.require_station(visitor.principal)
    listed = alerts.list_alerts(deps, visitor.principal, ["open", "acknowledged"])
    return render(request, "alerts.html", visitor, alerts=listed)


@router.post("/alerts/{alert_id}/{action}")
def alert_action(
    alert_id: str,
    action: str,
    deps: Deps,
    visitor: CurrentVisit,
    form: Form,
) -> Response:
    """Acknowledge or close a follow-up alert."""
    note = field(form, "note")
    _change(
        deps,
        visitor,
        lambda work: alerts.change_alert(work, deps, visitor.principal, alert_id, action, note),
    )
    return back_to(f"{PREFIX}/alerts", "saved", visitor)


def _set_session_cookie(request: Request, answer: Response, session_id: str) -> None:
    station = station_of(request)
    answer.set_cookie(
        COOKIE,
        session_id,
        max_age=int(station.settings.session_hours * 3600),
        httponly=True,
        # Lax, not Strict: the identity provider's redirect back is a cross-site navigation.
        samesite="lax",
        secure=station.settings.secure_cookies,
        path=PREFIX,
    )
