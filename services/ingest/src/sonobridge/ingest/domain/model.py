"""Exams, manifests and the institution that owns stored data."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden, InvalidInput


class ExamType(StrEnum):
    """Kind of exam the app declares; mirrors events.v1.ExamType."""

    CAROTID = "carotid"
    THYROID = "thyroid"
    ABDOMEN = "abdomen"
    KIDNEY = "kidney"
    OBSTETRIC = "obstetric"
    CARDIAC = "cardiac"
    LIVER = "liver"
    OTHER = "other"


class ExamState(StrEnum):
    """Where an exam is in its upload; mirrors ingest.v1.ExamState."""

    RECEIVING = "receiving"
    AWAITING_INSTANCES = "awaiting_instances"
    COMPLETED = "completed"


class Channel(StrEnum):
    """How an instance reached ingest (metric label and event field)."""

    APP = "app"
    STOW = "stow"
    CSTORE = "cstore"
    # Ingest's own rendition of an inference run (measurement report, overlays).
    AI = "ai"


_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_valid_uid(value: str) -> bool:
    """Return True for a DICOM UID: dotted numeric components, no leading zeros, <= 64 chars."""
    return 0 < len(value) <= 64 and _UID.match(value) is not None


def uid_fault(value: str) -> str:
    """Say why `value` is not a DICOM UID, without echoing it (it may hold anyone's name)."""
    if not value:
        return "it is empty"
    if len(value) > 64:
        return f"it is {len(value)} characters long; a UID holds at most 64"
    if value.strip("0123456789."):
        return "it holds characters other than digits and dots"
    return "a component is empty or starts with 0"


def require_uid(name: str, value: str) -> str:
    """Return `value` if it is a valid UID, else raise InvalidInput naming the field."""
    if not is_valid_uid(value):
        raise InvalidInput(
            f"{name} is not a valid DICOM UID: {uid_fault(value)}", reason="malformed_uid"
        )
    return value


def parse_exam_id(value: str) -> str:
    """Return the canonical string form of a client-generated exam UUID."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidInput(f"exam id {value!r} is not a UUID", reason="bad_exam_id") from exc


@dataclass(frozen=True)
class ManifestEntry:
    """One instance the app says belongs to an exam."""

    sop_instance_uid: str
    sha256: str

    def __post_init__(self) -> None:
        require_uid("manifest SOPInstanceUID", self.sop_instance_uid)
        if not _SHA256.match(self.sha256):
            raise InvalidInput(
                f"manifest sha256 for {self.sop_instance_uid} must be 64 lowercase hex digits",
                reason="bad_manifest",
            )


def check_manifest(entries: Sequence[ManifestEntry]) -> None:
    """Reject empty manifests and manifests listing an instance twice."""
    if not entries:
        raise InvalidInput("manifest lists no instances", reason="bad_manifest")
    seen: set[str] = set()
    for entry in entries:
        if entry.sop_instance_uid in seen:
            raise InvalidInput(
                f"manifest lists {entry.sop_instance_uid} twice", reason="bad_manifest"
            )
        seen.add(entry.sop_instance_uid)


def manifest_sha256(entries: Iterable[ManifestEntry]) -> str:
    """Hash the canonical manifest: sorted `SOPInstanceUID:sha256` lines, newline-terminated."""
    lines = sorted(f"{e.sop_instance_uid}:{e.sha256}\n" for e in entries)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def missing_instances(
    entries: Sequence[ManifestEntry], stored: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Split manifest entries into (missing, mismatched) given stored SOP UID -> sha256."""
    missing: list[str] = []
    mismatched: list[str] = []
    for entry in entries:
        digest = stored.get(entry.sop_instance_uid)
        if digest is None:
            missing.append(entry.sop_instance_uid)
        elif digest != entry.sha256:
            mismatched.append(entry.sop_instance_uid)
    return missing, mismatched


@dataclass(frozen=True)
class Scope:
    """The institution and consortium a piece of patient data belongs to."""

    institution_id: str
    consortium_id: str


def writer_scope(principal: Principal) -> Scope:
    """Return the scope that data stored by `principal` (outside an exam) belongs to."""
    if not principal.institution:
        raise Forbidden("token has no institution; cannot attribute the stored data")
    return Scope(principal.institution, principal.consortium or "default")
