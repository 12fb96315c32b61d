"""Kafka topic of each v1 event message, and lookups between topics, messages and ce_type."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from google.protobuf.message import Message

from sonobridge.api.events.v1 import events_pb2

# Names follow sonobridge.<producer>.<event>.v<major>; a breaking change gets a new topic.
EXAM_COMPLETED = "sonobridge.ingest.exam-completed.v1"
INSTANCE_STORED = "sonobridge.ingest.instance-stored.v1"
INFERENCE_COMPLETED = "sonobridge.inference.inference-completed.v1"
REPORT_ROUTED = "sonobridge.reporting.report-routed.v1"
REPORT_SIGNED = "sonobridge.reporting.report-signed.v1"
FOLLOWUP_ALERTED = "sonobridge.reporting.followup-alerted.v1"
QUALITY_LABELLED = "sonobridge.reporting.quality-labelled.v1"
TICKET_OPENED = "sonobridge.maintenance.ticket-opened.v1"
TICKET_UPDATED = "sonobridge.maintenance.ticket-updated.v1"
DEVICE_STATUS_CHANGED = "sonobridge.maintenance.device-status-changed.v1"

DLQ_SUFFIX = ".dlq"

_EVENTS: tuple[tuple[type[Message], str], ...] = (
    (events_pb2.ExamCompleted, EXAM_COMPLETED),
    (events_pb2.InstanceStored, INSTANCE_STORED),
    (events_pb2.InferenceCompleted, INFERENCE_COMPLETED),
    (events_pb2.ReportRouted, REPORT_ROUTED),
    (events_pb2.ReportSigned, REPORT_SIGNED),
    (events_pb2.FollowupAlerted, FOLLOWUP_ALERTED),
    (events_pb2.QualityLabelled, QUALITY_LABELLED),
    (events_pb2.TicketOpened, TICKET_OPENED),
    (events_pb2.TicketUpdated, TICKET_UPDATED),
    (events_pb2.DeviceStatusChanged, DEVICE_STATUS_CHANGED),
)

# Fully qualified proto message name (the CloudEvents ce_type) -> topic.
TOPICS: Mapping[str, str] = MappingProxyType(
    {cls.DESCRIPTOR.full_name: topic for cls, topic in _EVENTS}
)
# Fully qualified proto message name (the CloudEvents ce_type) -> message class.
MESSAGE_CLASSES: Mapping[str, type[Message]] = MappingProxyType(
    {cls.DESCRIPTOR.full_name: cls for cls, _ in _EVENTS}
)


class UnknownEventError(LookupError):
    """A message, ce_type or topic is not a registered SonoBridge event."""


def ce_type_for(message: Message | type[Message]) -> str:
    """Return the CloudEvents ce_type of an event message or message class."""
    return message.DESCRIPTOR.full_name


def topic_for(message: Message | type[Message]) -> str:
    """Return the topic an event message (or message class) is published on."""
    ce_type = ce_type_for(message)
    try:
        return TOPICS[ce_type]
    except KeyError:
        raise UnknownEventError(f"{ce_type} is not a registered event message") from None


def message_class_for(ce_type: str) -> type[Message]:
    """Return the message class for a ce_type such as sonobridge.api.events.v1.ExamCompleted."""
    try:
        return MESSAGE_CLASSES[ce_type]
    except KeyError:
        raise UnknownEventError(f"unknown event ce_type {ce_type!r}") from None


def dlq_topic(topic: str) -> str:
    """Return the dead-letter topic for a topic."""
    if not topic:
        raise ValueError("topic must not be empty")
    if topic.endswith(DLQ_SUFFIX):
        raise ValueError(f"{topic} is already a dead-letter topic")
    return topic + DLQ_SUFFIX
