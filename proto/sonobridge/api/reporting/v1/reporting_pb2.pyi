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

class ReadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    READ_STATE_UNSPECIFIED: _ClassVar[ReadState]
    READ_STATE_QUEUED: _ClassVar[ReadState]
    READ_STATE_CLAIMED: _ClassVar[ReadState]
    READ_STATE_SIGNED: _ClassVar[ReadState]
    READ_STATE_RESCAN_REQUESTED: _ClassVar[ReadState]
    READ_STATE_ESCALATED: _ClassVar[ReadState]
    READ_STATE_CANCELLED: _ClassVar[ReadState]
READ_STATE_UNSPECIFIED: ReadState
READ_STATE_QUEUED: ReadState
READ_STATE_CLAIMED: ReadState
READ_STATE_SIGNED: ReadState
READ_STATE_RESCAN_REQUESTED: ReadState
READ_STATE_ESCALATED: ReadState
READ_STATE_CANCELLED: ReadState

class Read(_message.Message):
    __slots__ = ("read_id", "context", "route", "worklist", "priority", "state", "assigned_to", "created_at", "due_at", "overdue", "exam_quality", "ai_findings", "report_id", "signed_at", "policy_version", "reason")
    READ_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    WORKLIST_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_TO_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    EXAM_QUALITY_FIELD_NUMBER: _ClassVar[int]
    AI_FINDINGS_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    read_id: str
    context: _events_pb2.ExamContext
    route: _events_pb2.ReadRoute
    worklist: str
    priority: _events_pb2.ReadPriority
    state: ReadState
    assigned_to: str
    created_at: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    overdue: bool
    exam_quality: _events_pb2.QualityAssessment
    ai_findings: _containers.RepeatedCompositeFieldContainer[_events_pb2.Finding]
    report_id: str
    signed_at: _timestamp_pb2.Timestamp
    policy_version: str
    reason: str
    def __init__(self, read_id: _Optional[str] = ..., context: _Optional[_Union[_events_pb2.ExamContext, _Mapping]] = ..., route: _Optional[_Union[_events_pb2.ReadRoute, str]] = ..., worklist: _Optional[str] = ..., priority: _Optional[_Union[_events_pb2.ReadPriority, str]] = ..., state: _Optional[_Union[ReadState, str]] = ..., assigned_to: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue: bool = ..., exam_quality: _Optional[_Union[_events_pb2.QualityAssessment, _Mapping]] = ..., ai_findings: _Optional[_Iterable[_Union[_events_pb2.Finding, _Mapping]]] = ..., report_id: _Optional[str] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy_version: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetReadRequest(_message.Message):
    __slots__ = ("read_id",)
    READ_ID_FIELD_NUMBER: _ClassVar[int]
    read_id: str
    def __init__(self, read_id: _Optional[str] = ...) -> None: ...

class GetReadResponse(_message.Message):
    __slots__ = ("read",)
    READ_FIELD_NUMBER: _ClassVar[int]
    read: Read
    def __init__(self, read: _Optional[_Union[Read, _Mapping]] = ...) -> None: ...

class ListWorklistRequest(_message.Message):
    __slots__ = ("worklist", "assigned_to", "states", "page_size", "page_token")
    WORKLIST_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_TO_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    worklist: str
    assigned_to: str
    states: _containers.RepeatedScalarFieldContainer[ReadState]
    page_size: int
    page_token: str
    def __init__(self, worklist: _Optional[str] = ..., assigned_to: _Optional[str] = ..., states: _Optional[_Iterable[_Union[ReadState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorklistResponse(_message.Message):
    __slots__ = ("reads", "next_page_token")
    READS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    reads: _containers.RepeatedCompositeFieldContainer[Read]
    next_page_token: str
    def __init__(self, reads: _Optional[_Iterable[_Union[Read, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("report_id", "read_id", "version", "context", "signed_by", "signed_at", "conclusion", "findings", "ai_agreement", "pdf_object_key", "json_object_key", "amended_from_version", "superseded")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    READ_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SIGNED_BY_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    CONCLUSION_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    AI_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    PDF_OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    JSON_OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    AMENDED_FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    read_id: str
    version: int
    context: _events_pb2.ExamContext
    signed_by: str
    signed_at: _timestamp_pb2.Timestamp
    conclusion: str
    findings: _containers.RepeatedCompositeFieldContainer[_events_pb2.Finding]
    ai_agreement: _containers.RepeatedCompositeFieldContainer[_events_pb2.AiAgreement]
    pdf_object_key: str
    json_object_key: str
    amended_from_version: int
    superseded: bool
    def __init__(self, report_id: _Optional[str] = ..., read_id: _Optional[str] = ..., version: _Optional[int] = ..., context: _Optional[_Union[_events_pb2.ExamContext, _Mapping]] = ..., signed_by: _Optional[str] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., conclusion: _Optional[str] = ..., findings: _Optional[_Iterable[_Union[_events_pb2.Finding, _Mapping]]] = ..., ai_agreement: _Optional[_Iterable[_Union[_events_pb2.AiAgreement, _Mapping]]] = ..., pdf_object_key: _Optional[str] = ..., json_object_key: _Optional[str] = ..., amended_from_version: _Optional[int] = ..., superseded: bool = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("report_id", "version")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    version: int
    def __init__(self, report_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: Report
    def __init__(self, report: _Optional[_Union[Report, _Mapping]] = ...) -> None: ...
