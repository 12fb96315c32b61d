"""Describing an instance from its rendered DICOM JSON header reads what pydicom reads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydicom
import pytest
from ingest.ingest_support import synthetic_instance
from pydicom.data import get_testdata_file

from sonobridge.ingest.adapters.dicom_json import metadata_json
from sonobridge.ingest.adapters.dicomfile import _describe, describe_header
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
