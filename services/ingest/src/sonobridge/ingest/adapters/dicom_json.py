"""Render a parsed header as DICOM JSON (PS3.18 F.2), common elements straight from bytes."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException

from sonobridge.ingest.adapters import header_walk
from sonobridge.ingest.domain.media import BULKDATA, PIXEL_BULKDATA
from sonobridge.ingest.domain.validation import PixelLayout

_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
_CHARSET = 0x00080005
# Binary values above this size are not inlined in metadata: they get a BulkDataURI instead.
JSON_BULK_BYTES = 16 * 1024
_BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
# Character sets under which an ASCII byte string decodes to the same text (no ISO 2022
# escapes, no JIS X 0201 yen sign): their text elements can be rendered without pydicom.
_ASCII_CHARSETS = {b"", b"ISO_IR 6", b"ISO_IR 100", b"ISO_IR 192"}
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_DECIMAL = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
# pydicom corrects the first value of these (a negative SS read as US), so they take its path.
_LUT_DESCRIPTORS = {0x00281101, 0x00281102, 0x00281103, 0x00283002}
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}


def _values(items: list[Any]) -> dict[str, Any] | None:
    """Return the "Value" member for decoded items; pydicom leaves out a single empty one."""
    if len(items) == 1 and items[0] == "":
        return None
    return {"Value": items}


def _split(text: str) -> list[str]:
    return text.rstrip(" \x00").split("\\")


def _texts(vr: str, text: str) -> list[Any] | None:
    """Decode a string VR the way pydicom's converters do; None where only pydicom knows how."""
    if vr in ("CS", "DA", "TM", "DT", "AS"):
        return _split(text)
    if vr == "UI":
        return [v.strip() for v in _split(text.rstrip("\x00 "))]  # pydicom's UID() strips
    if vr in ("SH", "LO", "UC"):
        return [v.rstrip("\x00 ") for v in text.split("\\")]
    if vr in ("LT", "ST", "UT"):
        return [text.rstrip("\x00 ")]
    if vr == "AE":
        return [v.strip() for v in text.split("\\")]
    if vr == "IS":
        items = _split(text)
        if items == [""]:
            return items
        return [int(v) for v in items] if all(_INTEGER.fullmatch(v) for v in items) else None
    if vr == "DS":
        items = _split(text.strip())
        if items == [""]:
            return items
        return [float(v) for v in items] if all(_DECIMAL.fullmatch(v) for v in items) else None
    if vr == "PN" and "=" not in text:
        items = _split(text.rstrip("\x00 "))
        if len(items) > 1 and "" in items:
            return None  # pydicom cannot render an empty name among several
        return [""] if items == [""] else [{"Alphabetic": v} for v in items]
    return None


def _direct(raw: RawDataElement, ascii_text: bool) -> dict[str, Any] | None:
    """Return a raw element's DICOM JSON as pydicom renders it, or None to let pydicom do it."""
    vr, value = raw.VR, raw.value
    if vr is None or value is None or not raw.is_little_endian or raw.tag in _LUT_DESCRIPTORS:
        return None
    vr = str(vr)
    if vr == "UN":  # pydicom may read it under the dictionary's VR
        return None
    if not value:
        return {"vr": vr} if vr != "SQ" else None
    code = _NUMBERS.get(vr)
    if code is not None:
        size = struct.calcsize(f"<{code}")
        if len(value) % size:
            return None
        kind: Callable[[Any], Any] = float if code in "fd" else int
        numbers = struct.unpack(f"<{len(value) // size}{code}", value)
        return {"vr": vr, "Value": [kind(n) for n in numbers]}
    if vr == "AT":
        if len(value) % 4:
            return None
        tags = [f"{group:04X}{elem:04X}" for group, elem in struct.iter_unpack("<HH", value)]
        return {"vr": vr, "Value": tags}
    if not ascii_text or not value.isascii():
        return None
    items = _texts(vr, value.decode("ascii"))
    if items is None:
        return None
    member = _values(items)
    return {"vr": vr, **member} if member else {"vr": vr}


def _ascii_charset(elements: Mapping[Any, Any], inherited: bool) -> bool:
    """Tell whether these elements' ASCII text decodes as ASCII (own charset, else inherited)."""
    own = elements.get(_CHARSET)
    if own is None:
        return inherited
    value = own.value
    if isinstance(value, str):  # decoded in place while the file was read
        value = value.encode("ascii", "replace")
    return isinstance(value, bytes) and value.strip(b" \x00") in _ASCII_CHARSETS


def _bulk_vr(raw: RawDataElement) -> str | None:
    """Return the VR under which a raw element is bulk data, or None if it is not binary."""
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary says, and ambiguous binary VRs are OW
        try:
            vr = dictionary_VR(raw.tag)
        except KeyError:
            vr = "UN"
    if vr in _BULK_VRS:
        return str(vr)
    if "OW" in vr:
        return "OW"
    return "OB" if "OB" in vr else None


class UndecodableElement(ValueError):
    """An element pydicom could not decode: names it and its VR, never its value.

    `path` runs from the element out to the top-level sequence holding it.
    """

    def __init__(self, path: tuple[int, ...], vr: str, cause: type[BaseException]) -> None:
        self.path, self.vr, self.cause = path, vr, cause
        inner, outer = (
            f"({t >> 16:04X},{t & 0xFFFF:04X}) {keyword_for_tag(t)}".rstrip()
            for t in (path[0], path[-1])
        )
        where = inner if len(path) == 1 else f"{inner} in sequence {outer}"
        if len(path) > 2:
            where += f" ({len(path) - 1} levels down)"
        vr = vr or "its VR"
        if issubclass(cause, BytesLengthException):
            why = f"its length is no whole number of {vr} values"
        elif issubclass(cause, (ValueError, TypeError)):
            why = f"its value is not a valid {vr}"
        else:
            why = f"it cannot be decoded as {vr} ({cause.__name__})"
        super().__init__(f"element {where}: {why}")


def _vr_of(element: Any, tag: int) -> str:
    vr = getattr(element, "VR", None)
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = ""
    return str(vr)


def _from_bytes(element: RawDataElement, key: str, ascii_text: bool) -> dict[str, Any] | None:
    """Render a raw element from its bytes as pydicom would, or None to let pydicom do it."""
    if (
        element.length != _UNDEFINED
        and element.length > JSON_BULK_BYTES
        and (vr := _bulk_vr(element)) is not None
    ):
        # Only the raw element still knows where its value lies in the file.
        return {"vr": vr, "BulkDataURI": f"{BULKDATA}{key}-{element.value_tell}"}
    if element.VR == "SQ":
        return _sequence(element, ascii_text)
    return _direct(element, ascii_text)


def _sequence(element: RawDataElement, ascii_text: bool) -> dict[str, Any] | None:
    """Render a sequence whose items hold only elements rendered from their bytes, or None."""
    if element.value is None or not element.is_little_endian or element.is_implicit_VR:
        return None
    items = header_walk.sequence_items(element.value)
    if items is None:
        return None
    rendered = []
    for item in items:
        if _CHARSET in item:
            return None  # its own character set: pydicom decodes it
        body = {}
        for tag in sorted(item):
            key = f"{tag:08X}"
            direct = _from_bytes(item[tag], key, ascii_text)
            if direct is None:
                return None
            body[key] = direct
        rendered.append(body)
    return {"vr": "SQ", "Value": rendered}


def json_dataset(
    ds: Dataset, raw: Mapping[Any, Any] | None = None, ascii_text: bool = True
) -> dict[str, Any]:
    """Render a dataset as DICOM JSON; large binary values become BulkDataURIs.

    `raw` holds the elements as parsed, before any was decoded in place, so that the common
    ones are rendered from their bytes; pydicom renders the rest, as it always did.
    """
    elements = raw if raw is not None else dict(ds._dict)
    ascii_text = _ascii_charset(elements, ascii_text)
    body: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        key = f"{tag:08X}"
        element = elements.get(tag)
        if isinstance(element, RawDataElement):
            direct = _from_bytes(element, key, ascii_text)
            if direct is not None:
                body[key] = direct
                continue
        # pydicom's own errors quote the value they choke on; only the element is named.
        try:
            decoded = ds[tag]
            if decoded.VR == "SQ":
                body[key] = {
                    "vr": "SQ",
                    "Value": [json_dataset(item, None, ascii_text) for item in decoded.value],
                }
                continue
            body[key] = decoded.to_json_dict(
                bulk_data_element_handler=None, bulk_data_threshold=JSON_BULK_BYTES
            )
        except UndecodableElement as inner:
            raise UndecodableElement((*inner.path, int(tag)), inner.vr, inner.cause) from None
        except Exception as exc:
            raise UndecodableElement((int(tag),), _vr_of(element, tag), type(exc)) from None
    return body


def metadata_json(
    ds: Dataset, raw: Mapping[Any, Any], pixels: PixelLayout | None
) -> dict[str, Any]:
    """Return the header as DICOM JSON with BulkDataURIs for large values and the pixel data."""
    body = json_dataset(ds, raw)
    if pixels is not None:
        uri = (
            PIXEL_BULKDATA
            if pixels.encapsulated
            else f"{BULKDATA}{_PIXEL_DATA:08X}-{pixels.value_offset}"
        )
        body[f"{_PIXEL_DATA:08X}"] = {"vr": pixels.vr, "BulkDataURI": uri}
    return body
