"""How DICOMweb names and serves stored data: bulk data keys, frame media types, renderings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sonobridge.common.inputs import INT32_MAX, parse_int
from sonobridge.common.problems import InvalidInput
from sonobridge.ingest.domain.validation import (
    ENCAPSULATED_TRANSFER_SYNTAXES,
    EXPLICIT_VR_LITTLE_ENDIAN,
)

PIXEL_DATA_TAG = 0x7FE00010
# Stored metadata names bulk data relative to the instance's URL (the base URL is the request's):
# "bulkdata/{tag}-{file offset of the value}", or PIXEL_BULKDATA for encapsulated pixel data.
BULKDATA = "bulkdata/"
PIXEL_BULKDATA = f"{BULKDATA}{PIXEL_DATA_TAG:08X}"
# Media types a frame can be rendered in, with the Pillow format writing each.
MEDIA_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}

OCTET_STREAM = "application/octet-stream"
# PS3.18 Table 8.7.3-2/-3: the media type of each encapsulated transfer syntax's bitstream.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
assert set(FRAME_MEDIA_TYPES) == ENCAPSULATED_TRANSFER_SYNTAXES


def frame_media_type(transfer_syntax_uid: str) -> str:
    """Return the media type frames of this stored syntax are served in without transcoding."""
    return FRAME_MEDIA_TYPES.get(transfer_syntax_uid, OCTET_STREAM)


def served_transfer_syntax(transfer_syntax_uid: str) -> str:
    """Return the syntax frames are labelled with: native data always goes out little endian."""
    if transfer_syntax_uid in ENCAPSULATED_TRANSFER_SYNTAXES:
        return transfer_syntax_uid
    return EXPLICIT_VR_LITTLE_ENDIAN


def parse_frame_numbers(raw: str) -> list[int]:
    """Parse a PS3.18 frame list ("1,3,5"): 1-based, at least one, as given (repeats allowed)."""
    numbers: list[int] = []
    for item in raw.split(","):
        item = item.strip()
        numbers.append(
            parse_int(
                item, name="each frame number", minimum=1, maximum=INT32_MAX, reason="bad_frame"
            )
        )
    return numbers


_KEY = re.compile(r"^(?P<tag>[0-9A-F]{8})(?:-(?P<offset>[0-9]{1,15}))?$")


@dataclass(frozen=True)
class BulkKey:
    """What a BulkDataURI's last segment names: a tag, and where its value starts if known."""

    tag: int
    offset: int | None


def parse_bulk_key(raw: str) -> BulkKey:
    """Parse `{tag}` or `{tag}-{offset}` as written into stored metadata."""
    match = _KEY.match(raw.upper())
    if match is None:
        raise InvalidInput(
            f"bulk data key {raw!r} is not TAG or TAG-OFFSET; use the BulkDataURI from metadata",
            reason="bad_bulkdata",
        )
    offset = match["offset"]
    return BulkKey(int(match["tag"], 16), None if offset is None else int(offset))


def bulk_uri(instance_url: str, relative: str) -> str:
    """Turn a stored relative bulk data reference into the absolute BulkDataURI."""
    return f"{instance_url}/{relative}" if relative.startswith(BULKDATA) else relative
