"""SQLAlchemy implementations of the inference ports, in the consumer worker's transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from sonobridge.common.delivery import Outbox
from sonobridge.inference.adapters import messages
from sonobridge.inference.adapters.orm import inference_results, quality_verdicts
from sonobridge.inference.domain.exams import (
    InferenceResult,
    InferenceStatus,
    InstanceVerdict,
    RecordedQuality,
    RecordedResult,
    ResultKey,
)
from sonobridge.inference.domain.validation import DeviceModel

SOURCE = "inference"


class SqlInferenceResults:
    """Inference results in the inference_results table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, key: ResultKey) -> RecordedResult | None:
        """Return the result recorded for this key, if any."""
        t = inference_results
        row = self.session.execute(
            select(t.c.inference_id, t.c.status).where(
                t.c.study_instance_uid == key.study_instance_uid,
                t.c.manifest_sha256 == key.manifest_sha256,
                t.c.model_versions == key.model_versions,
            )
        ).first()
        if row is None:
            return None
        return RecordedResult(row.inference_id, key, InferenceStatus(row.status))

    def quality_of(self, study_instance_uid: str, sop_instance_uid: str) -> RecordedQuality | None:
        """Return what the newest result of the study said of the instance's quality, if any."""
        t = inference_results
        rows = self.session.execute(
            select(t.c.summary)
            .where(t.c.study_instance_uid == study_instance_uid)
            .order_by(t.c.completed_at.desc())
        )
        for (summary,) in rows:
            found = (summary or {}).get("instance_quality", {}).get(sop_instance_uid)
            if found is not None:
                return RecordedQuality(
                    sop_instance_uid, found["device_model"], bool(found["model_flagged"])
                )
        return None

    def add(self, result: InferenceResult) -> None:
        """Record a new result."""
        exam = result.exam
        self.session.execute(
            insert(inference_results).values(
                inference_id=result.inference_id,
                study_instance_uid=result.key.study_instance_uid,
                manifest_sha256=result.key.manifest_sha256,
                model_versions=result.key.model_versions,
                exam_id=exam.exam_id,
                exam_type=exam.exam_type,
                institution_id=exam.institution_id,
                device_serial=exam.device_serial,
                status=result.status.value,
                exam_acceptable="yes" if result.exam_quality.acceptable else "no",
                summary=result.summary(),
                derived_object_keys=list(result.derived_object_keys),
                error_message=result.error_message,
                source_event_id=result.source_event_id,
                started_at=result.started_at,
                completed_at=result.completed_at,
            )
        )
        self._add_verdicts(result)

    def _add_verdicts(self, result: InferenceResult) -> None:
        # The newest exam holding an instance wins: its verdicts replace the earlier ones.
        t = quality_verdicts
        for v in result.verdicts:
            self.session.execute(
                delete(t).where(
                    t.c.model_name == v.model_name,
                    t.c.model_version == v.model_version,
                    t.c.sop_instance_uid == v.sop_instance_uid,
                )
            )
        if result.verdicts:
            self.session.execute(insert(t), [_verdict_row(result, v) for v in result.verdicts])


def _verdict_row(result: InferenceResult, v: InstanceVerdict) -> dict[str, object]:
    device = DeviceModel.of_key(v.device_model)
    return {
        "model_name": v.model_name,
        "model_version": v.model_version,
        "stage": v.stage,
        "study_instance_uid": result.key.study_instance_uid,
        "sop_instance_uid": v.sop_instance_uid,
        "manufacturer": device.manufacturer,
        "device_model_name": device.model_name,
        "flagged": v.flagged,
        "reason": v.reason,
        "recorded_at": result.completed_at,
    }


@dataclass
class SqlExamWork:
    """The exam pipeline's unit of work: results and outbox in one session."""

    session: Session
    outbox: Outbox

    @property
    def results(self) -> SqlInferenceResults:
        """Results in this transaction."""
        return SqlInferenceResults(self.session)

    def publish(self, result: InferenceResult) -> None:
        """Stage the InferenceCompleted event of a result in this transaction's outbox."""
        event = messages.inference_completed(result)
        self.outbox.emit(self.session, event, source=SOURCE, key=result.key.study_instance_uid)
