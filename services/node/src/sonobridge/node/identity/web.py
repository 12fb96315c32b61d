"""HTTP endpoints of the single node's OpenID provider: discovery, login page, token, logout."""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Error, OAuth2Payload
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.middleware.cors import CORSMiddleware

from sonobridge.common.auth import TokenVerifier, one_authorization
from sonobridge.common.problems import Unauthenticated
from sonobridge.node.identity.accounts import LoginThrottle
from sonobridge.node.identity.login_page import LABELS, language, logged_out_page, login_page
from sonobridge.node.identity.provider import (
    SCOPES,
    LoginSession,
    OpenIDProvider,
    person_claims,
)

audit = logging.getLogger("sonobridge.identity.audit")

SESSION_COOKIE = "sonobridge_login"
CSRF_COOKIE = "sonobridge_login_csrf"
_LOGIN_FIELDS = frozenset({"username", "password", "csrf"})
LOOPBACK_ORIGIN = r"https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The pages load nothing and may not be framed (clickjacking). No form-action: browsers apply it
# to the redirect back to the client after the login POST.
_PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = dict(reversed(pairs))
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    """An Authlib request from already-parsed query or form pairs."""

    def __init__(self, method: str, uri: str, headers: Any, pairs: list[tuple[str, str]]) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _Payload(pairs)

    @property
    def args(self) -> dict[str, str]:
        return dict(self.payload.data)

    @property
    def form(self) -> dict[str, str]:
        return dict(self.payload.data)


async def _pairs(request: Request) -> list[tuple[str, str]]:
    if request.method == "GET":
        return list(request.query_params.multi_items())
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qsl(body, keep_blank_values=True)


_NOT_PRINTABLE = "OAuth parameters must be printable ASCII"


def _printable(pairs: list[tuple[str, str]]) -> bool:
    # Authlib refuses to describe an error that quotes other characters (a ValueError, so a 500):
    # OAuth parameters are ASCII (RFC 6749 appendix A), so such a request is malformed anyway.
    return all(" " <= c <= "~" for k, v in pairs for c in k + v)


def _readable_basic(authorization: str | None) -> bool:
    # Authlib decodes Basic credentials as UTF-8 unguarded: anything else would be a 500.
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return True
    try:
        base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return True


def _authlib_response(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    merged = {**dict(headers), **_NO_STORE}
    if status == 302:
        return RedirectResponse(merged.pop("Location"), status_code=302, headers=merged)
    if isinstance(body, dict):
        merged.pop("Content-Type", None)
        return JSONResponse(body, status_code=status, headers=merged)
    return Response(body or "", status_code=status, headers=merged)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers=_NO_STORE)


def _event(action: str, outcome: str, **fields: Any) -> None:
    # User ids and client ids only: the provider never sees patient data.
    audit.info(
        "login %s %s", action, outcome, extra={"action": action, "outcome": outcome, **fields}
    )


def build_app(
    provider: OpenIDProvider,
    verifier: TokenVerifier,
    throttle: LoginThrottle,
    origins: Iterable[str] = (),
) -> FastAPI:
    """Return the provider's ASGI app; browser clients on loopback or `origins` may call it."""
    app = FastAPI(title="SonoBridge single-node login", docs_url=None, redoc_url=None)
    # Browser apps (OHIF, the reading page) fetch discovery, keys, tokens and userinfo by XHR
    # from their own origin; the login page itself is a top-level navigation and needs none.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_origin_regex=LOOPBACK_ORIGIN,
        allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type"],
    )
    issuer = provider.issuer_url
    secure_cookies = issuer.startswith("https://")

    def current_session(request: Request) -> LoginSession | None:
        session = provider.grants.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            return None
        person = provider.people.person(session.person.user)
        if person is None or person.password_hash is None:
            return None
        return LoginSession(session.id, person, session.auth_time)

    def show_login(
        request: Request, params: dict[str, str], status: int = 200, error: str | None = None
    ) -> HTMLResponse:
        lang = language(params.get("ui_locales"), request.headers.get("accept-language"))
        csrf = secrets.token_urlsafe(24)
        page = login_page(
            action=f"{issuer}/authorize",
            request_params={k: v for k, v in params.items() if k not in _LOGIN_FIELDS},
            csrf=csrf,
            lang=lang,
            user=params.get("username", ""),
            error=error,
        )
        response = HTMLResponse(page, status_code=status, headers=_PAGE_HEADERS)
        response.set_cookie(
            CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=secure_cookies
        )
        return response

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "end_session_endpoint": f"{issuer}/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "client_secret_post",
            ],
            "scopes_supported": list(SCOPES),
            "claims_supported": [
                "sub",
                "preferred_username",
                "name",
                "roles",
                "institution",
                "consortium",
            ],
            "ui_locales_supported": ["zh-CN", "en"],
        }

    @app.get("/jwks")
    @app.get("/.well-known/jwks.json")
    def jwks() -> dict[str, Any]:
        return provider.signer.jwks()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "identity"}

    @app.api_route("/authorize", methods=["GET", "POST"])
    async def authorize(request: Request) -> Response:
        pairs = await _pairs(request)
        params = dict(reversed(pairs))
        oauth_pairs = [(k, v) for k, v in pairs if k not in _LOGIN_FIELDS]
        if not _printable(oauth_pairs):
            return _oauth_error(400, "invalid_request", _NOT_PRINTABLE)
        oauth = _Request(request.method, str(request.url), request.headers, oauth_pairs)
        session = current_session(request)
        logging_in = request.method == "POST" and "username" in params
        try:
            grant = provider.get_consent_grant(oauth, end_user=None if logging_in else session)
        except OAuth2Error as error:
            return _authlib_response(provider.handle_error_response(oauth, error))
        client_id = oauth.payload.client_id
        lang = language(params.get("ui_locales"), request.headers.get("accept-language"))
        if logging_in:
            csrf = request.cookies.get(CSRF_COOKIE, "")
            if not csrf or not secrets.compare_digest(csrf, params.get("csrf", "")):
                return show_login(request, params, 400, LABELS[lang]["expired"])
            user = params.get("username", "").strip()
            address = f"address:{request.client.host if request.client else '-'}"
            wait = throttle.retry_after(f"user:{user}", address)
            if wait > 0:
                _event("password", "throttled", user=user, client_id=client_id)
                text = LABELS[lang]["throttled"].format(minutes=max(1, round(wait / 60)))
                return show_login(request, params, 429, text)
            person = provider.people.authenticate(user, params.get("password", ""))
            if person is None:
                throttle.failed(f"user:{user}", address)
                _event("password", "rejected", user=user, client_id=client_id)
                return show_login(request, params, 401, LABELS[lang]["bad_password"])
            throttle.succeeded(f"user:{user}")
            session = provider.grants.open_session(person)
            _event("password", "ok", user=person.user, client_id=client_id)
        elif session is None or getattr(grant, "prompt", None) == "login":
            return show_login(request, params)
        result = provider.create_authorization_response(oauth, grant_user=session, grant=grant)
        response = _authlib_response(result)
        if logging_in:
            response.set_cookie(
                SESSION_COOKIE, session.id, httponly=True, samesite="lax", secure=secure_cookies
            )
            response.delete_cookie(CSRF_COOKIE)
        return response

    @app.post("/token")
    async def token(request: Request) -> Response:
        pairs = await _pairs(request)
        if not _printable(pairs):
            return _oauth_error(400, "invalid_request", _NOT_PRINTABLE)
        if not _readable_basic(request.headers.get("authorization")):
            return _oauth_error(401, "invalid_client", "unreadable Basic credentials")
        oauth = _Request("POST", str(request.url), request.headers, pairs)
        response = _authlib_response(provider.create_token_response(oauth))
        grant_type = oauth.payload.grant_type
        outcome = "ok" if response.status_code == 200 else f"rejected:{response.status_code}"
        _event(f"token:{grant_type}", outcome, client_id=oauth.payload.client_id)
        return response

    @app.api_route("/userinfo", methods=["GET", "POST"])
    def userinfo(request: Request) -> Response:
        try:
            principal = verifier.verify_header(
                one_authorization(request.headers.getlist("authorization"))
            )
        except Unauthenticated as exc:
            return JSONResponse(
                {"error": "invalid_token", "error_description": exc.detail},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        person = provider.people.person(principal.user)
        if person is None:
            claims = {k: principal.claims[k] for k in ("sub", "roles") if k in principal.claims}
            return JSONResponse(claims)
        return JSONResponse(person_claims(person, provider.consortium_id()))

    @app.api_route("/logout", methods=["GET", "POST"])
    async def end_session(request: Request) -> Response:
        params = dict(reversed(await _pairs(request)))
        lang = language(params.get("ui_locales"), request.headers.get("accept-language"))
        ended = provider.grants.end_session(request.cookies.get(SESSION_COOKIE, ""))
        client_id = params.get("client_id") or _hinted_client(params.get("id_token_hint"))
        client = provider.query_client(client_id or "")
        target = params.get("post_logout_redirect_uri")
        if target and client is not None and client.check_redirect_uri(target):
            state = params.get("state")
            location = f"{target}{'&' if '?' in target else '?'}{urlencode({'state': state})}"
            response: Response = RedirectResponse(
                location if state else target, status_code=302, headers=_NO_STORE
            )
        elif target:
            return _oauth_error(400, "invalid_request", "post_logout_redirect_uri is not allowed")
        else:
            response = HTMLResponse(logged_out_page(lang), headers=_PAGE_HEADERS)
        response.delete_cookie(SESSION_COOKIE)
        user = ended.person.user if ended else None
        _event("logout", "ok" if ended else "no-session", user=user, client_id=client_id)
        return response

    def _hinted_client(id_token_hint: str | None) -> str | None:
        # The hint names the client; its signature is ours, its expiry does not matter at logout.
        if not id_token_hint:
            return None
        key = jwt.PyJWKSet.from_dict(provider.signer.jwks()).keys[0].key
        try:
            claims = jwt.decode(
                id_token_hint,
                key,
                algorithms=["RS256"],
                issuer=issuer,
                options={"verify_exp": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            return None
        azp = claims.get("azp")
        return azp if isinstance(azp, str) else None

    @app.exception_handler(OAuth2Error)
    async def oauth_error(request: Request, error: OAuth2Error) -> Response:
        return _oauth_error(error.status_code or 400, error.error, error.description or "")

    return app
