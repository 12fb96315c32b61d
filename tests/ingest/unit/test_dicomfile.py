"""Describing an instance from its rendered DICOM JSON header reads what pydicom reads."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import pydicom
import pytest
from ingest.ingest_support import synthetic_instance
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from sonobridge.ingest.adapters.dicom_json import metadata_json
from sonobridge.ingest.adapters.dicomfile import _describe, describe_header, read_instance
from sonobridge.ingest.domain.validation import InstanceDescription, Rejected

_FOLDERS = {Path(str(get_testdata_file(n))).parent for n in ("CT_small.dcm", "chrFren.dcm")}
_SAMPLES = sorted(str(p) for folder in _FOLDERS for p in folder.glob("*.dcm"))


def _outcome(data: bytes, rendered: bool) -> tuple[InstanceDescription, dict[str, Any]] | str:
    """The description and metadata of a header, or the reason it is refused.

    Not rendered: as before the description read the rendered header, all through pydicom,
    describing first.
    """
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, defer_size=64 * 1024)
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", "") or "").strip()
    try:
        if rendered:
            return describe_header(ds, transfer_syntax, None)
        parsed = dict(ds._dict)
        try:
            description = _describe(ds, transfer_syntax, None, None)
            return description, metadata_json(ds, parsed, None)
        except Rejected:
            raise
        except Exception:
            return "malformed_header"
    except Rejected as refused:
        return refused.reason


@pytest.mark.parametrize("path", _SAMPLES, ids=lambda p: Path(p).name)
def test_pydicom_samples_are_described_as_pydicom_reads_them(path: str) -> None:
    data = Path(path).read_bytes()
    try:
        pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, defer_size=64 * 1024)
    except Exception as exc:  # refused as not DICOM before anything is described
        pytest.skip(f"pydicom cannot parse {Path(path).name}: {type(exc).__name__}")
    assert _outcome(data, rendered=True) == _outcome(data, rendered=False)


def _edited(**values: object) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(synthetic_instance()))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"PatientName": "Müller^Jörg", "SpecificCharacterSet": "ISO_IR 100"},
        {"PatientName": "Doe^John=Ideo^Graphic"},
        {"PatientName": "Doe^John="},
        {"PatientName": "Doe^John=="},
        {"PatientName": "=Ideo^Graphic"},
        {"PatientName": "Doe^John^^^"},
        {"PatientName": ["Doe^John", "Roe^Jane"]},
        {"PatientID": "ID\x01WITH\x02CONTROLS"},
        {"StudyDescription": "x" * 300},
        {"Modality": ["US", "OT"]},
        {"SeriesNumber": "+12"},
        {"InstanceNumber": "99999999999"},
        {"InstanceNumber": ""},
        {"NumberOfFrames": "3"},
        {"DeviceSerialNumber": "  SN-1  "},
        {"Manufacturer": "Acme\x01Medical"},
        {"SoftwareVersions": ["1.0", "2.0\x1f"]},
        {"StationName": "S" * 17},
        {"PatientName": "Doe^John=" + "P" * 65},
    ],
    ids=repr,
)
def test_edited_headers_are_described_as_pydicom_reads_them(values: dict[str, object]) -> None:
    data = _edited(**values)
    assert _outcome(data, rendered=True) == _outcome(data, rendered=False)


_CANARY = "QUIXOTRIX^ZEBULONIA"


def _relabelled(keyword: str, vr: bytes, *within: str) -> bytes:
    """Hold the canary in `keyword` (in the sequence items named), then relabel its VR.

    Read as FD, 20 bytes are no whole number of values, and pydicom's error quotes them.
    """
    ds = pydicom.dcmread(io.BytesIO(synthetic_instance()))
    target = ds
    for sequence in within:
        item = Dataset()
        setattr(target, sequence, [item])
        target = item
    setattr(target, keyword, _CANARY)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    tag = tag_for_keyword(keyword)
    assert tag is not None
    at = data.index(struct.pack("<HH", tag >> 16, tag & 0xFFFF) + dictionary_VR(tag).encode())
    return data[: at + 4] + vr + data[at + 6 :]


def _spacing(value: bytes) -> bytes:
    """Give PixelSpacing (DS) raw bytes, as a device wrote them."""
    ds = pydicom.dcmread(io.BytesIO(synthetic_instance()))
    ds[0x00280030] = RawDataElement(Tag(0x00280030), "DS", len(value), value, 0, False, True)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "named"),
    [
        # pydicom's error quotes the bytes: "Instead received b'QUIXOTRIX^ZEBULONIA '".
        (_relabelled("PatientName", b"FD"), "element (0010,0010) PatientName: its length"),
        # "could not convert string to float: 'QUIXOTRIX'"
        (_spacing(b"QUIXOTRIX\\ZEBULONIA "), "(0028,0030) PixelSpacing: its value"),
        (
            _relabelled("CodeMeaning", b"FD", "AnatomicRegionSequence"),
            "(0008,0104) CodeMeaning in sequence (0008,2218) AnatomicRegionSequence: its",
        ),
        (
            _relabelled("CodeMeaning", b"FD", "ProcedureCodeSequence", "ModifierCodeSequence"),
            "in sequence (0008,1032) ProcedureCodeSequence (2 levels down): its",
        ),
    ],
)
def test_a_value_pydicom_cannot_decode_is_refused_by_its_element_never_its_value(
    tmp_path: Path, data: bytes, named: str
) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(data)
    with pytest.raises(Rejected) as refused:
        read_instance(path)
    detail = refused.value.detail
    assert refused.value.reason == "malformed_header"
    assert named in detail, detail
    assert "QUIXOTRIX" not in detail and "ZEBULONIA" not in detail, detail
    # Nothing that may quote the value rides along for a traceback to print.
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_a_parse_failure_names_the_element_pydicom_names_and_not_the_value() -> None:
    from sonobridge.ingest.adapters.dicomfile import _parse_fault

    failure = ValueError("(0010,0010) holds b'QUIXOTRIX^ZEBULONIA' which is not a valid PN")
    assert _parse_fault(failure) == (
        "DICOM header cannot be parsed at element (0010,0010) (ValueError)"
    )
