"""Unit tests of objects without pixels and of bulk data found by file offset, any byte order."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from ingest.ingest_support import pydicom_file

from sonobridge.common.problems import InvalidInput, NotFound
from sonobridge.ingest.adapters.bulkdata import open_element
from sonobridge.ingest.adapters.dicomfile import read_instance
from sonobridge.ingest.domain.media import BulkKey, parse_bulk_key
from sonobridge.ingest.domain.validation import (
    InstanceDescription,
    PixelLayout,
    Rejected,
    check_description,
)


def _chunks(data: bytes, size: int = 97) -> Iterator[bytes]:
    # An odd chunk size puts element headers and values across chunk boundaries.
    return (data[i : i + size] for i in range(0, len(data), size))


def _read(
    tmp_path: Path, data: bytes
) -> tuple[InstanceDescription, PixelLayout | None, dict[str, Any]]:
    path = tmp_path / "x.dcm"
    path.write_bytes(data)
    return read_instance(path)


@pytest.mark.parametrize("name", ["test-SR.dcm", "waveform_ecg.dcm"])
def test_report_and_waveform_pass_without_pixels_and_have_no_frames(
    tmp_path: Path, name: str
) -> None:
    description, pixels, _ = _read(tmp_path, pydicom_file(name))
    check_description(description, pixels)
    assert pixels is None and description.number_of_frames == 0


def test_image_without_its_pixel_data_is_still_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(io.BytesIO(pydicom_file("examples_palette.dcm")))
    del ds.PixelData
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    description, pixels, _ = _read(tmp_path, out.getvalue())
    with pytest.raises(Rejected) as refused:
        check_description(description, pixels)
    assert refused.value.reason == "no_pixel_data"


@pytest.mark.parametrize(
    "name", ["MR_small_bigendian.dcm", "MR_small_implicit.dcm", "CT_small.dcm"]
)
def test_pixel_bulkdata_offset_serves_little_endian_pixels_in_every_byte_order(
    tmp_path: Path, name: str
) -> None:
    data = pydicom_file(name)
    description, _, metadata = _read(tmp_path, data)
    uri = metadata["7FE00010"]["BulkDataURI"]
    key = parse_bulk_key(uri.rsplit("/", 1)[1])
    length, body = open_element(_chunks(data), key, description.transfer_syntax_uid)
    served = b"".join(body)
    ds = pydicom.dcmread(io.BytesIO(data))
    expected = ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<")).tobytes()
    assert length == len(served) == len(expected)
    assert served == expected


def test_a_key_that_names_no_element_header_is_not_found() -> None:
    data = pydicom_file("CT_small.dcm")
    syntax = str(pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID)
    for key in (BulkKey(0x7FE00010, 200), BulkKey(0x7FE00010, 4), BulkKey(0x7FE00010, 10**9)):
        with pytest.raises(NotFound):
            open_element(_chunks(data), key, syntax)
    for raw in ("xyz", "7FE00010-", "7FE0001-5", "7FE00010-1-2"):
        with pytest.raises(InvalidInput):
            parse_bulk_key(raw)
