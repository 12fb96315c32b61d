"""Requests streaming a PATCH body, by upload, so a newcomer can ask them to let go (as tusd)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Hold:
    """One PATCH streaming into an upload: asked to let go, and done letting go."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class UploadHolds:
    """The PATCHes of this process that are still reading a body, by upload session."""

    _holds: dict[str, list[Hold]] = field(default_factory=dict)

    @contextmanager
    def holding(self, session_id: str) -> Iterator[Hold]:
        """Register a streaming PATCH until it has answered."""
        hold = Hold()
        self._holds.setdefault(session_id, []).append(hold)
        try:
            yield hold
        finally:
            hold.done.set()
            holds = self._holds.get(session_id, [])
            if hold in holds:
                holds.remove(hold)
            if not holds:
                self._holds.pop(session_id, None)

    def held(self, session_id: str) -> bool:
        """Say whether a PATCH of this process is reading a body for the upload."""
        return bool(self._holds.get(session_id))

    async def ask_release(self, session_id: str, timeout: float) -> bool:
        """Ask every holder of the upload to commit what it has and stop; wait for them.

        Returns False if a holder had not let go within `timeout` seconds.
        """
        holds = list(self._holds.get(session_id, []))
        for hold in holds:
            hold.release.set()
        try:
            async with asyncio.timeout(timeout):
                for hold in holds:
                    await hold.done.wait()
        except TimeoutError:
            return False
        return True


# One per process: the HEAD and PATCH of an upload meet in the same event loop.
UPLOAD_HOLDS = UploadHolds()
