"""The demo's exams: pydicom's ultrasound examples and synthetic scans with known ground truth."""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from sonobridge.inference.modules.fetal_geometry import hadlock_ga_weeks
from sonobridge.lab.exams import (
    HC18_ROOT,
    Fault,
    ProbeState,
    SyntheticExamContext,
    carotid_max_imt_mm,
    hc18_head,
    synthetic_exam,
)

PYDICOM_EXAMPLES = ("examples_ybr_color.dcm", "examples_rgb_color.dcm", "examples_palette.dcm")

# Faults: quality rules route to rescan; dead elements are also the probe-health signal.
_BODY_PART = {
    "carotid": "NECK",
    "thyroid": "THYROID",
    "kidney": "KIDNEY",
    "abdomen": "ABDOMEN",
    "obstetric": "UTERUS",
}


@dataclass(frozen=True)
class Expect:
    """What should happen to an exam, checked by the trail and the e2e tests."""

    rescan: bool = False
    worklist: str | None = None
    followup: bool = False
    ticket_device: str | None = None


@dataclass
class PlannedExam:
    """One exam the simulated township app will upload: its metadata and instance bytes."""

    label: str
    exam_type: str
    institution: str
    operator: str
    device_serial: str
    patient_ref: str
    instances: list[bytes]
    expect: Expect = field(default_factory=Expect)
    # What the simulated expert writes after looking at the images (the scenario knows the truth).
    expert_conclusion: str = "No abnormality seen."
    truth: str = ""
    # The pregnancy's dating the app sends with each upload (obstetric exams), in weeks.
    app_gestational_age_weeks: float | None = None

    @property
    def study_instance_uid(self) -> str:
        """The study all instances belong to."""
        return str(
            pydicom.dcmread(io.BytesIO(self.instances[0]), stop_before_pixels=True).StudyInstanceUID
        )


@dataclass(frozen=True)
class DemoIdentity:
    """Who an exam is about, as a viewer's study list shows it; synthetic, never a real person."""

    patient_id: str
    patient_name: str
    accession_number: str
    study_description: str

    @classmethod
    def of(cls, patient_ref: str, label: str, number: int) -> DemoIdentity:
        """The identity of the `number`th exam, for `patient_ref`, described by its `label`."""
        town, _, serial = patient_ref.rpartition("-")
        return cls(
            patient_id=patient_ref.upper(),
            # Family name first and distinct: study lists show "East 010, Synthetic Demo".
            patient_name=f"{town.rpartition('-')[2].title()} {serial}^Synthetic Demo",
            accession_number=f"SB{number:06d}",
            study_description=f"US {label}"[:64],
        )


def _reidentify(
    data: bytes, study: str, series: str, identity: DemoIdentity | None = None
) -> bytes:
    """Give an example file fresh UIDs so repeated runs on one cluster never collide."""
    ds = pydicom.dcmread(io.BytesIO(data))
    if identity is not None:
        ds.PatientID = identity.patient_id
        ds.PatientName = identity.patient_name
        ds.AccessionNumber = identity.accession_number
        ds.StudyDescription = identity.study_description
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def pydicom_example(
    name: str, study: str | None = None, identity: DemoIdentity | None = None
) -> bytes:
    """Return one of pydicom's shipped ultrasound examples under fresh UIDs (and `identity`)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed")
    return _reidentify(Path(path).read_bytes(), study or generate_uid(), generate_uid(), identity)


def synthetic_instance(
    exam_type: str,
    seed: int,
    *,
    faults: frozenset[Fault] = frozenset(),
    probe_state: ProbeState | None = None,
    n_lesions: int | None = None,
    frames: int = 4,
    device_serial: str = "SYN-PROBE-0001",
    institution: str = "Synthetic Township Health Centre",
    patient_id: str = "SYN-0001",
    identity: DemoIdentity | None = None,
) -> tuple[bytes, dict]:
    """Return a synthetic US multi-frame instance (JPEG baseline) and its ground truth."""
    context = SyntheticExamContext(
        patient_id=identity.patient_id if identity else patient_id,
        institution=institution,
        device_serial=device_serial,
        body_part=_BODY_PART.get(exam_type, "ABDOMEN"),
    )
    if identity:
        # A demo identity names the patient and study as a viewer's study list shows them.
        context = replace(
            context,
            patient_name=identity.patient_name,
            accession_number=identity.accession_number,
            study_description=identity.study_description,
        )
    exam = synthetic_exam(
        exam_type,
        seed,
        context,
        faults=faults,
        probe_state=probe_state,
        n_lesions=n_lesions,
        frames=frames,
    )
    return exam.dicom, {
        "faults": exam.faults,
        "anatomy": exam.anatomy,
        "dead_lines": exam.dead_lines,
    }


def hc18_exam(number: int, root: Path = HC18_ROOT) -> PlannedExam | None:
    """Return an obstetric exam of one real HC18 head (development split), or None without HC18."""
    label, ref = "pregnancy check, fetal head (real HC18 image)", "demo-west-020"
    identity = DemoIdentity.of(ref, label, number)
    head = hc18_head(
        SyntheticExamContext(
            patient_id=identity.patient_id,
            patient_name=identity.patient_name,
            accession_number=identity.accession_number,
            study_description=identity.study_description,
            institution="Synthetic Township Health Centre",
            device_serial="PROBE-02C",
            body_part=_BODY_PART["obstetric"],
            # HC18's own machines (van den Heuvel et al. 2018), not the synthetic probe: the gating
            # models were never validated on them, so their verdict stays in shadow.
            manufacturer="GE Healthcare",
            model_name="Voluson E8 / Voluson 730 (HC18)",
        ),
        root,
    )
    if head is None:
        return None
    # The mother's dates agree with the expert's head size, in whole days as an app records them.
    dates = round(hadlock_ga_weeks(head.hc_mm) * 7) / 7
    return PlannedExam(
        label=label,
        exam_type="obstetric",
        institution="township-west",
        operator="nurse-west",
        device_serial="PROBE-02C",
        patient_ref=ref,
        instances=[head.dicom],
        # The quality model, trained on synthetic scans, is in shadow on this device: the exam is
        # never recalled and goes to the county obstetrician.
        expect=Expect(worklist="county-obstetric"),
        expert_conclusion=(
            f"Single intrauterine fetus; head circumference {head.hc_mm:.0f} mm, "
            "biometry consistent with dates."
        ),
        truth=(
            f"HC18 {head.filename}: expert HC {head.hc_mm:.1f} mm, "
            f"{head.pixel_mm:.3f} mm/pixel, app's dates {dates:.1f} wk "
            "(van den Heuvel et al. 2018, CC BY 4.0)"
        ),
        app_gestational_age_weeks=dates,
    )


def _thickened_carotid_seed(start: int = 0, min_imt_mm: float = 1.1) -> tuple[int, float]:
    """Find the first seed whose generated carotid has a far-wall IMT of at least `min_imt_mm`."""
    for seed in range(start, start + 200):
        imt = carotid_max_imt_mm(seed)
        if imt >= min_imt_mm:
            return seed, imt
    raise RuntimeError("no thickened carotid among 200 seeds")


def demo_exams(seed: int = 0, hc18_root: Path = HC18_ROOT) -> list[PlannedExam]:
    """The demo scenario: examples, a rescan, a thick carotid, a thyroid nodule, a failing probe,
    and a real fetal head when the HC18 images are there."""
    exams: list[PlannedExam] = []
    for n, name in enumerate(PYDICOM_EXAMPLES):
        label, ref = f"pydicom example {name}", f"demo-east-{n + 1:03d}"
        exams.append(
            PlannedExam(
                label=label,
                exam_type="other",
                institution="township-east",
                operator="nurse-east",
                device_serial="PROBE-01C",
                patient_ref=ref,
                instances=[pydicom_example(name, identity=DemoIdentity.of(ref, label, n + 1))],
                expect=Expect(),
                expert_conclusion="Images reviewed; no abnormality seen.",
                truth="pydicom's shipped ultrasound example",
            )
        )
    label = "kidney, gain far too low (poor quality)"
    poor, truth = synthetic_instance(
        "kidney",
        seed + 11,
        faults=frozenset({Fault.LOW_GAIN}),
        device_serial="PROBE-02C",
        identity=DemoIdentity.of("demo-west-001", label, 4),
    )
    exams.append(
        PlannedExam(
            label=label,
            exam_type="kidney",
            institution="township-west",
            operator="nurse-west",
            device_serial="PROBE-02C",
            patient_ref="demo-west-001",
            instances=[poor],
            expect=Expect(rescan=True, worklist="rescan"),
            truth=f"faults {truth['faults']}",
        )
    )
    carotid_seed, imt = _thickened_carotid_seed(seed)
    label = "carotid with intima-media thickening"
    carotid, _ = synthetic_instance(
        "carotid",
        carotid_seed,
        device_serial="PROBE-01L",
        identity=DemoIdentity.of("demo-east-010", label, 5),
    )
    exams.append(
        PlannedExam(
            label=label,
            exam_type="carotid",
            institution="township-east",
            operator="nurse-east",
            device_serial="PROBE-01L",
            patient_ref="demo-east-010",
            instances=[carotid],
            expect=Expect(worklist="county-vascular"),
            expert_conclusion=(
                f"Far-wall intima-media thickening of the common carotid artery, IMT about "
                f"{imt:.1f} mm; no stenosis. Vascular risk assessment advised."
            ),
            truth=f"far-wall IMT {imt:.2f} mm",
        )
    )
    label = "thyroid with a nodule"
    thyroid, truth = synthetic_instance(
        "thyroid",
        seed + 21,
        n_lesions=1,
        device_serial="PROBE-03L",
        identity=DemoIdentity.of("demo-river-001", label, 6),
    )
    lesions = [
        f"{lesion.get('kind')} {float(lesion.get('diameter_mm', 0)):.1f} mm"
        for lesion in truth["anatomy"].get("lesions", [])
    ]
    exams.append(
        PlannedExam(
            label=label,
            exam_type="thyroid",
            institution="township-river",
            operator="nurse-river",
            device_serial="PROBE-03L",
            patient_ref="demo-river-001",
            instances=[thyroid],
            expect=Expect(worklist="county-thyroid", followup=True),
            expert_conclusion=(
                "Solid hypoechoic nodule in the right thyroid lobe; follow-up ultrasound "
                "in 6 months."
            ),
            truth=f"lesions: {', '.join(lesions) or 'none'}",
        )
    )
    rng = np.random.default_rng(seed + 31)
    broken = ProbeState.with_dead_elements(rng, 128)
    for n in range(3):
        label, ref = (
            f"abdomen on a probe with dead elements ({n + 1}/3)",
            f"demo-river-{n + 10:03d}",
        )
        data, truth = synthetic_instance(
            "abdomen",
            seed + 41 + n,
            faults=frozenset({Fault.DEAD_ELEMENTS}),
            probe_state=broken,
            n_lesions=0,
            device_serial="PROBE-03C",
            identity=DemoIdentity.of(ref, label, 7 + n),
        )
        exams.append(
            PlannedExam(
                label=label,
                exam_type="abdomen",
                institution="township-river",
                operator="nurse-river",
                device_serial="PROBE-03C",
                patient_ref=ref,
                instances=[data],
                expect=Expect(ticket_device="PROBE-03C"),
                truth=f"dead scan lines {truth['dead_lines']}",
            )
        )
    obstetric = hc18_exam(len(exams) + 1, hc18_root)
    if obstetric is not None:
        exams.append(obstetric)
    return exams


def routine_exams(count: int, seed: int = 1000) -> list[PlannedExam]:
    """`count` ordinary synthetic exams spread over the townships (benchmarks)."""
    kinds = ("kidney", "thyroid", "carotid", "abdomen")
    towns = (("township-east", "01"), ("township-west", "02"), ("township-river", "03"))
    exams = []
    for n in range(count):
        kind = kinds[n % len(kinds)]
        town, probe = towns[n % len(towns)]
        suffix = "L" if kind in ("thyroid", "carotid") else "C"
        serial = f"PROBE-{probe}{suffix}"
        label, ref = f"routine {kind} #{n + 1}", f"bench-{n:04d}"
        data, _ = synthetic_instance(
            kind,
            seed + n,
            frames=2,
            device_serial=serial,
            identity=DemoIdentity.of(ref, label, 1000 + n),
        )
        exams.append(
            PlannedExam(
                label=label,
                exam_type=kind,
                institution=town,
                operator=f"nurse-{town.removeprefix('township-')}",
                device_serial=serial,
                patient_ref=ref,
                instances=[data],
            )
        )
    return exams
