"""The station's web plumbing: who is visiting, CSRF-checked forms, pages and error pages."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from sonobridge.common.auth import Principal, TokenVerifier
from sonobridge.common.http import problem_response
from sonobridge.common.problems import Forbidden, Problem, Unauthenticated
from sonobridge.reporting.entrypoints.reading.login import OidcClient
from sonobridge.reporting.entrypoints.reading.sessions import (
    COOKIE,
    LANGUAGE_COOKIE,
    BrowserSession,
    SessionStore,
)
from sonobridge.reporting.entrypoints.reading.words import pick_language, translator
from sonobridge.reporting.settings import ReadingSettings

PREFIX = "/reading"
HERE = Path(__file__).parent
MAX_FORM_BYTES = 256 * 1024

if TYPE_CHECKING:
    from jinja2 import Environment


class LoginNeeded(Exception):
    """The visitor has no (longer a) login; the page sends them to the identity provider."""


@dataclass
class Station:
    """What the pages share: settings, the OIDC client, the sessions and the templates."""

    settings: ReadingSettings
    client: OidcClient | None
    sessions: SessionStore

    @classmethod
    def build(cls, settings: ReadingSettings, client: OidcClient | None = None) -> Station:
        """Build from settings; no issuer configured means no login (the pages say so)."""
        if client is None and settings.issuer_url:
            client = OidcClient(settings.issuer_url, settings.client_id)
        return cls(settings, client, SessionStore(settings.session_hours * 3600))

    @cached_property
    def templates(self) -> Environment:
        """The page templates, loaded with jinja2 by the first page (not at start-up)."""
        # jinja2 would cost the node ~0.02 CPU s before it is ready, for pages nobody asked for.
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        return Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
        )

    def redirect_uri(self, request: Request) -> str:
        """Where the identity provider sends the browser back."""
        base = self.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
        return f"{base}{PREFIX}/callback"

    def home_url(self, request: Request) -> str:
        """The station's absolute worklist URL (where logout comes back to)."""
        base = self.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
        return f"{base}{PREFIX}/"

    def viewer_link(self, study_uid: str) -> str | None:
        """The OHIF link that opens one study, when a viewer is configured."""
        base = self.settings.viewer_url.rstrip("/")
        return f"{base}/viewer?StudyInstanceUIDs={quote(study_uid)}" if base else None


@dataclass
class Visit:
    """A logged-in visitor: the principal from their access token and their session."""

    principal: Principal
    session: BrowserSession
    language: str


def station_of(request: Request) -> Station:
    """The station the app was built with."""
    found: Station = request.app.state.station
    return found


def language_of(request: Request) -> str:
    """The visitor's language: their choice, else Accept-Language, else Chinese."""
    return pick_language(
        request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )


def _fresh_token(station: Station, session: BrowserSession) -> str:
    # Refresh a little early, so a page never carries a token that expires mid-request.
    if session.token_expires_at < time.time() + 15 and session.refresh_token and station.client:
        tokens = station.client.refresh(session.refresh_token)
        session.access_token = tokens.access_token
        session.refresh_token = tokens.refresh_token or session.refresh_token
        session.id_token = tokens.id_token or session.id_token
        session.token_expires_at = tokens.expires_at
    if session.access_token is None:
        raise LoginNeeded()
    return session.access_token


def visit(request: Request) -> Visit:
    """FastAPI dependency: the logged-in visitor, or a redirect to the login page."""
    station = station_of(request)
    session = station.sessions.get(request.cookies.get(COOKIE))
    if session is None or not session.logged_in:
        raise LoginNeeded()
    verifier: TokenVerifier | None = request.app.state.verifier
    if verifier is None:
        raise Unauthenticated("this service has no token verifier configured")
    try:
        principal = verifier.verify(_fresh_token(station, session))
    except Unauthenticated as exc:
        station.sessions.end(session.id)
        raise LoginNeeded() from exc
    return Visit(principal, session, language_of(request))


CurrentVisit = Annotated[Visit, Depends(visit)]


async def posted(request: Request, visitor: CurrentVisit) -> dict[str, list[str]]:
    """FastAPI dependency: a urlencoded form whose CSRF token matches the session's."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Forbidden("form too large")
    fields: dict[str, list[str]] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, []).append(value)
    if fields.get("csrf", [""])[0] != visitor.session.csrf:
        raise Forbidden("the form's CSRF token does not match this session")
    return fields


Form = Annotated[dict[str, list[str]], Depends(posted)]


def field(form: dict[str, list[str]], name: str, default: str = "") -> str:
    """The first value of a form field."""
    return form.get(name, [default])[0]


def render(
    request: Request,
    template: str,
    visitor: Visit | None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page in the visitor's language, with the CSRF token forms need."""
    station = station_of(request)
    language = visitor.language if visitor else language_of(request)
    flash = None
    if visitor is not None:
        flash, visitor.session.flash = visitor.session.flash, None
    html = station.templates.get_template(template).render(
        t=translator(language),
        lang=language,
        prefix=PREFIX,
        visitor=visitor,
        csrf=visitor.session.csrf if visitor else "",
        flash=flash,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP},
    )


# Every asset is the product's own: scripts, styles and images come from this origin only.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self' *"
)


def back_to(path: str, flash: str | None, visitor: Visit) -> RedirectResponse:
    """Post/redirect/get: answer a form with a redirect and a message for the next page."""
    visitor.session.flash = flash
    return RedirectResponse(path, status_code=303)


def install_error_pages(app: FastAPI) -> None:
    """Answer refusals on station pages with an HTML page (no data); the API keeps problem+json."""

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        if not request.url.path.startswith(PREFIX):
            return problem_response(exc, request.url.path)
        if exc.status == 401:
            return _to_login(request)
        return render(
            request,
            "error.html",
            None,
            status=exc.status,
            code=exc.status,
            heading={403: "forbidden", 404: "not_found"}.get(exc.status, "error"),
            # A refusal's detail names roles or states, never patient data.
            detail=exc.detail if exc.status != 403 else "",
        )

    async def login_needed(request: Request, _exc: Exception) -> Response:
        return _to_login(request)

    app.add_exception_handler(Problem, problem)
    app.add_exception_handler(LoginNeeded, login_needed)


def _to_login(request: Request) -> Response:
    if request.method != "GET":
        return JSONResponse({"detail": "log in again"}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)
