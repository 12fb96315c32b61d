"""Walk a well-formed explicit VR little endian header in memory into what pydicom would read.

pydicom's reader asks the file for every element (read, tell, seek) and checks for cases a
well-formed file never has; for the common header this walk yields the very same raw elements
in a few struct calls each, and declines (None) anything else, which pydicom then reads as ever.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    PrivateTransferSyntaxes,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

_CHARSET = 0x00080005
_ITEM_DELIMITER = 0xFFFEE00D
_UNDEFINED = 0xFFFFFFFF
# dcmread(stop_before_pixels=True) stops at any of these (pydicom's _at_pixel_data).
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
# The VRs pydicom reads as explicit ones, as the bytes a file holds; with their 4-byte lengths.
_VRS = {str(vr).encode(): str(vr) for vr in VR if len(str(vr)) == 2}
_LONG = frozenset(vr for vr in _VRS.values() if vr in EXPLICIT_VR_LENGTH_32)
_HEAD = struct.Struct("<HH2sH")
_LENGTH = struct.Struct("<L").unpack_from
_NOT_EXPLICIT_LITTLE = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
)

Elements = dict[BaseTag, RawDataElement]


def _walk(
    data: bytes, position: int, defer_size: int, meta: bool
) -> tuple[Elements, int] | None:
    """Read elements from `position` to the pixel data (or group 0002's end, or the end).

    Returns the elements and where reading stopped, or None where pydicom would do anything
    but read them one after the other: an unknown VR, an undefined length (read at once as a
    sequence), a deferred or truncated value, a partial element header.
    """
    elements: Elements = {}
    end = len(data)
    unpack = _HEAD.unpack_from
    while position < end:
        if position + 8 > end:
            return None
        group, elem, raw_vr, length = unpack(data, position)
        tag = group << 16 | elem
        vr = _VRS.get(raw_vr)
        start = position + 8
        if vr in _LONG:
            if start + 4 > end:
                return None  # pydicom reads a long length before it looks at the tag
            length = _LENGTH(data, start)[0]
            start += 4
        if (group != 2) if meta else (tag in _PIXEL_TAGS):
            return elements, position
        if vr is None or tag == _ITEM_DELIMITER or group == 0:
            return None
        position = start + length
        if length == _UNDEFINED or position > end or (length > defer_size and tag != _CHARSET):
            return None
        value = data[start:position] if length else empty_value_for_VR(vr, raw=True)
        elements[BaseTag(tag)] = RawDataElement(
            BaseTag(tag), vr, length, value, start, False, True
        )
    return elements, position


def read_header(
    data: bytes, fileobj: BinaryIO, defer_size: int
) -> tuple[FileDataset, int] | None:
    """Return the header as dcmread(stop_before_pixels=True) would, and where it stops.

    `data` is a whole Part 10 file with its preamble and 'DICM' prefix, `fileobj` the buffer
    it was read from (as pydicom keeps it). None where the file is
    not the common case (an explicit VR little endian dataset after a plain File Meta): pydicom
    reads those, and the file's faults are found and named as they always were.
    """
    meta_walk = _walk(data, 132, defer_size, meta=True)
    if meta_walk is None or not meta_walk[0]:
        return None
    meta_raw, position = meta_walk
    try:
        meta = _meta_dataset(meta_raw)
        syntax = meta.get("TransferSyntaxUID")
        # Read as explicit VR little endian, as pydicom reads any syntax but these.
        if not isinstance(syntax, str) or syntax in _NOT_EXPLICIT_LITTLE:
            return None
        if syntax in PrivateTransferSyntaxes:
            return None
    except Exception:
        return None  # pydicom's reading of it decides, and names the fault
    # pydicom reads an empty dataset as implicit VR, and guesses from the first element's VR.
    if position + 6 > len(data) or data[position + 4 : position + 6] not in _VRS:
        return None
    walked = _walk(data, position, defer_size, meta=False)
    if walked is None:
        return None
    raw, stop = walked
    dataset = Dataset(raw, parent_encoding=default_encoding)
    encoding: Any = default_encoding
    if _CHARSET in raw:
        try:
            charset = convert_raw_data_element(raw[BaseTag(_CHARSET)]).value
            encoding = convert_encodings(charset)
        except Exception:
            return None
    dataset.set_original_encoding(False, True, encoding)
    ds = FileDataset(fileobj, dataset, data[:128], meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds, stop


def _meta_dataset(raw: Elements) -> FileMetaDataset:
    """Build the File Meta as pydicom does, its first element decoded as pydicom tests it."""
    read = Dataset(raw, parent_encoding=default_encoding)
    read.set_original_encoding(False, True, default_encoding)
    meta = FileMetaDataset(read)
    meta.set_original_encoding(
        is_implicit_vr=False, is_little_endian=True, character_encoding=default_encoding
    )
    meta[next(iter(raw))]
    return meta
