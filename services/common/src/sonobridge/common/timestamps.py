"""Protobuf `Timestamp` to and from aware datetimes, as every service's messages carry them."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(value: datetime) -> Timestamp:
    """Return `value` as a protobuf Timestamp (a naive value is taken as UTC)."""
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def aware(ts: Timestamp) -> datetime:
    """Return a protobuf Timestamp as an aware datetime in UTC."""
    value: datetime = ts.ToDatetime(tzinfo=UTC)
    return value


def optional_time(message: Message, field: str) -> datetime | None:
    """Return a Timestamp field as an aware datetime, or None where the message leaves it unset."""
    return aware(getattr(message, field)) if message.HasField(field) else None


def set_times(message: Message, **values: datetime | None) -> None:
    """Set each named Timestamp field that has a value; None leaves the field unset."""
    for field, value in values.items():
        if value is not None:
            getattr(message, field).CopyFrom(timestamp(value))
