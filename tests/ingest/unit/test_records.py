"""The app's calibration goes into the index as the text the validator parses back."""

from __future__ import annotations

from sonobridge.ingest.domain.records import spacing_text
from sonobridge.ingest.domain.validation import parse_pixel_spacing


def test_a_calibration_is_stored_in_dicom_order_and_reads_back_the_same() -> None:
    assert spacing_text((0.25, 0.3)) == "0.25\\0.3"
    assert parse_pixel_spacing(spacing_text((0.25, 0.3)) or "") == (0.25, 0.3)


def test_no_calibration_stores_none() -> None:
    assert spacing_text(None) is None
