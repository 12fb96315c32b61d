"""What ingest's use cases need from the outside: one unit of work, a spool, a DICOM codec."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sonobridge.common.access import Reachable
from sonobridge.common.audit import AuditLog
from sonobridge.common.idempotency import IdempotencyKeys
from sonobridge.ingest.domain.ai_results import AiResult, OverlayImage
from sonobridge.ingest.domain.callers import DimseCaller
from sonobridge.ingest.domain.events import Event
from sonobridge.ingest.domain.media import BulkKey
from sonobridge.ingest.domain.model import ManifestEntry, Scope
from sonobridge.ingest.domain.query import Criterion
from sonobridge.ingest.domain.records import Exam, Instance, UploadSession
from sonobridge.ingest.domain.validation import InstanceDescription, PixelLayout


class Collision(Exception):
    """A concurrent transaction wrote the same key first; the unit of work was rolled back."""


class Exams(Protocol):
    """Exams and their manifests."""

    def get(self, exam_id: str, *, for_update: bool = False) -> Exam | None: ...
    def by_study(self, study_uid: str) -> Exam | None: ...
    def add(self, exam: Exam) -> None: ...
    def record_manifest(
        self,
        exam_id: str,
        entries: Sequence[ManifestEntry],
        digest: str,
        *,
        started_at: datetime | None,
        completed_at: datetime | None,
        scan_seconds: float,
    ) -> None: ...
    def manifest(self, exam_id: str) -> list[ManifestEntry]: ...
    def set_state(self, exam_id: str, state: str) -> None: ...
    def bind_study(self, exam_id: str, study_uid: str) -> None: ...
    def complete(self, exam_id: str, at: datetime) -> bool: ...


class Instances(Protocol):
    """The instance index: write claims ("pending") and stored instances."""

    def get(self, sop_uid: str) -> Instance | None: ...
    def stored_of_exam(self, exam_id: str) -> list[Instance]: ...
    def claim(self, instance: Instance) -> None: ...
    def try_claim(self, instance: Instance) -> bool: ...
    def renew_claim(self, sop_uid: str, claimed_at: datetime, at: datetime) -> bool: ...
    def mark_stored(self, sop_uid: str, at: datetime, claimed_at: datetime) -> bool: ...
    def link(
        self,
        sop_uid: str,
        exam_id: str,
        app_pixel_spacing: str | None,
        app_gestational_age_weeks: float | None,
    ) -> None: ...
    def release(self, sop_uid: str, claimed_at: datetime | None = None) -> bool: ...
    def claims_before(self, cut: datetime) -> list[Instance]: ...
    def owners_and_exam_of_study(self, study_uid: str) -> tuple[set[Scope], Exam | None]: ...
    def search(self, reach: Reachable, criteria: Sequence[Criterion]) -> list[Instance]: ...


class Uploads(Protocol):
    """tus upload sessions and their append lock (compare-and-set on offset and generation)."""

    def get(self, session_id: str) -> UploadSession | None: ...
    def add(self, upload: UploadSession) -> None: ...
    def lock(
        self, session_id: str, offset: int, generation: int, status: str, expires_at: datetime
    ) -> bool: ...
    def release(
        self,
        session_id: str,
        generation: int,
        *,
        status: str,
        upload_offset: int | None = None,
        interrupted: bool | None = None,
        expires_at: datetime | None = None,
    ) -> bool: ...
    def update(
        self,
        session_id: str,
        *,
        status: str | None = None,
        upload_offset: int | None = None,
        interrupted: bool | None = None,
        sop_instance_uid: str | None = None,
    ) -> None: ...
    def delete(self, session_id: str) -> None: ...
    def locked(self, expiring_before: datetime) -> list[UploadSession]: ...
    def full_open(self) -> list[UploadSession]: ...
    def expired(self, now: datetime, limit: int = 100) -> list[str]: ...


class Callers(Protocol):
    """The registry of DIMSE calling AE titles."""

    def get(self, ae_title: str) -> DimseCaller | None: ...
    def all(self) -> list[DimseCaller]: ...
    def put(self, caller: DimseCaller, *, by: str, at: datetime) -> bool: ...
    def delete(self, ae_title: str) -> bool: ...


class Work(Protocol):
    """One transaction: its repositories, its audit records and the events it emits."""

    exams: Exams
    instances: Instances
    uploads: Uploads
    callers: Callers
    audit: AuditLog
    request_keys: IdempotencyKeys

    def emit(self, event: Event) -> None: ...
    def before_commit(self, action: Callable[[], None]) -> None:
        """Run `action` after the writes, before the commit; equal actions run once."""
        ...

    def try_claim_announced(self, instance: Instance) -> bool:
        """Index `instance` unless its UID is, with the events and audit records queued so far.

        True if this call did; otherwise those queued are dropped.
        """
        ...


# Opens one transaction; it commits when the block ends and raises Collision on a unique clash.
UnitOfWork = Callable[[], AbstractContextManager[Work]]

_T = TypeVar("_T")


class GroupedUnitOfWork(Protocol):
    """Runs a step in a transaction it may share with concurrent requests (group commit).

    The step's writes stand or fall alone (a savepoint), its errors reach only its caller, and
    the call returns once the shared commit is durable.
    """

    def __call__(self, step: Callable[[Work], _T]) -> _T: ...


class SpooledFile(Protocol):
    """A request body on disk, with its size and SHA-256."""

    path: Path
    limit: int
    size: int

    @property
    def sha256(self) -> str: ...
    def write(self, chunk: bytes | memoryview) -> None: ...
    def close(self) -> None: ...
    def discard(self) -> None: ...
    def __enter__(self) -> SpooledFile: ...
    def __exit__(self, *_exc: object) -> None: ...


class Spool(Protocol):
    """Temporary files for request bodies awaiting validation."""

    directory: Path

    def new(self) -> SpooledFile: ...
    def adopt(self, path: Path) -> SpooledFile: ...
    def from_chunks(self, chunks: Iterator[bytes]) -> SpooledFile: ...
    def reclaim(self, older_than: float | None = None) -> int: ...


class DicomCodec(Protocol):
    """Reads stored DICOM: its description, pixels, frames, renderings and bulk elements."""

    def read_instance(
        self, path: Path
    ) -> tuple[InstanceDescription, PixelLayout | None, dict[str, Any]]: ...
    def peek_uids(self, path: Path) -> tuple[str, str]: ...
    def dataset_sha256(self, chunks: Iterable[bytes]) -> str: ...
    def check_frames(self, path: Path, numbers: Sequence[int]) -> int: ...
    def read_frames(self, path: Path, numbers: Sequence[int]) -> Iterator[bytes]: ...
    def render_frame(self, path: Path, frame: int, media_type: str) -> bytes: ...
    def open_element(
        self, chunks: Iterator[bytes], key: BulkKey, transfer_syntax: str
    ) -> tuple[int, Iterator[bytes]]: ...


class AiResultRenderer(Protocol):
    """Renders an inference run as DICOM objects of the exam's study (Part 10 bytes)."""

    def measurement_report(
        self, result: AiResult, sources: Mapping[str, Mapping[str, Any]]
    ) -> bytes: ...
    def overlay_capture(
        self,
        result: AiResult,
        overlay: OverlayImage,
        png: bytes,
        source: Mapping[str, Any],
        instance_number: int,
    ) -> bytes: ...
