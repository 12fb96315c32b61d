"""ExamCompleted consumer: unpack the event, run the exam pipeline, record it in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.delivery import EventCommit, EventStage, PermanentFailure
from sonobridge.common.envelope import CloudEvent, unpack
from sonobridge.inference.domain.exams import CompletedExam, InvalidExam, RecordedResult, ResultKey
from sonobridge.inference.entrypoints import messages
from sonobridge.inference.handlers import Dependencies, exams

log = logging.getLogger(__name__)

TOPICS = (EXAM_COMPLETED,)


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
        exam = _completed_exam(record, event)
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


def _completed_exam(record: ReceivedEvent, event: CloudEvent) -> CompletedExam:
    message = unpack(event)
    if not isinstance(message, events_pb2.ExamCompleted):
        raise PermanentFailure(f"{record.topic} carried {event.type}, not ExamCompleted")
    return messages.completed_exam(message)
