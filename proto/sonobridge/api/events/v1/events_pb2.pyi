import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExamType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXAM_TYPE_UNSPECIFIED: _ClassVar[ExamType]
    EXAM_TYPE_CAROTID: _ClassVar[ExamType]
    EXAM_TYPE_THYROID: _ClassVar[ExamType]
    EXAM_TYPE_ABDOMEN: _ClassVar[ExamType]
    EXAM_TYPE_KIDNEY: _ClassVar[ExamType]
    EXAM_TYPE_OBSTETRIC: _ClassVar[ExamType]
    EXAM_TYPE_CARDIAC: _ClassVar[ExamType]
    EXAM_TYPE_LIVER: _ClassVar[ExamType]
    EXAM_TYPE_OTHER: _ClassVar[ExamType]

class QualityReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUALITY_REASON_UNSPECIFIED: _ClassVar[QualityReason]
    QUALITY_REASON_LOW_GAIN: _ClassVar[QualityReason]
    QUALITY_REASON_LOST_CONTACT: _ClassVar[QualityReason]
    QUALITY_REASON_DEAD_ELEMENTS: _ClassVar[QualityReason]
    QUALITY_REASON_MOTION_BLUR: _ClassVar[QualityReason]
    QUALITY_REASON_WRONG_DEPTH: _ClassVar[QualityReason]
    QUALITY_REASON_OTHER: _ClassVar[QualityReason]

class QualityValidation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUALITY_VALIDATION_UNSPECIFIED: _ClassVar[QualityValidation]
    QUALITY_VALIDATION_SHADOW: _ClassVar[QualityValidation]
    QUALITY_VALIDATION_ADVISORY: _ClassVar[QualityValidation]
    QUALITY_VALIDATION_GATING: _ClassVar[QualityValidation]

class AiVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AI_VERDICT_UNSPECIFIED: _ClassVar[AiVerdict]
    AI_VERDICT_AGREE: _ClassVar[AiVerdict]
    AI_VERDICT_MODIFY: _ClassVar[AiVerdict]
    AI_VERDICT_REJECT: _ClassVar[AiVerdict]

class ReceivedVia(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECEIVED_VIA_UNSPECIFIED: _ClassVar[ReceivedVia]
    RECEIVED_VIA_APP_UPLOAD: _ClassVar[ReceivedVia]
    RECEIVED_VIA_STOW_RS: _ClassVar[ReceivedVia]
    RECEIVED_VIA_C_STORE: _ClassVar[ReceivedVia]
    RECEIVED_VIA_AI_RESULT: _ClassVar[ReceivedVia]

class InferenceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INFERENCE_STATUS_UNSPECIFIED: _ClassVar[InferenceStatus]
    INFERENCE_STATUS_COMPLETED: _ClassVar[InferenceStatus]
    INFERENCE_STATUS_PARTIAL: _ClassVar[InferenceStatus]
    INFERENCE_STATUS_FAILED: _ClassVar[InferenceStatus]

class ReadRoute(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    READ_ROUTE_UNSPECIFIED: _ClassVar[ReadRoute]
    READ_ROUTE_RESCAN: _ClassVar[ReadRoute]
    READ_ROUTE_SELF_CONFIRM: _ClassVar[ReadRoute]
    READ_ROUTE_EXPERT: _ClassVar[ReadRoute]
    READ_ROUTE_URGENT: _ClassVar[ReadRoute]
    READ_ROUTE_PROVINCIAL: _ClassVar[ReadRoute]

class ReadPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    READ_PRIORITY_UNSPECIFIED: _ClassVar[ReadPriority]
    READ_PRIORITY_ROUTINE: _ClassVar[ReadPriority]
    READ_PRIORITY_PRIORITY: _ClassVar[ReadPriority]
    READ_PRIORITY_URGENT: _ClassVar[ReadPriority]

class TicketSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_SOURCE_UNSPECIFIED: _ClassVar[TicketSource]
    TICKET_SOURCE_APP: _ClassVar[TicketSource]
    TICKET_SOURCE_PROBE_HEALTH: _ClassVar[TicketSource]
    TICKET_SOURCE_TELEMETRY: _ClassVar[TicketSource]
    TICKET_SOURCE_PREVENTIVE: _ClassVar[TicketSource]

class TicketState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_STATE_UNSPECIFIED: _ClassVar[TicketState]
    TICKET_STATE_OPENED: _ClassVar[TicketState]
    TICKET_STATE_ACKNOWLEDGED: _ClassVar[TicketState]
    TICKET_STATE_DISPATCHED: _ClassVar[TicketState]
    TICKET_STATE_ON_SITE: _ClassVar[TicketState]
    TICKET_STATE_RESOLVED: _ClassVar[TicketState]
    TICKET_STATE_CLOSED: _ClassVar[TicketState]
    TICKET_STATE_CANCELLED: _ClassVar[TicketState]

class DeviceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATUS_UNSPECIFIED: _ClassVar[DeviceStatus]
    DEVICE_STATUS_IN_SERVICE: _ClassVar[DeviceStatus]
    DEVICE_STATUS_FAULTY: _ClassVar[DeviceStatus]
    DEVICE_STATUS_IN_REPAIR: _ClassVar[DeviceStatus]
    DEVICE_STATUS_LOANED_OUT: _ClassVar[DeviceStatus]
    DEVICE_STATUS_RETIRED: _ClassVar[DeviceStatus]
EXAM_TYPE_UNSPECIFIED: ExamType
EXAM_TYPE_CAROTID: ExamType
EXAM_TYPE_THYROID: ExamType
EXAM_TYPE_ABDOMEN: ExamType
EXAM_TYPE_KIDNEY: ExamType
EXAM_TYPE_OBSTETRIC: ExamType
EXAM_TYPE_CARDIAC: ExamType
EXAM_TYPE_LIVER: ExamType
EXAM_TYPE_OTHER: ExamType
QUALITY_REASON_UNSPECIFIED: QualityReason
QUALITY_REASON_LOW_GAIN: QualityReason
QUALITY_REASON_LOST_CONTACT: QualityReason
QUALITY_REASON_DEAD_ELEMENTS: QualityReason
QUALITY_REASON_MOTION_BLUR: QualityReason
QUALITY_REASON_WRONG_DEPTH: QualityReason
QUALITY_REASON_OTHER: QualityReason
QUALITY_VALIDATION_UNSPECIFIED: QualityValidation
QUALITY_VALIDATION_SHADOW: QualityValidation
QUALITY_VALIDATION_ADVISORY: QualityValidation
QUALITY_VALIDATION_GATING: QualityValidation
AI_VERDICT_UNSPECIFIED: AiVerdict
AI_VERDICT_AGREE: AiVerdict
AI_VERDICT_MODIFY: AiVerdict
AI_VERDICT_REJECT: AiVerdict
RECEIVED_VIA_UNSPECIFIED: ReceivedVia
RECEIVED_VIA_APP_UPLOAD: ReceivedVia
RECEIVED_VIA_STOW_RS: ReceivedVia
RECEIVED_VIA_C_STORE: ReceivedVia
RECEIVED_VIA_AI_RESULT: ReceivedVia
INFERENCE_STATUS_UNSPECIFIED: InferenceStatus
INFERENCE_STATUS_COMPLETED: InferenceStatus
INFERENCE_STATUS_PARTIAL: InferenceStatus
INFERENCE_STATUS_FAILED: InferenceStatus
READ_ROUTE_UNSPECIFIED: ReadRoute
READ_ROUTE_RESCAN: ReadRoute
READ_ROUTE_SELF_CONFIRM: ReadRoute
READ_ROUTE_EXPERT: ReadRoute
READ_ROUTE_URGENT: ReadRoute
READ_ROUTE_PROVINCIAL: ReadRoute
READ_PRIORITY_UNSPECIFIED: ReadPriority
READ_PRIORITY_ROUTINE: ReadPriority
READ_PRIORITY_PRIORITY: ReadPriority
READ_PRIORITY_URGENT: ReadPriority
TICKET_SOURCE_UNSPECIFIED: TicketSource
TICKET_SOURCE_APP: TicketSource
TICKET_SOURCE_PROBE_HEALTH: TicketSource
TICKET_SOURCE_TELEMETRY: TicketSource
TICKET_SOURCE_PREVENTIVE: TicketSource
TICKET_STATE_UNSPECIFIED: TicketState
TICKET_STATE_OPENED: TicketState
TICKET_STATE_ACKNOWLEDGED: TicketState
TICKET_STATE_DISPATCHED: TicketState
TICKET_STATE_ON_SITE: TicketState
TICKET_STATE_RESOLVED: TicketState
TICKET_STATE_CLOSED: TicketState
TICKET_STATE_CANCELLED: TicketState
DEVICE_STATUS_UNSPECIFIED: DeviceStatus
DEVICE_STATUS_IN_SERVICE: DeviceStatus
DEVICE_STATUS_FAULTY: DeviceStatus
DEVICE_STATUS_IN_REPAIR: DeviceStatus
DEVICE_STATUS_LOANED_OUT: DeviceStatus
DEVICE_STATUS_RETIRED: DeviceStatus

class InstanceRef(_message.Message):
    __slots__ = ("study_instance_uid", "series_instance_uid", "sop_instance_uid", "sop_class_uid", "object_key", "sha256", "size_bytes", "transfer_syntax_uid", "number_of_frames", "modality", "app_pixel_spacing", "app_gestational_age_weeks")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    SERIES_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    SOP_CLASS_UID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_SYNTAX_UID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    APP_PIXEL_SPACING_FIELD_NUMBER: _ClassVar[int]
    APP_GESTATIONAL_AGE_WEEKS_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    object_key: str
    sha256: str
    size_bytes: int
    transfer_syntax_uid: str
    number_of_frames: int
    modality: str
    app_pixel_spacing: PixelSpacing
    app_gestational_age_weeks: float
    def __init__(self, study_instance_uid: _Optional[str] = ..., series_instance_uid: _Optional[str] = ..., sop_instance_uid: _Optional[str] = ..., sop_class_uid: _Optional[str] = ..., object_key: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., transfer_syntax_uid: _Optional[str] = ..., number_of_frames: _Optional[int] = ..., modality: _Optional[str] = ..., app_pixel_spacing: _Optional[_Union[PixelSpacing, _Mapping]] = ..., app_gestational_age_weeks: _Optional[float] = ...) -> None: ...

class PixelSpacing(_message.Message):
    __slots__ = ("row_mm", "column_mm")
    ROW_MM_FIELD_NUMBER: _ClassVar[int]
    COLUMN_MM_FIELD_NUMBER: _ClassVar[int]
    row_mm: float
    column_mm: float
    def __init__(self, row_mm: _Optional[float] = ..., column_mm: _Optional[float] = ...) -> None: ...

class ExamContext(_message.Message):
    __slots__ = ("exam_id", "study_instance_uid", "institution_id", "operator_id", "device_serial", "exam_type", "patient_ref")
    EXAM_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    EXAM_TYPE_FIELD_NUMBER: _ClassVar[int]
    PATIENT_REF_FIELD_NUMBER: _ClassVar[int]
    exam_id: str
    study_instance_uid: str
    institution_id: str
    operator_id: str
    device_serial: str
    exam_type: ExamType
    patient_ref: str
    def __init__(self, exam_id: _Optional[str] = ..., study_instance_uid: _Optional[str] = ..., institution_id: _Optional[str] = ..., operator_id: _Optional[str] = ..., device_serial: _Optional[str] = ..., exam_type: _Optional[_Union[ExamType, str]] = ..., patient_ref: _Optional[str] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("code", "code_system", "display", "value", "unit", "confidence", "low_confidence", "model_name", "model_version", "evidence_object_keys", "sop_instance_uid", "attributes", "abnormal")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LOW_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_OBJECT_KEYS_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ABNORMAL_FIELD_NUMBER: _ClassVar[int]
    code: str
    code_system: str
    display: str
    value: float
    unit: str
    confidence: float
    low_confidence: bool
    model_name: str
    model_version: str
    evidence_object_keys: _containers.RepeatedScalarFieldContainer[str]
    sop_instance_uid: str
    attributes: _containers.ScalarMap[str, str]
    abnormal: bool
    def __init__(self, code: _Optional[str] = ..., code_system: _Optional[str] = ..., display: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., confidence: _Optional[float] = ..., low_confidence: bool = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., evidence_object_keys: _Optional[_Iterable[str]] = ..., sop_instance_uid: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., abnormal: bool = ...) -> None: ...

class QualityAssessment(_message.Message):
    __slots__ = ("acceptable", "reasons", "score", "confidence", "model_version", "advice", "validation", "model_acceptable", "device_model")
    ACCEPTABLE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADVICE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ACCEPTABLE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MODEL_FIELD_NUMBER: _ClassVar[int]
    acceptable: bool
    reasons: _containers.RepeatedScalarFieldContainer[QualityReason]
    score: float
    confidence: float
    model_version: str
    advice: str
    validation: QualityValidation
    model_acceptable: bool
    device_model: str
    def __init__(self, acceptable: bool = ..., reasons: _Optional[_Iterable[_Union[QualityReason, str]]] = ..., score: _Optional[float] = ..., confidence: _Optional[float] = ..., model_version: _Optional[str] = ..., advice: _Optional[str] = ..., validation: _Optional[_Union[QualityValidation, str]] = ..., model_acceptable: bool = ..., device_model: _Optional[str] = ...) -> None: ...

class InstanceQuality(_message.Message):
    __slots__ = ("sop_instance_uid", "assessment")
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    ASSESSMENT_FIELD_NUMBER: _ClassVar[int]
    sop_instance_uid: str
    assessment: QualityAssessment
    def __init__(self, sop_instance_uid: _Optional[str] = ..., assessment: _Optional[_Union[QualityAssessment, _Mapping]] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    sha256: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class ProbeHealth(_message.Message):
    __slots__ = ("device_serial", "dead_element_fraction", "dead_element_columns", "suspected_fault", "confidence", "validation", "model_suspected_fault")
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    DEAD_ELEMENT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    DEAD_ELEMENT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SUSPECTED_FAULT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_SUSPECTED_FAULT_FIELD_NUMBER: _ClassVar[int]
    device_serial: str
    dead_element_fraction: float
    dead_element_columns: int
    suspected_fault: bool
    confidence: float
    validation: QualityValidation
    model_suspected_fault: bool
    def __init__(self, device_serial: _Optional[str] = ..., dead_element_fraction: _Optional[float] = ..., dead_element_columns: _Optional[int] = ..., suspected_fault: bool = ..., confidence: _Optional[float] = ..., validation: _Optional[_Union[QualityValidation, str]] = ..., model_suspected_fault: bool = ...) -> None: ...

class AiAgreement(_message.Message):
    __slots__ = ("finding_code", "model_name", "model_version", "verdict", "comment")
    FINDING_CODE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    finding_code: str
    model_name: str
    model_version: str
    verdict: AiVerdict
    comment: str
    def __init__(self, finding_code: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., verdict: _Optional[_Union[AiVerdict, str]] = ..., comment: _Optional[str] = ...) -> None: ...

class ExamCompleted(_message.Message):
    __slots__ = ("context", "instances", "instance_count", "total_bytes", "started_at", "completed_at", "scan_seconds", "manifest_sha256")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    SCAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_SHA256_FIELD_NUMBER: _ClassVar[int]
    context: ExamContext
    instances: _containers.RepeatedCompositeFieldContainer[InstanceRef]
    instance_count: int
    total_bytes: int
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    scan_seconds: float
    manifest_sha256: str
    def __init__(self, context: _Optional[_Union[ExamContext, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[InstanceRef, _Mapping]]] = ..., instance_count: _Optional[int] = ..., total_bytes: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scan_seconds: _Optional[float] = ..., manifest_sha256: _Optional[str] = ...) -> None: ...

class InstanceStored(_message.Message):
    __slots__ = ("context", "instance", "stored_at", "received_via", "duplicate")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    STORED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_VIA_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    context: ExamContext
    instance: InstanceRef
    stored_at: _timestamp_pb2.Timestamp
    received_via: ReceivedVia
    duplicate: bool
    def __init__(self, context: _Optional[_Union[ExamContext, _Mapping]] = ..., instance: _Optional[_Union[InstanceRef, _Mapping]] = ..., stored_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_via: _Optional[_Union[ReceivedVia, str]] = ..., duplicate: bool = ...) -> None: ...

class InferenceCompleted(_message.Message):
    __slots__ = ("context", "exam_quality", "instance_quality", "findings", "models", "derived_object_keys", "started_at", "completed_at", "status", "error_message", "probe_health", "inference_id", "exam_completed_at")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXAM_QUALITY_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_QUALITY_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DERIVED_OBJECT_KEYS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROBE_HEALTH_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    EXAM_COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    context: ExamContext
    exam_quality: QualityAssessment
    instance_quality: _containers.RepeatedCompositeFieldContainer[InstanceQuality]
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    models: _containers.RepeatedCompositeFieldContainer[ModelRef]
    derived_object_keys: _containers.RepeatedScalarFieldContainer[str]
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    status: InferenceStatus
    error_message: str
    probe_health: ProbeHealth
    inference_id: str
    exam_completed_at: _timestamp_pb2.Timestamp
    def __init__(self, context: _Optional[_Union[ExamContext, _Mapping]] = ..., exam_quality: _Optional[_Union[QualityAssessment, _Mapping]] = ..., instance_quality: _Optional[_Iterable[_Union[InstanceQuality, _Mapping]]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[ModelRef, _Mapping]]] = ..., derived_object_keys: _Optional[_Iterable[str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[InferenceStatus, str]] = ..., error_message: _Optional[str] = ..., probe_health: _Optional[_Union[ProbeHealth, _Mapping]] = ..., inference_id: _Optional[str] = ..., exam_completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportRouted(_message.Message):
    __slots__ = ("context", "read_id", "route", "worklist", "priority", "due_at", "assigned_to", "policy_version", "reason", "routed_at")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    READ_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    WORKLIST_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_TO_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROUTED_AT_FIELD_NUMBER: _ClassVar[int]
    context: ExamContext
    read_id: str
    route: ReadRoute
    worklist: str
    priority: ReadPriority
    due_at: _timestamp_pb2.Timestamp
    assigned_to: str
    policy_version: str
    reason: str
    routed_at: _timestamp_pb2.Timestamp
    def __init__(self, context: _Optional[_Union[ExamContext, _Mapping]] = ..., read_id: _Optional[str] = ..., route: _Optional[_Union[ReadRoute, str]] = ..., worklist: _Optional[str] = ..., priority: _Optional[_Union[ReadPriority, str]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., assigned_to: _Optional[str] = ..., policy_version: _Optional[str] = ..., reason: _Optional[str] = ..., routed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportSigned(_message.Message):
    __slots__ = ("context", "report_id", "version", "signed_by", "signed_at", "pdf_object_key", "json_object_key", "conclusion", "findings", "ai_agreement", "amended_from_version", "read_id")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNED_BY_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    PDF_OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    JSON_OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    CONCLUSION_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    AI_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    AMENDED_FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    READ_ID_FIELD_NUMBER: _ClassVar[int]
    context: ExamContext
    report_id: str
    version: int
    signed_by: str
    signed_at: _timestamp_pb2.Timestamp
    pdf_object_key: str
    json_object_key: str
    conclusion: str
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    ai_agreement: _containers.RepeatedCompositeFieldContainer[AiAgreement]
    amended_from_version: int
    read_id: str
    def __init__(self, context: _Optional[_Union[ExamContext, _Mapping]] = ..., report_id: _Optional[str] = ..., version: _Optional[int] = ..., signed_by: _Optional[str] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pdf_object_key: _Optional[str] = ..., json_object_key: _Optional[str] = ..., conclusion: _Optional[str] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., ai_agreement: _Optional[_Iterable[_Union[AiAgreement, _Mapping]]] = ..., amended_from_version: _Optional[int] = ..., read_id: _Optional[str] = ...) -> None: ...

class FollowupAlerted(_message.Message):
    __slots__ = ("context", "alert_id", "report_id", "matched_terms", "coordinator_institution_id", "raised_at", "report_version")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    MATCHED_TERMS_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    REPORT_VERSION_FIELD_NUMBER: _ClassVar[int]
    context: ExamContext
    alert_id: str
    report_id: str
    matched_terms: _containers.RepeatedScalarFieldContainer[str]
    coordinator_institution_id: str
    raised_at: _timestamp_pb2.Timestamp
    report_version: int
    def __init__(self, context: _Optional[_Union[ExamContext, _Mapping]] = ..., alert_id: _Optional[str] = ..., report_id: _Optional[str] = ..., matched_terms: _Optional[_Iterable[str]] = ..., coordinator_institution_id: _Optional[str] = ..., raised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., report_version: _Optional[int] = ...) -> None: ...

class QualityLabelled(_message.Message):
    __slots__ = ("exam_id", "study_instance_uid", "series_instance_uid", "sop_instance_uid", "device_manufacturer", "device_model_name", "acceptable", "reason", "labelled_by_role", "labelled_at", "read_id")
    EXAM_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    SERIES_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MANUFACTURER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCEPTABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LABELLED_BY_ROLE_FIELD_NUMBER: _ClassVar[int]
    LABELLED_AT_FIELD_NUMBER: _ClassVar[int]
    READ_ID_FIELD_NUMBER: _ClassVar[int]
    exam_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    device_manufacturer: str
    device_model_name: str
    acceptable: bool
    reason: QualityReason
    labelled_by_role: str
    labelled_at: _timestamp_pb2.Timestamp
    read_id: str
    def __init__(self, exam_id: _Optional[str] = ..., study_instance_uid: _Optional[str] = ..., series_instance_uid: _Optional[str] = ..., sop_instance_uid: _Optional[str] = ..., device_manufacturer: _Optional[str] = ..., device_model_name: _Optional[str] = ..., acceptable: bool = ..., reason: _Optional[_Union[QualityReason, str]] = ..., labelled_by_role: _Optional[str] = ..., labelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read_id: _Optional[str] = ...) -> None: ...

class TicketOpened(_message.Message):
    __slots__ = ("ticket_id", "device_serial", "institution_id", "symptom", "source", "opened_at", "ack_due_at", "onsite_due_at", "evidence_object_keys", "opened_by", "study_instance_uid")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SYMPTOM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    ACK_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    ONSITE_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_OBJECT_KEYS_FIELD_NUMBER: _ClassVar[int]
    OPENED_BY_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    device_serial: str
    institution_id: str
    symptom: str
    source: TicketSource
    opened_at: _timestamp_pb2.Timestamp
    ack_due_at: _timestamp_pb2.Timestamp
    onsite_due_at: _timestamp_pb2.Timestamp
    evidence_object_keys: _containers.RepeatedScalarFieldContainer[str]
    opened_by: str
    study_instance_uid: str
    def __init__(self, ticket_id: _Optional[str] = ..., device_serial: _Optional[str] = ..., institution_id: _Optional[str] = ..., symptom: _Optional[str] = ..., source: _Optional[_Union[TicketSource, str]] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ack_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., onsite_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., evidence_object_keys: _Optional[_Iterable[str]] = ..., opened_by: _Optional[str] = ..., study_instance_uid: _Optional[str] = ...) -> None: ...

class TicketUpdated(_message.Message):
    __slots__ = ("ticket_id", "device_serial", "from_state", "to_state", "assignee", "paused", "ack_sla_breached", "onsite_sla_breached", "updated_at", "actor", "note", "institution_id")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    ACK_SLA_BREACHED_FIELD_NUMBER: _ClassVar[int]
    ONSITE_SLA_BREACHED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    device_serial: str
    from_state: TicketState
    to_state: TicketState
    assignee: str
    paused: bool
    ack_sla_breached: bool
    onsite_sla_breached: bool
    updated_at: _timestamp_pb2.Timestamp
    actor: str
    note: str
    institution_id: str
    def __init__(self, ticket_id: _Optional[str] = ..., device_serial: _Optional[str] = ..., from_state: _Optional[_Union[TicketState, str]] = ..., to_state: _Optional[_Union[TicketState, str]] = ..., assignee: _Optional[str] = ..., paused: bool = ..., ack_sla_breached: bool = ..., onsite_sla_breached: bool = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ..., institution_id: _Optional[str] = ...) -> None: ...

class DeviceStatusChanged(_message.Message):
    __slots__ = ("device_serial", "institution_id", "from_status", "to_status", "changed_at", "reason", "ticket_id")
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STATUS_FIELD_NUMBER: _ClassVar[int]
    TO_STATUS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    device_serial: str
    institution_id: str
    from_status: DeviceStatus
    to_status: DeviceStatus
    changed_at: _timestamp_pb2.Timestamp
    reason: str
    ticket_id: str
    def __init__(self, device_serial: _Optional[str] = ..., institution_id: _Optional[str] = ..., from_status: _Optional[_Union[DeviceStatus, str]] = ..., to_status: _Optional[_Union[DeviceStatus, str]] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., ticket_id: _Optional[str] = ...) -> None: ...
