"""Serve one element's value from a stored instance's bytes, found by its file offset."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from sonobridge.common.problems import NotFound
from sonobridge.ingest.domain.media import BulkKey
from sonobridge.ingest.domain.validation import EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN

# Bytes per value of each binary VR, for turning big endian values little endian (PS3.18 8.7.3).
_WIDTHS = {b"OW": 2, b"OF": 4, b"OL": 4, b"OD": 8, b"OV": 8, b"OB": 1, b"UN": 1}


class _Reader:
    """Pull exact byte counts out of an object's chunk stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.position = 0

    def skip_to(self, target: int) -> None:
        while self.position + len(self._buffer) < target:
            self.position += len(self._buffer)
            self._buffer = next(self._chunks, b"")
            if not self._buffer:
                raise EOFError
        self._buffer = self._buffer[target - self.position :]
        self.position = target

    def read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            more = next(self._chunks, b"")
            if not more:
                raise EOFError
            self._buffer += more
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        self.position += count
        return data

    def stream(self, count: int) -> Iterator[bytes]:
        while count > 0:
            if not self._buffer:
                self._buffer = next(self._chunks, b"")
                if not self._buffer:
                    raise EOFError
            data, self._buffer = self._buffer[:count], self._buffer[count:]
            count -= len(data)
            self.position += len(data)
            yield data


def open_element(
    chunks: Iterator[bytes], key: BulkKey, transfer_syntax: str
) -> tuple[int, Iterator[bytes]]:
    """Check the element header just before `key.offset` names `key.tag`; return its value.

    Returns (length, little-endian value chunks). The header check means a URI can only ever
    point at a real element's value, never at an arbitrary range of the file.
    """
    assert key.offset is not None
    implicit = transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN
    endian = ">" if transfer_syntax == EXPLICIT_VR_BIG_ENDIAN else "<"
    header = 8 if implicit else 12
    reader = _Reader(chunks)
    missing = NotFound("no such bulk data in this instance")
    if key.offset < header:
        raise missing
    try:
        reader.skip_to(key.offset - header)
        head = reader.read(header)
    except EOFError:
        raise missing from None
    group, element = struct.unpack(f"{endian}HH", head[:4])
    vr = b"OW" if implicit else head[4:6]
    (length,) = struct.unpack(f"{endian}L", head[-4:])
    if group << 16 | element != key.tag or vr not in _WIDTHS or length == 0xFFFFFFFF:
        raise missing
    body = reader.stream(length)
    width = _WIDTHS[vr]
    if endian == ">" and width > 1:
        body = _swapped(body, width)
    return length, _checked(body)


def _checked(body: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from body
    except EOFError:
        # Stored files were checked whole at ingest; a short one now is damage, not input.
        raise RuntimeError("stored instance ended inside a bulk data element") from None


def _swapped(body: Iterator[bytes], width: int) -> Iterator[bytes]:
    rest = b""
    for chunk in body:
        data = rest + chunk
        cut = len(data) - len(data) % width
        rest = data[cut:]
        values = data[:cut]
        yield np.frombuffer(values, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    if rest:
        yield rest
