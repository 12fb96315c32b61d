"""Spool incoming bytes to a temporary file on disk, hashing as they pass, within a size limit."""

from __future__ import annotations

import hashlib
import itertools
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sonobridge.ingest.domain.validation import TooLarge


@dataclass
class SpooledFile:
    """A file being written to the spool; knows its size and SHA-256 so far."""

    path: Path
    limit: int
    size: int = 0
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)
    _fd: int | None = None

    def write(self, chunk: bytes | memoryview) -> None:
        """Append `chunk`, raising TooLarge once the limit is passed."""
        if self.size + len(chunk) > self.limit:
            raise TooLarge(f"instance exceeds the limit of {self.limit} bytes")
        if self._fd is None:
            self._fd = os.open(self.path, _APPEND, 0o600)
        # Unbuffered: parts arrive in large chunks, and a buffered file object around the
        # descriptor costs more to build than it saves.
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view) :]
        self._hash.update(chunk)
        self.size += len(chunk)

    def close(self) -> None:
        """Close the file (it stays on disk until discarded)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of everything written."""
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Close and delete the file."""
        self.close()
        self.path.unlink(missing_ok=True)

    def __del__(self) -> None:
        # Dropped unclosed on some error path: give the descriptor back, as a file object would.
        if self._fd is not None:
            os.close(self._fd)

    def __enter__(self) -> SpooledFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.discard()


_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class Spool:
    """A directory of temporary files for request bodies awaiting validation."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.limit = limit
        # Names from a random prefix and a counter, created exclusively: tempfile.mkstemp
        # draws eight random letters in Python for every part, on the event loop's thread.
        self._prefix = f"{self.directory}{os.sep}{uuid.uuid4().hex[:12]}-"
        self._serial = itertools.count()

    def reclaim(self, older_than: float | None = None) -> int:
        """Delete spool files of dead requests: all, or those untouched for `older_than` s."""
        cut = None if older_than is None else time.time() - older_than
        removed = 0
        for path in self.directory.iterdir():
            try:
                if path.is_file() and (cut is None or path.stat().st_mtime < cut):
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # its request finished and removed it meanwhile
        return removed

    def new(self) -> SpooledFile:
        """Return an empty spooled file."""
        while True:
            name = f"{self._prefix}{next(self._serial)}.dcm"
            try:
                fd = os.open(name, _CREATE, 0o600)
            except FileExistsError:
                continue  # another process's spool drew the same prefix
            # Written through the descriptor this opened: a second open costs two more
            # syscalls, each giving up the GIL, on the event loop's thread for every part.
            return SpooledFile(Path(name), self.limit, _fd=fd)

    def from_chunks(self, chunks: Iterator[bytes]) -> SpooledFile:
        """Spool every chunk of an iterator."""
        spooled = self.new()
        try:
            for chunk in chunks:
                spooled.write(chunk)
        except BaseException:
            spooled.discard()
            raise
        spooled.close()
        return spooled

    def adopt(self, path: Path) -> SpooledFile:
        """Hash a file already on disk (e.g. written by the DIMSE layer) as a spooled file."""
        spooled = SpooledFile(Path(path), self.limit)
        with Path(path).open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                spooled.size += len(chunk)
                spooled._hash.update(chunk)
        if spooled.size > self.limit:
            raise TooLarge(f"instance is {spooled.size} bytes; the limit is {self.limit}")
        return spooled
