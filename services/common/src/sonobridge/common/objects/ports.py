"""The object store port: streaming put/get of possibly large objects by key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from sonobridge.common.problems import NotFound

CHUNK_SIZE = 1024 * 1024

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/=+]*$")


class ObjectNotFound(NotFound):
    """No object under that key."""


def validate_key(key: str) -> str:
    """Reject keys that could escape the bucket or directory (.., empty segments, odd bytes)."""
    if not _KEY.match(key) or len(key) > 1024:
        raise ValueError(f"invalid object key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")
    return key


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about an object."""

    key: str
    size: int
    content_type: str
    metadata: dict[str, str]


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
