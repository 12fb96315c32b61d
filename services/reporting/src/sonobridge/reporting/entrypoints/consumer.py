"""Translate consumed events into reporting use cases."""

from __future__ import annotations

from sqlalchemy.orm import Session

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED, TICKET_OPENED
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.delivery import EventHandler, PermanentFailure
from sonobridge.common.envelope import CloudEvent, unpack
from sonobridge.common.problems import InvalidInput
from sonobridge.reporting.handlers import (
    Dependencies,
    flag_reads_of_faulty_probe,
    record_exam_completed,
    route_inference_result,
)

TOPICS = (EXAM_COMPLETED, INFERENCE_COMPLETED, TICKET_OPENED)


def event_handler(deps: Dependencies) -> EventHandler:
    """Return the ConsumerWorker handler: decode the event and call its use case."""

    def handle(session: Session, record: ReceivedEvent, event: CloudEvent) -> None:
        message = unpack(event)
        try:
            if isinstance(message, events_pb2.InferenceCompleted):
                route_inference_result(session, deps, message)
            elif isinstance(message, events_pb2.ExamCompleted):
                record_exam_completed(session, deps, message)
            elif isinstance(message, events_pb2.TicketOpened):
                flag_reads_of_faulty_probe(session, deps, message)
            else:
                raise PermanentFailure(f"reporting does not consume {event.type}")
        except InvalidInput as exc:
            raise PermanentFailure(str(exc)) from exc

    return handle
