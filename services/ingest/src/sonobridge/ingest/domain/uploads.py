"""Rules of tus upload sessions: states, append-lock age, and the keys of committed parts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sonobridge.common.problems import NotFound
from sonobridge.ingest.domain.records import UploadSession

OPEN, APPENDING, STORED, REJECTED = "open", "appending", "stored", "rejected"
# An append lock older than this belongs to a request that died; another may take it over.
STALE_LOCK = timedelta(minutes=15)
PART = re.compile(r"^uploads/[^/]+/(?P<start>\d{20})-(?P<end>\d{20})\.g(?P<gen>\d+)\.part$")
LEGACY_PART = re.compile(r"^uploads/[^/]+/(?P<start>\d{20})\.part$")


class Gone(NotFound):
    """The upload existed but expired or was terminated (tus answers 410)."""

    status, title, type_slug = 410, "Gone", "gone"


class UploadRejected(Gone):
    """The upload's final chunk was refused; the session is over (tus answers 410)."""

    type_slug = "upload-rejected"


def parts_prefix(session_id: str) -> str:
    """Return the object-key prefix under which a session's parts live."""
    return f"uploads/{session_id}/"


def part_key(session_id: str, start: int, end: int, generation: int) -> str:
    """Return the key of the part holding bytes [start, end) written under `generation`."""
    return f"uploads/{session_id}/{start:020d}-{end:020d}.g{generation}.part"


def part_start(key: str) -> int:
    """Return the offset a part key starts at."""
    match = PART.match(key) or LEGACY_PART.match(key)
    assert match is not None, key
    return int(match["start"])


def lock_taken_at(upload: UploadSession, expiry: timedelta) -> datetime:
    """Return when the append lock was taken (locking sets expires_at to now + expiry)."""
    return upload.expires_at - expiry
