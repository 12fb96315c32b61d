"""Validation state of a gating model per device model: shadow, advisory or gating, and why."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sonobridge.common import problems
from sonobridge.inference.domain.exams import ProbeHealth

# The models whose verdicts can recall an exam or open a ticket.
GATING_MODELS = ("image-quality", "probe-health")
_SPACE = re.compile(r"\s+")
# Control characters other than the common whitespace (TAB, LF, VT, FF, CR), which is collapsed
# like spaces; tested before collapsing, which would also turn FS..US into spaces.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


class ValidationState(StrEnum):
    """How far a gating model's verdict may act on one device model."""

    SHADOW = "shadow"
    ADVISORY = "advisory"
    GATING = "gating"


class PromotionRefused(problems.Conflict):
    """A validation report that does not meet the model card's thresholds."""


class InvalidValidationReport(problems.InvalidInput):
    """A validation report or label that cannot be read."""


def _normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


# The longest manufacturer or model name DICOM allows (LO, PS3.5 6.2); longer text is cut.
MAX_DEVICE_TEXT = 64


@dataclass(frozen=True)
class DeviceModel:
    """A manufacturer and model name, compared without case or extra whitespace.

    Each part is cut at MAX_DEVICE_TEXT, and a part that is not printable text names no
    device at all: a wrong length in a DICOM header makes the Manufacturer swallow the patient
    module after it, whose binary tags show up as control characters. Such text must never
    reach results, validation tables or metric labels, so the device is unknown (and its
    models stay in shadow), however the name arrived.
    """

    manufacturer: str
    model_name: str

    def __post_init__(self) -> None:
        parts = (self.manufacturer[:MAX_DEVICE_TEXT], self.model_name[:MAX_DEVICE_TEXT])
        if not all(part.isprintable() for part in parts):
            parts = ("", "")
        object.__setattr__(self, "manufacturer", parts[0])
        object.__setattr__(self, "model_name", parts[1])

    @classmethod
    def of(cls, manufacturer: str | None, model_name: str | None) -> DeviceModel:
        """Normalise what the DICOM or the app says; missing parts become empty."""
        if _CONTROL.search(manufacturer or "") or _CONTROL.search(model_name or ""):
            return cls("", "")
        return cls(_normalise(manufacturer or ""), _normalise(model_name or ""))

    @property
    def key(self) -> str:
        """Return the displayed form, "manufacturer / model name" ("unknown" when unnamed)."""
        return f"{self.manufacturer} / {self.model_name}" if self.known else "unknown"

    @property
    def known(self) -> bool:
        """Return True when the source named the device at all."""
        return bool(self.manufacturer or self.model_name)

    @classmethod
    def of_key(cls, key: str) -> DeviceModel:
        """Return the device model a displayed key names (the inverse of `key`)."""
        if key in ("", "unknown"):
            return cls("", "")
        manufacturer, _, model_name = key.partition(" / ")
        return cls(manufacturer, model_name)


UNKNOWN_DEVICE = DeviceModel("", "")


@dataclass(frozen=True)
class ValidationPolicy:
    """What a model card asks before promotion and watches for demotion."""

    min_frames: int | None = None
    max_false_rescan_rate: float | None = None
    min_fault_catch_rate: float | None = None
    window: int = 100
    min_window_labels: int = 30
    demote_above_false_rescan_rate: float | None = None
    demote_to: ValidationState = ValidationState.ADVISORY
    # Devices the card's own held-out evaluation covers (the generator's), with their state.
    validated: Mapping[DeviceModel, ValidationState] | None = None

    @classmethod
    def of_card(cls, raw: Mapping[str, Any]) -> ValidationPolicy:
        """Read the card's "validation" section; a card without one can never be promoted."""
        section = raw.get("validation") or {}
        promotion = section.get("promotion") or {}
        demotion = section.get("demotion") or {}
        validated = {
            DeviceModel.of(d.get("manufacturer"), d.get("model_name")): ValidationState(d["state"])
            for d in section.get("validated_device_models", [])
        }
        return cls(
            min_frames=promotion.get("min_frames"),
            max_false_rescan_rate=promotion.get("max_false_rescan_rate"),
            min_fault_catch_rate=promotion.get("min_fault_catch_rate"),
            window=int(demotion.get("window", 100)),
            min_window_labels=int(demotion.get("min_labels", 30)),
            demote_above_false_rescan_rate=demotion.get("max_false_rescan_rate"),
            demote_to=ValidationState(demotion.get("demote_to", "advisory")),
            validated=validated,
        )

    def default_state(self, device: DeviceModel) -> ValidationState:
        """Return the state of a device model nobody has promoted or demoted: shadow, unless
        the card's own held-out evaluation was on that device."""
        return (self.validated or {}).get(device, ValidationState.SHADOW)


@dataclass(frozen=True)
class ValidationReport:
    """A model's figures on one device model's labelled frames, as the report command wrote."""

    model_name: str
    model_version: str
    device: DeviceModel
    n_frames: int
    false_rescan_rate: float
    fault_catch_rate: float

    @classmethod
    def of_json(cls, body: Mapping[str, Any]) -> ValidationReport:
        """Read a report document; InvalidValidationReport names the field that is wrong."""
        try:
            device = body["device_model"]
            report = cls(
                model_name=str(body["model"]["name"]),
                model_version=str(body["model"]["version"]),
                device=DeviceModel.of(device["manufacturer"], device["model_name"]),
                n_frames=int(body["n_frames"]),
                false_rescan_rate=float(body["false_rescan_rate"]),
                fault_catch_rate=float(body["fault_catch_rate"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidValidationReport(f"validation report lacks or mistypes {exc}") from exc
        rates = (report.false_rescan_rate, report.fault_catch_rate)
        if report.n_frames < 0 or not all(0.0 <= r <= 1.0 for r in rates):
            raise InvalidValidationReport("rates must lie in [0, 1] and n_frames be >= 0")
        return report


def promotion_shortfalls(policy: ValidationPolicy, report: ValidationReport) -> list[str]:
    """Return why the report does not meet the card (empty when it does)."""
    if None in (policy.min_frames, policy.max_false_rescan_rate, policy.min_fault_catch_rate):
        return ["the model card states no promotion thresholds"]
    assert policy.min_frames is not None and policy.max_false_rescan_rate is not None
    assert policy.min_fault_catch_rate is not None
    short = []
    if report.n_frames < policy.min_frames:
        short.append(
            f"{report.n_frames} labelled frames, the card asks at least {policy.min_frames}"
        )
    if report.false_rescan_rate > policy.max_false_rescan_rate:
        short.append(
            f"false-rescan rate {report.false_rescan_rate:.3f} above "
            f"{policy.max_false_rescan_rate:.3f}"
        )
    if report.fault_catch_rate < policy.min_fault_catch_rate:
        short.append(
            f"fault catch rate {report.fault_catch_rate:.3f} below "
            f"{policy.min_fault_catch_rate:.3f}"
        )
    return short


@dataclass(frozen=True)
class ExpertLabel:
    """An expert's quality label of one instance beside what the model said of it."""

    model_name: str
    device: DeviceModel
    sop_instance_uid: str
    # None: acceptable; else the fault the expert saw (a quality reason).
    expert_fault: str | None
    model_flagged: bool
    labelled_by: str
    labelled_at: datetime

    @property
    def clean(self) -> bool:
        """Return True when the expert saw no fault this model is meant to flag."""
        if self.model_name == "probe-health":
            return self.expert_fault != "dead_elements"
        return self.expert_fault is None

    @property
    def false_alarm(self) -> bool:
        """Return True when the model flagged an instance the expert found clean."""
        return self.model_flagged and self.clean


def false_rescan_rate(labels: Sequence[ExpertLabel]) -> tuple[float, int]:
    """Return the false-alarm rate over the clean labels and how many clean labels there are."""
    clean = [label for label in labels if label.clean]
    if not clean:
        return 0.0, 0
    return sum(label.false_alarm for label in clean) / len(clean), len(clean)


def demotion_target(
    policy: ValidationPolicy, state: ValidationState, window: Sequence[ExpertLabel]
) -> tuple[ValidationState, str] | None:
    """Return the state to demote to and why, or None while the window is within the card."""
    limit = policy.demote_above_false_rescan_rate
    order = list(ValidationState)
    if limit is None or order.index(state) <= order.index(policy.demote_to):
        return None
    rate, n_clean = false_rescan_rate(window)
    if n_clean < policy.min_window_labels or rate <= limit:
        return None
    why = (
        f"false-rescan rate {rate:.3f} on the last {n_clean} clean expert labels above {limit:.3f}"
    )
    return policy.demote_to, why


@dataclass(frozen=True)
class DeviceValidation:
    """The current state of one model on one device model and when it last changed."""

    model_name: str
    device: DeviceModel
    state: ValidationState
    model_version: str = ""
    changed_at: datetime | None = None
    changed_by: str = ""
    reason: str = ""


@dataclass(frozen=True)
class StateChange:
    """One audited change of state: who, from, to and why."""

    model_name: str
    model_version: str
    device: DeviceModel
    from_state: ValidationState
    to_state: ValidationState
    actor: str
    reason: str
    at: datetime

    @property
    def validation(self) -> DeviceValidation:
        """Return the state this change leaves behind."""
        return DeviceValidation(
            self.model_name,
            self.device,
            self.to_state,
            self.model_version,
            self.at,
            self.actor,
            self.reason,
        )


def gate_probe_health(health: ProbeHealth, state: ValidationState) -> ProbeHealth:
    """Return the probe verdict maintenance acts on: a fault only when the model gates."""
    raw = replace(health, validation=state.value, model_suspected_fault=health.suspected_fault)
    if state is ValidationState.GATING:
        return raw
    # Maintenance also opens tickets on the dead fraction alone, so clear it with the flag.
    return replace(raw, suspected_fault=False, dead_element_fraction=0.0, dead_element_columns=0)
