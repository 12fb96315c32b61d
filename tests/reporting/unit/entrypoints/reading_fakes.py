"""A fake identity provider for the reading station's login tests: discovery, token, JWKS."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt

from sonobridge.common.auth import LocalIssuer

ISSUER = "http://idp.test/realms/sonobridge"


class FakeIdentityProvider:
    """Answers OIDC discovery, the token endpoint (code + PKCE, refresh) and the JWKS."""

    def __init__(self, issuer: LocalIssuer, user: str, roles: list[str], institution: str) -> None:
        self.issuer = issuer
        self.user, self.roles, self.institution = user, roles, institution
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests: list[dict[str, str]] = []

    def grant(self, code: str, challenge: str, nonce: str, redirect_uri: str) -> None:
        """Remember what the authorize step would have bound to a code."""
        self.codes[code] = {"challenge": challenge, "nonce": nonce, "redirect_uri": redirect_uri}

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that plays the provider."""
        return httpx.MockTransport(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/.well-known/openid-configuration"):
            base = f"{ISSUER}/protocol/openid-connect"
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{base}/auth",
                    "token_endpoint": f"{base}/token",
                    "jwks_uri": f"{base}/certs",
                    "end_session_endpoint": f"{base}/logout",
                },
            )
        if path.endswith("/certs"):
            return httpx.Response(200, json=self.issuer.jwks())
        if path.endswith("/token"):
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.token_requests.append(form)
            return self._token(form)
        return httpx.Response(404)

    def _token(self, form: dict[str, str]) -> httpx.Response:
        import base64
        import hashlib

        nonce = ""
        if form["grant_type"] == "authorization_code":
            bound = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "").encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
            if bound is None or digest.decode() != bound["challenge"]:
                return httpx.Response(400, json={"error": "invalid_grant"})
            if form.get("redirect_uri") != bound["redirect_uri"]:
                return httpx.Response(400, json={"error": "invalid_grant"})
            nonce = bound["nonce"]
        elif form.get("refresh_token") != "refresh-1":
            return httpx.Response(400, json={"error": "invalid_grant"})
        access = self.issuer.issue(
            self.user, self.roles, self.institution, consortium="demo", name="Dr A", ttl_seconds=300
        )
        now = int(time.time())
        id_claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": "reading-station",
            "sub": self.user,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
        }
        id_token = jwt.encode(
            id_claims,
            self.issuer.private_pem(),
            algorithm="RS256",
            headers={"kid": self.issuer.kid},
        )
        body = {
            "access_token": access,
            "refresh_token": "refresh-1",
            "id_token": id_token,
            "expires_in": 300,
        }
        return httpx.Response(
            200, content=json.dumps(body), headers={"content-type": "application/json"}
        )
