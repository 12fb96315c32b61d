"""Translate consumed events (ExamCompleted, InferenceCompleted) into handler calls."""

from __future__ import annotations

import logging

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.delivery import EventHandler, PermanentFailure
from sonobridge.common.envelope import CloudEvent, unpack
from sonobridge.common.problems import Problem
from sonobridge.maintenance import handlers

log = logging.getLogger(__name__)

TOPICS = (EXAM_COMPLETED, INFERENCE_COMPLETED)


def event_handler(deps: handlers.Dependencies) -> EventHandler:
    """Return the ConsumerWorker handler bound to the service's dependencies."""

    def handle(session: Session, record: ReceivedEvent, event: CloudEvent) -> None:
        message = unpack(event)
        work = handlers.Work(session, deps)
        try:
            if isinstance(message, events_pb2.ExamCompleted):
                handlers.record_exam_usage(work, message, event.time)
            elif isinstance(message, events_pb2.InferenceCompleted):
                outcome = handlers.record_probe_health(work, message, event.time)
                log.debug("probe health for %s: %s", message.context.device_serial, outcome)
            else:
                log.info("ignoring %s on %s", event.type, record.topic)
        except Problem as problem:
            # Bad content never gets better by retrying: dead-letter it with the reason.
            raise PermanentFailure(problem.detail) from problem
        # The worker commits after we return; count usage and breaches only once it has.
        sa_event.listen(session, "after_commit", lambda _session: handlers.finish(work), once=True)

    return handle
