"""ExamType values map to lower-case names and back; unknown numbers and names are refused."""

from __future__ import annotations

import pytest

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.exam_types import exam_type_name, exam_type_value


def test_every_exam_type_round_trips_through_its_lower_case_name() -> None:
    for value in events_pb2.ExamType.values():
        name = exam_type_name(value)
        assert name == name.lower() and not name.startswith("exam_type_")
        assert exam_type_value(name) == value
    assert exam_type_name(events_pb2.EXAM_TYPE_CAROTID) == "carotid"
    assert exam_type_name(events_pb2.EXAM_TYPE_UNSPECIFIED) == "unspecified"


def test_a_number_or_name_the_contract_lacks_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        exam_type_name(9999)
    with pytest.raises(ValueError):
        exam_type_value("knee")
