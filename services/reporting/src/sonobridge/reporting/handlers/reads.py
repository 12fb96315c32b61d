"""Worklists and reads: list, page, view, claim, release, reassign."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sonobridge.common.auth import Principal
from sonobridge.common.paging import split_page
from sonobridge.common.problems import Forbidden, InvalidInput, NotFound
from sonobridge.reporting.domain import reads as read_rules
from sonobridge.reporting.domain.access import may_dispatch, may_read_on, read_scope
from sonobridge.reporting.domain.policy import WorklistSpec
from sonobridge.reporting.domain.reads import Read, ReadState
from sonobridge.reporting.domain.records import (
    Draft,
    Exam,
    HistoryEntry,
    ReadPosition,
    ReadRecord,
    Verdict,
)
from sonobridge.reporting.handlers.scope import audit, spec_of, visible_read
from sonobridge.reporting.ports import Dependencies, Work

DEFAULT_STATES = ("queued", "claimed", "escalated")


@dataclass(frozen=True)
class ReadDetail:
    """Everything the exam view shows about one read."""

    read: ReadRecord
    exam: Exam | None
    draft: Draft | None
    verdicts: list[Verdict]
    history: list[HistoryEntry]


def encode_read_cursor(at: ReadPosition) -> str:
    """Return an opaque cursor for a place in worklist order."""
    rank, due, read_id = at
    raw = json.dumps([rank, due.astimezone(UTC).isoformat(), read_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_read_cursor(cursor: str | None) -> ReadPosition | None:
    """Return the place in a worklist cursor; InvalidInput when it is not one of ours."""
    if not cursor:
        return None
    try:
        rank, due, read_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        at = datetime.fromisoformat(due)
        if not isinstance(rank, int) or not isinstance(read_id, str) or at.tzinfo is None:
            raise ValueError(cursor)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid cursor") from exc
    return rank, at, read_id


def list_worklists(deps: Dependencies, principal: Principal) -> list[tuple[WorklistSpec, int]]:
    """Return the worklists with how many open reads the caller may see on each."""
    scope = read_scope(principal, deps.policy.worklists, deps.access)
    with deps.unit() as work:
        depth = work.reporting.open_depth(scope)
    return [(spec, depth.get(spec.name, 0)) for spec in deps.policy.worklists]


def list_reads(
    deps: Dependencies,
    principal: Principal,
    *,
    worklist: str | None,
    states: Sequence[str] | None,
    assigned_to: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[ReadRecord], str | None]:
    """Return a page of visible reads, most urgent first, and the cursor of the next page."""
    if worklist is not None and spec_of(deps, worklist) is None:
        raise NotFound(f"no worklist {worklist}")
    wanted = list(states) if states else list(DEFAULT_STATES)
    bad = [s for s in wanted if s not in {st.value for st in ReadState}]
    if bad:
        raise InvalidInput(f"unknown read states {bad}")
    after = decode_read_cursor(cursor)
    scope = read_scope(principal, deps.policy.worklists, deps.access)
    with deps.unit() as work:
        repo = work.reporting
        rows = repo.read_page(
            scope=scope,
            worklists=[worklist] if worklist else None,
            states=wanted,
            assigned_to=assigned_to,
            after=after,
            limit=limit + 1,
        )
        page, last = split_page(rows, limit)
        audit(
            repo,
            deps,
            principal,
            "list_reads",
            detail=f"worklist={worklist} states={','.join(wanted)} n={len(page)}",
        )
    return page, encode_read_cursor(last.position()) if last else None


def view_read(deps: Dependencies, principal: Principal, read_id: str) -> ReadDetail:
    """Return the read with its exam, draft, verdicts and history (auditing the view)."""
    with deps.unit() as work:
        repo = work.reporting
        read = visible_read(repo, deps, principal, read_id)
        detail = ReadDetail(
            read=read,
            exam=repo.exam(read.study_uid),
            draft=repo.draft(read_id),
            verdicts=repo.verdicts(read_id),
            history=repo.history(read_id),
        )
        audit(repo, deps, principal, "view_read", read_id=read_id, report_id=read.report_id)
    return detail


def _change(
    work: Work,
    deps: Dependencies,
    principal: Principal,
    read_id: str,
    action: str,
    decide: Callable[[ReadRecord, WorklistSpec], Read],
) -> ReadRecord:
    now = deps.clock()
    repo = work.reporting
    read = visible_read(repo, deps, principal, read_id, lock=True)
    spec = deps.policy.worklist(read.worklist)
    updated = decide(read, spec)
    repo.update_read(read_id, state=updated.state.value, assigned_to=updated.assigned_to)
    repo.add_history(
        read_id,
        HistoryEntry(
            at=now,
            kind=action,
            actor=principal.user,
            worklist=read.worklist,
            assigned_to=updated.assigned_to,
        ),
    )
    audit(repo, deps, principal, action, read_id=read_id)
    if action == "reassigned" and updated.assigned_to:
        repo.notify(
            kind="read_assigned",
            at=now,
            user=updated.assigned_to,
            payload={
                "read_id": read_id,
                "worklist": read.worklist,
                "priority": read.priority,
                "by": principal.user,
            },
        )
    fresh = repo.read(read_id)
    assert fresh is not None
    return fresh


def claim_read(work: Work, deps: Dependencies, principal: Principal, read_id: str) -> ReadRecord:
    """Take a read to work on it."""

    def decide(read: ReadRecord, spec: WorklistSpec) -> Read:
        if not may_read_on(principal, spec, read.institution):
            raise Forbidden(
                f"reads on {spec.name} need one of the roles "
                f"{', '.join(spec.signer_roles) or '(none)'}"
            )
        return read_rules.claim(read.lifecycle(), principal.user)

    return _change(work, deps, principal, read_id, "claimed", decide)


def release_read(work: Work, deps: Dependencies, principal: Principal, read_id: str) -> ReadRecord:
    """Put a claimed read back on its worklist."""

    def decide(read: ReadRecord, spec: WorklistSpec) -> Read:
        return read_rules.release(
            read.lifecycle(), principal.user, may_override=may_dispatch(principal)
        )

    return _change(work, deps, principal, read_id, "released", decide)


def reassign_read(
    work: Work, deps: Dependencies, principal: Principal, read_id: str, to_user: str
) -> ReadRecord:
    """Give a read to another reader (dispatchers), or pass one's own claim on."""
    if not to_user:
        raise InvalidInput("to_user must not be empty")

    def decide(read: ReadRecord, spec: WorklistSpec) -> Read:
        own = read.state == ReadState.CLAIMED.value and read.assigned_to == principal.user
        if not (may_dispatch(principal) or own):
            raise Forbidden("only a dispatcher or the reader holding the claim may reassign")
        rostered = {s.user for s in work.reporting.shifts(spec.name)}
        if to_user not in rostered:
            raise InvalidInput(f"{to_user} is not on the roster of {spec.name}")
        return read_rules.reassign(read.lifecycle(), to_user)

    return _change(work, deps, principal, read_id, "reassigned", decide)
