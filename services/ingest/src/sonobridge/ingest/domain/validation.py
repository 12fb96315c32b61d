"""Rules a DICOM instance must pass before it is stored, over values parsed from its header."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sonobridge.common.problems import InvalidInput, PayloadTooLarge
from sonobridge.ingest.domain.model import is_valid_uid, uid_fault

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"

NATIVE_TRANSFER_SYNTAXES = frozenset(
    {IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN}
)
# Encapsulated syntaxes that ultrasound devices send and that pydicom + pylibjpeg can decode
# for rendering; anything else (video, deflate, private) is refused rather than stored unreadable.
ENCAPSULATED_TRANSFER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
        "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
        "1.2.840.10008.1.2.4.57",  # JPEG Lossless (Process 14)
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.5",  # RLE Lossless
    }
)
SUPPORTED_TRANSFER_SYNTAXES = NATIVE_TRANSFER_SYNTAXES | ENCAPSULATED_TRANSFER_SYNTAXES


# The text attributes ingest indexes, that name the device (which inference reads) or that
# QIDO-RS returns: each value is held to its VR before the instance is stored (text_fault).
INDEXED_TEXT_ATTRIBUTES = (
    "SOPInstanceUID",
    "SOPClassUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "BodyPartExamined",
    "PatientID",
    "PatientName",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
    "StudyID",
    "SeriesDescription",
    "DeviceSerialNumber",
    "PhotometricInterpretation",
)
DEVICE_TEXT_ATTRIBUTES = (
    "Manufacturer",
    "ManufacturerModelName",
    "StationName",
    "SoftwareVersions",
)
# The other text attributes QIDO-RS returns at study and series level (includefield=all):
# patient, study and series modules as the first instance carries them.
QUERIED_TEXT_ATTRIBUTES = (
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "EthnicGroup",
    "PatientComments",
    "ReferringPhysicianName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "AdmittingDiagnosesDescription",
    "TimezoneOffsetFromUTC",
    "Laterality",
    "SeriesDate",
    "SeriesTime",
    "PerformingPhysicianName",
    "ProtocolName",
    "OperatorsName",
    "PatientPosition",
    "PerformedProcedureStepID",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepDescription",
    "InstitutionName",
)
CHECKED_TEXT_ATTRIBUTES = INDEXED_TEXT_ATTRIBUTES + DEVICE_TEXT_ATTRIBUTES + QUERIED_TEXT_ATTRIBUTES

# The most characters one value of each text VR holds (PS3.5 table 6.2-1); a person name's
# limit is per component group. DA and TM also admit the dotted (YYYY.MM.DD) and coloned
# (HH:MM:SS.FFFFFF) forms of ACR-NEMA, which PS3.5 still asks readers to accept. Real devices
# overrun SH and LO (a model name of 20 in SH), so only an overrun of OVERRUN times the limit
# is refused: a value that swallowed the elements after it shows itself by their binary tags
# and lengths (control characters), whatever its length.
TEXT_VR_MAX_LENGTH = {
    "AE": 16,
    "AS": 4,
    "CS": 16,
    "DA": 10,
    "DS": 16,
    "DT": 26,
    "IS": 12,
    "LO": 64,
    "LT": 10240,
    "PN": 64,
    "SH": 16,
    "ST": 1024,
    "TM": 16,
    "UI": 64,
}
OVERRUN = 4
# C0 controls, DEL and C1 controls. Where a value swallowed the elements after it (a wrong
# length), their binary tags and lengths show up as these, patient name and ID among them.
# ESC is allowed only in the VRs an extended character set may occur in (PS3.5 6.1.2.5.3);
# the text VRs also allow TAB, LF, FF and CR (PS3.5 6.2).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_ESC = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_CONTROLS_BY_VR = {
    **dict.fromkeys(("SH", "LO", "PN", "UC"), _CONTROL_EXCEPT_ESC),
    **dict.fromkeys(("LT", "ST", "UT"), _CONTROL_IN_TEXT),
}


def text_fault(vr: str, value: str) -> str | None:
    """Return why one value (padding stripped) breaks its VR, or None; never echoes it."""
    limit = TEXT_VR_MAX_LENGTH.get(vr)
    if value.isprintable() and (limit is None or len(value) <= OVERRUN * limit):
        return None  # the usual value, decided without a regular expression
    if _CONTROLS_BY_VR.get(vr, _CONTROL).search(value):
        return "it holds control characters"
    if limit is None:
        return None
    groups = value.split("=") if vr == "PN" else (value,)
    if any(len(group) > OVERRUN * limit for group in groups):
        per = " per component group" if vr == "PN" else ""
        return f"it is longer than {OVERRUN} times the {limit} characters its VR holds{per}"
    return None


class Rejected(InvalidInput):
    """An instance that fails validation; `reason` is a short machine-readable cause."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason


class TooLarge(PayloadTooLarge):
    """An instance or upload above the configured size limit."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, reason="oversize")
        self.reason = "oversize"


@dataclass(frozen=True)
class PixelLayout:
    """How the pixel data element is laid out in the file."""

    encapsulated: bool
    # Value length of native pixel data; None when encapsulated.
    length: int | None = None
    # Number of fragments after the basic offset table; 0 when native.
    fragments: int = 0
    # Entries in the basic offset table (0 when empty or native).
    offset_table_entries: int = 0
    # The element's VR: OB when encapsulated, OB or OW when native.
    vr: str = "OW"
    # File offset of a native value; None when encapsulated.
    value_offset: int | None = None


@dataclass(frozen=True)
class InstanceDescription:
    """What ingest indexes about one instance, as read from its header."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    media_sop_instance_uid: str = ""
    media_sop_class_uid: str = ""
    modality: str = ""
    body_part: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_description: str = ""
    study_id: str = ""
    series_number: int | None = None
    series_description: str = ""
    instance_number: int | None = None
    device_serial: str = ""
    rows: int = 0
    columns: int = 0
    samples_per_pixel: int = 1
    bits_allocated: int = 0
    number_of_frames: int = 1
    photometric_interpretation: str = ""
    # False for objects without pixels by nature (structured reports, waveforms, documents).
    image: bool = True


def expected_native_length(d: InstanceDescription) -> int:
    """Return the byte length native pixel data must have for the declared image geometry."""
    bits = d.rows * d.columns * d.samples_per_pixel * d.bits_allocated * d.number_of_frames
    length = (bits + 7) // 8
    return length + (length % 2)


def check_size(size: int, max_bytes: int) -> None:
    """Refuse instances above the configured size."""
    if size > max_bytes:
        raise TooLarge(f"instance is {size} bytes; the limit is {max_bytes}")


def check_description(d: InstanceDescription, pixels: PixelLayout | None) -> None:
    """Apply the header and pixel-data rules; raise Rejected naming the first problem."""
    for name, value in (
        ("SOPInstanceUID", d.sop_instance_uid),
        ("SOPClassUID", d.sop_class_uid),
        ("StudyInstanceUID", d.study_instance_uid),
        ("SeriesInstanceUID", d.series_instance_uid),
        ("TransferSyntaxUID", d.transfer_syntax_uid),
    ):
        if not value:
            raise Rejected(f"{name} is missing", "missing_uid")
        if not is_valid_uid(value):
            # Not echoed: a broken header can put any text, a patient's name too, in its place.
            raise Rejected(f"{name} is not a valid DICOM UID: {uid_fault(value)}", "malformed_uid")
    for name, value in (
        ("MediaStorageSOPInstanceUID", d.media_sop_instance_uid),
        ("MediaStorageSOPClassUID", d.media_sop_class_uid),
    ):
        if value and not is_valid_uid(value):
            # Checked before the mismatch below echoes it.
            raise Rejected(f"{name} is not a valid DICOM UID: {uid_fault(value)}", "malformed_uid")
    if d.media_sop_instance_uid and d.media_sop_instance_uid != d.sop_instance_uid:
        raise Rejected(
            f"MediaStorageSOPInstanceUID {d.media_sop_instance_uid} contradicts "
            f"SOPInstanceUID {d.sop_instance_uid}",
            "uid_mismatch",
        )
    if d.media_sop_class_uid and d.media_sop_class_uid != d.sop_class_uid:
        # A C-STORE's file meta is its command: a dataset of another class is not what was sent.
        raise Rejected(
            f"MediaStorageSOPClassUID {d.media_sop_class_uid} contradicts "
            f"SOPClassUID {d.sop_class_uid}",
            "uid_mismatch",
        )
    if d.transfer_syntax_uid not in SUPPORTED_TRANSFER_SYNTAXES:
        raise Rejected(
            f"transfer syntax {d.transfer_syntax_uid} is not supported",
            "unsupported_transfer_syntax",
        )
    if pixels is None:
        if d.image:
            # An image SOP class, or a pixel module without its pixels: cut short somewhere.
            raise Rejected("image instance has no pixel data (truncated?)", "no_pixel_data")
        # Any storage class is kept (PS3.18 10.5): reports, waveforms, documents have no pixels.
        return
    if d.rows <= 0 or d.columns <= 0 or d.bits_allocated <= 0 or d.samples_per_pixel <= 0:
        raise Rejected(
            "Rows, Columns, BitsAllocated and SamplesPerPixel must be present and positive",
            "pixel_mismatch",
        )
    if d.number_of_frames < 1:
        raise Rejected(f"NumberOfFrames {d.number_of_frames} must be at least 1", "pixel_mismatch")
    encapsulated = d.transfer_syntax_uid in ENCAPSULATED_TRANSFER_SYNTAXES
    if pixels.encapsulated != encapsulated:
        raise Rejected(
            "pixel data encoding contradicts the transfer syntax "
            f"({'encapsulated' if pixels.encapsulated else 'native'} data under "
            f"{d.transfer_syntax_uid})",
            "pixel_mismatch",
        )
    if not encapsulated:
        expected = expected_native_length(d)
        if pixels.length != expected:
            raise Rejected(
                f"pixel data is {pixels.length} bytes but {d.rows}x{d.columns}x"
                f"{d.samples_per_pixel} samples of {d.bits_allocated} bits in "
                f"{d.number_of_frames} frame(s) need {expected}",
                "pixel_mismatch",
            )
        return
    if pixels.fragments < 1:
        raise Rejected("encapsulated pixel data holds no fragments", "pixel_mismatch")
    if pixels.offset_table_entries and pixels.offset_table_entries != d.number_of_frames:
        raise Rejected(
            f"basic offset table lists {pixels.offset_table_entries} frames but NumberOfFrames "
            f"is {d.number_of_frames}",
            "pixel_mismatch",
        )
    if pixels.fragments < d.number_of_frames:
        raise Rejected(
            f"{pixels.fragments} fragment(s) cannot hold {d.number_of_frames} frames",
            "pixel_mismatch",
        )


def check_study(d: InstanceDescription, expected_study: str | None, what: str) -> None:
    """Refuse an instance whose StudyInstanceUID contradicts the exam or request it came with."""
    if expected_study and d.study_instance_uid != expected_study:
        raise Rejected(
            f"StudyInstanceUID {d.study_instance_uid} contradicts {what} ({expected_study})",
            "uid_mismatch",
        )


# The largest pixel a handheld probe's image could have: a 30 cm depth on 60 rows.
MAX_PIXEL_SPACING_MM = 5.0
APP_PIXEL_SPACING_KEY = "pixel_spacing_mm"


def parse_pixel_spacing(value: str) -> tuple[float, float]:
    """Parse an app-sent calibration: `row\\col` (DICOM order), `row,col` or one isotropic value."""
    parts = [p.strip() for p in value.replace(",", "\\").split("\\")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1:
        numbers *= 2
    if len(numbers) != 2 or not all(0 < n <= MAX_PIXEL_SPACING_MM for n in numbers):
        raise InvalidInput(
            f"{APP_PIXEL_SPACING_KEY} must be one or two positive numbers of mm per pixel up to "
            f'{MAX_PIXEL_SPACING_MM} (row\\column), not "{value}"',
            reason="bad_pixel_spacing",
        )
    return numbers[0], numbers[1]


# Plausible dating of a pregnancy scanned for biometry: Hadlock's head formulas are fitted from
# about 14 weeks, and an app sending under 10 or over 44 weeks has mistyped or sent days.
MIN_GESTATIONAL_AGE_WEEKS = 10.0
MAX_GESTATIONAL_AGE_WEEKS = 44.0
APP_GESTATIONAL_AGE_KEY = "gestational_age_weeks"


def parse_gestational_age(value: str) -> float:
    """Parse an app-sent gestational age in (decimal) weeks."""
    try:
        weeks = float(value.strip())
    except ValueError:
        weeks = float("nan")
    if not MIN_GESTATIONAL_AGE_WEEKS <= weeks <= MAX_GESTATIONAL_AGE_WEEKS:
        raise InvalidInput(
            f"{APP_GESTATIONAL_AGE_KEY} must be a number of weeks from "
            f'{MIN_GESTATIONAL_AGE_WEEKS:g} to {MAX_GESTATIONAL_AGE_WEEKS:g}, not "{value}"',
            reason="bad_gestational_age",
        )
    return weeks
