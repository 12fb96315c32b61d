"""OIDC authorization code + PKCE for people: discovery, the login redirect, tokens, logout."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jwt

from sonobridge.common.problems import Unauthenticated

if TYPE_CHECKING:
    # Imported by the first login: serving pays for httpx (and, where installed, its CLI's rich
    # and click) only when someone logs in at the reading station.
    import httpx

DISCOVERY = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class Provider:
    """The endpoints an issuer's discovery document names."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


@dataclass(frozen=True)
class LoginStart:
    """Where to send the browser, and what the callback must match."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class Tokens:
    """What the token endpoint answered."""

    access_token: str
    refresh_token: str | None
    id_token: str | None
    expires_at: float


def pkce_pair() -> tuple[str, str]:
    """Return a PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    """A public OIDC client of one issuer: discovery is fetched once, then kept."""

    def __init__(
        self, issuer: str, client_id: str, *, http: httpx.Client | None = None, timeout: float = 10
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._http = http
        self._http_lock = threading.Lock()
        self._timeout = timeout
        self._provider: Provider | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        # Made on the first login, not at start-up: its TLS context costs ~0.05 CPU seconds.
        import httpx

        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self._timeout)
            return self._http

    def provider(self) -> Provider:
        """Return the issuer's endpoints, fetching discovery on first use."""
        with self._lock:
            if self._provider is None:
                self._provider = self._discover()
            return self._provider

    def _discover(self) -> Provider:
        import httpx

        try:
            answer = self._client().get(self.issuer + DISCOVERY)
            answer.raise_for_status()
            doc = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unauthenticated(f"the identity provider cannot be reached: {exc}") from exc
        # OIDC Discovery 4.3: the document must name the issuer it was fetched from.
        if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
            raise Unauthenticated("the identity provider's discovery names another issuer")
        return Provider(
            issuer=str(doc["issuer"]),
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            jwks_uri=str(doc["jwks_uri"]),
            end_session_endpoint=doc.get("end_session_endpoint"),
        )

    def begin(self, redirect_uri: str) -> LoginStart:
        """Return the authorization request to send the browser to."""
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid profile",
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = self.provider().authorization_endpoint
        joiner = "&" if "?" in endpoint else "?"
        return LoginStart(f"{endpoint}{joiner}{query}", state, nonce, verifier)

    def exchange(self, code: str, code_verifier: str, redirect_uri: str, nonce: str) -> Tokens:
        """Trade an authorization code for tokens; the ID token must carry our nonce."""
        tokens = self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )
        if tokens.id_token is None:
            raise Unauthenticated("the identity provider sent no ID token")
        claims = self._id_claims(tokens.id_token)
        if claims.get("nonce") != nonce:
            raise Unauthenticated("the ID token is not the answer to this login")
        return tokens

    def refresh(self, refresh_token: str) -> Tokens:
        """Return fresh tokens for a refresh token."""
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def logout_url(self, id_token: str | None, after: str) -> str | None:
        """Return the RP-initiated logout URL, or None when the issuer offers none."""
        endpoint = self.provider().end_session_endpoint
        if not endpoint:
            return None
        query: dict[str, str] = {"client_id": self.client_id, "post_logout_redirect_uri": after}
        if id_token:
            query["id_token_hint"] = id_token
        joiner = "&" if "?" in endpoint else "?"
        return f"{endpoint}{joiner}{urlencode(query)}"

    def _token(self, form: dict[str, str]) -> Tokens:
        import httpx

        try:
            answer = self._client().post(
                self.provider().token_endpoint, data={**form, "client_id": self.client_id}
            )
        except httpx.HTTPError as exc:
            raise Unauthenticated(f"the identity provider cannot be reached: {exc}") from exc
        if answer.status_code != 200:
            raise Unauthenticated(f"the identity provider refused the grant ({answer.status_code})")
        body: dict[str, Any] = answer.json()
        if "access_token" not in body:
            raise Unauthenticated("the identity provider sent no access token")
        return Tokens(
            access_token=str(body["access_token"]),
            refresh_token=body.get("refresh_token"),
            id_token=body.get("id_token"),
            expires_at=time.time() + float(body.get("expires_in", 300)),
        )

    def _signing_key(self, kid: str | None) -> Any:
        # Fetched through the same client as the other endpoints; refetched once on a new kid
        # (the provider rotated its keys).
        import httpx

        for attempt in range(2):
            if self._keys is None or attempt:
                try:
                    answer = self._client().get(self.provider().jwks_uri)
                    answer.raise_for_status()
                    self._keys = jwt.PyJWKSet.from_dict(answer.json())
                except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                    raise Unauthenticated(f"cannot fetch the provider's keys: {exc}") from exc
            for key in self._keys.keys:
                if kid is None or key.key_id == kid:
                    return key.key
        raise Unauthenticated("the ID token is signed with an unknown key")

    def _id_claims(self, id_token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
            claims: dict[str, Any] = jwt.decode(
                id_token,
                self._signing_key(kid),
                algorithms=["RS256"],
                audience=self.client_id,
                issuer=self.provider().issuer,
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid ID token: {exc}") from exc
        return claims
