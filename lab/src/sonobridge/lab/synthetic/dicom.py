"""Wrap synthetic frames into valid DICOM Ultrasound (Multi-frame) Image objects."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

Encoding = Literal["native", "jpeg-baseline"]


@dataclass(frozen=True)
class SyntheticExamContext:
    """Who, where and with what the synthetic exam was acquired; never real patient data."""

    patient_id: str = "SYN-0001"
    patient_name: str = "SYNTHETIC^PATIENT"
    # A viewer's study list shows these; a demo gives each exam its own so they can be told apart.
    accession_number: str = ""
    study_description: str = ""
    institution: str = "Synthetic Township Health Centre"
    operator: str = "SYNTHETIC^OPERATOR"
    device_serial: str = "SYN-PROBE-0001"
    manufacturer: str = "SonoBridge Synthetic"
    model_name: str = "Handheld Synthetic Probe"
    body_part: str = "ABDOMEN"
    study_uid: str | None = None
    series_uid: str | None = None
    frame_time_ms: float = 33.3


def _jpeg_frame(frame: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    # subsampling=1 is 4:2:2, which is what YBR_FULL_422 promises to readers.
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality, subsampling=1)
    return buf.getvalue()


def ultrasound_dataset(
    frames: np.ndarray,
    spacing_mm: tuple[float, float],
    context: SyntheticExamContext | None = None,
    encoding: Encoding = "native",
    jpeg_quality: int = 90,
    when: dt.datetime | None = None,
) -> Dataset:
    """Build a US Image (one frame) or US Multi-frame Image (cine) dataset from uint8 pixels.

    frames: (H, W), (H, W, 3), (N, H, W) or (N, H, W, 3) uint8. spacing_mm: (row, column).
    """
    ctx = context or SyntheticExamContext()
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    rgb = arr.shape[-1] == 3 and arr.ndim in (3, 4)
    multi = arr.ndim == (4 if rgb else 3)
    if not multi:
        arr = arr[None]
    n, rows, cols = arr.shape[:3]
    when = when or dt.datetime.now(dt.UTC)
    sop_class = UltrasoundMultiFrameImageStorage if multi else UltrasoundImageStorage
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.StudyInstanceUID = ctx.study_uid or generate_uid()
    ds.SeriesInstanceUID = ctx.series_uid or generate_uid()
    ds.Modality = "US"
    ds.PatientID = ctx.patient_id
    ds.PatientName = ctx.patient_name
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = ds.ContentDate = ds.SeriesDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = ds.SeriesTime = when.strftime("%H%M%S")
    ds.AccessionNumber = ctx.accession_number
    if ctx.study_description:
        ds.StudyDescription = ctx.study_description
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = ctx.manufacturer
    ds.ManufacturerModelName = ctx.model_name
    ds.DeviceSerialNumber = ctx.device_serial
    ds.InstitutionName = ctx.institution
    ds.OperatorsName = ctx.operator
    ds.BodyPartExamined = ctx.body_part
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01" if encoding == "jpeg-baseline" else "00"
    if rgb:
        ds.PlanarConfiguration = 0
    # PixelSpacing is not part of the US IOD but many readers look for it; the US regions
    # below are the standard place and carry the same calibration (in cm, per the standard).
    ds.PixelSpacing = [f"{spacing_mm[0]:.6f}", f"{spacing_mm[1]:.6f}"]
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = cols - 1
    region.RegionLocationMaxY1 = rows - 1
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = spacing_mm[1] / 10
    region.PhysicalDeltaY = spacing_mm[0] / 10
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    if multi:
        ds.NumberOfFrames = n
        ds.FrameTime = ctx.frame_time_ms
        ds.FrameIncrementPointer = 0x00181063
    if encoding == "jpeg-baseline":
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PhotometricInterpretation = "YBR_FULL_422" if rgb else "MONOCHROME2"
        ds.PixelData = encapsulate([_jpeg_frame(f, jpeg_quality) for f in arr])
        ds["PixelData"].VR = "OB"
    elif encoding == "native":
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
        ds.PixelData = np.ascontiguousarray(arr).tobytes()
    else:
        raise ValueError(f"unknown encoding {encoding!r}; expected 'native' or 'jpeg-baseline'")
    return ds


def ultrasound_dicom_bytes(frames: np.ndarray, spacing_mm: tuple[float, float], **kwargs) -> bytes:
    """Return the dataset from ultrasound_dataset as a Part 10 file's bytes."""
    ds = ultrasound_dataset(frames, spacing_mm, **kwargs)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
