import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sonobridge.api.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ticket(_message.Message):
    __slots__ = ("ticket_id", "device_serial", "institution_id", "symptom", "source", "state", "assignee", "opened_by", "evidence_object_keys", "opened_at", "ack_due_at", "onsite_due_at", "acknowledged_at", "on_site_at", "resolved_at", "closed_at", "paused", "paused_total", "ack_sla_breached", "onsite_sla_breached", "loaner_device_serial", "updated_at")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SYMPTOM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    OPENED_BY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_OBJECT_KEYS_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    ACK_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    ONSITE_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_AT_FIELD_NUMBER: _ClassVar[int]
    ON_SITE_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ACK_SLA_BREACHED_FIELD_NUMBER: _ClassVar[int]
    ONSITE_SLA_BREACHED_FIELD_NUMBER: _ClassVar[int]
    LOANER_DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    device_serial: str
    institution_id: str
    symptom: str
    source: _events_pb2.TicketSource
    state: _events_pb2.TicketState
    assignee: str
    opened_by: str
    evidence_object_keys: _containers.RepeatedScalarFieldContainer[str]
    opened_at: _timestamp_pb2.Timestamp
    ack_due_at: _timestamp_pb2.Timestamp
    onsite_due_at: _timestamp_pb2.Timestamp
    acknowledged_at: _timestamp_pb2.Timestamp
    on_site_at: _timestamp_pb2.Timestamp
    resolved_at: _timestamp_pb2.Timestamp
    closed_at: _timestamp_pb2.Timestamp
    paused: bool
    paused_total: _duration_pb2.Duration
    ack_sla_breached: bool
    onsite_sla_breached: bool
    loaner_device_serial: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, ticket_id: _Optional[str] = ..., device_serial: _Optional[str] = ..., institution_id: _Optional[str] = ..., symptom: _Optional[str] = ..., source: _Optional[_Union[_events_pb2.TicketSource, str]] = ..., state: _Optional[_Union[_events_pb2.TicketState, str]] = ..., assignee: _Optional[str] = ..., opened_by: _Optional[str] = ..., evidence_object_keys: _Optional[_Iterable[str]] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ack_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., onsite_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acknowledged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., on_site_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paused: bool = ..., paused_total: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., ack_sla_breached: bool = ..., onsite_sla_breached: bool = ..., loaner_device_serial: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OpenTicketRequest(_message.Message):
    __slots__ = ("device_serial", "institution_id", "symptom", "source", "evidence_object_keys", "opened_by", "request_id")
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SYMPTOM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_OBJECT_KEYS_FIELD_NUMBER: _ClassVar[int]
    OPENED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    device_serial: str
    institution_id: str
    symptom: str
    source: _events_pb2.TicketSource
    evidence_object_keys: _containers.RepeatedScalarFieldContainer[str]
    opened_by: str
    request_id: str
    def __init__(self, device_serial: _Optional[str] = ..., institution_id: _Optional[str] = ..., symptom: _Optional[str] = ..., source: _Optional[_Union[_events_pb2.TicketSource, str]] = ..., evidence_object_keys: _Optional[_Iterable[str]] = ..., opened_by: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class OpenTicketResponse(_message.Message):
    __slots__ = ("ticket", "created")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ticket: Ticket
    created: bool
    def __init__(self, ticket: _Optional[_Union[Ticket, _Mapping]] = ..., created: bool = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ("ticket_id",)
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ...) -> None: ...

class GetTicketResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: Ticket
    def __init__(self, ticket: _Optional[_Union[Ticket, _Mapping]] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("device_serial", "manufacturer", "model", "institution_id", "status", "firmware_version", "last_seen_at", "open_ticket_id", "loaned_to_institution_id", "scan_time_7d")
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    OPEN_TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    LOANED_TO_INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SCAN_TIME_7D_FIELD_NUMBER: _ClassVar[int]
    device_serial: str
    manufacturer: str
    model: str
    institution_id: str
    status: _events_pb2.DeviceStatus
    firmware_version: str
    last_seen_at: _timestamp_pb2.Timestamp
    open_ticket_id: str
    loaned_to_institution_id: str
    scan_time_7d: _duration_pb2.Duration
    def __init__(self, device_serial: _Optional[str] = ..., manufacturer: _Optional[str] = ..., model: _Optional[str] = ..., institution_id: _Optional[str] = ..., status: _Optional[_Union[_events_pb2.DeviceStatus, str]] = ..., firmware_version: _Optional[str] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., open_ticket_id: _Optional[str] = ..., loaned_to_institution_id: _Optional[str] = ..., scan_time_7d: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("institution_id", "status", "page_size", "page_token")
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    institution_id: str
    status: _events_pb2.DeviceStatus
    page_size: int
    page_token: str
    def __init__(self, institution_id: _Optional[str] = ..., status: _Optional[_Union[_events_pb2.DeviceStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices", "next_page_token")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    next_page_token: str
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class TelemetrySample(_message.Message):
    __slots__ = ("recorded_at", "battery_percent", "probe_temperature_celsius", "scan_time", "error_codes", "firmware_version", "extra")
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    BATTERY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    PROBE_TEMPERATURE_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    SCAN_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODES_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    recorded_at: _timestamp_pb2.Timestamp
    battery_percent: float
    probe_temperature_celsius: float
    scan_time: _duration_pb2.Duration
    error_codes: _containers.RepeatedScalarFieldContainer[str]
    firmware_version: str
    extra: _struct_pb2.Struct
    def __init__(self, recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., battery_percent: _Optional[float] = ..., probe_temperature_celsius: _Optional[float] = ..., scan_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error_codes: _Optional[_Iterable[str]] = ..., firmware_version: _Optional[str] = ..., extra: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RecordTelemetryRequest(_message.Message):
    __slots__ = ("device_serial", "samples")
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    device_serial: str
    samples: _containers.RepeatedCompositeFieldContainer[TelemetrySample]
    def __init__(self, device_serial: _Optional[str] = ..., samples: _Optional[_Iterable[_Union[TelemetrySample, _Mapping]]] = ...) -> None: ...

class RecordTelemetryResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "opened_ticket_ids")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    OPENED_TICKET_IDS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    opened_ticket_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., opened_ticket_ids: _Optional[_Iterable[str]] = ...) -> None: ...
