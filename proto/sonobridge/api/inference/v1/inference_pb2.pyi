from sonobridge.api.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DATA_TYPE_FLOAT32: _ClassVar[DataType]
    DATA_TYPE_FLOAT16: _ClassVar[DataType]
    DATA_TYPE_UINT8: _ClassVar[DataType]
    DATA_TYPE_INT32: _ClassVar[DataType]
    DATA_TYPE_INT64: _ClassVar[DataType]

class ModelTask(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_TASK_UNSPECIFIED: _ClassVar[ModelTask]
    MODEL_TASK_QUALITY: _ClassVar[ModelTask]
    MODEL_TASK_CLASSIFICATION: _ClassVar[ModelTask]
    MODEL_TASK_DETECTION: _ClassVar[ModelTask]
    MODEL_TASK_SEGMENTATION: _ClassVar[ModelTask]
    MODEL_TASK_MEASUREMENT: _ClassVar[ModelTask]
    MODEL_TASK_PROBE_HEALTH: _ClassVar[ModelTask]
    MODEL_TASK_OTHER: _ClassVar[ModelTask]
DATA_TYPE_UNSPECIFIED: DataType
DATA_TYPE_FLOAT32: DataType
DATA_TYPE_FLOAT16: DataType
DATA_TYPE_UINT8: DataType
DATA_TYPE_INT32: DataType
DATA_TYPE_INT64: DataType
MODEL_TASK_UNSPECIFIED: ModelTask
MODEL_TASK_QUALITY: ModelTask
MODEL_TASK_CLASSIFICATION: ModelTask
MODEL_TASK_DETECTION: ModelTask
MODEL_TASK_SEGMENTATION: ModelTask
MODEL_TASK_MEASUREMENT: ModelTask
MODEL_TASK_PROBE_HEALTH: ModelTask
MODEL_TASK_OTHER: ModelTask

class Tensor(_message.Message):
    __slots__ = ("name", "shape", "dtype", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DataType
    data: bytes
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DataType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class TensorInputs(_message.Message):
    __slots__ = ("tensors",)
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class EncodedImage(_message.Message):
    __slots__ = ("data", "media_type", "frame_index")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    media_type: str
    frame_index: int
    def __init__(self, data: _Optional[bytes] = ..., media_type: _Optional[str] = ..., frame_index: _Optional[int] = ...) -> None: ...

class InferRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "image", "tensors", "request_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    image: EncodedImage
    tensors: TensorInputs
    request_id: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., image: _Optional[_Union[EncodedImage, _Mapping]] = ..., tensors: _Optional[_Union[TensorInputs, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "score", "code", "code_system")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    code: str
    code_system: str
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ..., code: _Optional[str] = ..., code_system: _Optional[str] = ...) -> None: ...

class InferResponse(_message.Message):
    __slots__ = ("model_name", "model_version", "outputs", "labels", "latency_ms", "request_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    outputs: _containers.RepeatedCompositeFieldContainer[Tensor]
    labels: _containers.RepeatedCompositeFieldContainer[LabelScore]
    latency_ms: float
    request_id: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., outputs: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., labels: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., latency_ms: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class CheckQualityRequest(_message.Message):
    __slots__ = ("image", "exam_type", "frame_index", "request_id")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EXAM_TYPE_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    image: EncodedImage
    exam_type: _events_pb2.ExamType
    frame_index: int
    request_id: str
    def __init__(self, image: _Optional[_Union[EncodedImage, _Mapping]] = ..., exam_type: _Optional[_Union[_events_pb2.ExamType, str]] = ..., frame_index: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class CheckQualityResponse(_message.Message):
    __slots__ = ("assessment", "model_version", "latency_ms", "request_id")
    ASSESSMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    assessment: _events_pb2.QualityAssessment
    model_version: str
    latency_ms: float
    request_id: str
    def __init__(self, assessment: _Optional[_Union[_events_pb2.QualityAssessment, _Mapping]] = ..., model_version: _Optional[str] = ..., latency_ms: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class ModelSummary(_message.Message):
    __slots__ = ("name", "version", "task", "exam_types", "sha256", "loaded", "pinned", "size_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    EXAM_TYPES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    task: ModelTask
    exam_types: _containers.RepeatedScalarFieldContainer[_events_pb2.ExamType]
    sha256: str
    loaded: bool
    pinned: bool
    size_bytes: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., task: _Optional[_Union[ModelTask, str]] = ..., exam_types: _Optional[_Iterable[_Union[_events_pb2.ExamType, str]]] = ..., sha256: _Optional[str] = ..., loaded: bool = ..., pinned: bool = ..., size_bytes: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("exam_type", "task")
    EXAM_TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    exam_type: _events_pb2.ExamType
    task: ModelTask
    def __init__(self, exam_type: _Optional[_Union[_events_pb2.ExamType, str]] = ..., task: _Optional[_Union[ModelTask, str]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelSummary]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelSummary, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("summary", "card_json")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    summary: ModelSummary
    card_json: str
    def __init__(self, summary: _Optional[_Union[ModelSummary, _Mapping]] = ..., card_json: _Optional[str] = ...) -> None: ...
