"""Ingest's exam types map onto events.v1 ExamType through common's one mapping."""

from __future__ import annotations

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.exam_types import exam_type_name, exam_type_value
from sonobridge.ingest.domain.model import ExamType


def test_every_ingest_exam_type_has_its_namesake_in_the_contract() -> None:
    for kind in ExamType:
        value = exam_type_value(kind)
        assert value == getattr(events_pb2, f"EXAM_TYPE_{kind.name}")
        assert ExamType(exam_type_name(value)) is kind
