"""Rules of tus upload sessions: states, append-lock age, and the keys of committed parts."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from sonobridge.common.problems import Conflict, NotFound
from sonobridge.ingest.domain.records import UploadSession

OPEN, APPENDING, STORED, REJECTED = "open", "appending", "stored", "rejected"
# An append lock is a lease its holder renews while it writes; one not renewed for this long
# belongs to a request that died or froze, and another may take it over. Kept well inside an
# app's patience, so a client resuming after a kill or a pause is never locked out for long.
LOCK_LEASE = timedelta(seconds=30)
# A holder renews its lease this many times per lease, so a few missed renewals (a loaded
# host, a database restarting) never hand a live holder's upload to another request.
LEASE_RENEWALS = 6
PART = re.compile(r"^uploads/[^/]+/(?P<start>\d{20})-(?P<end>\d{20})\.g(?P<gen>\d+)\.part$")
LEGACY_PART = re.compile(r"^uploads/[^/]+/(?P<start>\d{20})\.part$")


class UploadBusy(Conflict):
    """Another request holds the upload's append lock; `Retry-After` says when to ask again."""

    def __init__(self, detail: str, *, retry_after: timedelta, **extensions: object) -> None:
        super().__init__(detail, reason="upload_busy", **extensions)
        seconds = max(1, math.ceil(retry_after.total_seconds()))
        self.headers = {"Retry-After": str(seconds)}


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
    """Return when the append lock was taken or last renewed (each sets expires_at from now)."""
    return upload.expires_at - expiry


def lease_left(
    upload: UploadSession, expiry: timedelta, lease: timedelta, now: datetime
) -> timedelta:
    """Return how long the append lock's holder has left before another may take it over."""
    return lease - (now - lock_taken_at(upload, expiry))
