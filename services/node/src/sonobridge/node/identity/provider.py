"""The single node's OpenID provider on Authlib: clients, code + PKCE, refresh, client grants."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.util import create_half_hash

from sonobridge.common.auth import LocalIssuer
from sonobridge.node.consortium import Person
from sonobridge.node.identity.accounts import PeopleDirectory, password_matches

AUDIENCE = "sonobridge"
PUBLIC_CLIENTS = ("reading-station", "ohif", "township-app")
SCOPES = ("openid", "profile", "offline_access")
ACCESS_TOKEN_SECONDS = 900
REFRESH_TOKEN_SECONDS = 8 * 3600
CODE_SECONDS = 60
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def loopback_redirects(uri: str) -> bool:
    """Accept http(s) redirects to this machine on any port (RFC 8252 section 7.3)."""
    parts = urlsplit(uri)
    return (
        parts.scheme in ("http", "https")
        and parts.hostname in LOOPBACK_HOSTS
        and not parts.fragment
    )


@dataclass(frozen=True)
class Client(ClientMixin):  # type: ignore[misc]
    """A registered client: public (code + PKCE) or a machine with a secret and fixed roles."""

    client_id: str
    redirect_allowed: Callable[[str], bool] = loopback_redirects
    secret_hash: str | None = None
    roles: tuple[str, ...] = ()
    institution: str | None = None

    @property
    def public(self) -> bool:
        """True for browser and phone clients, which hold no secret."""
        return self.secret_hash is None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.public and self.redirect_allowed(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return password_matches(self.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return self.public and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.public:
            return grant_type in ("authorization_code", "refresh_token")
        return grant_type == "client_credentials"


@dataclass(frozen=True)
class LoginSession:
    """A person's login at the provider's page; codes and refresh tokens hang off it."""

    id: str
    person: Person
    auth_time: int


@dataclass
class AuthorizationCode:
    """A one-time code bound to its client, redirect URI, PKCE challenge and login session."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    session: LoginSession
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.session.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]


@dataclass
class RefreshToken(TokenMixin):  # type: ignore[misc]
    """A refresh token; rotated on each use and revoked with its login session."""

    token: str
    client_id: str
    scope: str
    session: LoginSession
    expires_at: float
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - time.time()))

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked


@dataclass
class Grants:
    """Login sessions, codes and refresh tokens in memory: a restart asks people to log in again."""

    sessions: dict[str, LoginSession] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh: dict[str, RefreshToken] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open_session(self, person: Person) -> LoginSession:
        """Record a successful login and return its session."""
        session = LoginSession(secrets.token_urlsafe(32), person, int(time.time()))
        with self.lock:
            self.sessions[session.id] = session
        return session

    def end_session(self, session_id: str) -> LoginSession | None:
        """Forget a session and revoke every refresh token issued under it."""
        with self.lock:
            session = self.sessions.pop(session_id, None)
            for token in self.refresh.values():
                if token.session.id == session_id:
                    token.revoked = True
        return session


def person_claims(person: Person, consortium: str) -> dict[str, Any]:
    """The identity claims every token and userinfo answer carries for `person`."""
    return {
        "sub": person.user,
        "preferred_username": person.user,
        "name": person.name,
        "roles": sorted(person.roles),
        "institution": person.institution,
        "consortium": consortium,
    }


class S256Challenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only, required of every public client at the authorization request."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if grant.request.client.public and not data.get("code_challenge"):
            raise InvalidRequestError("public clients must send a PKCE 'code_challenge'")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge_method


class OpenIDProvider(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server, signing with the node's LocalIssuer key."""

    def __init__(
        self,
        *,
        issuer_url: str,
        signer: LocalIssuer,
        people: PeopleDirectory,
        clients: Mapping[str, Client],
    ) -> None:
        super().__init__()
        self.issuer_url = issuer_url
        self.signer = signer
        self.people = people
        self.clients = dict(clients)
        self.grants = Grants()
        self.register_token_generator("default", self._generate_token)
        self.register_grant(_CodeGrant, [S256Challenge(required=True), _OpenIDCode(self)])
        self.register_grant(_RefreshGrant)
        self.register_grant(grants.ClientCredentialsGrant)

    def consortium_id(self) -> str:
        """The consortium named in tokens (the file's id)."""
        consortium = self.people.consortium()
        return consortium.id if consortium else "default"

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        refresh = token.get("refresh_token")
        if refresh is None:
            return
        record = RefreshToken(
            token=refresh,
            client_id=request.client.client_id,
            scope=token.get("scope", ""),
            session=request.user,
            expires_at=time.time() + REFRESH_TOKEN_SECONDS,
        )
        with self.grants.lock:
            self.grants.refresh[refresh] = record

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's hook for framework signals; nothing listens here."""

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers)

    def access_token(
        self, claims: dict[str, Any], client: Client, scope: str, sid: str | None
    ) -> str:
        """Sign an access token carrying the contract's claims for `client`."""
        now = int(time.time())
        body = {
            **claims,
            "iss": self.issuer_url,
            "aud": [AUDIENCE],
            "azp": client.client_id,
            "scope": scope,
            "iat": now,
            "exp": now + ACCESS_TOKEN_SECONDS,
            "jti": secrets.token_urlsafe(16),
        }
        if sid is not None:
            body["sid"] = sid
        return self.signer.sign(body)

    def _generate_token(
        self,
        grant_type: str,
        client: Client,
        user: LoginSession | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        scope = client.get_allowed_scope(scope or "")
        if user is None:
            claims: dict[str, Any] = {
                "sub": client.client_id,
                "preferred_username": client.client_id,
                "name": client.client_id,
                "roles": sorted(client.roles),
                "consortium": self.consortium_id(),
            }
            if client.institution:
                claims["institution"] = client.institution
            sid = None
        else:
            claims = person_claims(user.person, self.consortium_id())
            sid = user.id
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": self.access_token(claims, client, scope, sid),
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": scope,
        }
        if include_refresh_token and user is not None:
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token


class _CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "none",
        "client_secret_basic",
        "client_secret_post",
    ]

    @property
    def provider(self) -> OpenIDProvider:
        provider: OpenIDProvider = self.server
        return provider

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        record = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.client.get_allowed_scope(request.payload.scope or ""),
            session=request.user,
            code_challenge=data.get("code_challenge", ""),
            code_challenge_method=data.get("code_challenge_method", ""),
            nonce=data.get("nonce"),
            expires_at=time.time() + CODE_SECONDS,
        )
        with self.provider.grants.lock:
            self.provider.grants.codes[code] = record

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        with self.provider.grants.lock:
            record = self.provider.grants.codes.get(code)
        if record is None or record.client_id != client.client_id:
            return None
        if (
            time.time() >= record.expires_at
            or record.session.id not in self.provider.grants.sessions
        ):
            return None
        return record

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        with self.provider.grants.lock:
            self.provider.grants.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> LoginSession:
        return authorization_code.session


class _RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "none",
        "client_secret_basic",
        "client_secret_post",
    ]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        grants_: Grants = self.server.grants
        with grants_.lock:
            record = grants_.refresh.get(refresh_token)
        if record is None or record.is_revoked() or record.is_expired():
            return None
        return record

    def authenticate_user(self, refresh_token: RefreshToken) -> LoginSession | None:
        # Roles and institution are re-read, so a change in the consortium file takes effect.
        person = self.server.people.person(refresh_token.session.person.user)
        if person is None or person.password_hash is None:
            return None
        session = refresh_token.session
        return LoginSession(session.id, person, session.auth_time)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        refresh_token.revoked = True


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, provider: OpenIDProvider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        with self.provider.grants.lock:
            return any(c.nonce == nonce for c in self.provider.grants.codes.values())

    def generate_user_info(self, user: LoginSession, scope: str) -> dict[str, Any]:
        return person_claims(user.person, self.provider.consortium_id())

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        code: AuthorizationCode = request.authorization_code
        now = int(time.time())
        claims: dict[str, Any] = {
            **self.generate_user_info(code.session, token["scope"]),
            "iss": self.provider.issuer_url,
            "aud": request.client.client_id,
            "azp": request.client.client_id,
            "iat": now,
            "exp": now + ACCESS_TOKEN_SECONDS,
            "auth_time": code.session.auth_time,
            "sid": code.session.id,
            "amr": code.get_amr(),
        }
        if code.nonce:
            claims["nonce"] = code.nonce
        at_hash = create_half_hash(token["access_token"], "RS256")
        if at_hash is not None:
            claims["at_hash"] = at_hash.decode("ascii")
        return self.provider.signer.sign(claims)
