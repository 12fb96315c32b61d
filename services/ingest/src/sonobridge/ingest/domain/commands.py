"""Requests the app makes of an exam: open it, complete it with a manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sonobridge.ingest.domain.model import ExamType, ManifestEntry


@dataclass(frozen=True)
class CreateExam:
    """The app's request to open an exam."""

    exam_id: str
    institution_id: str
    device_serial: str
    exam_type: ExamType
    patient_ref: str
    operator_id: str = ""
    study_instance_uid: str | None = None

    def digest(self) -> str:
        """Hash the request's values, to tell a repeat from a contradicting reuse."""
        body = json.dumps(
            {
                "exam_id": self.exam_id,
                "institution_id": self.institution_id,
                "device_serial": self.device_serial,
                "exam_type": str(self.exam_type),
                "patient_ref": self.patient_ref,
                "operator_id": self.operator_id,
                "study_instance_uid": self.study_instance_uid,
            },
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class CompleteExam:
    """The app's manifest: every instance of the exam with its SHA-256."""

    exam_id: str
    entries: Sequence[ManifestEntry]
    started_at: datetime | None = None
    completed_at: datetime | None = None
    scan_seconds: float = 0.0
