"""SQLAlchemy repositories over ingest's tables and the unit of work that holds them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    bindparam,
    delete,
    false,
    insert,
    literal,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert

from sonobridge.common.access import Reachable
from sonobridge.common.audit import AuditLog
from sonobridge.common.delivery import Outbox
from sonobridge.common.idempotency import IdempotencyKeys
from sonobridge.common.sql_records import SqlIdempotencyKeys
from sonobridge.common.sqlite_direct import Direct
from sonobridge.ingest.adapters import messages
from sonobridge.ingest.adapters.callers import SqlAuditLog, SqlCallers
from sonobridge.ingest.adapters.orm import (
    exams,
    idempotency_keys,
    instances,
    manifest_items,
)
from sonobridge.ingest.adapters.rows import changed, optional, record, record_of, values_of
from sonobridge.ingest.adapters.uploads import SqlUploads
from sonobridge.ingest.domain.events import Event
from sonobridge.ingest.domain.model import ManifestEntry, Scope
from sonobridge.ingest.domain.query import Criterion
from sonobridge.ingest.domain.records import Exam, Instance
from sonobridge.ingest.ports import (
    Callers,
    Collision,
    Exams,
    Instances,
    UnitOfWork,
    Uploads,
    Work,
)

SOURCE = "ingest"
# QIDO-RS answers in study, series and instance order, so pages are stable.
_SEARCH_ORDER = (
    instances.c.study_instance_uid,
    instances.c.series_number,
    instances.c.series_instance_uid,
    instances.c.instance_number,
    instances.c.sop_instance_uid,
)


# The hot path's statements are built once and given their values at execution: building
# one per call (`.values(**row)`, a fresh WHERE) costs more CPU than SQLite takes to run it,
# as SQLAlchemy walks the new construct to find its cached compilation.
_EXAM = select(exams).where(exams.c.exam_id == bindparam("exam_id"))
_INSTANCE = select(instances).where(instances.c.sop_instance_uid == bindparam("sop"))
_CLAIM = insert(instances)
# On SQLite these run on the DBAPI connection, compiled once (see Direct).
_INSERTS: dict[Table, Direct] = {}
_TRY_CLAIMS: dict[str, Direct] = {}


def _try_claim(dialect: str) -> Direct:
    """Return the claim insert of `dialect`, built (and its dialect imported) on first use."""
    statement = _TRY_CLAIMS.get(dialect)
    if statement is None:
        statement = _TRY_CLAIMS.setdefault(dialect, Direct(_claim_unless_indexed(dialect)))
    return statement


def _claim_unless_indexed(dialect: str, values: dict[str, Any] | None = None) -> Insert:
    """Build the insert of an instance row that does nothing if its UID is indexed."""
    # Loaded by the first claim: the single node (SQLite) would otherwise import PostgreSQL's
    # dialect to start (~0.03 CPU s).
    module = importlib.import_module(
        "sqlalchemy.dialects." + ("postgresql" if dialect == "postgresql" else "sqlite")
    )
    statement = module.insert(instances)
    if values is not None:  # else the row's values are given at execution
        statement = statement.values(values)
    claim: Insert = statement.on_conflict_do_nothing(
        index_elements=[instances.c.sop_instance_uid]
    ).returning(
        # RETURNING, not rowcount: the PostgreSQL driver reports -1 for this insert.
        instances.c.sop_instance_uid
    )
    return claim


# (instance columns, (table, columns) of each append) -> the statement writing them together
_ClaimShape = tuple[tuple[str, ...], tuple[tuple[Table, tuple[str, ...]], ...]]
_CLAIMS_WITH_APPENDS: dict[_ClaimShape, Insert] = {}


def _claim_with_appends(shape: _ClaimShape) -> Insert:
    """Build one PostgreSQL statement: claim an instance row, and insert the appends beside it.

    WITH claim AS (INSERT INTO instances ... ON CONFLICT DO NOTHING RETURNING ...),
    append_0 AS (INSERT INTO outbox ... SELECT ... FROM claim) INSERT INTO audit_log ...
    SELECT ... FROM claim RETURNING 1: each append selects from the claim, so it inserts
    nothing when the row was there, and a returned row says the claim was this statement's.
    """
    columns, appends = shape
    claim = _claim_unless_indexed(
        "postgresql", {c: bindparam(f"c_{c}", type_=instances.c[c].type) for c in columns}
    ).cte("claim")
    inserts = [
        insert(table).from_select(
            list(names),
            select(*(bindparam(f"a{i}_{n}", type_=table.c[n].type) for n in names)).select_from(
                claim
            ),
        )
        for i, (table, names) in enumerate(appends)
    ]
    *first, last = inserts
    ctes = [statement.cte(f"append_{i}") for i, statement in enumerate(first)]
    return last.add_cte(claim, *ctes).returning(literal_column("1"))


@dataclass
class SqlExams:
    """Exams and their manifests in one session."""

    session: Session

    def get(self, exam_id: str, *, for_update: bool = False) -> Exam | None:
        """Return an exam, row-locked until commit when asked."""
        query = _EXAM.with_for_update() if for_update else _EXAM
        return optional(Exam, self.session.execute(query, {"exam_id": exam_id}).first())

    def by_study(self, study_uid: str) -> Exam | None:
        """Return the exam bound to a StudyInstanceUID."""
        query = select(exams).where(exams.c.study_instance_uid == study_uid)
        return optional(Exam, self.session.execute(query).first())

    def add(self, exam: Exam) -> None:
        """Insert an exam."""
        self.session.execute(insert(exams).values(**values_of(exam)))

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
        """Store an exam's manifest and scan timing."""
        self.session.execute(
            insert(manifest_items),
            [
                {
                    "exam_id": exam_id,
                    "sop_instance_uid": e.sop_instance_uid,
                    "sha256": e.sha256,
                    "position": i,
                }
                for i, e in enumerate(entries)
            ],
        )
        self._update(
            exam_id,
            manifest_sha256=digest,
            scan_started_at=started_at,
            scan_completed_at=completed_at,
            scan_seconds=scan_seconds,
        )

    def manifest(self, exam_id: str) -> list[ManifestEntry]:
        """Return an exam's manifest in acquisition order (empty before it arrives)."""
        rows = self.session.execute(
            select(manifest_items.c.sop_instance_uid, manifest_items.c.sha256)
            .where(manifest_items.c.exam_id == exam_id)
            .order_by(manifest_items.c.position)
        ).all()
        return [ManifestEntry(r.sop_instance_uid, r.sha256) for r in rows]

    def set_state(self, exam_id: str, state: str) -> None:
        """Move an exam to `state`."""
        self._update(exam_id, state=state)

    def bind_study(self, exam_id: str, study_uid: str) -> None:
        """Record the StudyInstanceUID the exam's first instance carried."""
        self._update(exam_id, study_instance_uid=study_uid)

    def complete(self, exam_id: str, at: datetime) -> bool:
        """Mark an exam completed unless it already is; True if this call did it."""
        return changed(
            self.session.execute(
                update(exams)
                .where(exams.c.exam_id == exam_id, exams.c.state != "completed")
                .values(state="completed", completed_at=at)
            )
        )

    def _update(self, exam_id: str, **values: Any) -> None:
        self.session.execute(update(exams).where(exams.c.exam_id == exam_id).values(**values))


def _criterion(criterion: Criterion) -> ColumnElement[bool]:
    column = instances.c[criterion.field]
    value = criterion.value
    if criterion.op == "in":
        return column.in_(list(value) if isinstance(value, tuple) else [value])
    if criterion.op == "ge":
        return column >= value
    if criterion.op == "le":
        return column <= value
    if criterion.op == "like":
        return column.like(str(value), escape="\\")
    return column == value


def _visible(reach: Reachable) -> ColumnElement[bool]:
    stored = instances.c.status == "stored"
    if reach.institutions is None:
        return stored
    if not reach.institutions:
        return and_(stored, false())
    clauses = [stored, instances.c.institution_id.in_(sorted(reach.institutions))]
    if reach.consortium:
        clauses.append(instances.c.consortium_id == reach.consortium)
    return and_(*clauses)


# A loose index scan of ix_instances_study_owner: step from one institution to the next, then
# through each one's consortia, one index seek per step. Every seek is an equality prefix and one
# range, the shape both PostgreSQL and SQLite turn into a seek ((a, b) > (x, y) scans on SQLite).
_OWNERS_OF_STUDY = text(
    """
WITH RECURSIVE
  owners_i(institution_id) AS (
    SELECT (SELECT institution_id FROM instances WHERE study_instance_uid = :study
            ORDER BY institution_id LIMIT 1)
    UNION ALL
    SELECT (SELECT institution_id FROM instances WHERE study_instance_uid = :study
              AND institution_id > owners_i.institution_id ORDER BY institution_id LIMIT 1)
    FROM owners_i WHERE owners_i.institution_id IS NOT NULL
  ),
  owners(institution_id, consortium_id) AS (
    SELECT owners_i.institution_id,
           (SELECT consortium_id FROM instances WHERE study_instance_uid = :study
              AND institution_id = owners_i.institution_id ORDER BY consortium_id LIMIT 1)
    FROM owners_i WHERE owners_i.institution_id IS NOT NULL
    UNION ALL
    SELECT owners.institution_id,
           (SELECT consortium_id FROM instances WHERE study_instance_uid = :study
              AND institution_id = owners.institution_id
              AND consortium_id > owners.consortium_id ORDER BY consortium_id LIMIT 1)
    FROM owners WHERE owners.consortium_id IS NOT NULL
  )
SELECT institution_id, consortium_id FROM owners WHERE consortium_id IS NOT NULL
"""
)


def _owners_and_exam() -> Any:
    """The study's owner scopes, each beside the exam bound to the study (NULLs when none)."""
    owners = _OWNERS_OF_STUDY.columns(institution_id=String, consortium_id=String).subquery(
        "owners"
    )
    one = select(literal(1).label("one")).subquery("one")
    return select(
        owners.c.institution_id.label("owner_institution_id"),
        owners.c.consortium_id.label("owner_consortium_id"),
        exams,
    ).select_from(
        one.outerjoin(owners, true()).outerjoin(
            exams, exams.c.study_instance_uid == bindparam("study")
        )
    )


_OWNERS_AND_EXAM = Direct(_owners_and_exam())


@dataclass
class SqlInstances:
    """The instance index in one session."""

    session: Session

    def get(self, sop_uid: str) -> Instance | None:
        """Return an instance (pending or stored)."""
        return optional(Instance, self.session.execute(_INSTANCE, {"sop": sop_uid}).first())

    def stored_of_exam(self, exam_id: str) -> list[Instance]:
        """Return the stored instances linked to an exam, in storage order."""
        query = (
            select(instances)
            .where(instances.c.exam_id == exam_id, instances.c.status == "stored")
            .order_by(instances.c.stored_at, instances.c.sop_instance_uid)
        )
        return [record(Instance, r) for r in self.session.execute(query)]

    def claim(self, instance: Instance) -> None:
        """Insert a pending instance: the write claim on its SOP Instance UID."""
        self.session.execute(_CLAIM, values_of(instance))

    def try_claim(self, instance: Instance) -> bool:
        """Insert the row unless its SOP Instance UID is indexed; True if this call did.

        One statement instead of a look-up and an insert: the common case, a new instance,
        costs one round trip, and a concurrent writer's row is waited for, not raced.
        """
        statement = _try_claim(self.session.get_bind().dialect.name)
        return bool(statement.run(self.session, values_of(instance), keys=True))

    def renew_claim(self, sop_uid: str, claimed_at: datetime, at: datetime) -> bool:
        """Move a claim's time to `at` if it is still the one taken at `claimed_at`."""
        return self._claimed(sop_uid, claimed_at, claimed_at=at)

    def mark_stored(self, sop_uid: str, at: datetime, claimed_at: datetime) -> bool:
        """Turn the claim taken at `claimed_at` into a stored instance; False if it was lost."""
        return self._claimed(sop_uid, claimed_at, status="stored", stored_at=at)

    def _claimed(self, sop_uid: str, taken_at: datetime, **values: Any) -> bool:
        """Update the pending row only while it is the claim taken at `taken_at`."""
        result = self.session.execute(
            update(instances)
            .where(
                instances.c.sop_instance_uid == sop_uid,
                instances.c.status == "pending",
                instances.c.claimed_at == taken_at,
            )
            .values(**values)
        )
        return changed(result)

    def link(
        self,
        sop_uid: str,
        exam_id: str,
        app_pixel_spacing: str | None,
        app_gestational_age_weeks: float | None,
    ) -> None:
        """Link an instance that arrived without an exam to one."""
        self._update(
            sop_uid,
            exam_id=exam_id,
            app_pixel_spacing=app_pixel_spacing,
            app_gestational_age_weeks=app_gestational_age_weeks,
        )

    def release(self, sop_uid: str, claimed_at: datetime | None = None) -> bool:
        """Drop a write claim (only the one taken at `claimed_at` when given); True if dropped."""
        statement = delete(instances).where(
            instances.c.sop_instance_uid == sop_uid, instances.c.status == "pending"
        )
        if claimed_at is not None:
            statement = statement.where(instances.c.claimed_at == claimed_at)
        return changed(self.session.execute(statement))

    def claims_before(self, cut: datetime) -> list[Instance]:
        """Return write claims taken before the cut."""
        query = select(instances).where(
            instances.c.status == "pending", instances.c.claimed_at < cut
        )
        return [record(Instance, r) for r in self.session.execute(query)]

    def owners_and_exam_of_study(self, study_uid: str) -> tuple[set[Scope], Exam | None]:
        """Return the scopes of a study's indexed instances and the exam bound to it."""
        # One round trip for both. The owner scan costs what the study's owners (nearly always
        # one) hold, not its instances: a DISTINCT read every row of the study for every
        # instance stored into it.
        rows = _OWNERS_AND_EXAM.run(self.session, {"study": study_uid})
        scopes = {
            Scope(r["owner_institution_id"], r["owner_consortium_id"])
            for r in rows
            if r["owner_institution_id"] is not None
        }
        return scopes, (record_of(Exam, rows[0]) if rows[0]["exam_id"] is not None else None)

    def search(self, reach: Reachable, criteria: Sequence[Criterion]) -> list[Instance]:
        """Return stored instances within `reach` matching every criterion."""
        query = (
            select(instances)
            .where(_visible(reach), *(_criterion(c) for c in criteria))
            .order_by(*_SEARCH_ORDER)
        )
        return [record(Instance, r) for r in self.session.execute(query)]

    def _update(self, sop_uid: str, **values: Any) -> None:
        self.session.execute(
            update(instances).where(instances.c.sop_instance_uid == sop_uid).values(**values)
        )


class SqlWork:
    """One database transaction with ingest's repositories and its outbox."""

    def __init__(self, session: Session, outbox: Outbox) -> None:
        self.session = session
        self.outbox = outbox
        # Outbox and audit rows are written last, together: nothing reads them back inside
        # the transaction, and PostgreSQL takes them all in one statement (one round trip).
        self.appends: list[tuple[Table, dict[str, Any]]] = []
        # Ordered and deduplicated: an object store's folder sync runs once for many objects.
        self.before: dict[Callable[[], None], None] = {}
        self.exams: Exams = SqlExams(session)
        self.instances: Instances = SqlInstances(session)
        self.uploads: Uploads = SqlUploads(session)
        self.callers: Callers = SqlCallers(session)
        self.audit: AuditLog = SqlAuditLog(session, self.appends)
        self.request_keys: IdempotencyKeys = SqlIdempotencyKeys(session, idempotency_keys)

    def emit(self, event: Event) -> None:
        """Queue an event in the outbox, committed with everything else in this transaction."""
        message, key = messages.event_message(event)
        self.outbox.staged(self.session)
        self.appends.append(
            (self.outbox.table, self.outbox.emit_row(message, source=SOURCE, key=key))
        )

    def before_commit(self, action: Callable[[], None]) -> None:
        """Run `action` after this transaction's writes, before its commit."""
        self.before.setdefault(action)

    def try_claim_announced(self, instance: Instance) -> bool:
        """Insert the row unless its UID is indexed, with the events and audit records queued.

        True if this call did; otherwise the queued ones are dropped. PostgreSQL takes the row
        and them in one statement: one round trip instead of two.
        """
        if self.appends and self.session.get_bind().dialect.name == "postgresql":
            row = values_of(instance)
            shape = (tuple(row), tuple((table, tuple(values)) for table, values in self.appends))
            statement = _CLAIMS_WITH_APPENDS.get(shape)
            if statement is None:
                statement = _CLAIMS_WITH_APPENDS.setdefault(shape, _claim_with_appends(shape))
            params = {f"c_{name}": value for name, value in row.items()}
            for i, (_table, values) in enumerate(self.appends):
                params.update({f"a{i}_{name}": value for name, value in values.items()})
            claimed = self.session.execute(statement, params).first() is not None
        else:
            claimed = self.instances.try_claim(instance)
            if claimed:
                return True  # the queued rows go in at the flush
        self.appends.clear()
        return claimed

    def flush(self) -> None:
        """Write the queued outbox and audit rows (before the commit)."""
        appends = list(self.appends)
        self.appends.clear()
        if len(appends) > 1 and self.session.get_bind().dialect.name == "postgresql":
            # Data-modifying CTEs: WITH a AS (INSERT ...), b AS (INSERT ...) INSERT ...
            *first, last = (insert(table).values(**row) for table, row in appends)
            ctes = [statement.cte(f"append_{i}") for i, statement in enumerate(first)]
            self.session.execute(last.add_cte(*ctes))
            return
        for table, row in appends:
            # One prebuilt insert per table: see _CLAIM.
            statement = _INSERTS.get(table) or _INSERTS.setdefault(table, Direct(insert(table)))
            statement.run(self.session, row, keys=True)


def unit_of_work(sessions: sessionmaker[Session], outbox: Outbox) -> UnitOfWork:
    """Return the factory of ingest's units of work over `sessions`."""

    @contextmanager
    def unit() -> Iterator[Work]:
        """Open one transaction; a unique-key clash surfaces as Collision."""
        try:
            with sessions.begin() as session:
                work = SqlWork(session, outbox)
                yield work
                work.flush()
                for action in work.before:
                    action()
        except IntegrityError as exc:
            raise Collision(str(exc.orig)) from exc

    return unit
