"""Embedded durable event log in one SQLite file, for the single-node edition."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from sonobridge.common.bus.ports import Headers, ReceivedEvent, Record

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    "offset" INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    appended_at REAL NOT NULL,
    PRIMARY KEY (topic, "offset")
);
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic)
);
"""

# Whole seconds a writer waits for another process's transaction before failing.
_BUSY_TIMEOUT_S = 30.0
# How often a waiting consumer looks for records appended by another process.
_POLL_INTERVAL_S = 0.05


def connect_log(path: Path) -> sqlite3.Connection:
    """Open the log file as every user of it does: WAL, full sync, a long busy wait."""
    conn = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a publish that returned survives power loss, as an outbox relay assumes.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _encode_headers(headers: Headers) -> str:
    return json.dumps([[name, base64.b64encode(value).decode()] for name, value in headers])


def _decode_headers(raw: str) -> Headers:
    return [(name, base64.b64decode(value)) for name, value in json.loads(raw)]


class EmbeddedEventBus:
    """One partition per topic (so every key stays ordered); groups keep committed offsets."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect_log(self.path)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        # Wakes this process's consumers of an appended topic at once, and only those: most
        # records (a STOW-RS instance's) have no consumer, and waking every consumer for each
        # would cost each a wake-up and a query. Other processes are seen by polling.
        self._listeners: dict[str, set[threading.Event]] = {}
        self._listeners_lock = threading.Lock()

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        """Append a record durably."""
        self.send_many([(topic, key, value, headers)])

    def send_many(self, records: Sequence[Record]) -> None:
        """Append records in order in one transaction: one fsync and one wake-up for all."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for topic, key, value, headers in records:
                    self._conn.execute(
                        'INSERT INTO records (topic, "offset", key, value, headers, appended_at) '
                        'SELECT ?, COALESCE(MAX("offset") + 1, 0), ?, ?, ?, ? '
                        "FROM records WHERE topic = ?",
                        (topic, key, value, _encode_headers(headers), time.time(), topic),
                    )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        with self._listeners_lock:
            woken = {e for r in records for e in self._listeners.get(r[0], ())}
        for event in woken:
            event.set()

    def _listen(self, topics: Sequence[str], event: threading.Event) -> None:
        """Set `event` whenever a record of one of `topics` is appended in this process."""
        with self._listeners_lock:
            for topic in topics:
                self._listeners.setdefault(topic, set()).add(event)

    def _unlisten(self, event: threading.Event) -> None:
        with self._listeners_lock:
            for events in self._listeners.values():
                events.discard(event)

    def subscribe(self, group: str, topics: Sequence[str]) -> EmbeddedSubscription:
        """Join `group`, resuming from its committed offsets."""
        return EmbeddedSubscription(self, group, list(topics))

    def ensure_topics(self, topics: Sequence[str]) -> None:
        """Topics exist implicitly in the embedded log."""

    def check(self) -> None:
        """Raise if the log file cannot be read."""
        with self._lock:
            self._conn.execute("SELECT 1 FROM records LIMIT 1").fetchall()

    def close(self) -> None:
        """Close the log."""
        with self._lock:
            self._conn.close()

    def end_offset(self, topic: str) -> int:
        """Return the offset the next record of `topic` will get."""
        with self._lock:
            row = self._conn.execute(
                'SELECT COALESCE(MAX("offset") + 1, 0) FROM records WHERE topic = ?', (topic,)
            ).fetchone()
        return int(row[0])


class EmbeddedSubscription:
    """A consumer of the embedded log; uncommitted records are handed out again after a restart."""

    def __init__(self, bus: EmbeddedEventBus, group: str, topics: list[str]) -> None:
        self._bus = bus
        self.group = group
        self.topics = topics
        self._conn = connect_log(bus.path)
        self._positions: dict[str, int] = {}
        self._appended = threading.Event()
        bus._listen(topics, self._appended)
        for topic in topics:
            # Joining registers the group at offset 0 until it commits: the log's retention
            # keeps what a subscribed group has not committed past, even before its first commit.
            self._conn.execute(
                "INSERT INTO group_offsets (grp, topic, next_offset) VALUES (?, ?, 0) "
                "ON CONFLICT (grp, topic) DO NOTHING",
                (group, topic),
            )
            row = self._conn.execute(
                "SELECT next_offset FROM group_offsets WHERE grp = ? AND topic = ?",
                (group, topic),
            ).fetchone()
            self._positions[topic] = int(row[0]) if row else 0

    def _fetch(self, max_records: int) -> list[ReceivedEvent]:
        records: list[ReceivedEvent] = []
        for topic in self.topics:
            rows = self._conn.execute(
                'SELECT "offset", key, value, headers FROM records '
                'WHERE topic = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (topic, self._positions[topic], max_records - len(records)),
            ).fetchall()
            for offset, key, value, headers in rows:
                records.append(
                    ReceivedEvent(
                        topic, 0, int(offset), key, bytes(value), _decode_headers(headers)
                    )
                )
            if rows:
                self._positions[topic] = int(rows[-1][0]) + 1
            if len(records) >= max_records:
                break
        return records

    def poll(self, timeout: float, max_records: int = 100) -> list[ReceivedEvent]:
        """Return the next records, waiting up to `timeout` seconds for new ones."""
        deadline = time.monotonic() + timeout
        while True:
            # Cleared before reading: an append after the read sets it, and the wait sees it.
            self._appended.clear()
            records = self._fetch(max_records)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            self._appended.wait(min(_POLL_INTERVAL_S, remaining))

    def commit(self, record: ReceivedEvent) -> None:
        """Record that the group is done with `record` (monotonic: never moves back)."""
        self._conn.execute(
            "INSERT INTO group_offsets (grp, topic, next_offset) VALUES (?, ?, ?) "
            "ON CONFLICT (grp, topic) DO UPDATE SET next_offset = "
            "MAX(group_offsets.next_offset, excluded.next_offset)",
            (self.group, record.topic, record.offset + 1),
        )

    def lag(self) -> dict[str, int]:
        """Return records not yet handed to this consumer, per topic."""
        return {t: max(0, self._bus.end_offset(t) - self._positions[t]) for t in self.topics}

    def close(self) -> None:
        """Close the consumer's connection."""
        self._bus._unlisten(self._appended)
        self._conn.close()
