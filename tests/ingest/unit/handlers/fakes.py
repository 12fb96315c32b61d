"""Hand-written fakes of ingest's ports: an in-memory unit of work, object store and codec."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sonobridge.common.access import Reachable
from sonobridge.common.audit import AuditRecord
from sonobridge.common.auth import Principal
from sonobridge.common.idempotency import Body, KeyTaken, StoredAnswer
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.objects.ports import ObjectInfo, ObjectNotFound
from sonobridge.ingest.adapters.spool import Spool
from sonobridge.ingest.domain.callers import DimseCaller
from sonobridge.ingest.domain.events import Event
from sonobridge.ingest.domain.media import BulkKey
from sonobridge.ingest.domain.model import ManifestEntry, Scope
from sonobridge.ingest.domain.query import Criterion
from sonobridge.ingest.domain.records import Exam, Instance, UploadSession
from sonobridge.ingest.domain.validation import InstanceDescription, PixelLayout
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.metrics import IngestMetrics
from sonobridge.ingest.ports import Collision, Work

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
US_TRANSFER = "1.2.840.10008.1.2.1"


@dataclass
class Tables:
    """Everything the fake database holds; copied at the start of each unit of work."""

    exams: dict[str, Exam] = field(default_factory=dict)
    manifests: dict[str, list[ManifestEntry]] = field(default_factory=dict)
    keys: dict[tuple[str, str], StoredAnswer] = field(default_factory=dict)
    # Keys a concurrent request has reserved but not yet committed: invisible, yet taken.
    held_keys: set[tuple[str, str]] = field(default_factory=set)
    instances: dict[str, Instance] = field(default_factory=dict)
    uploads: dict[str, UploadSession] = field(default_factory=dict)
    callers: dict[str, DimseCaller] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class FakeExams:
    """Exams in memory."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def get(self, exam_id: str, *, for_update: bool = False) -> Exam | None:
        return self.t.exams.get(exam_id)

    def by_study(self, study_uid: str) -> Exam | None:
        return next((e for e in self.t.exams.values() if e.study_instance_uid == study_uid), None)

    def add(self, exam: Exam) -> None:
        if exam.exam_id in self.t.exams:
            raise Collision(exam.exam_id)
        self.t.exams[exam.exam_id] = exam

    def record_manifest(
        self,
        exam_id: str,
        entries: Sequence[ManifestEntry],
        digest: str,
        *,
        started_at: datetime | None,
        completed_at: datetime | None,
        scan_seconds: float,
    ) -> None:
        self.t.manifests[exam_id] = list(entries)
        self.t.exams[exam_id] = replace(
            self.t.exams[exam_id],
            manifest_sha256=digest,
            scan_started_at=started_at,
            scan_completed_at=completed_at,
            scan_seconds=scan_seconds,
        )

    def manifest(self, exam_id: str) -> list[ManifestEntry]:
        return list(self.t.manifests.get(exam_id, []))

    def set_state(self, exam_id: str, state: str) -> None:
        self.t.exams[exam_id] = replace(self.t.exams[exam_id], state=state)

    def bind_study(self, exam_id: str, study_uid: str) -> None:
        self.t.exams[exam_id] = replace(self.t.exams[exam_id], study_instance_uid=study_uid)

    def complete(self, exam_id: str, at: datetime) -> bool:
        exam = self.t.exams[exam_id]
        if exam.state == "completed":
            return False
        self.t.exams[exam_id] = replace(exam, state="completed", completed_at=at)
        return True


class FakeRequestKeys:
    """Idempotency keys in memory, with the request fingerprint and the answer."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def find(self, owner: str, key: str) -> StoredAnswer | None:
        return self.t.keys.get((owner, key))

    def reserve(self, owner: str, key: str, request: str, at: datetime) -> None:
        if (owner, key) in self.t.keys or (owner, key) in self.t.held_keys:
            raise KeyTaken(key)
        self.t.keys[(owner, key)] = StoredAnswer(request, 0, {})

    def remember(self, owner: str, key: str, status: int, body: Body) -> None:
        request = self.t.keys[(owner, key)].request
        self.t.keys[(owner, key)] = StoredAnswer(request, status, body)


class FakeInstances:
    """The instance index in memory."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def get(self, sop_uid: str) -> Instance | None:
        return self.t.instances.get(sop_uid)

    def stored_of_exam(self, exam_id: str) -> list[Instance]:
        found = [
            i for i in self.t.instances.values() if i.exam_id == exam_id and i.status == "stored"
        ]
        return sorted(found, key=lambda i: (i.stored_at or START, i.sop_instance_uid))

    def claim(self, instance: Instance) -> None:
        if instance.sop_instance_uid in self.t.instances:
            raise Collision(instance.sop_instance_uid)
        self.t.instances[instance.sop_instance_uid] = instance

    def try_claim(self, instance: Instance) -> bool:
        if instance.sop_instance_uid in self.t.instances:
            return False
        self.t.instances[instance.sop_instance_uid] = instance
        return True

    def renew_claim(self, sop_uid: str, claimed_at: datetime, at: datetime) -> bool:
        return self._claimed(sop_uid, claimed_at, claimed_at=at)

    def mark_stored(self, sop_uid: str, at: datetime, claimed_at: datetime) -> bool:
        return self._claimed(sop_uid, claimed_at, status="stored", stored_at=at)

    def _claimed(self, sop_uid: str, taken_at: datetime, **values: Any) -> bool:
        found = self.t.instances.get(sop_uid)
        if found is None or found.status != "pending" or found.claimed_at != taken_at:
            return False
        self.t.instances[sop_uid] = replace(found, **values)
        return True

    def link(
        self,
        sop_uid: str,
        exam_id: str,
        app_pixel_spacing: str | None,
        app_gestational_age_weeks: float | None,
    ) -> None:
        self.t.instances[sop_uid] = replace(
            self.t.instances[sop_uid],
            exam_id=exam_id,
            app_pixel_spacing=app_pixel_spacing,
            app_gestational_age_weeks=app_gestational_age_weeks,
        )

    def release(self, sop_uid: str, claimed_at: datetime | None = None) -> bool:
        found = self.t.instances.get(sop_uid)
        if found is None or found.status != "pending":
            return False
        if claimed_at is not None and found.claimed_at != claimed_at:
            return False
        del self.t.instances[sop_uid]
        return True

    def claims_before(self, cut: datetime) -> list[Instance]:
        return [
            i for i in self.t.instances.values() if i.status == "pending" and i.claimed_at < cut
        ]

    def owners_and_exam_of_study(self, study_uid: str) -> tuple[set[Scope], Exam | None]:
        owners = {
            Scope(i.institution_id, i.consortium_id)
            for i in self.t.instances.values()
            if i.study_instance_uid == study_uid
        }
        exam = next((e for e in self.t.exams.values() if e.study_instance_uid == study_uid), None)
        return owners, exam

    def search(self, reach: Reachable, criteria: Sequence[Criterion]) -> list[Instance]:
        def matches(i: Instance, c: Criterion) -> bool:
            value = getattr(i, c.field)
            if c.op == "in":
                return value in c.value  # type: ignore[operator]
            return bool(value == c.value)

        return [
            i
            for i in self.t.instances.values()
            if i.status == "stored"
            and reach.admits(i.institution_id, i.consortium_id)
            and all(matches(i, c) for c in criteria)
        ]


class FakeUploads:
    """Upload sessions in memory, with the same compare-and-set lock."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def get(self, session_id: str) -> UploadSession | None:
        return self.t.uploads.get(session_id)

    def add(self, upload: UploadSession) -> None:
        self.t.uploads[upload.session_id] = upload

    def lock(
        self, session_id: str, offset: int, generation: int, status: str, expires_at: datetime
    ) -> bool:
        found = self.t.uploads.get(session_id)
        if found is None or (found.upload_offset, found.status, found.parts) != (
            offset,
            status,
            generation,
        ):
            return False
        self.t.uploads[session_id] = replace(
            found, status="appending", parts=generation + 1, expires_at=expires_at
        )
        return True

    def release(
        self,
        session_id: str,
        generation: int,
        *,
        status: str,
        upload_offset: int | None = None,
        interrupted: bool | None = None,
        expires_at: datetime | None = None,
    ) -> bool:
        found = self.t.uploads.get(session_id)
        if found is None or found.status != "appending" or found.parts != generation:
            return False
        self.t.uploads[session_id] = _with(
            found,
            status=status,
            upload_offset=upload_offset,
            interrupted=interrupted,
            expires_at=expires_at,
        )
        return True

    def update(
        self,
        session_id: str,
        *,
        status: str | None = None,
        upload_offset: int | None = None,
        interrupted: bool | None = None,
        sop_instance_uid: str | None = None,
    ) -> None:
        self.t.uploads[session_id] = _with(
            self.t.uploads[session_id],
            status=status,
            upload_offset=upload_offset,
            interrupted=interrupted,
            sop_instance_uid=sop_instance_uid,
        )

    def delete(self, session_id: str) -> None:
        self.t.uploads.pop(session_id, None)

    def locked(self, expiring_before: datetime) -> list[UploadSession]:
        return [
            u
            for u in self.t.uploads.values()
            if u.status == "appending" and u.expires_at < expiring_before
        ]

    def full_open(self) -> list[UploadSession]:
        return [
            u
            for u in self.t.uploads.values()
            if u.status == "open" and u.upload_offset >= u.upload_length
        ]

    def expired(self, now: datetime, limit: int = 100) -> list[str]:
        return [u.session_id for u in self.t.uploads.values() if u.expires_at < now][:limit]


def _with(upload: UploadSession, **values: Any) -> UploadSession:
    return replace(upload, **{k: v for k, v in values.items() if v is not None})


class FakeCallers:
    """The DIMSE caller registry in memory."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def get(self, ae_title: str) -> DimseCaller | None:
        return self.t.callers.get(ae_title)

    def all(self) -> list[DimseCaller]:
        return [self.t.callers[k] for k in sorted(self.t.callers)]

    def put(self, caller: DimseCaller, *, by: str, at: datetime) -> bool:
        created = caller.ae_title not in self.t.callers
        self.t.callers[caller.ae_title] = caller
        return created

    def delete(self, ae_title: str) -> bool:
        return self.t.callers.pop(ae_title, None) is not None


class FakeAuditLog:
    """Audit records in memory."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def append(self, record: AuditRecord) -> None:
        self.t.audit.append(record)


class FakeWork:
    """One transaction over a private copy of the tables."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.exams = FakeExams(tables)
        self.instances = FakeInstances(tables)
        self.uploads = FakeUploads(tables)
        self.callers = FakeCallers(tables)
        self.audit = FakeAuditLog(tables)
        self.request_keys = FakeRequestKeys(tables)
        self.before: dict[Callable[[], None], None] = {}
        self.queued_from = (len(tables.events), len(tables.audit))

    def emit(self, event: Event) -> None:
        self.tables.events.append(event)

    def before_commit(self, action: Callable[[], None]) -> None:
        self.before.setdefault(action)

    def try_claim_announced(self, instance: Instance) -> bool:
        if self.instances.try_claim(instance):
            self.queued_from = (len(self.tables.events), len(self.tables.audit))
            return True
        events, audit = self.queued_from
        del self.tables.events[events:], self.tables.audit[audit:]
        return False


class FakeDatabase:
    """Units of work that commit by swapping in their copy, and roll back by dropping it."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.commits = 0

    @contextmanager
    def unit(self) -> Iterator[Work]:
        work = FakeWork(copy.deepcopy(self.tables))
        yield work
        for action in work.before:
            action()
        self.tables = work.tables
        self.commits += 1


class FakeObjectStore:
    """Objects in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.folder_syncs = 0

    def sync_folders(self) -> None:
        self.folder_syncs += 1

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        self.objects[key] = stream.read()
        return ObjectInfo(key, len(self.objects[key]), content_type, metadata or {})

    def stage(
        self, key: str, source: Path, *, content_type: str = "application/octet-stream"
    ) -> FakeStagedObject:
        return FakeStagedObject(self, key, source.read_bytes(), content_type)

    def open(self, key: str) -> AbstractContextManager[Iterator[bytes]]:
        if key not in self.objects:
            raise ObjectNotFound(key)
        data = self.objects[key]

        @contextmanager
        def chunks() -> Iterator[Iterator[bytes]]:
            yield iter([data])

        return chunks()

    def stat(self, key: str) -> ObjectInfo | None:
        data = self.objects.get(key)
        return None if data is None else ObjectInfo(key, len(data), "", {})

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def list(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def check(self) -> None:
        return None


@dataclass
class FakeStagedObject:
    """A copy held aside until published into its store's dict."""

    store: FakeObjectStore
    key: str
    data: bytes
    content_type: str
    published: bool = False

    def publish(self) -> ObjectInfo:
        self.store.objects[self.key] = self.data
        self.published = True
        return ObjectInfo(self.key, len(self.data), self.content_type, {})

    @property
    def durable_publish(self) -> Callable[[], None]:
        return self.store.sync_folders

    def discard(self) -> None:
        self.data = b""


def dicom_file(
    sop: str = "1.2.3.1", study: str = "1.2.3", series: str = "1.2.3.9", **extra: Any
) -> bytes:
    """Return the bytes FakeCodec reads as an instance with these UIDs."""
    return json.dumps({"sop": sop, "study": study, "series": series, **extra}).encode()


class FakeCodec:
    """Reads the JSON that `dicom_file` writes as a description of a pixel-less instance."""

    def read_instance(
        self, path: Path
    ) -> tuple[InstanceDescription, PixelLayout | None, dict[str, Any]]:
        values = json.loads(path.read_bytes())
        description = InstanceDescription(
            sop_instance_uid=values["sop"],
            sop_class_uid="1.2.840.10008.5.1.4.1.1.88.11",
            study_instance_uid=values["study"],
            series_instance_uid=values["series"],
            transfer_syntax_uid=US_TRANSFER,
            modality="SR",
            image=False,
        )
        return description, None, {"00080018": {"vr": "UI", "Value": [values["sop"]]}}

    def peek_uids(self, path: Path) -> tuple[str, str]:
        try:
            return "1.2.840.10008.5.1.4.1.1.88.11", json.loads(path.read_bytes())["sop"]
        except ValueError:
            return "", ""

    def dataset_sha256(self, chunks: Iterable[bytes]) -> str:
        # The "dataset" is everything but the note a channel may add (its File Meta).
        values = json.loads(b"".join(chunks))
        values.pop("meta", None)
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()

    def check_frames(self, path: Path, numbers: Sequence[int]) -> int:
        return 1

    def read_frames(self, path: Path, numbers: Sequence[int]) -> Iterator[bytes]:
        return iter([path.read_bytes() for _ in numbers])

    def render_frame(self, path: Path, frame: int, media_type: str) -> bytes:
        return f"{media_type}:{frame}".encode()

    def open_element(
        self, chunks: Iterator[bytes], key: BulkKey, transfer_syntax: str
    ) -> tuple[int, Iterator[bytes]]:
        data = b"".join(chunks)[key.offset or 0 :]
        return len(data), iter([data])


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Fakes:
    """The use cases' dependencies, each a fake the test can inspect."""

    deps: IngestDeps
    db: FakeDatabase
    store: FakeObjectStore
    clock: Clock
    spool: Spool

    @property
    def tables(self) -> Tables:
        return self.db.tables

    def spooled(self, data: bytes) -> Any:
        """Return `data` as a spooled file, as a transport hands it to the use cases."""
        return self.spool.from_chunks(iter([data]))


def fakes(spool_dir: Path, *, max_instance_bytes: int = 10_000) -> Fakes:
    """Build ingest's dependencies from fakes."""
    db, store, clock = FakeDatabase(), FakeObjectStore(), Clock()
    # The transport spools up to its own limit; the use case checks the configured one.
    spool = Spool(spool_dir, 1_000_000)
    deps = IngestDeps(
        unit=db.unit,
        store=store,
        spool=spool,
        codec=FakeCodec(),
        metrics=IngestMetrics(ServiceMetrics("ingest")),
        clock=clock,
        max_instance_bytes=max_instance_bytes,
        upload_expiry=timedelta(hours=24),
    )
    return Fakes(deps, db, store, clock, spool)


def operator(institution: str = "east", user: str = "sono-1") -> Principal:
    """Return a sonographer of `institution`."""
    return Principal(user, frozenset({"operator"}), institution, "county")


def admin() -> Principal:
    """Return a county IT administrator."""
    return Principal("county-admin", frozenset({"admin"}), None, "county")


def stream(data: bytes) -> io.BytesIO:
    """Return `data` as a stream."""
    return io.BytesIO(data)
