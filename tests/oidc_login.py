"""Log a person in through an OpenID provider's real login form with a plain HTTP client.

Works against the single node's provider and Keycloak alike: it fetches the authorization URL,
fills the form that holds a password field, and follows redirects until the client's redirect URI.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx


@dataclass
class _Form:
    action: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    has_password: bool = False


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(action=a.get("action", "")))
        elif tag == "input" and self.forms and a.get("name"):
            form = self.forms[-1]
            form.fields[a["name"]] = a.get("value", "")
            form.has_password |= a.get("type") == "password"


def login_form(html: str) -> tuple[str, dict[str, str]]:
    """Return the action and fields of the page's form that asks for a password."""
    parser = _FormParser()
    parser.feed(html)
    for form in parser.forms:
        if form.has_password:
            return form.action, form.fields
    raise AssertionError(f"no login form on the page: {html[:500]}")


@dataclass(frozen=True)
class Pkce:
    """A PKCE verifier and its S256 challenge."""

    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        """Make a fresh verifier and challenge."""
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


@dataclass
class LoginResult:
    """Where the provider sent the browser back: the code and state, or the page it stopped on."""

    code: str | None
    state: str | None
    error: str | None
    last_response: httpx.Response


def authorization_url(
    discovery: dict[str, Any],
    client_id: str,
    redirect_uri: str,
    pkce: Pkce | None,
    *,
    state: str = "state-1",
    scope: str = "openid profile",
    **extra: str,
) -> str:
    """Build the authorization request URL (with the PKCE challenge unless `pkce` is None)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        **extra,
    }
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    return f"{discovery['authorization_endpoint']}?{urlencode(params)}"


def _loopback_counts_as_secure(client: httpx.Client) -> None:
    # Browsers treat http://127.0.0.1 as a secure context and send `Secure` cookies there
    # (Keycloak marks its login cookies so); Python's cookie jar does not, so relax them.
    for cookie in client.cookies.jar:
        if cookie.secure and cookie.domain.lstrip(".") in ("127.0.0.1", "localhost"):
            cookie.secure = False


def follow_to_redirect(
    client: httpx.Client, response: httpx.Response, redirect_uri: str
) -> LoginResult:
    """Follow redirects until one lands on `redirect_uri`; return its code, state or error."""
    for _ in range(10):
        _loopback_counts_as_secure(client)
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307) or location is None:
            return LoginResult(None, None, None, response)
        target = urljoin(str(response.url), location)
        if target.startswith(redirect_uri):
            query = parse_qs(urlsplit(target).query)
            first = {k: v[0] for k, v in query.items()}
            return LoginResult(first.get("code"), first.get("state"), first.get("error"), response)
        response = client.get(target)
    raise AssertionError("too many redirects")


def log_in(
    client: httpx.Client, url: str, redirect_uri: str, user: str, password: str
) -> LoginResult:
    """Open `url` (an authorization request), submit the login form, return where it lands."""
    page = client.get(url)
    landed = follow_to_redirect(client, page, redirect_uri)
    if landed.code or landed.error:
        return landed
    page = landed.last_response
    assert page.status_code == 200, page.text[:500]
    action, fields = login_form(page.text)
    fields |= {"username": user, "password": password}
    answer = client.post(urljoin(str(page.url), action), data=fields)
    return follow_to_redirect(client, answer, redirect_uri)


def exchange_code(
    client: httpx.Client,
    discovery: dict[str, Any],
    *,
    client_id: str,
    code: str,
    redirect_uri: str,
    verifier: str | None,
) -> httpx.Response:
    """Redeem an authorization code at the token endpoint (as a public client)."""
    form = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return client.post(discovery["token_endpoint"], data=form)


def log_in_with_pkce(
    client: httpx.Client,
    discovery: dict[str, Any],
    *,
    client_id: str,
    redirect_uri: str,
    user: str,
    password: str,
    **extra: str,
) -> dict[str, Any]:
    """Run the whole code + PKCE flow through the login form; return the token answer."""
    pkce = Pkce.new()
    url = authorization_url(discovery, client_id, redirect_uri, pkce, **extra)
    landed = log_in(client, url, redirect_uri, user, password)
    assert landed.code, landed.last_response.text[:800]
    assert landed.state == "state-1"
    answer = exchange_code(
        client,
        discovery,
        client_id=client_id,
        code=landed.code,
        redirect_uri=redirect_uri,
        verifier=pkce.verifier,
    )
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens
