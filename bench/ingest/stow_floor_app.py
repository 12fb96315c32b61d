"""A bare STOW-RS server for stow_floor.py: raw ASGI, none of SonoBridge's code, the least work.

Run by stow_floor.py as `python stow_floor_app.py FD` under uvicorn (h11, asyncio: what our
services' uvicorn resolves to here) on the listening socket FD, with the environment naming its
store:
  FLOOR_STORE=file   FLOOR_DIR=<dir>  - the part to a file (fsync, rename, fsync the folder) and
                                        one committed INSERT into <dir>/index.db (SQLite, WAL,
                                        synchronous=FULL: the commit fsyncs the WAL itself)
  FLOOR_STORE=minio  FLOOR_MINIO / FLOOR_MINIO_KEYS / FLOOR_BUCKET, FLOOR_PG / FLOOR_TABLE
                                      - one PUT to MinIO (the minio client our adapter uses) and
                                        one committed INSERT into PostgreSQL (psycopg 3), one
                                        after the other, or both at once with FLOOR_PARALLEL=1
Each request reads the whole multipart/related body, takes its one part and answers a tiny JSON
once the part and its row are durable. It parses no DICOM, checks no token, emits no event: a
floor under what any real STOW server in Python costs on this machine, not a server to copy.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import sqlite3
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class FileSqliteStore:
    """Files under one folder and an index row per file in SQLite."""

    def __init__(self, root: Path) -> None:
        self.objects = root / "objects"
        self.db_path = root / "index.db"
        self._local = threading.local()
        # SQLite takes one writer at a time; waiting here is cheaper than its busy-sleep loop.
        self._write = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def store(self, key: str, part: memoryview) -> None:
        """Write the part durably under `key`, then commit its index row."""
        tmp = self.objects / f".{key}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            written = 0
            while written < len(part):
                written += os.write(fd, part[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.objects / key)
        # The rename is durable only once the folder is.
        folder = os.open(self.objects, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        conn = self._conn()
        with self._write:
            conn.execute(
                "INSERT INTO instances (key, size, pid) VALUES (?, ?, ?)",
                (key, len(part), os.getpid()),
            )
            conn.commit()


class MinioPostgresStore:
    """Objects in a MinIO bucket and an index row per object in PostgreSQL."""

    def __init__(self) -> None:
        from minio import Minio

        access, secret = os.environ["FLOOR_MINIO_KEYS"].split(":", 1)
        self.client = Minio(
            os.environ["FLOOR_MINIO"], access_key=access, secret_key=secret, secure=False
        )
        self.bucket = os.environ["FLOOR_BUCKET"]
        self.conninfo = os.environ["FLOOR_PG"]
        self.table = os.environ["FLOOR_TABLE"]
        self._local = threading.local()
        # FLOOR_PARALLEL=1: the row's commit overlaps the PUT (the answer waits for both).
        self._beside = ThreadPoolExecutor(8) if os.environ.get("FLOOR_PARALLEL") == "1" else None

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            import psycopg

            conn = self._local.conn = psycopg.connect(self.conninfo)
        return conn

    def store(self, key: str, part: memoryview) -> None:
        """PUT the part under `key` and commit its index row, one after the other or at once."""
        row = self._beside.submit(self._insert, key, len(part)) if self._beside else None
        self.client.put_object(
            self.bucket, key, io.BytesIO(part), length=len(part), content_type="application/dicom"
        )
        if row is None:
            self._insert(key, len(part))
        else:
            row.result()

    def _insert(self, key: str, size: int) -> None:
        conn = self._conn()
        conn.execute(
            f"INSERT INTO {self.table} (key, size, pid) VALUES (%s, %s, %s)",  # noqa: S608 - our own name
            (key, size, os.getpid()),
        )
        conn.commit()


def _boundary(scope: dict[str, Any]) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            for param in value.split(b";")[1:]:
                key, _, val = param.strip().partition(b"=")
                if key.lower() == b"boundary":
                    return val.strip(b'"')
    return None


def _one_part(body: bytes, boundary: bytes) -> memoryview | None:
    """The content of the first part, without copying it; None if the body is not multipart."""
    opening = body.find(b"--" + boundary)
    if opening < 0:
        return None
    start = body.find(b"\r\n\r\n", opening)
    end = body.find(b"\r\n--" + boundary, start)
    if start < 0 or end < 0:
        return None
    return memoryview(body)[start + 4 : end]


async def _answer(send: Send, status: int, document: dict[str, Any]) -> None:
    payload = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _store_from_env() -> FileSqliteStore | MinioPostgresStore:
    if os.environ.get("FLOOR_STORE") == "minio":
        return MinioPostgresStore()
    return FileSqliteStore(Path(os.environ["FLOOR_DIR"]))


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Tells the harness this process serves: its socket listens before uvicorn accepts.
            (Path(os.environ["FLOOR_READY"]) / str(os.getpid())).touch()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


_store: FileSqliteStore | MinioPostgresStore | None = None


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """STOW one part per POST; anything else gets a 4xx."""
    global _store
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["method"] != "POST":
        await _answer(send, 405, {"error": "POST a multipart/related body"})
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    boundary = _boundary(scope)
    part = _one_part(body, boundary) if boundary else None
    if part is None:
        await _answer(send, 400, {"error": "no multipart part with the declared boundary"})
        return
    if _store is None:
        _store = _store_from_env()
    key = uuid.uuid4().hex
    # The file and database calls block: a thread keeps the event loop reading other requests.
    await asyncio.to_thread(_store.store, key, part)
    await _answer(send, 200, {"stored": key})


def main() -> None:
    """Serve on the inherited listening socket named by argv[1]."""
    import uvicorn

    # socket(fileno=) reads the family from the descriptor; uvicorn --fd calls it AF_UNIX, so
    # asyncio skips TCP_NODELAY on the accepted connections and Nagle adds ~40 ms per request.
    sock = socket.socket(fileno=int(sys.argv[1]))
    config = uvicorn.Config(app, http="h11", loop="asyncio", access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
