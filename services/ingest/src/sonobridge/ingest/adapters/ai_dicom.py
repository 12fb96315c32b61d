"""AI results as DICOM with highdicom: a TID 1500 Comprehensive SR and RGB secondary captures."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from sonobridge.ingest.domain.ai_results import (
    LOCAL_SCHEME,
    OVERLAY_SERIES_NUMBER,
    REPORT_SERIES_NUMBER,
    UCUM_MEANINGS,
    AiMeasurement,
    AiResult,
    OverlayImage,
    derived_uid,
)

MANUFACTURER = "SonoBridge"
# Tracking identifier prefix Cornerstone3D's SR adapters (OHIF 3.x) map to their tools.
CORNERSTONE_3D = "Cornerstone3DTools@^0.1.0"
# Shown wherever a viewer lists the series: these are reference models.
DISCLAIMER = "AI reference model output, not for clinical use"
# Findings whose code names what was found (a nodule, a plaque): the value is its size.
_SIZED_FINDINGS = {
    "focal-lesion-solid": codes.SCT.Diameter,
    "focal-lesion-cystic": codes.SCT.Diameter,
    "carotid-plaque": codes.LN.Thickness,
}
_PATIENT_STUDY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
_GRAPHIC_TYPES = {
    "POLYLINE": hd.sr.GraphicTypeValues.POLYLINE,
    "ELLIPSE": hd.sr.GraphicTypeValues.ELLIPSE,
    "POINT": hd.sr.GraphicTypeValues.POINT,
    "CIRCLE": hd.sr.GraphicTypeValues.CIRCLE,
    "MULTIPOINT": hd.sr.GraphicTypeValues.MULTIPOINT,
}


def source_dataset(header: Mapping[str, Any]) -> Dataset:
    """Rebuild a stored instance's header from its DICOM JSON, without bulk data."""
    kept = {tag: element for tag, element in header.items() if "BulkDataURI" not in element}
    ds = Dataset.from_json(dict(kept))
    # Type 2 attributes a handheld may leave out; the derived objects copy them (empty is valid).
    for keyword in _PATIENT_STUDY_TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, None)
    return ds


def _coded(code: str, scheme: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=code, scheme_designator=scheme, meaning=meaning[:64])


def _unit(unit: str) -> hd.sr.CodedConcept:
    return _coded(unit or "1", "UCUM", UCUM_MEANINGS.get(unit or "1", unit))


def _tracking_text(m: AiMeasurement, index: int) -> str:
    """Return the group's tracking identifier: a viewer tool name where one fits the outline.

    OHIF (Cornerstone3D's SR adapters) hydrates a group into an editable measurement only when
    the identifier names its tool; other groups it shows read-only.
    """
    outline = m.outline
    if outline is not None and m.value is not None:
        if outline.graphic_type == "ELLIPSE":
            return f"{CORNERSTONE_3D}:EllipticalROI"
        if outline.graphic_type == "POLYLINE":
            tool = "Length" if len(outline.points) == 2 else "PlanarFreehandROI"
            return f"{CORNERSTONE_3D}:{tool}"
    return f"{m.model_name} {m.local_code or m.code} #{index + 1}"[:64]


def _frame_numbers(m: AiMeasurement, source: Dataset) -> list[int] | None:
    frames = int(getattr(source, "NumberOfFrames", 1) or 1)
    if frames <= 1 or m.frame_index is None:
        return None
    return [m.frame_index + 1]


def _whole_frame(source: Dataset) -> np.ndarray:
    """Return the frame's border as a closed POLYLINE, for a finding the module drew nothing for.

    OHIF 3.13 (cornerstone-dicom-sr `_checkIfCanAddMeasurementsToDisplaySet`) reads the first
    SCOORD of every measurement group and stops loading the whole report, viewport blank, at a
    group without one; the region a figure without an outline was computed over is the frame.
    """
    rows, columns = float(source.Rows), float(source.Columns)
    return np.array([[0.0, 0.0], [columns, 0.0], [columns, rows], [0.0, rows], [0.0, 0.0]])


class HighdicomAiRenderer:
    """Render one inference run as DICOM objects of the exam's study."""

    def measurement_report(
        self, result: AiResult, sources: Mapping[str, Mapping[str, Any]]
    ) -> bytes:
        """Return the TID 1500 measurement report of every finding, as Part 10 bytes."""
        datasets = {uid: source_dataset(header) for uid, header in sources.items()}
        groups = [
            self._group(result, i, m, datasets[m.sop_instance_uid])
            for i, m in enumerate(result.measurements)
            if m.sop_instance_uid in datasets
        ]
        observer = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=derived_uid("sonobridge-ai-device"),
                name="SonoBridge AI",
                manufacturer_name=MANUFACTURER,
                model_name=", ".join(sorted({m.model_name for m in result.measurements})) or None,
            ),
        )
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=observer),
            procedure_reported=codes.SCT.Ultrasonography,
            imaging_measurements=groups,
        )
        sr = hd.sr.ComprehensiveSR(
            evidence=list(datasets.values()),
            content=report[0],
            series_instance_uid=result.report_series_uid,
            series_number=REPORT_SERIES_NUMBER,
            sop_instance_uid=result.report_uid,
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            series_description=f"AI measurements ({DISCLAIMER})"[:64],
        )
        if any(m.scheme == LOCAL_SCHEME for m in result.measurements):
            # A private coding scheme is named in the header (PS3.3 C.12.1.1.8).
            scheme = Dataset()
            scheme.CodingSchemeDesignator = LOCAL_SCHEME
            scheme.CodingSchemeName = "SonoBridge finding codes (no PS3.16 concept exists)"
            scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
            sr.CodingSchemeIdentificationSequence = [scheme]
        _stamp(sr, result.completed_at)
        return _part10(sr)

    def _group(
        self, result: AiResult, index: int, m: AiMeasurement, source: Dataset
    ) -> (
        hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
        | hd.sr.MeasurementsAndQualitativeEvaluations
    ):
        local = m.local_code or m.code
        concept = _coded(m.code, m.scheme, m.display)
        name = _SIZED_FINDINGS.get(local)
        sites = (
            [hd.sr.FindingSite(anatomic_location=_coded(*m.finding_site))]
            if m.finding_site
            else None
        )
        image = hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=source.SOPClassUID,
            referenced_sop_instance_uid=source.SOPInstanceUID,
            referenced_frame_numbers=_frame_numbers(m, source),
        )
        # OHIF needs a SCOORD in every group; without an outline, the region a figure or an
        # evaluation was made over is the whole frame (see _whole_frame).
        outline = m.outline if m.outline is not None and m.outline.points else None
        graphic_type = (
            hd.sr.GraphicTypeValues.POLYLINE
            if outline is None
            else _GRAPHIC_TYPES[outline.graphic_type]
        )
        region = (
            _whole_frame(source) if outline is None else np.asarray(outline.points, dtype=float)
        )
        tracking = hd.sr.TrackingIdentifier(
            uid=derived_uid(result.inference_id, "tracking", str(index)),
            identifier=_tracking_text(m, index),
        )
        if m.value is None:
            # No NUM to carry an "inferred from" SCOORD: a TID 1410 group with the region.
            return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                referenced_region=hd.sr.ImageRegion(
                    graphic_type=graphic_type, graphic_data=region, source_image=image
                ),
                finding_type=concept,
                finding_sites=sites,
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(
                        name=concept,
                        value=codes.DCM.MeasurementFailure
                        if m.low_confidence
                        else (codes.SCT.Present if m.abnormal else codes.SCT.Absent),
                    )
                ],
            )
        measurement = hd.sr.Measurement(
            name=name or concept,
            value=float(m.value),
            unit=_unit(m.unit),
            # A low-confidence figure is never stated as a plain number.
            qualifier=None if m.measured else codes.DCM.ValueIndeterminate,
            algorithm_id=hd.sr.AlgorithmIdentification(name=m.model_name, version=m.model_version),
            # TID 300 "inferred from" SCOORD, naming the image (and frame): where OHIF's
            # hydration reads a measurement's geometry.
            referenced_coordinates=[
                hd.sr.CoordinatesForMeasurement(
                    graphic_type=graphic_type, graphic_data=region, source_image=image
                )
            ],
        )
        return hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            finding_type=concept,
            finding_sites=sites,
            measurements=[measurement],
        )

    def overlay_capture(
        self,
        result: AiResult,
        overlay: OverlayImage,
        png: bytes,
        source: Mapping[str, Any],
        instance_number: int,
    ) -> bytes:
        """Return a module's drawn overlay as an RGB secondary capture of the study."""
        ref = source_dataset(source)
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.uint8)
        # Built by hand: highdicom's SCImage wants a patient orientation, which ultrasound lacks.
        sc = Dataset()
        for keyword in (
            *_PATIENT_STUDY_TYPE2,
            "StudyInstanceUID",
            "PatientAge",
            "IssuerOfPatientID",
        ):
            if keyword in ref:
                setattr(sc, keyword, ref.data_element(keyword).value)
        sc.SOPClassUID = SecondaryCaptureImageStorage
        sc.SOPInstanceUID = result.overlay_uid(overlay)
        sc.SeriesInstanceUID = result.overlay_series_uid
        sc.SeriesNumber = OVERLAY_SERIES_NUMBER
        sc.InstanceNumber = instance_number
        sc.Modality = "OT"
        sc.ConversionType = "WSD"
        sc.Manufacturer = MANUFACTURER
        sc.SeriesDescription = f"AI overlays ({DISCLAIMER})"[:64]
        sc.ImageComments = DISCLAIMER
        sc.ImageType = ["DERIVED", "SECONDARY"]
        sc.BurnedInAnnotation = "YES"
        sc.PatientOrientation = None
        # Type 2C (paired body parts): the source's when it says, else empty, not a guess.
        sc.Laterality = ref.get("Laterality")
        sc.Rows, sc.Columns = int(pixels.shape[0]), int(pixels.shape[1])
        sc.SamplesPerPixel = 3
        sc.PhotometricInterpretation = "RGB"
        sc.PlanarConfiguration = 0
        sc.BitsAllocated = sc.BitsStored = 8
        sc.HighBit = 7
        sc.PixelRepresentation = 0
        sc.PixelData = pixels.tobytes()
        source_ref = Dataset()
        source_ref.ReferencedSOPClassUID = ref.SOPClassUID
        source_ref.ReferencedSOPInstanceUID = ref.SOPInstanceUID
        if overlay.frame_index is not None and int(getattr(ref, "NumberOfFrames", 1) or 1) > 1:
            source_ref.ReferencedFrameNumber = overlay.frame_index + 1
        sc.SourceImageSequence = [source_ref]
        sc.DerivationDescription = f"{overlay.model_name} {overlay.model_version}"[:1024]
        _stamp(sc, result.completed_at)
        return _part10(sc)


def _stamp(ds: Dataset, at: datetime) -> None:
    """Date the object by the inference run, not the clock: a redelivery rebuilds equal bytes."""
    date, time = at.strftime("%Y%m%d"), at.strftime("%H%M%S")
    for prefix in ("Content", "InstanceCreation", "Series"):
        setattr(ds, f"{prefix}Date", date)
        setattr(ds, f"{prefix}Time", time)
    for equipment in getattr(ds, "ContributingEquipmentSequence", []):
        equipment.ContributionDateTime = f"{date}{time}"


def _part10(ds: Dataset) -> bytes:
    if not getattr(ds, "file_meta", None):
        ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
