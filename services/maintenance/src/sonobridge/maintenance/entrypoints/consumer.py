"""Translate consumed events (ExamCompleted, InferenceCompleted) into handler calls."""

from __future__ import annotations

import logging
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.delivery import EventHandler, PermanentFailure
from sonobridge.common.envelope import CloudEvent, unpack
from sonobridge.common.problems import Problem
from sonobridge.common.timestamps import aware
from sonobridge.maintenance.domain.health import ProbeVerdict
from sonobridge.maintenance.domain.utilisation import ExamScan
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.probe_health import record_probe_health
from sonobridge.maintenance.handlers.usage import record_exam_usage

log = logging.getLogger(__name__)

TOPICS = (EXAM_COMPLETED, INFERENCE_COMPLETED)


def _completed_at(ts: Timestamp, fallback: datetime) -> datetime:
    # An unset completion time falls back to the envelope's time.
    if ts.seconds or ts.nanos:
        return aware(ts)
    return fallback


def exam_scan(message: events_pb2.ExamCompleted, event_time: datetime) -> ExamScan:
    """Return the scan time an ExamCompleted reports."""
    ctx = message.context
    return ExamScan(
        exam_key=ctx.exam_id or ctx.study_instance_uid,
        device_serial=ctx.device_serial,
        institution_id=ctx.institution_id,
        completed_at=_completed_at(message.completed_at, event_time),
        scan_seconds=message.scan_seconds,
    )


def probe_verdict(message: events_pb2.InferenceCompleted, event_time: datetime) -> ProbeVerdict:
    """Return the probe-health verdict an InferenceCompleted carries."""
    health = message.probe_health
    ctx = message.context
    return ProbeVerdict(
        finding_id=message.inference_id or ctx.study_instance_uid,
        device_serial=health.device_serial or ctx.device_serial,
        institution_id=ctx.institution_id,
        study_instance_uid=ctx.study_instance_uid,
        # The exam's own time orders a probe's verdicts; runs on two replicas finish out of order.
        observed_at=_completed_at(
            message.exam_completed_at
            if message.HasField("exam_completed_at")
            else message.completed_at,
            event_time,
        ),
        suspected_fault=health.suspected_fault,
        dead_element_fraction=health.dead_element_fraction,
        dead_element_columns=health.dead_element_columns,
        evidence_keys=tuple(message.derived_object_keys),
    )


def event_handler(deps: Dependencies) -> EventHandler:
    """Return the ConsumerWorker handler bound to the service's dependencies."""

    def handle(transaction: object, record: ReceivedEvent, event: CloudEvent) -> None:
        message = unpack(event)
        # The worker commits the transaction after we return; the unit runs its effects then.
        work = deps.units.join(transaction)
        try:
            if isinstance(message, events_pb2.ExamCompleted):
                record_exam_usage(deps, work, exam_scan(message, event.time))
            elif isinstance(message, events_pb2.InferenceCompleted):
                outcome = record_probe_health(deps, work, probe_verdict(message, event.time))
                log.debug("probe health for %s: %s", message.context.device_serial, outcome)
            else:
                log.info("ignoring %s on %s", event.type, record.topic)
        except Problem as problem:
            # Bad content never gets better by retrying: dead-letter it with the reason.
            raise PermanentFailure(problem.detail) from problem

    return handle
