"""Hash the dataset of a DICOM file without the File Meta its writer put around it."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

# Explicit-VR value representations with a 4-byte length after 2 reserved bytes (PS3.5 7.1.2).
LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}


def _meta_end(head: bytes) -> int | None:
    """Return the offset where the File Meta group (0002) ends, or None if `head` is too short."""
    # The File Meta Information is always explicit VR little endian after the preamble and
    # 'DICM' (PS3.10 7.1); its group length may be absent or wrong, so the elements are walked.
    position = 132
    while True:
        if len(head) < position + 8:
            return None
        (group,) = struct.unpack("<H", head[position : position + 2])
        if group != 0x0002:
            return position
        if head[position + 4 : position + 6] in LONG_VRS:
            if len(head) < position + 12:
                return None
            (length,) = struct.unpack("<L", head[position + 8 : position + 12])
            position += 12 + length
        else:
            (length,) = struct.unpack("<H", head[position + 6 : position + 8])
            position += 8 + length


def dataset_sha256(chunks: Iterable[bytes]) -> str:
    """Hash a DICOM file's dataset without its preamble and File Meta Information.

    The File Meta is written by whoever made the file (a STOW client, the C-STORE receiver
    with its own implementation UID and source AE title): the same dataset received by two
    channels has different files but one identity.
    """
    digest = hashlib.sha256()
    head = b""
    start: int | None = None
    for chunk in chunks:
        if start is None:
            head += chunk
            start = _meta_end(head)
            if start is not None:
                digest.update(head[start:])
                head = b""
        else:
            digest.update(chunk)
    if start is None:
        # Shorter than its own File Meta: hash what there is, it matches nothing valid.
        digest.update(head)
    return digest.hexdigest()
