"""events.v1 ExamType values to and from the lower-case names ("carotid") services keep."""

from __future__ import annotations

from typing import cast

from sonobridge.api.events.v1 import events_pb2

_PREFIX = "EXAM_TYPE_"


def exam_type_name(value: int) -> str:
    """Return the lower-case name of an ExamType value ("unspecified" for 0).

    Raises ValueError for a number the contract lacks (proto3 enums are open).
    """
    return events_pb2.ExamType.Name(value).removeprefix(_PREFIX).lower()


def exam_type_value(name: str) -> events_pb2.ExamType:
    """Return the ExamType value of a lower-case name; ValueError for a name the contract lacks."""
    # The stubs type Value() as int, not as the ExamType that message constructors want.
    return cast(events_pb2.ExamType, events_pb2.ExamType.Value(_PREFIX + name.upper()))
