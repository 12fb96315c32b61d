"""The object store port: streaming put/get of possibly large objects by key."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from sonobridge.common.problems import InvalidInput, NotFound

CHUNK_SIZE = 1024 * 1024

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/=+]*$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-=+]*$")
# File systems refuse longer names (ENAMETOOLONG); S3 allows them, but keys must fit both.
MAX_SEGMENT = 255
MAX_KEY = 1024


class ObjectNotFound(NotFound):
    """No object under that key."""


class InvalidObjectKey(InvalidInput, ValueError):
    """A key, or a name that would become part of one, that no adapter can store (422)."""


def validate_key(key: str) -> str:
    """Reject keys that could escape the bucket or directory (.., empty segments, odd bytes)."""
    if not isinstance(key, str) or not _KEY.match(key) or len(key) > MAX_KEY:
        raise InvalidObjectKey("invalid object key", reason="invalid_object_key")
    for part in key.split("/"):
        if part in ("", ".", "..") or len(part) > MAX_SEGMENT:
            raise InvalidObjectKey("invalid object key", reason="invalid_object_key")
    return key


def key_segment(value: str, *, what: str = "name") -> str:
    """Return `value` if it can be one segment of an object key, else raise InvalidObjectKey."""
    if (
        not isinstance(value, str)
        or not _SEGMENT.match(value)
        or len(value) > MAX_SEGMENT
        or value in (".", "..")
    ):
        raise InvalidObjectKey(
            f"{what} must be 1-{MAX_SEGMENT} characters of A-Z a-z 0-9 . _ - = +, "
            "starting with a letter or digit",
            reason="invalid_name",
        )
    return value


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about an object."""

    key: str
    size: int
    content_type: str
    metadata: dict[str, str]


class StagedObject(Protocol):
    """A put prepared in two steps: the slow, durable part first, then a cheap publish."""

    def publish(self) -> ObjectInfo:
        """Make the object visible under its key, replacing atomically."""
        ...

    @property
    def durable_publish(self) -> Callable[[], None]:
        """Return the call that makes publish() survive a power loss; run it before indexing.

        Objects that one call covers (one folder) return equal calls, so a transaction that
        publishes many runs each distinct call once.
        """
        ...

    def discard(self) -> None:
        """Drop what staging left behind (a no-op once published)."""
        ...


class ObjectStore(Protocol):
    """Streaming object storage; memory use never depends on object size."""

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Store everything `stream` yields under `key`, replacing atomically."""
        ...

    def stage(
        self, key: str, source: Path, *, content_type: str = "application/octet-stream"
    ) -> StagedObject:
        """Prepare a put of the file at `source` (left in place) for a publish under `key`."""
        ...

    def open(self, key: str) -> AbstractContextManager[Iterator[bytes]]:
        """Yield the object's bytes in chunks; raise ObjectNotFound if absent."""
        ...

    def stat(self, key: str) -> ObjectInfo | None:
        """Return the object's info, or None if absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object if present."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Yield keys under `prefix`, sorted."""
        ...

    def check(self) -> None:
        """Raise if the store is unreachable (for readiness)."""
        ...


def read_all(store: ObjectStore, key: str) -> bytes:
    """Read a small object whole (cards, JSON findings); never for DICOM instances."""
    with store.open(key) as chunks:
        return b"".join(chunks)
