"""InferStream's servicer with hand-written fakes: auth, per-message checks, bounds, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import grpc
import pytest
from prometheus_client import CollectorRegistry

from sonobridge.api.inference.v1 import inference_pb2
from sonobridge.common.auth import Principal
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.problems import InvalidInput, Unauthenticated
from sonobridge.inference.entrypoints.grpc_stream import InferStreamServicer
from sonobridge.inference.metrics import InferenceMetrics

EXPIRES = 1_000.0
HEADER = "x-sonobridge-institution"


class Aborted(Exception):
    """What FakeContext.abort raises, as grpc.aio's abort ends the handler."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code


class FakeContext:
    """The metadata a client sent; abort records the status."""

    def __init__(self, metadata: Iterable[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class FakeVerifier:
    """Accepts "Bearer <institution>" ("Bearer -" for a token naming none)."""

    def verify_header(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing bearer token")
        institution = authorization.removeprefix("Bearer ")
        return Principal(
            user="nurse-1",
            roles=frozenset({"operator"}),
            institution=None if institution == "-" else institution,
            claims={"exp": EXPIRES},
        )


def echo(request: inference_pb2.InferRequest) -> inference_pb2.InferResponse:
    """Answer a frame with its id; a frame without a model is bad input, as Infer says."""
    if not request.model_name:
        raise InvalidInput("model_name is required")
    return inference_pb2.InferResponse(model_name=request.model_name, request_id=request.request_id)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def servicer(clock: Clock | None = None, max_streams: int = 4) -> InferStreamServicer:
    registry = CollectorRegistry()
    return InferStreamServicer(
        echo,
        FakeVerifier(),  # type: ignore[arg-type]
        ServiceMetrics("inference", registry=registry),
        InferenceMetrics(registry),
        max_streams,
        clock=clock or Clock(),
    )


async def feed(requests: Iterable[inference_pb2.InferRequest | bytes]) -> AsyncIterator[bytes]:
    """The frames as grpc.aio hands them to the servicer: undecoded."""
    for request in requests:
        yield request if isinstance(request, bytes) else request.SerializeToString()


def frame(i: int, model: str = "image-quality") -> inference_pb2.InferRequest:
    return inference_pb2.InferRequest(model_name=model, request_id=f"f{i}")


def run(
    svc: InferStreamServicer,
    requests: Iterable[inference_pb2.InferRequest | bytes],
    metadata: object,
) -> tuple[list[str], grpc.StatusCode | None]:
    """Drive one stream; return the answered ids and the status it ended with (None: OK)."""

    async def drive() -> tuple[list[str], grpc.StatusCode | None]:
        got: list[str] = []
        try:
            async for answer in svc.InferStream(feed(requests), FakeContext(metadata)):  # type: ignore[arg-type]
                got.append(answer.request_id)
        except Aborted as aborted:
            return got, aborted.code
        return got, None

    return asyncio.run(drive())


def calls(svc: InferStreamServicer, code: str) -> float:
    return svc._calls.labels("InferStream", code)._value.get()  # type: ignore[no-any-return]


def test_frames_are_answered_in_order_and_counted() -> None:
    svc = servicer()
    got, code = run(svc, [frame(i) for i in range(3)], [("authorization", "Bearer township-a")])
    assert (got, code) == (["f0", "f1", "f2"], None)
    assert calls(svc, "OK") == 3
    assert svc.open_streams == 0


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ([], grpc.StatusCode.UNAUTHENTICATED),
        ([("authorization", "Bearer -")], grpc.StatusCode.PERMISSION_DENIED),
        (
            [("authorization", "Bearer township-a"), ("x-sonobridge-institution", "township-b")],
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        # The header sent twice, once right and once wrong, in either order.
        (
            [
                ("authorization", "Bearer township-a"),
                (HEADER, "township-b"),
                (HEADER, "township-a"),
            ],
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (
            [
                ("authorization", "Bearer township-a"),
                (HEADER, "township-a"),
                (HEADER, "township-b"),
            ],
            grpc.StatusCode.PERMISSION_DENIED,
        ),
    ],
)
def test_a_stream_without_a_token_or_of_another_institution_is_refused(
    metadata: list[tuple[str, str]], code: grpc.StatusCode
) -> None:
    svc = servicer()
    assert run(svc, [frame(0)], metadata) == ([], code)
    assert calls(svc, code.name) == 1
    assert svc.open_streams == 0


def test_the_message_after_the_token_expires_ends_the_stream() -> None:
    clock = Clock()
    svc = servicer(clock)

    def requests() -> Iterable[inference_pb2.InferRequest]:
        yield frame(0)
        clock.now = EXPIRES
        yield frame(1)

    got, code = run(svc, requests(), [("authorization", "Bearer township-a")])
    assert (got, code) == (["f0"], grpc.StatusCode.UNAUTHENTICATED)


def test_a_bad_frame_ends_the_stream_with_invalid_argument() -> None:
    svc = servicer()
    got, code = run(
        svc, [frame(0), frame(1, model=""), frame(2)], [("authorization", "Bearer township-a")]
    )
    assert (got, code) == (["f0"], grpc.StatusCode.INVALID_ARGUMENT)
    assert svc.open_streams == 0


def test_a_frame_that_is_no_infer_request_ends_the_stream_with_invalid_argument() -> None:
    svc = servicer()
    # Field 1 (model_name) declared 100 bytes long, with 1 byte following.
    got, code = run(
        svc, [frame(0), b"\x0a\x64x", frame(2)], [("authorization", "Bearer township-a")]
    )
    assert (got, code) == (["f0"], grpc.StatusCode.INVALID_ARGUMENT)
    assert calls(svc, "INVALID_ARGUMENT") == 1
    assert svc.open_streams == 0


def test_streams_past_the_bound_are_refused_unavailable_and_a_cancel_frees_a_slot() -> None:
    svc = servicer(max_streams=1)
    metadata = [("authorization", "Bearer township-a")]

    async def scenario() -> tuple[grpc.StatusCode | None, int, int]:
        held = svc.InferStream(feed([frame(0), frame(1)]), FakeContext(metadata))  # type: ignore[arg-type]
        await held.__anext__()
        refused = None
        try:
            async for _ in svc.InferStream(feed([frame(2)]), FakeContext(metadata)):  # type: ignore[arg-type]
                pass
        except Aborted as aborted:
            refused = aborted.code
        open_while_held = svc.open_streams
        await held.aclose()  # what grpc.aio does to a handler whose client cancelled
        return refused, open_while_held, svc.open_streams

    assert asyncio.run(scenario()) == (grpc.StatusCode.UNAVAILABLE, 1, 0)
    assert run(svc, [frame(3)], metadata) == (["f3"], None)
