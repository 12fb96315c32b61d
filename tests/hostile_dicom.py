"""Instances whose text attributes carry what no device should send: a swallowed patient module."""

from __future__ import annotations

import struct

# Explicit VR elements whose length field is 32 bits, after two reserved bytes (PS3.5 7.1.2).
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}


def _elements(data: bytes) -> list[tuple[int, int, int]]:
    """Return (tag, offset, end) of each top-level element of an explicit VR little endian file."""
    at = 132 + 12 + struct.unpack_from("<L", data, 132 + 8)[0]  # past the file meta group
    found = []
    while at + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, at)
        if data[at + 4 : at + 6] in _LONG_VRS:
            length = struct.unpack_from("<L", data, at + 8)[0]
            if length == 0xFFFFFFFF:
                break
            end = at + 12 + length
        else:
            end = at + 8 + struct.unpack_from("<H", data, at + 6)[0]
        found.append((group << 16 | element, at, end))
        at = end
    return found


def swallowing(data: bytes, tag: int = 0x00080070, through: int = 0x00100020) -> bytes:
    """Lengthen a short-VR element so its value runs on over every element up to `through`.

    By default the Manufacturer swallows the patient's name and ID: the file still parses, and
    the Manufacturer's value holds them between the binary tags and lengths of their elements.
    """
    elements = _elements(data)
    [start] = [offset for t, offset, _ in elements if t == tag]
    [end] = [end for t, _, end in elements if t == through]
    buf = bytearray(data)
    struct.pack_into("<H", buf, start + 6, end - (start + 8))
    return bytes(buf)
