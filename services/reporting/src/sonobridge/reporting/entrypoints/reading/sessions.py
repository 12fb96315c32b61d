"""Server-side browser sessions of the reading station: the cookie carries only a random id."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "sonobridge_reading"
LANGUAGE_COOKIE = "sonobridge_lang"


@dataclass
class PendingLogin:
    """A login sent to the identity provider and not yet back."""

    state: str
    nonce: str
    code_verifier: str
    next_path: str


@dataclass
class BrowserSession:
    """One browser's login: its tokens never leave the server; posts must echo `csrf`."""

    id: str
    expires_at: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    access_token: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    token_expires_at: float = 0.0
    pending: dict[str, PendingLogin] = field(default_factory=dict)
    flash: str | None = None

    @property
    def logged_in(self) -> bool:
        """True once a login completed."""
        return self.access_token is not None


class SessionStore:
    """Sessions in this process's memory; a restart logs everyone out (they log in again)."""

    def __init__(self, lifetime_seconds: float, max_pending: int = 8) -> None:
        self.lifetime = lifetime_seconds
        self.max_pending = max_pending
        self._sessions: dict[str, BrowserSession] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str | None) -> BrowserSession | None:
        """Return a live session, or None."""
        if not session_id:
            return None
        now = time.time()
        with self._lock:
            found = self._sessions.get(session_id)
            if found is not None and found.expires_at < now:
                del self._sessions[session_id]
                return None
            return found

    def create(self) -> BrowserSession:
        """Start an anonymous session (it holds pending logins until one completes)."""
        now = time.time()
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.expires_at < now]:
                del self._sessions[key]
            created = BrowserSession(secrets.token_urlsafe(32), now + self.lifetime)
            self._sessions[created.id] = created
            return created

    def remember(self, session: BrowserSession, pending: PendingLogin) -> None:
        """Keep a pending login (the oldest go when a browser opens too many)."""
        with self._lock:
            session.pending[pending.state] = pending
            while len(session.pending) > self.max_pending:
                session.pending.pop(next(iter(session.pending)))

    def rotate(self, session: BrowserSession) -> BrowserSession:
        """Give a session a new id and CSRF token at login, so a planted id is worthless."""
        with self._lock:
            self._sessions.pop(session.id, None)
            session.id = secrets.token_urlsafe(32)
            session.csrf = secrets.token_urlsafe(32)
            session.expires_at = time.time() + self.lifetime
            self._sessions[session.id] = session
            return session

    def end(self, session_id: str | None) -> BrowserSession | None:
        """Forget a session; return it."""
        if not session_id:
            return None
        with self._lock:
            return self._sessions.pop(session_id, None)
