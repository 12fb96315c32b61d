"""A completed exam to infer over, and the one result recorded for it."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sonobridge.common import problems
from sonobridge.common.findings import CodedFinding
from sonobridge.inference.domain.quality import QualityAssessment


class InvalidExam(problems.InvalidInput):
    """An ExamCompleted event that can never be processed (no study, no instances)."""


@dataclass(frozen=True)
class ExamInstance:
    """One stored instance of a completed exam."""

    sop_instance_uid: str
    object_key: str
    sha256: str
    # The app's calibration, for images that carry none of their own.
    app_spacing_mm: tuple[float, float] | None = None
    # The app's dating of the pregnancy (weeks), for obstetric exams; None when not sent.
    app_gestational_age_weeks: float | None = None


@dataclass(frozen=True)
class CompletedExam:
    """What inference needs of an ExamCompleted event."""

    study_instance_uid: str
    exam_id: str
    exam_type: str
    institution_id: str
    device_serial: str
    instances: tuple[ExamInstance, ...]
    # As sent by ingest; an older producer sends none and it is derived from the instances.
    manifest_sha256: str = ""
    # The event's exam context, passed untouched to the InferenceCompleted event.
    context: object = None
    # When ingest completed the exam; None from an older producer.
    completed_at: datetime | None = None

    def require_instances(self) -> None:
        """Raise InvalidExam when the event can never be processed."""
        if not self.study_instance_uid:
            raise InvalidExam("ExamCompleted has no study_instance_uid")
        if not self.instances:
            raise InvalidExam(f"ExamCompleted for {self.study_instance_uid} lists no instances")

    def manifest(self) -> str:
        """Return the manifest hash: as sent, else over the sorted instance UIDs and hashes."""
        if self.manifest_sha256:
            return self.manifest_sha256
        lines = sorted(f"{i.sop_instance_uid}:{i.sha256}" for i in self.instances)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True)
class ModelUse:
    """A model or module version that took part in a result."""

    name: str
    version: str
    sha256: str = ""


@dataclass(frozen=True)
class ResultKey:
    """One exam, manifest and set of model versions: a redelivery maps to the same key."""

    study_instance_uid: str
    manifest_sha256: str
    model_versions: str

    @classmethod
    def of(cls, exam: CompletedExam, models: list[ModelUse]) -> ResultKey:
        """Build the key of an exam inferred by these models."""
        versions = ",".join(f"{m.name}@{m.version}" for m in sorted(models, key=_name_version))
        return cls(exam.study_instance_uid, exam.manifest(), versions)

    @property
    def inference_id(self) -> str:
        """Return the result's id, the same for every delivery of the same exam and models."""
        name = f"{self.study_instance_uid}|{self.manifest_sha256}|{self.model_versions}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _name_version(model: ModelUse) -> tuple[str, str]:
    return model.name, model.version


class InferenceStatus(StrEnum):
    """How far a run got: every instance, some (with errors), or none."""

    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"

    @classmethod
    def of(cls, decoded: int, errors: list[str]) -> InferenceStatus:
        """Failed when nothing decoded, partial when something went wrong, else completed."""
        if decoded == 0:
            return cls.FAILED
        return cls.PARTIAL if errors else cls.COMPLETED


@dataclass(frozen=True)
class RecordedQuality:
    """What a recorded result said of one instance's quality: on which device, and the verdict."""

    sop_instance_uid: str
    device_model: str
    # The model's own verdict, before the validation gate: what an expert label judges.
    model_flagged: bool


@dataclass(frozen=True)
class InstanceVerdict:
    """What one version of a gating model said of one instance, before any validation gate.

    Kept for the shadow-vs-serving comparison only: never shown to users, never acting.
    """

    model_name: str
    model_version: str
    # "serving" (the pinned version) or "shadow" (registered beside it, run alongside).
    stage: str
    sop_instance_uid: str
    device_model: str
    flagged: bool
    reason: str | None = None


@dataclass(frozen=True)
class RecordedResult:
    """A result already recorded for a key."""

    inference_id: str
    key: ResultKey
    status: InferenceStatus


@dataclass(frozen=True)
class InstanceQuality:
    """The quality assessment of one instance."""

    sop_instance_uid: str
    assessment: QualityAssessment

    @property
    def model_flagged(self) -> bool:
        """Return True when the model itself (before the validation gate) asked for a rescan."""
        own = self.assessment.model_acceptable
        return not (self.assessment.acceptable if own is None else own)


@dataclass(frozen=True)
class Finding(CodedFinding):
    """A coded finding of a clinical module, with the objects that show its evidence."""

    sop_instance_uid: str
    attributes: dict[str, str]
    model_name: str
    model_version: str
    evidence_object_keys: tuple[str, ...]


@dataclass(frozen=True)
class ProbeHealth:
    """Whether the exam's probe shows dead elements, and how many columns look dead."""

    device_serial: str
    suspected_fault: bool = False
    dead_element_fraction: float = 0.0
    dead_element_columns: int = 0
    confidence: float = 0.0
    # Set by the validation gate: the device model's state and the model's own verdict.
    validation: str = "gating"
    model_suspected_fault: bool = False


@dataclass(frozen=True)
class InferenceResult:
    """Everything one run concluded for one exam; recorded once with its event."""

    key: ResultKey
    exam: CompletedExam
    status: InferenceStatus
    exam_quality: QualityAssessment
    instance_quality: tuple[InstanceQuality, ...]
    findings: tuple[Finding, ...]
    models: tuple[ModelUse, ...]
    derived_object_keys: tuple[str, ...]
    probe_health: ProbeHealth
    error_message: str
    source_event_id: str
    started_at: datetime
    completed_at: datetime
    instances_analysed: int
    instances_without_pixels: int
    # Per-instance verdicts of the serving and shadow versions; not in the event or summary.
    verdicts: tuple[InstanceVerdict, ...] = ()

    @property
    def inference_id(self) -> str:
        """Return the result's id."""
        return self.key.inference_id

    def summary(self) -> dict[str, Any]:
        """Return the counts a reader of the results table wants at a glance."""
        return {
            "findings": len(self.findings),
            "instances": len(self.exam.instances),
            "instances_analysed": self.instances_analysed,
            "instances_without_pixels": self.instances_without_pixels,
            "probe_suspected_fault": self.probe_health.suspected_fault,
            # Kept so that an expert's later quality label can be judged against the model.
            "instance_quality": {
                q.sop_instance_uid: {
                    "device_model": q.assessment.device_model,
                    "model_flagged": q.model_flagged,
                }
                for q in self.instance_quality
            },
        }
