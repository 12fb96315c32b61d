"""Cut single frames out of a stored DICOM file's pixel data without decoding or loading it all."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.encaps import get_frame

from sonobridge.common.problems import InvalidInput
from sonobridge.ingest.domain.validation import EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN

_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
# Header elements above this size are seeked over rather than read (same as on ingest).
_DEFER_BYTES = 64 * 1024


@dataclass(frozen=True)
class _PixelData:
    transfer_syntax_uid: str
    frames: int
    # File offset of the pixel data value (first item tag when encapsulated).
    value_offset: int
    # Native value length; None when encapsulated.
    length: int | None
    frame_bits: int
    bits_allocated: int
    extended_offsets: tuple[bytes, bytes] | None


def _locate(fp: BinaryIO) -> _PixelData:
    ds = pydicom.dcmread(fp, stop_before_pixels=True, defer_size=_DEFER_BYTES)
    syntax = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
    endian = ">" if syntax == EXPLICIT_VR_BIG_ENDIAN else "<"
    head = fp.read(8)
    if len(head) < 8:
        raise InvalidInput("instance has no pixel data", reason="no_pixel_data")
    group, elem = struct.unpack(f"{endian}HH", head[:4])
    if group << 16 | elem != _PIXEL_DATA:
        raise InvalidInput("instance has no pixel data", reason="no_pixel_data")
    if syntax == IMPLICIT_VR_LITTLE_ENDIAN:
        (length,) = struct.unpack("<L", head[4:])
    else:
        (length,) = struct.unpack(f"{endian}L", fp.read(4))
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (bytes(ds.ExtendedOffsetTable), bytes(ds.ExtendedOffsetTableLengths))
    bits = int(ds.BitsAllocated)
    return _PixelData(
        transfer_syntax_uid=syntax,
        frames=int(ds.get("NumberOfFrames", 1) or 1),
        value_offset=fp.tell(),
        length=None if length == _UNDEFINED else length,
        frame_bits=int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * bits,
        bits_allocated=bits,
        extended_offsets=extended,
    )


def _native_frame(fp: BinaryIO, pixels: _PixelData, index: int, big_endian: bool) -> bytes:
    if pixels.frame_bits % 8:
        # Single-bit frames that do not end on a byte boundary share bytes with the next frame.
        raise InvalidInput(
            "frames of this 1-bit image are not byte-aligned and cannot be served separately",
            reason="unaligned_frames",
        )
    size = pixels.frame_bits // 8
    fp.seek(pixels.value_offset + index * size)
    data = fp.read(size)
    if len(data) != size:
        raise InvalidInput(f"frame {index + 1} is truncated in the stored file", reason="truncated")
    if big_endian and pixels.bits_allocated in (16, 32):
        width = pixels.bits_allocated // 8
        data = np.frombuffer(data, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    return data


def read_frames(path: Path, numbers: Sequence[int]) -> Iterator[bytes]:
    """Yield the stored bytes of each 1-based frame in `numbers`: native pixels or fragments."""
    with path.open("rb") as fp:
        pixels = _locate(fp)
        _check_range(numbers, pixels.frames)
        for number in numbers:
            if pixels.length is not None:
                big = pixels.transfer_syntax_uid == EXPLICIT_VR_BIG_ENDIAN
                yield _native_frame(fp, pixels, number - 1, big)
                continue
            fp.seek(pixels.value_offset)
            yield get_frame(
                fp,
                number - 1,
                number_of_frames=pixels.frames,
                extended_offsets=pixels.extended_offsets,
            )


def check_frames(path: Path, numbers: Sequence[int]) -> int:
    """Raise InvalidInput unless every frame number exists; return the frame count."""
    with path.open("rb") as fp:
        pixels = _locate(fp)
    _check_range(numbers, pixels.frames)
    return pixels.frames


def _check_range(numbers: Sequence[int], frames: int) -> None:
    for number in numbers:
        if not 1 <= number <= frames:
            raise InvalidInput(
                f"frame {number} does not exist; the instance has {frames}", reason="bad_frame"
            )
