"""Read a spooled DICOM file's header and pixel-data layout without loading the pixels."""

from __future__ import annotations

import functools
import io
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID

from sonobridge.common.inputs import INT32_MAX, INT32_MIN
from sonobridge.ingest.adapters import header_walk
from sonobridge.ingest.adapters.dataset_hash import LONG_VRS as _LONG_VRS
from sonobridge.ingest.adapters.dicom_json import UndecodableElement, metadata_json
from sonobridge.ingest.domain.model import is_valid_uid
from sonobridge.ingest.domain.validation import (
    CHECKED_TEXT_ATTRIBUTES,
    EXPLICIT_VR_BIG_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    InstanceDescription,
    PixelLayout,
    Rejected,
    text_fault,
)

# Header elements above this size are skipped while parsing (seeked over) and checked later.
_DEFER_BYTES = 64 * 1024
# Files up to this size are parsed from one read into memory: pydicom asks for the position at
# every element, and each tell() on a real file is an lseek that also gives up the GIL.
IN_MEMORY_BYTES = 2 * 1024 * 1024
_PIXEL_DATA = 0x7FE00010
_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF


Rendered = Mapping[str, Any]
"""A header as DICOM JSON: the description reads its values there, decoded once."""
_UNRENDERED = object()
# VRs whose values may hold a backslash (PS3.5 6.2): one value each, not several.
_SINGLE_VALUED_VRS = frozenset({"LT", "ST", "UT", "UR"})
_PERSON_NAME_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
# Each checked attribute with its DICOM JSON key, looked up once (a check runs per instance).
_CHECKED_TEXT_KEYS = tuple((k, f"{tag_for_keyword(k):08X}") for k in CHECKED_TEXT_ATTRIBUTES)


def _header_text(ds: Dataset, keyword: str, rendered: Rendered | None = None) -> str:
    value = _rendered_value(rendered, keyword)
    if isinstance(value, dict) and value.keys() == {"Alphabetic"}:
        value = value["Alphabetic"]  # a person name of one component group: its text
    if isinstance(value, str) and rendered is not None:
        return _padless(value)
    element = ds.data_element(keyword) if keyword in ds else None
    if element is None or element.value is None:
        return ""
    return _padless(str(element.value))


def _padless(value: str) -> str:
    return value.strip().rstrip("\x00")


def _check_texts(ds: Dataset, rendered: Rendered | None) -> None:
    """Refuse a header where a text attribute ingest indexes or passes on breaks its VR.

    Read from the rendered header where it holds the attribute, else from pydicom's element;
    every value of a multi-valued attribute and every component group of a name counts.
    """
    for keyword, key in _CHECKED_TEXT_KEYS:
        entry = rendered.get(key) if rendered is not None else None
        if entry is not None:
            if "BulkDataURI" in entry or "InlineBinary" in entry:
                raise Rejected(f"{keyword} holds a binary value", "malformed_attribute")
            vr, values = entry["vr"], entry.get("Value", ())
        elif rendered is None and keyword in ds:
            element = ds.data_element(keyword)
            if element is None or element.value is None:
                continue
            vr, value = element.VR, element.value
            values = value if isinstance(value, MultiValue) else (value,)
        else:
            continue
        for value in values:
            if isinstance(value, dict):
                value = "=".join(str(value.get(group, "")) for group in _PERSON_NAME_GROUPS)
            elif isinstance(value, bytes):
                raise Rejected(f"{keyword} holds a binary value", "malformed_attribute")
            # Only spaces and trailing NULs are padding: str.strip() would also drop FS..US.
            text = str(value).strip(" ").rstrip("\x00 ")
            parts = (text,) if vr in _SINGLE_VALUED_VRS else text.split("\\")
            for part in parts:
                fault = text_fault(vr, part)
                if fault is not None:
                    raise Rejected(
                        f"{keyword} is not a valid {vr} value: {fault} (a wrong length?)",
                        "malformed_attribute",
                    )


def _header_int(
    ds: Dataset, keyword: str, default: int | None = None, rendered: Rendered | None = None
) -> int | None:
    value = _rendered_value(rendered, keyword)
    if value != "" and (not isinstance(value, int) or isinstance(value, bool)):
        value = ds.get(keyword)  # not rendered as one number: pydicom's reading decides
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise Rejected(f"{keyword} is not an integer", "malformed_attribute") from exc
    # IS is a 32-bit value (PS3.5 6.2); a larger one would overflow the index's columns.
    if not INT32_MIN <= number <= INT32_MAX:
        raise Rejected(f"{keyword} is outside the 32-bit range of IS", "malformed_attribute")
    return number


@functools.cache
def _json_key(keyword: str) -> str:
    return f"{tag_for_keyword(keyword):08X}"


def _rendered_value(rendered: Rendered | None, keyword: str) -> Any:
    """Return the one value the DICOM JSON header holds for `keyword`, "" for none.

    Returns _UNRENDERED (for pydicom to read the element) without a header, or where it holds
    several values or a binary one.
    """
    if rendered is None:
        return _UNRENDERED
    entry = rendered.get(_json_key(keyword))
    if entry is None:
        return ""
    values = entry.get("Value")
    if values is None:
        return _UNRENDERED if "BulkDataURI" in entry or "InlineBinary" in entry else ""
    return values[0] if len(values) == 1 else _UNRENDERED


def _walk_fragments(fp: BinaryIO, end: int, endian: str) -> tuple[int, int]:
    """Return (fragments, basic offset table entries), checking every item fits in the file."""
    fragments = 0
    offset_entries = 0
    first = True
    while True:
        header = fp.read(8)
        if len(header) < 8:
            raise Rejected("encapsulated pixel data is truncated", "truncated")
        group, elem, length = struct.unpack(f"{endian}HHL", header)
        tag = group << 16 | elem
        if tag == _SEQUENCE_DELIMITER:
            return fragments, offset_entries
        if tag != _ITEM or length == _UNDEFINED:
            raise Rejected("encapsulated pixel data has a malformed item", "pixel_mismatch")
        if fp.tell() + length > end:
            raise Rejected(
                f"pixel data item declares {length} bytes beyond the end of the file", "truncated"
            )
        if first:
            if length % 4:
                raise Rejected("basic offset table length is not a multiple of 4", "pixel_mismatch")
            offset_entries = length // 4
            first = False
        else:
            fragments += 1
        fp.seek(length, os.SEEK_CUR)


def _pixel_layout(fp: BinaryIO, size: int, transfer_syntax: str) -> PixelLayout | None:
    """Parse the pixel data element header at the current position, if it is there."""
    endian = ">" if transfer_syntax == EXPLICIT_VR_BIG_ENDIAN else "<"
    start = fp.tell()
    head = fp.read(4)
    if len(head) < 4:
        return None
    group, elem = struct.unpack(f"{endian}HH", head)
    if group << 16 | elem != _PIXEL_DATA:
        raise Rejected(
            f"unsupported pixel element ({group:04X},{elem:04X}) at offset {start}",
            "pixel_mismatch",
        )
    if transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN:
        raw = fp.read(4)
        if len(raw) < 4:
            raise Rejected("pixel data element is truncated", "truncated")
        (length,) = struct.unpack("<L", raw)
    else:
        raw = fp.read(8)
        if len(raw) < 8:
            raise Rejected("pixel data element is truncated", "truncated")
        vr = raw[:2]
        if vr not in (b"OB", b"OW"):
            raise Rejected(f"pixel data has VR {vr!r}, expected OB or OW", "pixel_mismatch")
        (length,) = struct.unpack(f"{endian}L", raw[4:])
    # Implicit VR pixel data is OW (PS3.5 A.1).
    vr_name = raw[:2].decode() if transfer_syntax != IMPLICIT_VR_LITTLE_ENDIAN else "OW"
    if length == _UNDEFINED:
        fragments, entries = _walk_fragments(fp, size, endian)
        return PixelLayout(
            encapsulated=True, fragments=fragments, offset_table_entries=entries, vr="OB"
        )
    offset = fp.tell()
    if offset + length > size:
        raise Rejected(
            f"pixel data declares {length} bytes but the file ends {size - offset} bytes later",
            "truncated",
        )
    fp.seek(length, os.SEEK_CUR)
    return PixelLayout(encapsulated=False, length=length, vr=vr_name, value_offset=offset)


def _check_end(fp: BinaryIO, size: int, transfer_syntax: str) -> None:
    """Refuse bytes after the pixel data unless they are well-formed elements in tag order.

    A DICOM file is its meta header plus one dataset (PS3.10 7.1) whose elements ascend by tag
    (PS3.5 7.1); what may follow the pixel data is more such elements, e.g. (FFFA,FFFA) Digital
    Signatures or (FFFC,FFFC) Data Set Trailing Padding. Anything else is refused, not cut off:
    instances are stored exactly as received and checked against the sender's SHA-256.
    """
    endian = ">" if transfer_syntax == EXPLICIT_VR_BIG_ENDIAN else "<"
    explicit = transfer_syntax != IMPLICIT_VR_LITTLE_ENDIAN
    last = _PIXEL_DATA
    while (start := fp.tell()) < size:
        head = fp.read(8)
        group, elem = struct.unpack(f"{endian}HH", head[:4]) if len(head) == 8 else (0, 0)
        tag = group << 16 | elem
        vr = head[4:6]
        well_formed = tag > last and (not explicit or (vr.isalpha() and vr.isupper()))
        length = _UNDEFINED
        if well_formed and explicit and vr in _LONG_VRS:
            extra = fp.read(4)
            length = struct.unpack(f"{endian}L", extra)[0] if len(extra) == 4 else _UNDEFINED
        elif well_formed:
            length = struct.unpack(
                f"{endian}{'H' if explicit else 'L'}", head[6:8] if explicit else head[4:8]
            )[0]
        if not well_formed or length == _UNDEFINED or fp.tell() + length > size:
            raise Rejected(
                f"{size - start} bytes after the dataset's last element (from offset {start}) "
                "are not DICOM data elements; pad with (FFFC,FFFC) or send the file as written",
                "trailing_data",
            )
        fp.seek(length, os.SEEK_CUR)
        last = tag


def _open(path: Path, size: int) -> BinaryIO:
    """Open a file for parsing: small ones as an in-memory copy, larger ones as they lie."""
    if size <= IN_MEMORY_BYTES:
        return io.BytesIO(path.read_bytes())
    return path.open("rb")


def _read_header(fp: BinaryIO) -> Dataset:
    """Parse the header up to the pixel data, leaving `fp` there; the common case walked."""
    if isinstance(fp, io.BytesIO):
        data = fp.getvalue()
        walked = header_walk.read_header(data, fp, _DEFER_BYTES)
        if walked is not None:
            fp.seek(walked[1])
            return walked[0]
    fp.seek(0)
    return pydicom.dcmread(fp, stop_before_pixels=True, defer_size=_DEFER_BYTES)


def read_instance(path: Path) -> tuple[InstanceDescription, PixelLayout | None, dict[str, Any]]:
    """Parse the file at `path`; return its description, pixel layout and DICOM JSON metadata."""
    size = path.stat().st_size
    with _open(path, size) as fp:
        preamble = fp.read(132)
        if len(preamble) < 132 or preamble[128:132] != b"DICM":
            raise Rejected("not a DICOM file (no 128-byte preamble and 'DICM' prefix)", "not_dicom")
        try:
            ds = _read_header(fp)
        except InvalidDicomError:
            # pydicom's messages quote the values they choke on: none is passed on (from None).
            raise Rejected(
                "not a DICOM file: its file meta information cannot be read", "not_dicom"
            ) from None
        except Exception as exc:
            # pydicom raises many types for corrupt headers; all mean "cannot parse".
            raise Rejected(_parse_fault(exc), "malformed_header") from None
        meta = ds.file_meta
        transfer_syntax = str(meta.get("TransferSyntaxUID", "") or "").strip()
        for element in ds._dict.values():
            # Deferred elements were seeked over; a declared length past EOF means truncation.
            if (
                isinstance(element, RawDataElement)
                and element.value is None
                and element.value_tell + element.length > size
            ):
                raise Rejected(
                    f"element {element.tag} declares {element.length} bytes beyond the end of "
                    "the file",
                    "truncated",
                )
        pixels = _pixel_layout(fp, size, transfer_syntax) if transfer_syntax else None
        if pixels is not None:
            _check_end(fp, size, transfer_syntax)
        # Inside the `with`: values deferred while parsing are read from the open file.
        description, metadata = describe_header(ds, transfer_syntax, pixels)
    return description, pixels, metadata


def describe_header(
    ds: Dataset, transfer_syntax: str, pixels: PixelLayout | None
) -> tuple[InstanceDescription, dict[str, Any]]:
    """Render a parsed header as DICOM JSON and describe the instance from it."""
    # The elements as parsed, before rendering decodes some of them in place.
    parsed = dict(ds._dict)
    try:
        metadata = metadata_json(ds, parsed, pixels)
    except Exception as exc:
        # A value the description reads refuses the file for its own reason first.
        try:
            _describe(ds, transfer_syntax, pixels, None)
        except Rejected:
            raise
        except Exception:  # noqa: S110 - the rendering's failure names the element
            pass
        raise Rejected(_decode_fault(exc), "malformed_header") from None
    try:
        return _describe(ds, transfer_syntax, pixels, metadata), metadata
    except Rejected:
        raise
    except Exception as exc:
        raise Rejected(_decode_fault(exc), "malformed_header") from None


# A tag as pydicom's messages write it: hex digits only, so it can be passed on.
_TAG_IN_MESSAGE = re.compile(r"\(([0-9A-Fa-f]{4}),\s*([0-9A-Fa-f]{4})\)")


def _parse_fault(exc: Exception) -> str:
    """Describe a header pydicom cannot parse by the element it names, never by a value."""
    found = _TAG_IN_MESSAGE.search(str(exc))
    where = f" at element ({found[1].upper()},{found[2].upper()})" if found else ""
    return f"DICOM header cannot be parsed{where} ({type(exc).__name__})"


def _decode_fault(exc: Exception) -> str:
    """Describe a header element that cannot be decoded, never by its value."""
    if isinstance(exc, UndecodableElement):
        return f"DICOM header cannot be decoded: {exc}"
    return f"DICOM header cannot be decoded ({type(exc).__name__})"


def peek_uids(path: Path) -> tuple[str, str]:
    """Return (SOP class, SOP instance) UIDs of a file that failed, as far as they are legible."""
    try:
        ds = pydicom.dcmread(
            path,
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID"],
        )
        meta = ds.file_meta
        sop_class = _header_text(ds, "SOPClassUID") or str(meta.get("MediaStorageSOPClassUID", ""))
        sop_instance = _header_text(ds, "SOPInstanceUID") or str(
            meta.get("MediaStorageSOPInstanceUID", "")
        )
    except Exception:
        # The file is already refused for being unreadable; its failure item stays anonymous.
        return "", ""
    sop_class, sop_instance = sop_class.strip(), sop_instance.strip()
    return (
        sop_class if is_valid_uid(sop_class) else "",
        sop_instance if is_valid_uid(sop_instance) else "",
    )


def _expects_pixels(ds: Dataset, rendered: Rendered | None) -> bool:
    """Tell whether the object is an image: an image SOP class, or a declared pixel module."""
    name = UID(_header_text(ds, "SOPClassUID", rendered)).name
    if "Image Storage" in name:
        return True
    return any(k in ds for k in ("Rows", "Columns", "BitsAllocated", "NumberOfFrames"))


def _describe(
    ds: Dataset, transfer_syntax: str, pixels: PixelLayout | None, rendered: Rendered | None
) -> InstanceDescription:
    """Describe the instance from its rendered header where it holds one plain value."""
    meta = ds.file_meta

    def text(keyword: str) -> str:
        return _header_text(ds, keyword, rendered)

    def number(keyword: str, default: int | None = None) -> int | None:
        return _header_int(ds, keyword, default, rendered)

    _check_texts(ds, rendered)
    image = pixels is not None or _expects_pixels(ds, rendered)
    return InstanceDescription(
        sop_instance_uid=text("SOPInstanceUID"),
        sop_class_uid=text("SOPClassUID"),
        study_instance_uid=text("StudyInstanceUID"),
        series_instance_uid=text("SeriesInstanceUID"),
        transfer_syntax_uid=transfer_syntax,
        media_sop_instance_uid=str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip(),
        media_sop_class_uid=str(meta.get("MediaStorageSOPClassUID", "") or "").strip(),
        modality=text("Modality"),
        body_part=text("BodyPartExamined"),
        patient_id=text("PatientID"),
        patient_name=text("PatientName"),
        study_date=text("StudyDate"),
        study_time=text("StudyTime"),
        accession_number=text("AccessionNumber"),
        study_description=text("StudyDescription"),
        study_id=text("StudyID"),
        series_number=number("SeriesNumber"),
        series_description=text("SeriesDescription"),
        instance_number=number("InstanceNumber"),
        device_serial=text("DeviceSerialNumber"),
        rows=number("Rows", 0) or 0,
        columns=number("Columns", 0) or 0,
        samples_per_pixel=number("SamplesPerPixel", 1) or 0,
        bits_allocated=number("BitsAllocated", 0) or 0,
        # A structured report or a waveform has no frames at all.
        number_of_frames=(number("NumberOfFrames", 1) or 0) if image else 0,
        photometric_interpretation=text("PhotometricInterpretation"),
        image=image,
    )
