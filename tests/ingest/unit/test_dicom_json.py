"""The direct DICOM JSON renderer gives the stored metadata pydicom's to_json_dict gave."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian

from sonobridge.ingest.adapters.dicom_json import (
    JSON_BULK_BYTES,
    UndecodableElement,
    _bulk_vr,
    metadata_json,
)
from sonobridge.ingest.domain.media import BULKDATA
from tests.ingest.ingest_support import synthetic_instance

_LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}
# pydicom's ultrasound examples (the realus-dev frames' sources) and its other samples.
_SAMPLES = sorted(
    p.name
    for p in Path(str(get_testdata_file("CT_small.dcm"))).parent.glob("*.dcm")
    if "truncated" not in p.name
)


def _reference(ds: Dataset) -> dict[str, Any]:
    """Render every element through pydicom, as ingest did before the direct renderer."""
    body: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        key = f"{tag:08X}"
        raw = ds.get_item(tag, keep_deferred=True)
        if (
            isinstance(raw, RawDataElement)
            and raw.length != 0xFFFFFFFF
            and raw.length > JSON_BULK_BYTES
            and (vr := _bulk_vr(raw)) is not None
        ):
            body[key] = {"vr": vr, "BulkDataURI": f"{BULKDATA}{key}-{raw.value_tell}"}
            continue
        element = ds[tag]
        if element.VR == "SQ":
            body[key] = {"vr": "SQ", "Value": [_reference(item) for item in element.value]}
            continue
        body[key] = element.to_json_dict(None, JSON_BULK_BYTES)
    return body


def _rendered(data: bytes, *, decode_first: tuple[str, ...] = ()) -> tuple[str, str]:
    """Return (direct, reference) serialized metadata of one file's header."""
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, defer_size=64 * 1024)
    parsed = dict(ds._dict)
    for keyword in decode_first:  # as describing the instance does before the metadata
        ds.get(keyword)
    direct = metadata_json(ds, parsed, None)
    fresh = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, defer_size=64 * 1024)
    return json.dumps(direct), json.dumps(_reference(fresh))


@pytest.mark.parametrize("name", _SAMPLES)
def test_pydicom_samples_render_as_pydicom_renders_them(name: str) -> None:
    data = Path(str(get_testdata_file(name))).read_bytes()
    try:
        fresh = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, defer_size=64 * 1024)
    except Exception as exc:  # refused as not DICOM before any metadata is built
        pytest.skip(f"pydicom cannot parse {name}: {type(exc).__name__}")
    try:
        expected = json.dumps(_reference(fresh))
    except Exception as exc:
        # Refused before as malformed: the direct renderer must not make it readable.
        with pytest.raises(type(exc)):
            _rendered(data)
        return
    direct, _ = _rendered(data, decode_first=("PatientName", "SOPInstanceUID", "Rows"))
    assert direct == expected


def test_synthetic_instance_renders_as_pydicom_renders_it() -> None:
    direct, expected = _rendered(synthetic_instance())
    assert direct == expected
    assert '"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Test^Synthetic"}]}' in direct


def _element(tag: int, vr: str, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB", "UN") else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in _LONG:
        return head + struct.pack("<HL", 0, len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _file(elements: list[tuple[int, str, bytes]], syntax: str = ExplicitVRLittleEndian) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = syntax
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    for tag, vr, value in sorted(elements):
        out.write(_element(tag, vr, value))
    return out.getvalue()


_ITEM = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQ_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"

# Values at the edges of each converter: padding, empties among many, odd numbers, PN groups.
_AWKWARD: list[tuple[int, str, bytes]] = [
    (0x00080008, "CS", b"ORIGINAL\\PRIMARY\\\\ "),
    (0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.6.1"),
    (0x00080018, "UI", b"1.2.3.4\x00"),
    (0x00080020, "DA", b"20260301"),
    (0x00080030, "TM", b"101500.123 "),
    (0x00080050, "SH", b""),
    (0x00080054, "AE", b" AE1 \\AE2"),
    (0x00080060, "CS", b"US"),
    (0x00080070, "LO", b" Vendor \\ Second "),
    (0x00080090, "PN", b"Doe^John\\Roe^Jane"),
    (0x00081030, "LO", b"A\\B\x00"),
    (0x00081050, "PN", b"Yamada^Tarou=Ideo^Graph=Pho^Net"),
    (0x00081070, "PN", b"  "),
    (0x00082111, "ST", b"text with \\ backslash and trailing   "),
    (0x00100010, "PN", b"Test^Name^^^"),
    (0x00100020, "LO", b"PAT-1"),
    (0x00101010, "AS", b"030Y"),
    (0x00101020, "DS", b" 1.75 "),
    (0x00101030, "DS", b"70\\7.5e1\\-.5\\+3."),
    (0x00181063, "DS", b"nan"),
    (0x00181088, "IS", b"0"),
    (0x00181242, "IS", b" 12 \\+3\\-4"),
    (0x00181243, "IS", b"1.0"),
    (0x00181244, "IS", b""),
    (0x00185010, "LO", b"50.80.103.002\\\\"),
    (0x00186011, "SQ", _ITEM + _element(0x00186012, "US", b"\x01\x00") + _ITEM_END + _SEQ_END),
    (0x00190010, "LO", b"Private Creator"),
    (0x00191001, "UN", b"\x01\x02\x03\x04"),
    (0x00191002, "LT", b"line one\r\nline two \x00"),
    (0x00191003, "UT", b"x" * 30000),
    (0x00191004, "OB", b"\x00\x01\x02\x03"),
    (0x0020000D, "UI", b"1.2.3"),
    (0x0020000E, "UI", b"1.2.3.1"),
    (0x00200013, "IS", b"7 "),
    (0x00280002, "US", b"\x03\x00"),
    (0x00280009, "AT", b"\x18\x00\x63\x10"),
    (0x00280010, "US", b"\x30\x00"),
    (0x00280030, "DS", b"0.2\\0.2 "),
    (0x00281101, "US", b"\x00\x00\x00\x00\x10\x00"),
    (0x00283000, "FL", b"\xcd\xcc\xcc\x3d\x00\x00\x80\x7f"),
    (0x00283001, "FD", b"\x9a\x99\x99\x99\x99\x99\xb9\x3f"),
    (0x00283002, "SS", b"\xff\xff\x00\x00"),
    (0x00283003, "SL", b"\xff\xff\xff\xff\x02\x00\x00\x00"),
    (0x00283004, "UL", b"\x01\x00\x00\x00"),
    (0x00283005, "UR", b"http://example.org/a "),
    (0x00283006, "US", b"\x01\x00\x02"),
]


@pytest.mark.parametrize(
    ("tag", "vr", "value"),
    [(0x00080090, "PN", b"Doe^John\\\\Roe^Jane"), (0x00180088, "DS", b"1\\\\2")],
)
def test_values_pydicom_cannot_render_stay_refused(tag: int, vr: str, value: bytes) -> None:
    data = _file([(0x00100020, "LO", b"PAT-1"), (tag, vr, value)])
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    with pytest.raises((IndexError, ValueError)):
        _reference(ds)
    with pytest.raises((IndexError, ValueError)):
        metadata_json(ds, dict(ds._dict), None)


@pytest.mark.parametrize("charset", [b"", b"ISO_IR 100", b"ISO_IR 192", b"ISO_IR 144"])
def test_awkward_values_render_as_pydicom_renders_them(charset: bytes) -> None:
    elements = list(_AWKWARD)
    if charset:
        elements.append((0x00080005, "CS", charset))
    direct, expected = _rendered(_file(elements), decode_first=("PatientName", "PatientID"))
    assert direct == expected


def test_text_under_another_character_set_renders_as_pydicom_renders_it() -> None:
    item = _element(0x00080005, "CS", b"ISO_IR 100") + _element(0x00100010, "PN", b"M\xfcller")
    elements = [
        (0x00080005, "CS", b"ISO_IR 192"),
        (0x00100010, "PN", "Ünal^Çağrı".encode()),
        (0x00081111, "SQ", _ITEM + item + _ITEM_END + _SEQ_END),
        (0x00081030, "LO", "Échographie".encode()),
    ]
    direct, expected = _rendered(_file(elements))
    assert direct == expected
    item_name = json.loads(direct)["00081111"]["Value"][0]["00100010"]["Value"][0]
    assert item_name == {"Alphabetic": "Müller"}


def _defined_item(body: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<L", len(body)) + body


_ITEM_BODY = (
    _element(0x00186012, "US", b"\x01\x00")
    + _element(0x00186014, "UL", b"\x02\x00\x00\x00")
    + _element(0x0018602C, "FD", b"\x9a\x99\x99\x99\x99\x99\xb9\x3f")
    + _element(0x00186030, "AT", b"\x18\x00\x63\x10\x28\x00\x10\x00")
)
_NESTED = _element(0x00081155, "UI", b"1.2.3.4\x00") + _element(
    0x0040A170, "SQ", _defined_item(_element(0x00080100, "SH", b"CODE"))
)


@pytest.mark.parametrize(
    "value",
    [
        _defined_item(_ITEM_BODY),  # as ultrasound regions are written
        _defined_item(_ITEM_BODY) + _ITEM + _ITEM_BODY + _ITEM_END,  # both kinds of item
        _defined_item(b"") + _ITEM + _ITEM_END,  # empty items
        b"",  # no items
        _defined_item(_NESTED) * 2,  # a sequence in each item
        _defined_item(_element(0x00191010, "OB", b"\x01" * (JSON_BULK_BYTES + 2))),  # bulk
        _defined_item(_element(0x00100010, "PN", b"Yamada^Tarou=Ideo")),  # pydicom's to render
        _defined_item(_element(0x00080005, "CS", b"ISO_IR 192") + _element(0x00100010, "PN", b"A")),
        _defined_item(_element(0x00191001, "UN", b"\x01\x02")),  # read under another VR
        _defined_item(_element(0x00280009, "AT", b"\x18\x00\x63")),  # no whole tag
        b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",  # ended before it began
    ],
)
def test_defined_length_sequences_render_as_pydicom_renders_them(value: bytes) -> None:
    elements = [(0x00100020, "LO", b"PAT-1"), (0x00186011, "SQ", value)]
    direct, expected = _rendered(_file(elements))
    assert direct == expected


@pytest.mark.parametrize(
    "value", [b"", b"\x18\x00\x63\x10", b"\x18\x00\x63\x10\x28\x00\x10\x00", b"\xff\xff\x00\x00"]
)
def test_attribute_tags_render_as_pydicom_renders_them(value: bytes) -> None:
    direct, expected = _rendered(_file([(0x00280009, "AT", value)]))
    assert direct == expected


_TEXT = st.text(st.sampled_from("AZaz09 .^=\\-+e\x00\r"), max_size=12).map(str.encode)
_GENERATED_VALUES: dict[str, st.SearchStrategy[bytes]] = {
    **dict.fromkeys(("CS", "DA", "TM", "SH", "LO", "PN", "IS", "DS", "UI", "AE", "LT"), _TEXT),
    **dict.fromkeys(
        ("US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW", "UN"), st.binary(max_size=12)
    ),
}


@st.composite
def _generated(draw: st.DrawFn, depth: int = 0) -> bytes:
    """Elements in tag order of any VR, sequences of defined-length items among them."""
    groups = sorted(draw(st.sets(st.integers(0x0008, 0x0030), min_size=1, max_size=6)))
    out = b""
    for group in groups:
        tag = group << 16 | draw(st.integers(0x0010, 0x1FFF))
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            items = draw(st.lists(_generated(depth + 1), max_size=3))
            out += _element(tag, "SQ", b"".join(_defined_item(i) for i in items))
            continue
        vr = draw(st.sampled_from(sorted(_GENERATED_VALUES)))
        out += _element(tag, vr, draw(_GENERATED_VALUES[vr]))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_generated(), charset=st.sampled_from([b"", b"ISO_IR 100", b"ISO_IR 192"]))
def test_generated_headers_render_as_pydicom_renders_them(body: bytes, charset: bytes) -> None:
    elements = [(0x00080005, "CS", charset)] if charset else []
    data = _file(elements) + body
    fresh = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, defer_size=64 * 1024)
    try:
        expected = json.dumps(_reference(fresh))
    except Exception:
        # Refused as malformed before: refused still, naming the element.
        with pytest.raises(UndecodableElement):
            _rendered(data)
        return
    direct, _ = _rendered(data)
    assert direct == expected
