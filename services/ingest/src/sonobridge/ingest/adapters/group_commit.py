"""Group commit on SQLite: concurrent requests' units of work share one transaction."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.common.delivery import Outbox
from sonobridge.common.sqlite_direct import Direct
from sonobridge.ingest.adapters.repository import SqlWork, unit_of_work
from sonobridge.ingest.ports import Collision, Work

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_BEGIN = Direct(text("BEGIN IMMEDIATE"))
# A step's savepoint, by hand: Session.begin_nested's nested transaction bookkeeping costs more
# than SQLite's statements, and the steps hold no ORM objects for it to expire. Steps run one
# after another, so one name serves them all.
_SAVEPOINT = Direct(text("SAVEPOINT step"))
_RELEASE = Direct(text("RELEASE step"))
_ROLLBACK_TO = Direct(text("ROLLBACK TO step"))
# Bounds one transaction, and so the wait of its last request; the rest form the next group.
MAX_GROUP = 64


class _Request(Generic[_T]):
    """One caller's step, and what became of it."""

    def __init__(self, step: Callable[[Work], _T]) -> None:
        self.step = step
        # The step runs on the leader's thread, but in its caller's context (log fields).
        self.context = contextvars.copy_context()
        # A bare lock, held until the request is woken: threading.Event's Condition costs a
        # lock allocation and a few Python frames on each side of every wait.
        self._wake = threading.Lock()
        self._wake.acquire()
        self.done = False
        self.value: _T | None = None
        self.error: BaseException | None = None

    def run(self, work: Work) -> None:
        """Run the step on `work`, keeping its result or error."""
        self.value, self.error = None, None
        try:
            self.value = self.context.run(self.step, work)
        except IntegrityError as exc:
            self.error = Collision(str(exc.orig))
            raise
        except Exception as exc:
            self.error = exc
            raise

    def wake(self) -> None:
        """Wake the caller waiting in `wait` (again: no effect)."""
        with contextlib.suppress(RuntimeError):  # released already
            self._wake.release()

    def wait(self) -> None:
        """Block until `wake` is called."""
        self._wake.acquire()

    def finish(self) -> None:
        """Hand the outcome to the waiting caller."""
        self.done = True
        self.wake()

    def outcome(self) -> _T:
        """Return the step's result, or raise its error."""
        if self.error is not None:
            raise self.error
        return cast(_T, self.value)


@contextmanager
def _savepoint(session: Session) -> Iterator[None]:
    """Undo what the block wrote if it raises; keep it otherwise."""
    _SAVEPOINT.run(session, {})
    try:
        yield
    except BaseException:
        _ROLLBACK_TO.run(session, {})
        _RELEASE.run(session, {})
        raise
    _RELEASE.run(session, {})


class _Undone(Exception):
    """The step of a group of one failed: its transaction rolls back, nothing runs again."""


@dataclass
class _Group:
    """The requests one leader runs in one transaction."""

    requests: list[_Request[Any]] = field(default_factory=list)
    handed: bool = False  # the lead of the next group is passed on


class GroupCommit:
    """Run concurrent requests' steps in one SQLite transaction: one commit, one WAL fsync.

    SQLite admits one writer, and each commit writes its pages to the log and waits for an
    fsync. A request that finds a group under way queues its step. The next leader takes every
    queued step once it holds the write lock (so the group holds all that arrived meanwhile),
    runs each in a savepoint (a failing step undoes only its own writes and gets its own
    error; a step alone in its group needs none, as its failure rolls back only its own
    writes), hands the lead on, runs the steps' before-commit actions once each (one fsync per
    folder of published objects), commits, and wakes each caller with its own result. If the
    group cannot commit, each step runs again alone, so only a step's own fault reaches it.
    """

    def __init__(
        self, sessions: sessionmaker[Session], outbox: Outbox, *, max_group: int = MAX_GROUP
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._alone = unit_of_work(sessions, outbox)
        self._max_group = max_group
        self._lock = threading.Lock()
        self._queue: list[_Request[Any]] = []
        self._leading = False

    def __call__(self, step: Callable[[Work], _T]) -> _T:
        """Run `step` in the next group's transaction; return once that commit is durable."""
        request = _Request(step)
        with self._lock:
            self._queue.append(request)
            lead, self._leading = not self._leading, True
        if not lead:
            request.wait()
        if not request.done:
            self._lead()  # first in line: this thread runs the group this request heads
        return request.outcome()

    def _lead(self) -> None:
        group = _Group()
        try:
            self._commit_group(group)
        except _Undone:
            pass  # a group of one whose step failed: rolled back, its error kept for its caller
        except Exception as exc:
            # The type only: a statement's error text can carry its parameters (patient names).
            log.warning(
                "group commit failed (%s); %d step(s) run alone",
                type(exc).__name__,
                len(group.requests),
            )
            if not group.requests:
                group.requests = self._take()
            self._hand_over(group)
            for request in group.requests:
                self._run_alone(request)
        except BaseException as exc:
            for request in group.requests:
                request.error = request.error or exc
            raise
        finally:
            self._hand_over(group)
            for request in group.requests:
                request.finish()

    def _commit_group(self, group: _Group) -> None:
        with self._sessions.begin() as session:
            # Waits at the write gate while the last group commits; the group is taken after.
            _BEGIN.run(session, {})
            group.requests = self._take()
            only = len(group.requests) == 1
            works = [self._run(session, request, only=only) for request in group.requests]
            # The next group gathers and waits at the gate while this one syncs and commits.
            self._hand_over(group)
            for action in dict.fromkeys(a for w in works if w is not None for a in w.before):
                action()

    def _run(self, session: Session, request: _Request[Any], *, only: bool) -> SqlWork | None:
        """Run one step in a savepoint; return its work, or None if it failed (undone)."""
        work = SqlWork(session, self._outbox)
        try:
            # A group's only step needs no savepoint (two statements fewer): its failure rolls
            # back the whole transaction, which holds nothing else.
            with nullcontext() if only else _savepoint(session):
                request.run(work)
                work.flush()
        except Exception as exc:
            if request.error is None:  # the flush failed, after the step
                request.error = Collision(str(exc.orig)) if isinstance(exc, IntegrityError) else exc
            if only:
                raise _Undone from exc
            return None
        return work

    def _run_alone(self, request: _Request[Any]) -> None:
        try:
            with self._alone() as work:
                request.run(work)
        except Exception as exc:
            if request.error is None:  # the commit failed, after the step
                request.error = exc

    def _take(self) -> list[_Request[Any]]:
        with self._lock:
            group = self._queue[: self._max_group]
            del self._queue[: self._max_group]
        return group

    def _hand_over(self, group: _Group) -> None:
        """Wake the first queued request to lead the next group (once per group)."""
        if group.handed:
            return
        group.handed = True
        with self._lock:
            if self._queue:
                self._queue[0].wake()
            else:
                self._leading = False
