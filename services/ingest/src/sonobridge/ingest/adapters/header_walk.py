"""Walk a well-formed explicit VR little endian header in memory into what pydicom would read.

pydicom's reader asks the file for every element (read, tell, seek) and checks for cases a
well-formed file never has; for the common header this walk yields the very same raw elements
in a few struct calls each, and declines (None) anything else, which pydicom then reads as ever.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, cast

from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    PrivateTransferSyntaxes,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

_CHARSET = 0x00080005
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_ITEM_HEAD = struct.Struct("<HHL").unpack_from
_NO_DEFER = 1 << 32
# What a walk reads: the File Meta group, the dataset up to its pixel data, a sequence item.
_META, _DATASET, _ITEM_ELEMENTS = range(3)
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
_Read = dict[BaseTag, DataElement | RawDataElement]  # as pydicom's datasets hold them


def _walk(
    data: bytes, position: int, end: int, defer_size: int, within: int
) -> tuple[Elements, int] | None:
    """Read elements from `position` until `end` or the first that ends what is read.

    That is the pixel data in the dataset, any other group in the File Meta, the item
    delimiter in a sequence item (`within`). Returns the elements and where reading stopped,
    or None where pydicom would do anything but read them one after the other: an unknown VR,
    an undefined length (read at once as a sequence), a deferred or truncated value, a
    partial element header.
    """
    elements: Elements = {}
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
        if within == _DATASET:
            if tag in _PIXEL_TAGS:
                return elements, position
        elif (group != 2) if within == _META else (tag == _ITEM_DELIMITER):
            return elements, position
        if vr is None or tag == _ITEM_DELIMITER or group == 0:
            return None
        position = start + length
        if length == _UNDEFINED or position > end or (length > defer_size and tag != _CHARSET):
            return None
        value = data[start:position] if length else cast(bytes, empty_value_for_VR(vr, raw=True))
        elements[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, value, start, False, True)
    return elements, position


def sequence_items(value: bytes) -> list[Elements] | None:
    """Return a defined-length sequence's items as pydicom reads them, or None.

    Offsets count from the start of `value`, as in pydicom's reading of a sequence. None
    where an item is not simply a run of elements (pydicom reads those as ever).
    """
    items: list[Elements] = []
    position, end = 0, len(value)
    while position < end:
        if position + 8 > end:
            return None
        group, elem, length = _ITEM_HEAD(value, position)
        if group << 16 | elem != _ITEM:
            return None
        start = position + 8
        stop = end if length == _UNDEFINED else start + length
        if stop > end:
            return None
        walked = _walk(value, start, stop, _NO_DEFER, _ITEM_ELEMENTS)
        if walked is None:
            return None
        elements, position = walked
        if length == _UNDEFINED:
            if position >= end:
                return None  # no item delimiter
            position += 8
        elif position != stop:
            return None  # an item delimiter within a defined-length item
        items.append(elements)
    return items


def read_header(data: bytes, fileobj: BinaryIO, defer_size: int) -> tuple[FileDataset, int] | None:
    """Return the header as dcmread(stop_before_pixels=True) would, and where it stops.

    `data` is a whole Part 10 file with its preamble and 'DICM' prefix, `fileobj` the buffer
    it was read from (as pydicom keeps it). None where the file is not the common case (an
    explicit VR little endian dataset after a plain File Meta): pydicom reads those, and the
    file's faults are found and named as they always were.
    """
    meta_walk = _walk(data, 132, len(data), defer_size, _META)
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
    walked = _walk(data, position, len(data), defer_size, _DATASET)
    if walked is None:
        return None
    raw, stop = walked
    ds = FileDataset(fileobj, cast(_Read, raw), data[:128], meta, False, True)
    try:
        encoding = ds._character_set  # decoded in place, as pydicom's reading does
    except Exception:
        return None
    ds.set_original_encoding(False, True, encoding)
    return ds, stop


def _meta_dataset(raw: Elements) -> FileMetaDataset:
    """Build the File Meta as pydicom does, its first element decoded as pydicom tests it."""
    meta = FileMetaDataset(cast(_Read, raw))
    meta.set_original_encoding(
        is_implicit_vr=False, is_little_endian=True, character_encoding=default_encoding
    )
    meta[min(raw)]  # pydicom tests the lowest tag
    return meta
