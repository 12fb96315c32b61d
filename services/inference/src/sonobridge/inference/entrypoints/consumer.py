"""Inference's consumer: ExamCompleted runs the exam pipeline; QualityLabelled keeps a label."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED, QUALITY_LABELLED
from sonobridge.common.auth import Principal
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.delivery import EventCommit, EventStage, PermanentFailure
from sonobridge.common.envelope import CloudEvent, unpack
from sonobridge.inference.domain.exams import InvalidExam, RecordedResult, ResultKey
from sonobridge.inference.entrypoints import messages
from sonobridge.inference.handlers import Dependencies, exams, shadow, validation

log = logging.getLogger(__name__)

TOPICS = (EXAM_COMPLETED, QUALITY_LABELLED)
# Reporting labels on its experts' behalf.
REPORTING = Principal("service:reporting", frozenset({"service"}))


def event_stage(deps: Dependencies, sessions: Callable[[], Any]) -> EventStage:
    """Return the ConsumerWorker stage for ExamCompleted: infer first, then record in one go.

    The models run with no transaction open (SQLite has one writer: holding it for a whole
    exam queued every other write on the single node); the result, its event and the inbox
    row are recorded together afterwards, and only if no result for the same key got there.
    """

    def find(key: ResultKey) -> RecordedResult | None:
        with sessions() as session:
            return deps.exam_work(session).results.find(key)

    def stage(record: ReceivedEvent, event: CloudEvent) -> EventCommit:
        message = unpack(event)
        if isinstance(message, events_pb2.QualityLabelled):
            return _keep_label(deps, sessions, message)
        if not isinstance(message, events_pb2.ExamCompleted):
            raise PermanentFailure(f"{record.topic} carried {event.type}, not one inference reads")
        exam = messages.completed_exam(message, event.time)
        try:
            result = exams.analyse_exam(deps, exam, event.id, find)
        except InvalidExam as exc:
            raise PermanentFailure(str(exc)) from exc

        def commit(transaction: Any) -> None:
            inference_id = None
            if result is not None:
                inference_id = exams.record_result(deps.exam_work(transaction), result)
            log.info(
                "exam %s: %s",
                exam.study_instance_uid,
                f"inference {inference_id}" if inference_id else "already inferred",
            )

        return commit

    return stage


def _keep_label(
    deps: Dependencies, sessions: Callable[[], Any], message: events_pb2.QualityLabelled
) -> EventCommit:
    """Keep the label before the inbox row commits; a redelivery replaces it with itself.

    The validation store writes in its own transaction (SQLite has one writer, so not inside
    the worker's); a label of the same instance and model replaces the earlier one.
    """
    with sessions() as session:
        recorded = deps.exam_work(session).results.quality_of(
            message.study_instance_uid, message.sop_instance_uid
        )
    if recorded is None:
        # Without the model's own verdict the label judges nothing (an exam inferred elsewhere).
        log.warning(
            "quality label of %s: no inference result for it; not kept", message.sop_instance_uid
        )
    else:
        label = messages.expert_label(message, recorded)
        for change in validation.record_quality_labels(deps, REPORTING, [label]):
            log.info("%s on %s: %s", change.model_name, change.device.key, change.to_state.value)
        shadow.follow_labels(deps, [label])
    return _nothing


def _nothing(transaction: Any) -> None:
    """Only the inbox row is written in the worker's transaction."""
