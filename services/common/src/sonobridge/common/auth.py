"""OIDC bearer-token verification, the caller's principal, and a local issuer for single node."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sonobridge.common.problems import Forbidden, Unauthenticated

ROLES = frozenset(
    {"operator", "physician", "expert", "coordinator", "engineer", "admin", "service"}
)
# How many distinct verified tokens a verifier remembers (least recently used go first).
VERIFIED_TOKENS_KEPT = 4096
# How long fetched signing keys are trusted; a remembered token is re-checked as often, so a key
# the provider withdraws stops a long-lived token as soon as it stops a new one.
SIGNING_KEYS_LIFESPAN_S = 300


@dataclass(frozen=True)
class Principal:
    """Who is calling: user id, roles and home institution (and consortium) from the token."""

    user: str
    roles: frozenset[str]
    institution: str | None = None
    consortium: str | None = None
    name: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def has_role(self, *roles: str) -> bool:
        """Return True when the principal holds any of `roles`."""
        return bool(self.roles.intersection(roles))

    def require_role(self, *roles: str) -> None:
        """Raise Forbidden unless the principal holds one of `roles`."""
        if not self.has_role(*roles):
            raise Forbidden(f"requires one of the roles: {', '.join(sorted(roles))}")


def one_authorization(values: Iterable[str]) -> str | None:
    """Return the request's one Authorization value; refuse a request that sends several."""
    # Two values are ambiguous (a proxy may have added one): which caller is this? Refuse
    # rather than let the first or the last one win, as each server library picks otherwise.
    found = list(values)
    if len(found) > 1:
        raise Unauthenticated(f"send one authorization header, not {len(found)}")
    return found[0] if found else None


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Build a principal from verified claims (plain `roles`, or Keycloak's `realm_access`)."""
    roles = claims.get("roles")
    if roles is None:
        roles = claims.get("realm_access", {}).get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated("token roles claim must be a list of strings")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthenticated("token has no subject")
    return Principal(
        user=sub,
        roles=frozenset(r for r in roles if r in ROLES),
        institution=claims.get("institution"),
        consortium=claims.get("consortium"),
        name=claims.get("name"),
        claims=claims,
    )


class TokenVerifier:
    """Verify RS256 bearer tokens against a JWKS (fetched from a URL or given directly)."""

    def __init__(
        self,
        *,
        audience: str,
        issuer: str | Sequence[str] | None = None,
        jwks_url: str | None = None,
        jwks: dict[str, Any] | None = None,
        leeway_seconds: int = 30,
    ) -> None:
        if (jwks_url is None) == (jwks is None):
            raise ValueError("give exactly one of jwks_url or jwks")
        self.audience = audience
        # Several issuers: the single node trusts its login provider's URL and `sonobridge token`.
        self.issuer = (issuer if isinstance(issuer, str) else list(issuer)) if issuer else None
        self.leeway = leeway_seconds
        self._client = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=SIGNING_KEYS_LIFESPAN_S)
            if jwks_url
            else None
        )
        self._keys = jwt.PyJWKSet.from_dict(jwks) if jwks else None
        # Tokens already verified, by their exact text, until they expire: a client sends the
        # same token with every call, and the RS256 check costs more than a small model's run.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def _signing_key(self, token: str) -> Any:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"malformed token: {exc}") from exc
        try:
            if self._client is not None:
                return self._client.get_signing_key_from_jwt(token).key
            assert self._keys is not None
            for key in self._keys.keys:
                if kid is None or key.key_id == kid:
                    return key.key
        except jwt.PyJWKClientConnectionError as exc:
            raise Unauthenticated(f"cannot fetch signing keys: {exc}") from exc
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated(f"unknown signing key: {exc}") from exc
        raise Unauthenticated("unknown signing key")

    def _seen(self, token: str) -> Principal | None:
        """Return the principal of a token verified before and not yet expired."""
        now = time.time()
        with self._verified_lock:
            hit = self._verified.get(token)
            if hit is not None and now < hit[1]:
                self._verified.move_to_end(token)
                return hit[0]
        return None

    def known(self, authorization: str | None) -> Principal | None:
        """Return the caller of a bearer header verified before, or None: nothing is checked."""
        scheme, _, token = (authorization or "").partition(" ")
        return self._seen(token.strip()) if scheme.lower() == "bearer" else None

    def verify(self, token: str) -> Principal:
        """Return the principal for a valid token; raise Unauthenticated saying why otherwise."""
        seen = self._seen(token)
        if seen is not None:
            return seen
        principal = self._decode(token)
        with self._verified_lock:
            until = min(float(principal.claims["exp"]), time.time() + SIGNING_KEYS_LIFESPAN_S)
            self._verified[token] = (principal, until)
            while len(self._verified) > VERIFIED_TOKENS_KEPT:
                self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> Principal:
        key = self._signing_key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("token is from another issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("token signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        return principal_from_claims(claims)

    def verify_header(self, authorization: str | None) -> Principal:
        """Verify an `Authorization: Bearer ...` header value."""
        if not authorization:
            raise Unauthenticated("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization header must be 'Bearer <token>'")
        return self.verify(token.strip())


class LocalIssuer:
    """An RS256 token issuer with a JWKS, for the single-node edition and tests."""

    def __init__(self, issuer: str, audience: str = "sonobridge", private_pem: bytes | None = None):
        self.issuer = issuer
        self.audience = audience
        if private_pem is None:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            loaded = serialization.load_pem_private_key(private_pem, password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError("local issuer key must be RSA")
            self._key = loaded
        public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        self.kid = jwt.PyJWK(public_jwk).key_id or _thumbprint_kid(public_jwk)
        self._public_jwk = {**public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def private_pem(self) -> bytes:
        """Return the signing key as unencrypted PKCS#8 PEM (to persist it across restarts)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def jwks(self) -> dict[str, Any]:
        """Return the public key set."""
        return {"keys": [dict(self._public_jwk)]}

    def issue(
        self,
        user: str,
        roles: Iterable[str],
        institution: str | None = None,
        *,
        consortium: str | None = None,
        name: str | None = None,
        ttl_seconds: int = 3600,
        audience: str | list[str] | None = None,
        now: float | None = None,
        issuer: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign a token for `user`; `issuer` overrides `iss` (the login provider's URL)."""
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            **(extra_claims or {}),
            "iss": issuer or self.issuer,
            "aud": audience or self.audience,
            "sub": user,
            "iat": issued,
            "exp": issued + ttl_seconds,
            "jti": str(uuid.uuid4()),
            "roles": sorted(roles),
        }
        for claim, value in (
            ("institution", institution),
            ("consortium", consortium),
            ("name", name),
        ):
            if value is not None:
                claims[claim] = value
        return self.sign(claims)

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Sign `claims` as an RS256 JWT with this issuer's key and key id."""
        return jwt.encode(dict(claims), self._key, algorithm="RS256", headers={"kid": self.kid})

    def verifier(self, leeway_seconds: int = 30) -> TokenVerifier:
        """Return a verifier that trusts this issuer's keys directly."""
        return TokenVerifier(
            audience=self.audience,
            issuer=self.issuer,
            jwks=self.jwks(),
            leeway_seconds=leeway_seconds,
        )


def _thumbprint_kid(jwk: dict[str, Any]) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, jwk["n"]))
