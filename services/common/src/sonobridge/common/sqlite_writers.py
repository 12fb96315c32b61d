"""SQLite writers in one process: queued on a gate, and made durable by one WAL fsync per group."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

# BEGIN IMMEDIATE takes SQLite's write lock at once: a group of writes sharing a transaction.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN IMMEDIATE")
_LOCK = threading.Lock()
_FILES: dict[str, tuple[threading.Lock, WalSync]] = {}


# A checkpoint copies the log into the database and fsyncs both; SQLite's own one runs inside
# the commit that crosses 1,000 pages, under the write lock. Here a thread of each file's own
# runs it instead, once every CHECKPOINT_COMMITS commits (small writes of some pages each): once
# a second only added fsyncs on a shared disk. It ends after CHECKPOINT_IDLE_S idle seconds.
CHECKPOINT_COMMITS = 100
CHECKPOINT_IDLE_S = 30.0


class WalCheckpoints:
    """Checkpoint a database's write-ahead log on a thread of its own, off the writers' path."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running = False
        self._commits = 0
        self.done = 0

    def committed(self) -> None:
        """Note a durable commit; every CHECKPOINT_COMMITS of them, wake the checkpoint."""
        self._commits += 1  # a lost count under a race only delays a checkpoint
        if self._commits < CHECKPOINT_COMMITS:
            return
        self._commits = 0
        self._wake.set()
        if self._running:
            return
        with self._lock:
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="wal-checkpoint", daemon=True).start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.database, timeout=30, check_same_thread=False)
        try:
            while True:
                if not self._wake.wait(CHECKPOINT_IDLE_S):
                    with self._lock:
                        if not self._wake.is_set():
                            self._running = False
                            return
                self._wake.clear()
                # PASSIVE: copies what no reader still needs and never blocks a writer.
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.done += 1
        except sqlite3.Error:
            with self._lock:
                self._running = False  # the next commit starts another
        finally:
            conn.close()


class WalSync:
    """fsync a database's write-ahead log once for every commit that finished before it began.

    With synchronous=NORMAL SQLite's commit writes the WAL without fsync; each committer then
    calls sync() before acknowledging anything. One caller fsyncs while those arriving
    meanwhile wait for the next round, which covers them all: a burst of commits shares fsyncs.
    """

    def __init__(self, wal: Path, checkpoints: WalCheckpoints | None = None) -> None:
        self.wal = wal
        self.checkpoints = checkpoints
        self._cond = threading.Condition()
        self._requested = 0
        self._synced = 0
        self._syncing = False

    def sync(self) -> None:
        """Return once the WAL holds every commit made before this call, on disk."""
        with self._cond:
            self._requested += 1
            mine = self._requested
            while self._synced < mine:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing, target = True, self._requested
                try:
                    self._cond.release()
                    try:
                        self._fsync()
                    finally:
                        self._cond.acquire()
                finally:
                    self._syncing = False
                    self._cond.notify_all()
                self._synced = max(self._synced, target)
        if self.checkpoints is not None:
            self.checkpoints.committed()

    def _fsync(self) -> None:
        try:
            fd = os.open(self.wal, os.O_RDONLY)
        except FileNotFoundError:
            # No WAL: the last connection checkpointed it into the database, synced by SQLite.
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _GatedCursor(sqlite3.Cursor):
    """A cursor whose writes first pass its connection's write gate."""

    def execute(self, sql: str, parameters: Any = (), /) -> _GatedCursor:
        """Run `sql`, through the gate when it writes."""
        return self._through_gate(sql, lambda: sqlite3.Cursor.execute(self, sql, parameters))

    def executemany(self, sql: str, seq: Any, /) -> _GatedCursor:
        """Run `sql` for each parameter set, through the gate when it writes."""
        return self._through_gate(sql, lambda: sqlite3.Cursor.executemany(self, sql, seq))

    def _through_gate(self, sql: str, run: Callable[[], Any]) -> _GatedCursor:
        conn = self.connection
        assert isinstance(conn, GatedConnection)
        conn.enter(sql)
        try:
            run()
            return self
        finally:
            # A statement that left no transaction open (autocommit, or one that failed before
            # its BEGIN) must not keep the gate; an autocommitted write is made durable here.
            if not conn.in_transaction:
                conn.finish()


class GatedConnection(sqlite3.Connection):
    """Queue this process's writers of one SQLite file on a lock, held from first write to end.

    SQLite admits one writer; the others poll in its busy handler with sleeps of up to 100 ms,
    so under a burst the lock sits idle while waiters sleep. Waiting here hands it over as soon
    as the holder commits, before the holder's fsync (WalSync), so the next writer works while
    the log syncs. Reads never take it (WAL readers do not block). A writer that waited past
    SQLite's own busy timeout goes on to SQLite, which decides as before (another process, a
    second writer on one thread).
    """

    gate: threading.Lock
    wal: WalSync
    holding = False
    wrote = False

    def cursor(self, factory: Any = _GatedCursor) -> Any:
        """Return a gated cursor (SQLAlchemy and Connection.execute both come through here)."""
        return super().cursor(factory)

    def enter(self, sql: str) -> None:
        """Take the gate if `sql` writes and this connection does not hold it yet."""
        if sql.lstrip()[:15].upper().startswith(_WRITES):
            self.wrote = True
            if not self.holding:
                self.holding = self.gate.acquire(timeout=30)

    def leave(self) -> None:
        """Hand the gate to the next writer."""
        if self.holding:
            self.holding = False
            self.gate.release()

    def finish(self) -> None:
        """Hand the gate on, then make what this connection committed durable."""
        self.leave()
        if self.wrote:
            self.wrote = False
            self.wal.sync()

    def commit(self) -> None:
        """Commit; return only once the commit is on disk."""
        try:
            super().commit()
        except BaseException:
            self.leave()
            raise
        self.finish()

    def rollback(self) -> None:
        """Roll back, then let the next writer in."""
        self.wrote = False
        try:
            super().rollback()
        finally:
            self.leave()

    def close(self) -> None:
        """Close; a transaction still open is rolled back by SQLite."""
        self.wrote = False
        try:
            super().close()
        finally:
            self.leave()


def gated_connection_class(database: str) -> type[GatedConnection]:
    """Return the sqlite3 connection class for `database`: one gate and WAL per file."""
    path = Path(database).resolve()
    with _LOCK:
        if str(path) not in _FILES:
            wal = WalSync(path.with_name(path.name + "-wal"), WalCheckpoints(path))
            _FILES[str(path)] = (threading.Lock(), wal)
        gate, wal = _FILES[str(path)]
    return type("GatedConnection", (GatedConnection,), {"gate": gate, "wal": wal})


def gate_of(database: str) -> threading.Lock:
    """Return the write gate of `database` (tests look at it)."""
    return _FILES[str(Path(database).resolve())][0]
