"""Protobuf `Timestamp` to and from aware datetimes, as every service's messages carry them."""

from __future__ import annotations

from datetime import UTC, datetime

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
