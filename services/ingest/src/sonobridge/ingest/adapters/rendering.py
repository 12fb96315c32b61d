"""Render one frame of a stored instance as JPEG or PNG for viewers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_color_lut, apply_voi_lut, pixel_array

from sonobridge.common.problems import InvalidInput
from sonobridge.ingest.domain.media import MEDIA_TYPES


def render_frame(path: Path, frame: int, media_type: str) -> bytes:
    """Decode frame `frame` (1-based) of the file at `path` and encode it as `media_type`."""
    header = pydicom.dcmread(path, stop_before_pixels=True)
    if "Rows" not in header or "Columns" not in header:
        # A structured report, waveform or document: stored, but nothing to render.
        raise InvalidInput("instance has no pixel data to render", reason="no_pixel_data")
    frames = int(header.get("NumberOfFrames", 1) or 1)
    if not 1 <= frame <= frames:
        raise InvalidInput(
            f"frame {frame} does not exist; the instance has {frames}", reason="bad_frame"
        )
    # Decoding from the path reads only the requested frame, not the whole pixel data.
    array = pixel_array(path, index=frame - 1 if frames > 1 else None)
    photometric = str(header.get("PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, header)
    elif photometric.startswith("MONOCHROME"):
        array = apply_voi_lut(array, header) if "WindowCenter" in header else array
    image = _to_8bit(np.asarray(array), invert=photometric == "MONOCHROME1")
    mode = "RGB" if image.ndim == 3 else "L"
    buffer = io.BytesIO()
    Image.fromarray(image, mode=mode).save(buffer, format=MEDIA_TYPES[media_type])
    return buffer.getvalue()


def _to_8bit(array: np.ndarray, *, invert: bool) -> np.ndarray:
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        array = ((array.astype(np.float64) - low) * scale).astype(np.uint8)
    if invert:
        array = 255 - array
    return array
