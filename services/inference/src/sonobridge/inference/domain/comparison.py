"""Shadow versus serving: each version's verdicts on live instances against experts' labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sonobridge.inference.domain.exams import InstanceVerdict
from sonobridge.inference.domain.validation import (
    DeviceModel,
    ExpertLabel,
    ValidationPolicy,
    ValidationReport,
    promotion_shortfalls,
)

SERVING = "serving"
SHADOW = "shadow"


@dataclass(frozen=True)
class LabelledVerdict:
    """A version's stored verdict of an instance joined to the expert's label of it."""

    verdict: InstanceVerdict
    label: ExpertLabel


@dataclass(frozen=True)
class VersionFigures:
    """One version's figures on one device model's labelled instances."""

    version: str
    stage: str
    labelled: int
    clean: int
    faulty: int
    # Expert said acceptable, the model said rescan.
    false_rescans: int
    # Expert said rescan, the model said rescan.
    faults_caught: int

    @property
    def false_rescan_rate(self) -> float | None:
        """Return false rescans over clean labels (None without a clean label)."""
        return self.false_rescans / self.clean if self.clean else None

    @property
    def fault_catch_rate(self) -> float | None:
        """Return caught faults over faulty labels (None without a faulty label)."""
        return self.faults_caught / self.faulty if self.faulty else None


@dataclass(frozen=True)
class VersionAgreement:
    """How often another version said what the serving version said, on the same instances."""

    version: str
    both: int
    agreeing: int

    @property
    def rate(self) -> float | None:
        """Return the agreeing share (None when no instance was judged by both)."""
        return self.agreeing / self.both if self.both else None


@dataclass(frozen=True)
class DeviceComparison:
    """Every version's figures on one device model, their agreement and what they suggest."""

    device: DeviceModel
    versions: tuple[VersionFigures, ...]
    agreements: tuple[VersionAgreement, ...]
    recommendations: tuple[str, ...]


@dataclass(frozen=True)
class VersionComparison:
    """The comparison of a gating model's versions on live traffic, per device model."""

    model_name: str
    serving_version: str
    devices: tuple[DeviceComparison, ...]


def compare_versions(
    model_name: str,
    serving_version: str,
    labelled: Sequence[LabelledVerdict],
    policy_of: Callable[[str], ValidationPolicy],
) -> VersionComparison:
    """Compare each version with the expert labels and with the serving version, per device.

    Each instance counts once per version (its newest verdict). `policy_of` gives a version's
    card thresholds, against which a non-serving version's live figures are held.
    """
    by_device: dict[DeviceModel, dict[str, dict[str, LabelledVerdict]]] = {}
    for lv in labelled:
        versions = by_device.setdefault(lv.label.device, {})
        versions.setdefault(lv.verdict.model_version, {})[lv.verdict.sop_instance_uid] = lv
    devices = []
    for device in sorted(by_device, key=lambda d: d.key):
        versions = by_device[device]
        figures = tuple(
            _figures(version, serving_version, list(versions[version].values()))
            for version in sorted(versions)
        )
        serving = versions.get(serving_version, {})
        others = [f for f in figures if f.version != serving_version]
        agreements = tuple(_agreement(f.version, serving, versions[f.version]) for f in others)
        recommendations = tuple(
            recommend(model_name, device, f, policy_of(f.version)) for f in others
        )
        devices.append(DeviceComparison(device, figures, agreements, recommendations))
    return VersionComparison(model_name, serving_version, tuple(devices))


def recommend(
    model_name: str, device: DeviceModel, figures: VersionFigures, policy: ValidationPolicy
) -> str:
    """Say whether promoting this version on the device model would meet its card's thresholds."""
    report = ValidationReport(
        model_name=model_name,
        model_version=figures.version,
        device=device,
        n_frames=figures.labelled,
        false_rescan_rate=figures.false_rescan_rate or 0.0,
        fault_catch_rate=figures.fault_catch_rate or 0.0,
    )
    short = promotion_shortfalls(policy, report)
    if not figures.clean:
        short.append("no clean expert label yet, so no false-rescan rate")
    if not figures.faulty:
        # A catch rate of 0 is then a placeholder; say why instead of the threshold.
        short = [s for s in short if not s.startswith("fault catch rate")]
        short.append("no faulty expert label yet, so no fault catch rate")
    head = f"{model_name} {figures.version} on {device.key}"
    if short:
        return f"{head}: promotion would not meet the card: {'; '.join(short)}"
    return f"{head}: promotion would meet the card's thresholds on live expert labels"


def _figures(version: str, serving_version: str, labelled: list[LabelledVerdict]) -> VersionFigures:
    clean = [lv for lv in labelled if lv.label.clean]
    faulty = [lv for lv in labelled if not lv.label.clean]
    return VersionFigures(
        version=version,
        stage=SERVING if version == serving_version else SHADOW,
        labelled=len(labelled),
        clean=len(clean),
        faulty=len(faulty),
        false_rescans=sum(lv.verdict.flagged for lv in clean),
        faults_caught=sum(lv.verdict.flagged for lv in faulty),
    )


def _agreement(
    version: str, serving: dict[str, LabelledVerdict], other: dict[str, LabelledVerdict]
) -> VersionAgreement:
    both = serving.keys() & other.keys()
    agreeing = sum(serving[uid].verdict.flagged == other[uid].verdict.flagged for uid in both)
    return VersionAgreement(version, len(both), agreeing)
