"""InferStream on a grpc.aio server of its own: one stream per client, each message one Infer."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from sonobridge.api.inference.v1 import inference_pb2
from sonobridge.common.auth import Principal, TokenVerifier
from sonobridge.common.grpc import (
    decode_request,
    principal_from_context,
    status_details,
    status_for,
)
from sonobridge.common.logging import stack_summary
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.problems import Forbidden, Problem, Unauthenticated
from sonobridge.inference.entrypoints.grpc_server import SERVICE_NAME, answer_infer
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.metrics import InferenceMetrics

log = logging.getLogger(__name__)

METHOD = "InferStream"
# Optional stream header naming the institution the frames are sent for; it must be the token's
# (each value, when sent more than once).
INSTITUTION_HEADER = "x-sonobridge-institution"


def stream_principal(verifier: TokenVerifier, context: Any) -> tuple[Principal, float]:
    """Verify the stream's token once; return the caller and when the token expires."""
    principal = principal_from_context(context, verifier)
    if not principal.institution:
        raise Forbidden("an InferStream token must name an institution")
    # Every value counts: a header sent twice, once right and once wrong, is refused too.
    declared = {v for k, v in context.invocation_metadata() or () if k == INSTITUTION_HEADER}
    if declared - {principal.institution}:
        raise Forbidden("the stream's institution is not the token's")
    return principal, float(principal.claims.get("exp", 0.0))


def check_expiry(expires: float, now: float) -> None:
    """Refuse a message once the stream's token has expired."""
    # No leeway here (the open's check has the verifier's): a stream outlives its token by
    # at most one message.
    if now >= expires:
        raise Unauthenticated("the stream's token has expired; open a new stream")


def read_frame(data: bytes) -> inference_pb2.InferRequest:
    """Parse one stream message; InvalidInput when its bytes are no InferRequest."""
    return decode_request(
        inference_pb2.InferRequest.FromString, data, "a stream message is not an InferRequest"
    )


Answer = Callable[[inference_pb2.InferRequest], inference_pb2.InferResponse]


def answers(deps: Dependencies) -> Answer:
    """Each message's answer: unary Infer's use case."""
    return lambda request: answer_infer(deps, request)


class InferStreamServicer:
    """Answers each InferStream message through the same use case as unary Infer."""

    def __init__(
        self,
        answer: Answer,
        verifier: TokenVerifier,
        service_metrics: ServiceMetrics,
        metrics: InferenceMetrics,
        max_streams: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.answer = answer
        self.verifier = verifier
        self.max_streams = max_streams
        self.open_streams = 0
        self._clock = clock
        self._calls = service_metrics.grpc_requests
        self._answered = service_metrics.grpc_requests.labels(METHOD, "OK")
        # As AdmissionBound's: a refused stream's model is not read yet.
        self._shed = metrics.rejected.labels("*")

    async def InferStream(  # noqa: N802
        self, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[inference_pb2.InferResponse]:
        """Answer the stream's messages in order; the first bad one ends it with its status."""
        # One event loop runs every stream, so this count needs no lock.
        if self.open_streams >= self.max_streams:
            self._shed.inc()
            self._calls.labels(METHOD, grpc.StatusCode.UNAVAILABLE.name).inc()
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"inference holds {self.max_streams} streams; retry later",
            )
        self.open_streams += 1
        try:
            try:
                _, expires = stream_principal(self.verifier, context)
            except Problem as problem:
                await self._refuse(context, problem)
            async for frame in requests:
                try:
                    check_expiry(expires, self._clock())
                    request = read_frame(frame)
                    # The model runs inline on this loop: it is CPU-bound on 2 cores, and a
                    # hand-off to a pool thread costs more than the tiny model's run
                    # (bench_grpc floor-a). REST and health answer on their own threads.
                    response = self.answer(request)
                except Problem as problem:
                    await self._refuse(context, problem)
                except Exception as exc:
                    await self._fail(context, exc)
                self._answered.inc()
                yield response
        finally:
            # Also on a client's cancel: the generator is closed and the slot given back.
            self.open_streams -= 1

    async def _refuse(self, context: Any, problem: Problem) -> None:
        code = status_for(problem)
        self._calls.labels(METHOD, code.name).inc()
        await context.abort(code, status_details(problem))

    async def _fail(self, context: Any, exc: Exception) -> None:
        self._calls.labels(METHOD, grpc.StatusCode.INTERNAL.name).inc()
        error_id = str(uuid.uuid4())
        # Type and place only: messages of decoding errors may echo values.
        log.error(
            "unexpected %s answering %s (error id %s)",
            type(exc).__qualname__,
            METHOD,
            error_id,
            extra={"error_id": error_id, "stack": stack_summary(exc)},
        )
        await context.abort(
            grpc.StatusCode.INTERNAL,
            f"unexpected error; quote error id {error_id} when reporting it",
        )


def stream_handler(servicer: InferStreamServicer) -> grpc.GenericRpcHandler:
    """The InferStream method of InferenceService, for the aio server."""
    # Frames reach the servicer as bytes: grpc.aio answers a frame its deserializer cannot
    # parse with UNKNOWN and logs a traceback; the servicer parses them into INVALID_ARGUMENT.
    method = grpc.stream_stream_rpc_method_handler(
        servicer.InferStream,
        request_deserializer=None,
        response_serializer=inference_pb2.InferResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {METHOD: method})


class StreamServer:
    """A host worker running a grpc.aio server for InferStream on its own thread and loop."""

    def __init__(self, servicer: InferStreamServicer, host: str, port: int) -> None:
        self.servicer = servicer
        self.host = host
        self.requested_port = port
        self.port = 0
        self._bound = threading.Event()

    def __call__(self, stop: threading.Event) -> None:
        """Serve until `stop` is set (the host's worker signature)."""
        asyncio.run(self._serve(stop))

    def wait_bound(self, timeout: float = 30.0) -> int:
        """Return the bound port once the server listens."""
        if not self._bound.wait(timeout):
            raise RuntimeError("the InferStream server did not start")
        return self.port

    async def _serve(self, stop: threading.Event) -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        server.add_generic_rpc_handlers((stream_handler(self.servicer),))
        self.port = server.add_insecure_port(f"{self.host}:{self.requested_port}")
        if self.port == 0:
            raise OSError(f"cannot bind InferStream to {self.host}:{self.requested_port}")
        await server.start()
        self._bound.set()
        try:
            await asyncio.to_thread(stop.wait)
        finally:
            # Open streams are cancelled: their generators close and give back their slots.
            await server.stop(2.0)
