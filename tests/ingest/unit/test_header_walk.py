"""The header walk reads exactly what pydicom's dcmread reads, or declines the file."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path
from typing import Any

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from sonobridge.ingest.adapters.header_walk import read_header, sequence_items
from tests.ingest.unit.test_dicom_json import _file as part10

_DEFER = 64 * 1024
_FOLDERS = {Path(str(get_testdata_file(n))).parent for n in ("CT_small.dcm", "chrFren.dcm")}
_SAMPLES = sorted(str(p) for folder in _FOLDERS for p in folder.glob("*.dcm"))
_LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}


def _state(ds: Any, stop: int) -> dict[str, Any]:
    """What a header read leaves behind: its elements, File Meta, encoding and position."""
    return {
        "elements": list(ds._dict.items()),
        "meta": list(ds.file_meta._dict.items()),
        "preamble": ds.preamble,
        "encoding": ds.original_encoding,
        "charset": ds.original_character_set,
        "read": (ds._read_implicit, ds._read_little),
        "stop": stop,
    }


def _checked(data: bytes) -> bool:
    """Assert the walk reads `data` as dcmread does, where it reads it; tell whether it did."""
    walked = read_header(data, io.BytesIO(data), _DEFER)
    if walked is None:
        return False
    fp = io.BytesIO(data)
    expected = pydicom.dcmread(fp, stop_before_pixels=True, defer_size=_DEFER)
    expected.original_character_set  # noqa: B018 - decoded in place, as the walk does
    assert _state(*walked) == _state(expected, fp.tell())
    return True


def _read_alike_or_declined(data: bytes) -> None:
    """Assert the walk reads `data` as dcmread does, or declines what dcmread refuses."""
    try:
        pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, defer_size=_DEFER)
    except Exception:
        # pydicom refuses it: the walk must decline, leaving the refusal to pydicom.
        assert read_header(data, io.BytesIO(data), _DEFER) is None
        return
    _checked(data)


def _element(tag: int, vr: str, value: bytes, length: int | None = None) -> bytes:
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    size = len(value) if length is None else length
    if vr in _LONG:
        return head + struct.pack("<HL", 0, size) + value
    return head + struct.pack("<H", size) + value


def _file(body: bytes, syntax: str = ExplicitVRLittleEndian) -> bytes:
    return part10([], syntax) + body


def _item(body: bytes, defined: bool) -> bytes:
    if defined:
        return b"\xfe\xff\x00\xe0" + struct.pack("<L", len(body)) + body
    return b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + body + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"


_BENCH_SAMPLE = str(get_testdata_file("examples_ybr_color.dcm"))


def test_the_benchmarked_ultrasound_example_is_walked() -> None:
    assert _checked(Path(_BENCH_SAMPLE).read_bytes())


@pytest.mark.parametrize("path", _SAMPLES, ids=lambda p: Path(p).name)
def test_pydicom_samples_are_read_as_dcmread_reads_them(path: str) -> None:
    data = Path(path).read_bytes()
    if data[128:132] != b"DICM":
        pytest.skip("no preamble: refused before any header is read")
    _checked(data)


@pytest.mark.parametrize("path", _SAMPLES, ids=lambda p: Path(p).name)
def test_damaged_samples_are_read_as_dcmread_reads_them_or_declined(path: str) -> None:
    data = Path(path).read_bytes()
    if data[128:132] != b"DICM" or len(data) > 2 * 1024 * 1024:
        pytest.skip("not read from memory")
    rng = random.Random(path)
    for _ in range(20):
        damaged = bytearray(data)
        at = rng.randrange(132, min(len(data), 4096))
        kind = rng.randrange(3)
        if kind == 0:
            damaged[at] = rng.randrange(256)
        elif kind == 1:
            del damaged[at:]
        else:
            damaged[at:at] = rng.randbytes(rng.randint(1, 6))
        _read_alike_or_declined(bytes(damaged))


@pytest.mark.parametrize(
    ("body", "syntax"),
    [
        (_element(0x00100020, "LO", b"PAT1"), ImplicitVRLittleEndian),  # pydicom guesses
        (b"", ExplicitVRLittleEndian),  # an empty dataset reads as implicit VR
        (_element(0x00100020, "XY", b"PAT1"), ExplicitVRLittleEndian),  # an unknown VR
        (_element(0x00100020, "LO", b"PAT1", 0x100), ExplicitVRLittleEndian),  # truncated
        (_element(0x00191001, "UT", b"x" * (_DEFER + 2)), ExplicitVRLittleEndian),  # deferred
        (_element(0x00081111, "SQ", b"", 0xFFFFFFFF), ExplicitVRLittleEndian),  # undefined
        (_element(0x00000000, "UL", b"\x00\x00\x00\x00"), ExplicitVRLittleEndian),  # command
        (_element(0x00100020, "LO", b"PAT1") + b"\x10\x00", ExplicitVRLittleEndian),  # partial
    ],
)
def test_what_is_not_the_common_case_is_left_to_pydicom(body: bytes, syntax: str) -> None:
    data = _file(body, syntax)
    assert read_header(data, io.BytesIO(data), _DEFER) is None


_VALUES = {
    "LO": st.binary(max_size=12).map(lambda b: b.replace(b"\\", b"")),
    "US": st.binary(min_size=2, max_size=2),
    "UL": st.binary(min_size=4, max_size=8),
    "AT": st.binary(max_size=12),
    "UT": st.binary(max_size=40),
    "OB": st.binary(max_size=40),
    "UN": st.binary(max_size=8),
}


@st.composite
def _datasets(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A run of elements in tag order, sequences among them with defined and undefined items."""
    tags = sorted(
        draw(st.sets(st.integers(0x0008, 0x0030), min_size=1, max_size=8)),
    )
    out = b""
    for group in tags:
        tag = group << 16 | draw(st.integers(0x0010, 0x1FFF))
        if depth < 2 and draw(st.integers(0, 5)) == 0:
            items = draw(st.lists(_datasets(depth + 1), max_size=3))
            defined = draw(st.lists(st.booleans(), min_size=len(items), max_size=len(items)))
            value = b"".join(_item(i, d) for i, d in zip(items, defined, strict=True))
            out += _element(tag, "SQ", value)
            continue
        vr = draw(st.sampled_from(sorted(_VALUES)))
        out += _element(tag, vr, draw(_VALUES[vr]))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=_datasets(),
    syntax=st.sampled_from([ExplicitVRLittleEndian, JPEGBaseline8Bit]),
    flip=st.one_of(st.none(), st.tuples(st.integers(0, 10_000), st.integers(0, 255))),
    charset=st.sampled_from([b"", b"ISO_IR 100", b"ISO_IR 192", b"ISO 2022 IR 6\\ISO 2022 IR 87"]),
)
def test_generated_headers_are_read_as_dcmread_reads_them(
    body: bytes, syntax: str, flip: tuple[int, int] | None, charset: bytes
) -> None:
    if charset:
        body = _element(0x00080005, "CS", charset + b" " * (len(charset) % 2)) + body
    data = bytearray(_file(body, syntax))
    if flip is not None:
        data[132 + flip[0] % (len(data) - 132)] = flip[1]
    _read_alike_or_declined(bytes(data))


@settings(max_examples=200, deadline=None)
@given(body=_datasets(depth=1), defined=st.booleans(), count=st.integers(0, 3))
def test_sequence_items_are_read_as_pydicom_reads_them(
    body: bytes, defined: bool, count: int
) -> None:
    value = _item(body, defined) * count
    data = _file(_element(0x00081111, "SQ", value))
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    items = sequence_items(value)
    assert items is not None
    assert [list(i.items()) for i in items] == [list(i._dict.items()) for i in ds[0x00081111].value]


@pytest.mark.parametrize(
    "value",
    [
        b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",  # a sequence delimiter in a defined-length one
        _item(_element(0x00100020, "LO", b"PAT1"), True)[:-2],  # an item past the sequence
        _item(_element(0x00100020, "LO", b"PAT1"), False)[:-8],  # no item delimiter
        b"\xfe\xff\x0d\xe0\x00\x00\x00\x00",  # not an item
        _item(_element(0x00100020, "LO", b"PAT1") + b"\xfe\xff\x0d\xe0\0\0\0\0", True),
    ],
)
def test_sequences_not_simply_items_are_left_to_pydicom(value: bytes) -> None:
    assert sequence_items(value) is None
