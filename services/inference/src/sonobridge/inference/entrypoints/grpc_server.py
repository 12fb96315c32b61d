"""gRPC InferenceService: translate requests, call the handlers, map results."""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import numpy as np

from sonobridge.api.inference.v1 import inference_pb2, inference_pb2_grpc
from sonobridge.common.auth import TokenVerifier
from sonobridge.common.grpc import (
    AuthenticatedServicer,
    Registration,
    registration,
)
from sonobridge.common.problems import InvalidInput
from sonobridge.inference.entrypoints import messages
from sonobridge.inference.handlers import Dependencies, models, quality, serving
from sonobridge.inference.metrics import InferenceMetrics

SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name

_DTYPES: dict[inference_pb2.DataType, np.dtype[Any]] = {
    inference_pb2.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    inference_pb2.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    inference_pb2.DATA_TYPE_UINT8: np.dtype("u1"),
    inference_pb2.DATA_TYPE_INT32: np.dtype("<i4"),
    inference_pb2.DATA_TYPE_INT64: np.dtype("<i8"),
}
_PB_DTYPES = {v: k for k, v in _DTYPES.items()}
# numpy 1.x holds at most 32 dimensions (2.x: 64); no model here takes more than 4.
_MAX_DIMS = 32


def tensor_to_array(tensor: inference_pb2.Tensor) -> np.ndarray:
    """Decode a Tensor message; InvalidInput when dtype, shape and data disagree."""
    dtype = _DTYPES.get(tensor.dtype)
    if dtype is None:
        raise InvalidInput(f"tensor {tensor.name!r}: dtype must be set")
    shape = list(tensor.shape)
    if len(shape) > _MAX_DIMS:
        raise InvalidInput(
            f"tensor {tensor.name!r}: {len(shape)} dimensions, at most {_MAX_DIMS} are taken"
        )
    if any(d < 0 for d in shape):
        raise InvalidInput(f"tensor {tensor.name!r}: negative dimension in {shape}")
    # A zero dimension makes the data empty, but numpy still refuses a shape whose other
    # dimensions multiply past its index range.
    if math.prod(d for d in shape if d) * dtype.itemsize > sys.maxsize:
        raise InvalidInput(f"tensor {tensor.name!r}: shape {shape} is too large")
    # math.prod on ints: numpy's prod costs more than the rest of the decode on a 64 KB frame.
    expected = math.prod(shape) * dtype.itemsize
    # Each read of a bytes field copies it out of the message (upb): read it once.
    data = tensor.data
    if len(data) != expected:
        raise InvalidInput(
            f"tensor {tensor.name!r}: shape {shape} {dtype} needs {expected} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def array_to_tensor(name: str, array: np.ndarray) -> inference_pb2.Tensor:
    """Encode an array as a little-endian Tensor message."""
    arr = np.asarray(array)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return inference_pb2.Tensor(
        name=name,
        shape=arr.shape,
        dtype=_PB_DTYPES.get(arr.dtype, inference_pb2.DATA_TYPE_UNSPECIFIED),
        # tobytes writes C order whatever the layout: one copy, into the message.
        data=arr.tobytes(),
    )


def answer_infer(
    deps: Dependencies, request: inference_pb2.InferRequest
) -> inference_pb2.InferResponse:
    """Run one InferRequest through the serving use case (Infer and each InferStream message)."""
    if not request.model_name:
        raise InvalidInput("model_name is required")
    which = request.WhichOneof("input")
    if which == "image":
        result = serving.infer_image(
            deps,
            request.model_name,
            request.model_version,
            request.image.data,
            request.image.media_type,
            request.image.frame_index,
        )
    elif which == "tensors":
        arrays = {t.name: tensor_to_array(t) for t in request.tensors.tensors}
        result = serving.infer_tensors(deps, request.model_name, request.model_version, arrays)
    else:
        raise InvalidInput("set either image or tensors")
    return inference_pb2.InferResponse(
        model_name=result.card.name,
        model_version=result.card.version,
        outputs=[array_to_tensor(k, v) for k, v in result.outputs.items()],
        labels=[inference_pb2.LabelScore(label=k, score=p) for k, p in result.labels],
        latency_ms=result.latency_ms,
        request_id=request.request_id,
    )


class InferenceServicer(
    AuthenticatedServicer[Dependencies], inference_pb2_grpc.InferenceServiceServicer
):
    """Implements sonobridge.api.inference.v1.InferenceService."""

    def Infer(  # noqa: N802
        self, request: inference_pb2.InferRequest, context: grpc.ServicerContext
    ) -> inference_pb2.InferResponse:
        self.principal(context)
        return answer_infer(self.deps, request)

    def InferStream(  # noqa: N802
        self, request_iterator: Any, context: grpc.ServicerContext
    ) -> Any:
        # A stream would hold one of this pool's few workers for its whole life: streams are
        # served by the grpc.aio server on the stream port (entrypoints/grpc_stream).
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "InferStream is served on the stream port (INFERENCE__GRPC_STREAM_PORT)",
        )

    def CheckQuality(  # noqa: N802
        self, request: inference_pb2.CheckQualityRequest, context: grpc.ServicerContext
    ) -> inference_pb2.CheckQualityResponse:
        principal = self.principal(context)
        image = request.image
        data = image.data  # one copy out of the message: each read of the field makes another
        if not data:
            raise InvalidInput("image.data is required")
        check, latency_ms = quality.check_image_quality(
            self.deps,
            data,
            image.media_type,
            request.frame_index or image.frame_index,
            institution=principal.institution,
            operator=principal.user,
        )
        return inference_pb2.CheckQualityResponse(
            assessment=messages.quality_assessment(check.assessment),
            model_version=check.model_version,
            latency_ms=latency_ms,
            request_id=request.request_id,
        )

    def ListModels(  # noqa: N802
        self, request: inference_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> inference_pb2.ListModelsResponse:
        self.principal(context)
        found = models.list_models(
            self.deps,
            messages.exam_type_name(request.exam_type),
            messages.task_name(request.task),
        )
        return inference_pb2.ListModelsResponse(
            models=[messages.model_summary(m.card, loaded=m.loaded, pinned=m.pinned) for m in found]
        )

    def GetModel(  # noqa: N802
        self, request: inference_pb2.GetModelRequest, context: grpc.ServicerContext
    ) -> inference_pb2.GetModelResponse:
        self.principal(context)
        found = models.get_model(self.deps, request.name, request.version or None)
        return inference_pb2.GetModelResponse(
            summary=messages.model_summary(found.card, loaded=found.loaded, pinned=found.pinned),
            card_json=models.card_json(self.deps, found.card),
        )


class Backlog(futures.ThreadPoolExecutor):
    """The gRPC worker pool, counting the calls it holds, waiting or running."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="inference-grpc")
        self._count = threading.Lock()
        self.held = 0
        # Refusals must not wait behind the calls they refuse: one thread of their own.
        self._refusals = futures.ThreadPoolExecutor(1, thread_name_prefix="inference-refusal")
        self._refusal: Callable[..., Any] | None = None

    def refuse_with(self, behavior: Callable[..., Any]) -> None:
        """Run calls to `behavior` (gRPC passes it among a call's arguments) on their own thread."""
        self._refusal = behavior

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        """Queue a call for a worker, counting it until it returns."""
        if self._refusal is not None and self._refusal in args:
            return self._refusals.submit(fn, *args, **kwargs)
        with self._count:
            self.held += 1
        try:
            return super().submit(self._counted, fn, *args, **kwargs)
        except BaseException:
            with self._count:
                self.held -= 1
            raise

    def _counted(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            with self._count:
                self.held -= 1


class AdmissionBound(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Shed inference calls once the pool holds `limit`, before they queue for a worker.

    CPU models get few workers, so calls wait in the pool's queue instead of on the models'
    run slots; this bounds that queue as the batchers bound theirs, with their answer
    (UNAVAILABLE, retry later). gRPC asks on its polling thread, before queueing the call.
    """

    def __init__(self, backlog: Backlog, limit: int, metrics: InferenceMetrics) -> None:
        self._backlog = backlog
        self._limit = limit
        # The request is not read yet, so its model is unknown: shed calls count under "*".
        self._shed = metrics.rejected.labels("*")
        refuse = self._refuse
        backlog.refuse_with(refuse)
        self._refusal = grpc.unary_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        if self._backlog.held >= self._limit and details.method.startswith(f"/{SERVICE_NAME}/"):
            return self._refusal
        return continuation(details)

    def _refuse(self, request: bytes, context: grpc.ServicerContext) -> None:
        self._shed.inc()
        context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"inference holds {self._limit} calls; retry later",
        )


def register(deps: Dependencies, verifier: TokenVerifier) -> Registration:
    """Return the registration callback for create_grpc_server."""
    return registration(
        inference_pb2_grpc.add_InferenceServiceServicer_to_server,
        InferenceServicer(deps, verifier),
        SERVICE_NAME,
    )
