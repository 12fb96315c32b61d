"""Decode JPEG/PNG and DICOM instances into grayscale uint8 frames with their pixel spacing."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from sonobridge.inference.domain.errors import InvalidImage, NoPixelData

if TYPE_CHECKING:
    # pydicom is imported by the first DICOM decode, not at start-up: serving JPEG/PNG frames
    # never needs it, and it costs the node ~0.13 CPU s and ~16 MB before it is ready.
    from pydicom.dataset import Dataset


@cache
def _malformed() -> tuple[type[BaseException], ...]:
    """What pydicom raises on a damaged file (imports pydicom on the first DICOM decode)."""
    from pydicom.errors import BytesLengthException, InvalidDicomError

    # A wrong length shifts every later element, so a value of any VR can turn up anywhere;
    # nested sequences recurse once per level.
    return (
        InvalidDicomError,
        BytesLengthException,
        EOFError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        OverflowError,
        NotImplementedError,
        struct.error,
        UnicodeError,
    )


# Pixel module attributes pydicom needs to decode (PS3.3 C.7.6.3); absent ones are the client's.
_PIXEL_MODULE = {
    "Rows": "(0028,0010)",
    "Columns": "(0028,0011)",
    "SamplesPerPixel": "(0028,0002)",
    "BitsAllocated": "(0028,0100)",
    "PhotometricInterpretation": "(0028,0004)",
}


# Real objects nest sequences a handful of levels deep; deeper is refused whatever the
# interpreter's recursion limit happens to be, so the answer does not depend on it.
MAX_SEQUENCE_DEPTH = 64


def _sequence_depth(ds: Dataset) -> int:
    """Return how deep sequences nest in `ds`, walking iteratively (no recursion)."""
    deepest, stack = 0, [(ds, 0)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_SEQUENCE_DEPTH:
            break
        for raw in current.elements():
            # Items read lazily hold raw elements; converting a sequence parses its items.
            if raw.VR in ("SQ", None) and (element := current[raw.tag]).VR == "SQ":
                stack.extend((item, depth + 1) for item in element.value)
    return deepest


def _read(source: str | io.BytesIO, **kwargs: object) -> Dataset:
    malformed = _malformed()
    from pydicom import dcmread

    try:
        ds = dcmread(source, **kwargs)  # type: ignore[arg-type]
        too_deep = _sequence_depth(ds) > MAX_SEQUENCE_DEPTH
    except RecursionError as exc:
        raise InvalidImage("malformed DICOM file: sequences nested too deep") from exc
    except malformed as exc:
        raise InvalidImage(f"malformed DICOM file: {type(exc).__name__}") from exc
    if too_deep:
        raise InvalidImage(
            f"malformed DICOM file: sequences nested over {MAX_SEQUENCE_DEPTH} levels deep"
        )
    return ds


def _require_pixel_module(ds: Dataset) -> None:
    try:
        missing = [f"{tag} {k}" for k, tag in _PIXEL_MODULE.items() if ds.get(k) in (None, "")]
        if not missing and int(ds.SamplesPerPixel) > 1 and ds.get("PlanarConfiguration") is None:
            missing.append("(0028,0006) PlanarConfiguration")
    except RecursionError as exc:
        raise InvalidImage("malformed DICOM file: sequences nested too deep") from exc
    except _malformed() as exc:
        raise InvalidImage(f"malformed pixel module: {type(exc).__name__}") from exc
    if missing:
        raise InvalidImage(f"the DICOM instance lacks {', '.join(missing)}")


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a cine to analyse: at most max_frames, spread evenly over the loop."""

    max_frames: int = 8

    def indices(self, n_frames: int) -> list[int]:
        """Return the frame indices to decode for a cine of n_frames."""
        if n_frames <= 0:
            raise InvalidImage("the instance has no frames")
        if n_frames <= self.max_frames:
            return list(range(n_frames))
        # Centres of equal segments, so both ends of the loop are represented.
        step = n_frames / self.max_frames
        return [int((i + 0.5) * step) for i in range(self.max_frames)]


@dataclass(frozen=True)
class FrameSelection:
    """Exactly one frame of a cine, by its index (the app asks about the frame on screen)."""

    index: int = 0

    def indices(self, n_frames: int) -> list[int]:
        """Return [index], or raise InvalidImage when the object has no such frame."""
        if not 0 <= self.index < n_frames:
            raise InvalidImage(f"frame {self.index} requested but the object has {n_frames}")
        return [self.index]


Sampling = FrameSampling | FrameSelection


@dataclass
class DecodedImage:
    """Grayscale frames (N, H, W) uint8 plus what we know about their physical size."""

    frames: np.ndarray
    frame_indices: list[int]
    total_frames: int
    spacing_mm: tuple[float, float] | None
    source: str
    # As the DICOM names its device; JPEG/PNG carry none (the app says it instead).
    manufacturer: str = ""
    model_name: str = ""


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """Convert (…, H, W[, 3]) pixels to uint8 luma (ITU-R BT.601 weights)."""
    arr = np.asarray(pixels)
    if arr.ndim >= 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3].astype(np.float32)
        arr = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint((arr - lo) * scale), 0, 255).astype(np.uint8)


def palette_rgb(indices: np.ndarray, ds: Dataset) -> np.ndarray:
    """Map palette indices through the colour tables and scale their entries to 0..255."""
    from pydicom.pixels import apply_color_lut

    rgb = apply_color_lut(indices, ds)
    # A table's entries span its own bit depth (Philips writes 16-bit tables); to_gray would
    # clip anything above 255 and turn the image black and white.
    descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
    bits = int(descriptor[2]) if descriptor is not None and len(descriptor) == 3 else 0
    if bits <= 0 and rgb.dtype.itemsize > 1:
        bits = 8 * rgb.dtype.itemsize
    if bits <= 8:
        return rgb
    return rgb.astype(np.float32) * (255.0 / float(2**bits - 1))


def is_dicom(data: bytes) -> bool:
    """Return True when bytes look like a DICOM Part 10 file."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def dicom_spacing_mm(ds: Dataset) -> tuple[float, float] | None:
    """Return (row, column) spacing in mm from US regions, else PixelSpacing, else None."""
    for region in ds.get("SequenceOfUltrasoundRegions", []):
        # Units code 3 is cm; only a 2D tissue region gives a usable in-plane calibration.
        if (
            region.get("PhysicalUnitsXDirection") == 3
            and region.get("PhysicalUnitsYDirection") == 3
            and region.get("PhysicalDeltaX")
            and region.get("PhysicalDeltaY")
        ):
            return (abs(float(region.PhysicalDeltaY)) * 10, abs(float(region.PhysicalDeltaX)) * 10)
    spacing = ds.get("PixelSpacing")
    if spacing and len(spacing) == 2:
        return (float(spacing[0]), float(spacing[1]))
    return None


def decode_dataset(
    ds: Dataset, sampling: Sampling | None = None, path: str | None = None
) -> DecodedImage:
    """Decode the sampled frames of a DICOM dataset to grayscale.

    With `path` (the file `ds` was read from, pixels deferred), each sampled frame is read
    from the file on its own, so a long cine is never held in memory whole.
    """
    from pydicom.pixels import pixel_array as dicom_pixel_array

    if "PixelData" not in ds:
        raise NoPixelData("the DICOM instance has no Pixel Data")
    _require_pixel_module(ds)
    malformed = _malformed()
    sampling = sampling or FrameSampling()
    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except malformed as exc:
        raise InvalidImage("NumberOfFrames is not an integer") from exc
    indices = sampling.indices(n_frames)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    frames = []
    try:
        for i in indices:
            # as_rgb converts YBR_FULL(_422) to RGB, so colour JPEG baseline reads right.
            arr = dicom_pixel_array(
                path if path is not None else ds,
                index=i if n_frames > 1 else None,
                as_rgb=True,
            )
            if photometric == "PALETTE COLOR":
                arr = palette_rgb(arr, ds)
            gray = to_gray(arr)
            if photometric == "MONOCHROME1":
                gray = 255 - gray
            frames.append(gray)
    except RecursionError as exc:
        raise InvalidImage("malformed DICOM file: sequences nested too deep") from exc
    except (*malformed, RuntimeError, OSError) as exc:
        meta = getattr(ds, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID", "unknown") if meta is not None else "unknown"
        name = getattr(syntax, "name", str(syntax))
        # pydicom's and the codecs' messages may quote header values: only the type is told.
        raise InvalidImage(
            f"cannot decode DICOM pixel data ({name}): {type(exc).__name__}"
        ) from None
    stacked = np.stack(frames)
    if stacked.ndim != 3:
        raise InvalidImage(f"unexpected decoded pixel shape {stacked.shape}")
    try:
        spacing = dicom_spacing_mm(ds)
    except malformed as exc:
        raise InvalidImage(
            f"the pixel spacing (PixelSpacing or an ultrasound region's PhysicalDelta) is not "
            f"a number: {type(exc).__name__}"
        ) from None
    return DecodedImage(
        stacked,
        indices,
        n_frames,
        spacing,
        "dicom",
        str(ds.get("Manufacturer", "") or ""),
        str(ds.get("ManufacturerModelName", "") or ""),
    )


def decode_file(path: str, sampling: Sampling | None = None) -> DecodedImage:
    """Decode a DICOM Part 10 file (or a JPEG/PNG file) on disk, reading only sampled frames."""
    with open(path, "rb") as fh:
        head = fh.read(132)
    if not is_dicom(head):
        with open(path, "rb") as fh:
            return decode_image(fh.read(), sampling)
    # Deferred: Pixel Data stays on disk until a frame is read from the file.
    ds = _read(path, defer_size=1024)
    return decode_dataset(ds, sampling, path=path)


def decode_image(data: bytes, sampling: Sampling | None = None) -> DecodedImage:
    """Decode a JPEG, PNG or DICOM Part 10 instance into grayscale frames."""
    if not data:
        raise InvalidImage("empty image payload")
    if is_dicom(data):
        return decode_dataset(_read(io.BytesIO(data)), sampling)
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or "image"
            if fmt not in ("JPEG", "PNG"):
                raise InvalidImage(f"unsupported image format {fmt}; send JPEG, PNG or DICOM")
            im.load()
            pixels = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidImage(f"not a JPEG, PNG or DICOM image: {type(exc).__name__}") from None
    if sampling is not None:
        sampling.indices(1)  # a still image has frame 0 only; ask the policy to say so
    return DecodedImage(to_gray(pixels)[None], [0], 1, None, fmt.lower())
