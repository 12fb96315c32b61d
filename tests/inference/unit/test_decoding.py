"""Decoding and preprocessing: pydicom's ultrasound examples, JPEG/PNG and bad input."""

import io
import sys

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from sonobridge.inference.domain.errors import InvalidImage
from sonobridge.inference.imaging.decode import FrameSampling, decode_image
from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.lab.synthetic import generate_frame
from sonobridge.lab.synthetic.dicom import ultrasound_dicom_bytes


def _bytes(name):
    with open(get_testdata_file(name), "rb") as f:
        return f.read()


def test_ybr_jpeg_baseline_cine_is_sampled_and_calibrated():
    decoded = decode_image(_bytes("examples_ybr_color.dcm"), FrameSampling(max_frames=8))
    assert decoded.total_frames == 30 and decoded.frames.shape == (8, 240, 320)
    assert decoded.frame_indices[0] < 4 and decoded.frame_indices[-1] > 26
    assert decoded.spacing_mm is not None and all(s > 0 for s in decoded.spacing_mm)
    assert decoded.frames.std() > 10


def test_palette_color_ultrasound_is_mapped_through_its_lut():
    decoded = decode_image(_bytes("examples_palette.dcm"))
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    assert decoded.frames.shape == (1, 350, 800)
    # The LUT output differs from the raw indices, so a plain index image would not match.
    assert not np.array_equal(decoded.frames[0], ds.pixel_array.astype(np.uint8))


@pytest.mark.parametrize(
    "name", ["examples_rgb_color.dcm", "SC_rgb_jpeg.dcm", "SC_rgb_rle_2frame.dcm"]
)
def test_rgb_dicom_decodes_to_grayscale_frames(name):
    decoded = decode_image(_bytes(name))
    ds = pydicom.dcmread(get_testdata_file(name))
    assert decoded.frames.shape == (int(ds.get("NumberOfFrames", 1)), ds.Rows, ds.Columns)
    assert decoded.frames.dtype == np.uint8


def test_corrupt_compressed_pixel_data_names_its_transfer_syntax():
    frame = generate_frame(1).image
    data = ultrasound_dicom_bytes(frame, (0.3, 0.3), encoding="jpeg-baseline")
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xdb" + b"\x00" * 64])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with pytest.raises(InvalidImage, match="JPEG Baseline"):
        decode_image(buf.getvalue())


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_png_and_jpeg_frames_decode(fmt):
    img = (np.arange(64 * 48) % 251).astype(np.uint8).reshape(48, 64)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    decoded = decode_image(buf.getvalue())
    assert decoded.frames.shape == (1, 48, 64) and decoded.source == fmt.lower()


def test_garbage_and_empty_payloads_are_invalid_images():
    with pytest.raises(InvalidImage):
        decode_image(b"not an image at all")
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"")
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="GIF")
    with pytest.raises(InvalidImage, match="unsupported image format GIF"):
        decode_image(buf.getvalue())


def test_tensor_has_model_shape_and_unit_range():
    frames = np.full((3, 240, 320), 255, dtype=np.uint8)
    x = to_tensor(frames, InputSpec("image", 128, 128))
    assert x.shape == (3, 1, 128, 128) and x.dtype == np.float32
    assert float(x.max()) == pytest.approx(1.0)


def _nested(ds: pydicom.Dataset, depth: int) -> bytes:
    item = pydicom.Dataset()
    for _ in range(depth):
        outer = pydicom.Dataset()
        outer.ReferencedImageSequence = pydicom.Sequence([item])
        item = outer
    ds.ReferencedImageSequence = item.ReferencedImageSequence
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("recursion_limit", [1000, 50_000])
def test_sequences_nested_past_the_limit_are_refused_whatever_the_recursion_limit(
    recursion_limit,
):
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    shallow, deep = _nested(ds.copy(), 8), _nested(ds.copy(), 200)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(recursion_limit)
    try:
        decode_image(shallow)
        with pytest.raises(InvalidImage, match="nested"):
            decode_image(deep)
    finally:
        sys.setrecursionlimit(old)


def _with_raw(tag, vr, value):
    frame = generate_frame(1).image
    ds = pydicom.dcmread(io.BytesIO(ultrasound_dicom_bytes(frame, (0.3, 0.3))))
    if "SequenceOfUltrasoundRegions" in ds:
        del ds.SequenceOfUltrasoundRegions  # PixelSpacing is then the calibration read
    ds[tag] = pydicom.dataelem.RawDataElement(
        pydicom.tag.Tag(tag), vr, len(value), value, 0, False, True
    )
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("tag", "vr", "value", "said"),
    [
        # float('QUIXOTRIX') failed outside any handler: a 500 echoing the name.
        (0x00280030, "DS", b"QUIXOTRIX\\ZEBULONIA ", "pixel spacing"),
        (0x00280004, "CS", b"QUIXOTRIX^ZEBULONIA ", "cannot decode DICOM pixel data"),
    ],
)
def test_a_header_value_pydicom_chokes_on_is_an_invalid_image_that_quotes_no_value(
    tag, vr, value, said
):
    with pytest.raises(InvalidImage) as refused:
        decode_image(_with_raw(tag, vr, value))
    assert said in refused.value.detail
    assert "QUIXOTRIX" not in refused.value.detail and "ZEBULONIA" not in refused.value.detail
    assert refused.value.__cause__ is None
