"""ExamCompleted consumer: unpack the event, run the exam pipeline in the worker's transaction."""

from __future__ import annotations

import logging
from typing import Any

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.delivery import EventHandler, PermanentFailure
from sonobridge.common.envelope import CloudEvent, unpack
from sonobridge.inference.domain.exams import InvalidExam
from sonobridge.inference.entrypoints import messages
from sonobridge.inference.handlers import Dependencies, exams

log = logging.getLogger(__name__)

TOPICS = (EXAM_COMPLETED,)


def event_handler(deps: Dependencies) -> EventHandler:
    """Return the ConsumerWorker handler for ExamCompleted."""

    def handle(transaction: Any, record: ReceivedEvent, event: CloudEvent) -> None:
        message = unpack(event)
        if not isinstance(message, events_pb2.ExamCompleted):
            raise PermanentFailure(f"{record.topic} carried {event.type}, not ExamCompleted")
        exam = messages.completed_exam(message)
        try:
            inference_id = exams.infer_exam(deps, deps.exam_work(transaction), exam, event.id)
        except InvalidExam as exc:
            raise PermanentFailure(str(exc)) from exc
        log.info(
            "exam %s: %s",
            exam.study_instance_uid,
            f"inference {inference_id}" if inference_id else "already inferred",
        )

    return handle
