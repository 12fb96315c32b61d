"""gRPC plumbing every service shares: health, reflection, error mapping, metrics, auth."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sonobridge.common.auth import Principal, TokenVerifier, one_authorization
from sonobridge.common.logging import stack_summary
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.problems import InvalidInput, Problem

log = logging.getLogger(__name__)

_STATUS_BY_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


# A status's details travel percent-encoded in a trailer (up to 3 bytes a byte), and clients drop
# a call whose trailers pass 8 KiB: a detail echoing a huge input would lose the status with it.
MAX_DETAIL_BYTES = 1024


def status_for(problem: Problem) -> grpc.StatusCode:
    """Map a domain error to its gRPC status code."""
    return _STATUS_BY_HTTP.get(problem.status, grpc.StatusCode.UNKNOWN)


def status_details(problem: Problem) -> str:
    """The domain error's detail, cut to fit a status trailer."""
    data = problem.detail.encode("utf-8")
    if len(data) <= MAX_DETAIL_BYTES:
        return problem.detail
    return data[:MAX_DETAIL_BYTES].decode("utf-8", "ignore") + "... (cut)"


T = TypeVar("T")


def decode_request(decode: Callable[[bytes], T], raw: bytes, detail: str) -> T:
    """Parse a request's bytes; InvalidInput (INVALID_ARGUMENT) when they are no such message."""
    try:
        return decode(raw)
    except DecodeError:
        # Not the decoder's message: it may quote the bytes.
        raise InvalidInput(detail) from None


class ProblemInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Turn domain errors into gRPC statuses with their message, and count every call."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        # gRPC asks for every call; a method's wrapped handler never changes, so it is built
        # once instead of a closure and a handler object per call. Unknown methods (None) are
        # not kept, so callers cannot grow this.
        self._wrapped: dict[str, Any] = {}

    def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        wrapped = self._wrapped.get(details.method)
        if wrapped is None:
            wrapped = self._wrap(continuation(details), details.method)
            if wrapped is not None:
                self._wrapped[details.method] = wrapped
        return wrapped

    def _wrap(self, handler: Any, full_method: str) -> Any:
        if handler is None or handler.unary_unary is None:
            return handler
        method = full_method.rsplit("/", 1)[-1]
        inner = handler.unary_unary
        decode = handler.request_deserializer
        undecodable = f"the request is not a valid {method} request"
        # The success counter is the one every call bumps: its child is looked up once.
        answered = self.metrics.grpc_requests.labels(method, "OK")

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                # Decoded here, not by grpc: bytes that are no request are the caller's
                # INVALID_ARGUMENT, where grpc's own decoding answers INTERNAL and logs a trace.
                if decode is not None:
                    request = decode_request(decode, request, undecodable)
                response = inner(request, context)
            except Problem as problem:
                self.metrics.grpc_requests.labels(method, status_for(problem).name).inc()
                context.abort(status_for(problem), status_details(problem))
            except Exception as exc:
                code = context.code() if hasattr(context, "code") else None
                self.metrics.grpc_requests.labels(
                    method, (code or grpc.StatusCode.INTERNAL).name
                ).inc()
                if code is not None:
                    raise  # the servicer chose a status (context.abort): keep it
                error_id = str(uuid.uuid4())
                # Type and place only: messages of database and DICOM errors echo values.
                log.error(
                    "unexpected %s.%s answering %s (error id %s)",
                    type(exc).__module__,
                    type(exc).__qualname__,
                    method,
                    error_id,
                    extra={
                        "error_id": error_id,
                        "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                        "stack": stack_summary(exc),
                    },
                )
                context.abort(
                    grpc.StatusCode.INTERNAL,
                    f"unexpected error; quote error id {error_id} when reporting it",
                )
            answered.inc()
            return response

        return grpc.unary_unary_rpc_method_handler(
            unary, response_serializer=handler.response_serializer
        )


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
_REFLECTION_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _register_reflection_v1_descriptor() -> None:
    from grpc_reflection.v1alpha import reflection_pb2 as reflection_v1alpha_pb2

    # grpcio-reflection ships only v1alpha; v1 is the same file under a new package (the
    # messages are wire-identical), so derive its descriptor for clients that describe it.
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_REFLECTION_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_v1alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    proto.name, proto.package = _REFLECTION_V1_FILE, "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.AddSerializedFile(proto.SerializeToString())


class LazyReflection(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc is untyped
    """Serve reflection on v1 and v1alpha, importing grpcio-reflection on the first such call.

    Reflection is for people with grpcurl or Postman; its module and descriptors (~5 MB per
    process) wait until someone asks.
    """

    def __init__(self, service_names: Iterable[str]) -> None:
        self._names = [*service_names, REFLECTION_V1ALPHA, REFLECTION_V1]
        self._handler: Any = None
        self._lock = threading.Lock()

    def service(self, handler_call_details: Any) -> Any:
        """Return the reflection stream handler for reflection methods, else None."""
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        if service not in (REFLECTION_V1, REFLECTION_V1ALPHA) or method != "ServerReflectionInfo":
            return None
        with self._lock:
            if self._handler is None:
                self._handler = self._build()
        return self._handler

    def _build(self) -> Any:
        from grpc_reflection.v1alpha import reflection
        from grpc_reflection.v1alpha import reflection_pb2 as reflection_v1alpha_pb2

        # The v1 messages are wire-identical to v1alpha's, so one servicer answers both.
        _register_reflection_v1_descriptor()
        servicer = reflection.ReflectionServicer(self._names)
        return grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_v1alpha_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_v1alpha_pb2.ServerReflectionResponse.SerializeToString,
        )


def enable_reflection(server: grpc.Server, service_names: Iterable[str]) -> None:
    """Serve reflection on both grpc.reflection.v1 (grpcurl, Postman) and v1alpha (older tools)."""
    server.add_generic_rpc_handlers((LazyReflection(service_names),))


def principal_from_context(context: grpc.ServicerContext, verifier: TokenVerifier) -> Principal:
    """Verify the caller's bearer token from gRPC metadata."""
    metadata = context.invocation_metadata() or ()
    return verifier.verify_header(one_authorization(v for k, v in metadata if k == "authorization"))


def create_grpc_server(
    *,
    metrics: ServiceMetrics,
    register: Callable[[grpc.Server], Iterable[str]],
    host: str,
    port: int,
    max_workers: int = 8,
    executor: futures.ThreadPoolExecutor | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Build a server with health and reflection; `register` adds servicers, returns their names.

    A service may bring its own worker executor (else max_workers threads) and interceptors
    that run before the error mapping.
    """
    server = grpc.server(
        executor or futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[*interceptors, ProblemInterceptor(metrics)],
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    service_names = list(register(server))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in [*service_names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    enable_reflection(server, [*service_names, health.SERVICE_NAME])
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    return server, bound, health_servicer


Registration = Callable[[grpc.Server], Iterable[str]]
D = TypeVar("D")


def registration(
    add_to_server: Callable[[Any, grpc.Server], None], servicer: object, service_name: str
) -> Registration:
    """The `register` callback of create_grpc_server for one generated servicer."""

    def register(server: grpc.Server) -> list[str]:
        add_to_server(servicer, server)
        return [service_name]

    return register


class AuthenticatedServicer(Generic[D]):
    """A servicer's use-case dependencies and the verifier of its callers' bearer tokens."""

    def __init__(self, deps: D, verifier: TokenVerifier) -> None:
        self.deps = deps
        self.verifier = verifier

    def principal(self, context: grpc.ServicerContext) -> Principal:
        """Verify the caller of this call."""
        return principal_from_context(context, self.verifier)
