"""Ingest's consumer: an InferenceCompleted puts the AI's report and overlays into the study."""

from __future__ import annotations

import logging
from typing import Any

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import INFERENCE_COMPLETED
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.delivery import EventCommit, EventStage, PermanentFailure
from sonobridge.common.envelope import CloudEvent, unpack
from sonobridge.common.problems import Problem
from sonobridge.ingest.adapters import messages
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.handlers.ai_results import store_ai_results
from sonobridge.ingest.ports import AiResultRenderer

log = logging.getLogger(__name__)

TOPICS = (INFERENCE_COMPLETED,)


def event_stage(deps: IngestDeps, renderer: AiResultRenderer) -> EventStage:
    """Return the ConsumerWorker stage: store the run's DICOM first, then record the event.

    Storing runs its own transactions (the instance index, its event, the audit record); a
    crash before the inbox row commits redelivers the event, which finds the same UIDs stored.
    """

    def stage(record: ReceivedEvent, event: CloudEvent) -> EventCommit:
        message = unpack(event)
        if not isinstance(message, events_pb2.InferenceCompleted):
            raise PermanentFailure(f"{record.topic} carried {event.type}, not one ingest reads")
        result = messages.ai_result(message)
        try:
            stored = store_ai_results(deps, renderer, result)
        except Problem as problem:
            # A refused object (bad header, another institution's study) never gets better.
            if problem.status < 500 and problem.extensions.get("reason") != "busy":
                raise PermanentFailure(f"{problem.title}: {problem.detail}") from problem
            raise
        log.info(
            "inference %s: report %s, %d overlay(s) in study",
            result.inference_id,
            "stored" if stored.report else "not built",
            len(stored.overlays),
        )
        return _nothing

    return stage


def _nothing(transaction: Any) -> None:
    """Only the inbox row is written in the worker's transaction."""
