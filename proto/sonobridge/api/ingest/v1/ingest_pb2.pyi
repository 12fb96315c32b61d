import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sonobridge.api.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExamState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXAM_STATE_UNSPECIFIED: _ClassVar[ExamState]
    EXAM_STATE_RECEIVING: _ClassVar[ExamState]
    EXAM_STATE_AWAITING_INSTANCES: _ClassVar[ExamState]
    EXAM_STATE_COMPLETED: _ClassVar[ExamState]
EXAM_STATE_UNSPECIFIED: ExamState
EXAM_STATE_RECEIVING: ExamState
EXAM_STATE_AWAITING_INSTANCES: ExamState
EXAM_STATE_COMPLETED: ExamState

class Exam(_message.Message):
    __slots__ = ("context", "state", "expected_instance_count", "received_instance_count", "missing_sop_instance_uids", "received_bytes", "created_at", "completed_at", "manifest_sha256")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISSING_SOP_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_SHA256_FIELD_NUMBER: _ClassVar[int]
    context: _events_pb2.ExamContext
    state: ExamState
    expected_instance_count: int
    received_instance_count: int
    missing_sop_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    received_bytes: int
    created_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    manifest_sha256: str
    def __init__(self, context: _Optional[_Union[_events_pb2.ExamContext, _Mapping]] = ..., state: _Optional[_Union[ExamState, str]] = ..., expected_instance_count: _Optional[int] = ..., received_instance_count: _Optional[int] = ..., missing_sop_instance_uids: _Optional[_Iterable[str]] = ..., received_bytes: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., manifest_sha256: _Optional[str] = ...) -> None: ...

class GetExamRequest(_message.Message):
    __slots__ = ("exam_id",)
    EXAM_ID_FIELD_NUMBER: _ClassVar[int]
    exam_id: str
    def __init__(self, exam_id: _Optional[str] = ...) -> None: ...

class GetExamResponse(_message.Message):
    __slots__ = ("exam",)
    EXAM_FIELD_NUMBER: _ClassVar[int]
    exam: Exam
    def __init__(self, exam: _Optional[_Union[Exam, _Mapping]] = ...) -> None: ...

class ListExamInstancesRequest(_message.Message):
    __slots__ = ("exam_id", "page_size", "page_token")
    EXAM_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    exam_id: str
    page_size: int
    page_token: str
    def __init__(self, exam_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListExamInstancesResponse(_message.Message):
    __slots__ = ("instances", "next_page_token")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[_events_pb2.InstanceRef]
    next_page_token: str
    def __init__(self, instances: _Optional[_Iterable[_Union[_events_pb2.InstanceRef, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
