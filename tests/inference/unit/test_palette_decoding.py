"""Palette colour tables of any bit depth are scaled to the grey range, never clipped."""

import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from sonobridge.inference.imaging.decode import decode_image, to_gray


def _palette_dicom(bits: int) -> tuple[bytes, np.ndarray]:
    """Return a PALETTE COLOR instance with a grey ramp table of `bits` and its index image."""
    indices = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    top = 2**bits - 1
    ramp = np.rint(np.linspace(0, top, 256)).astype(np.uint16 if bits > 8 else np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = indices.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, bits])
        table = ramp.astype("<u2").tobytes()
        setattr(ds, f"{colour}PaletteColorLookupTableData", table)
    ds.PixelData = indices.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), indices


def test_philips_16_bit_palette_keeps_its_grey_levels():
    path = get_testdata_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    assert ds.RedPaletteColorLookupTableDescriptor[2] == 16
    with open(path, "rb") as fh:
        frame = decode_image(fh.read()).frames[0]
    # Clipping left two levels (0 and 255); the scaled table keeps the image's tones.
    assert len(np.unique(frame)) > 32
    assert np.mean(frame == 255) < 0.05 and frame.max() > 128


@pytest.mark.parametrize("bits", [8, 16])
def test_generated_palette_of_either_depth_maps_the_full_ramp(bits):
    data, indices = _palette_dicom(bits)
    frame = decode_image(data).frames[0]
    expected = to_gray(np.repeat(indices[..., None], 3, axis=-1))
    np.testing.assert_allclose(frame.astype(int), expected.astype(int), atol=1)
    assert frame.min() == 0 and frame.max() == 255
