"""Translate consumed events into reporting use cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED, TICKET_OPENED
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.delivery import EventHandler, PermanentFailure
from sonobridge.common.envelope import CloudEvent, unpack
from sonobridge.common.problems import InvalidInput
from sonobridge.reporting.domain.events import (
    Consumed,
    ExamCompleted,
    InferenceCompleted,
    TicketOpened,
)
from sonobridge.reporting.handlers.routing import (
    flag_reads_of_faulty_probe,
    record_exam_completed,
    route_inference_result,
)
from sonobridge.reporting.ports import Dependencies

TOPICS = (EXAM_COMPLETED, INFERENCE_COMPLETED, TICKET_OPENED)


def event_handler(deps: Dependencies, decode: Callable[[Any], Consumed | None]) -> EventHandler:
    """Return the ConsumerWorker handler: decode the event and call its use case."""

    def handle(session: Any, record: ReceivedEvent, event: CloudEvent) -> None:
        message = decode(unpack(event))
        work = deps.joined(session)
        try:
            if isinstance(message, InferenceCompleted):
                route_inference_result(work, deps, message)
            elif isinstance(message, ExamCompleted):
                record_exam_completed(work, deps, message)
            elif isinstance(message, TicketOpened):
                flag_reads_of_faulty_probe(work, deps, message)
            else:
                raise PermanentFailure(f"reporting does not consume {event.type}")
        except InvalidInput as exc:
            raise PermanentFailure(str(exc)) from exc

    return handle
