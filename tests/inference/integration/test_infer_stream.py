"""InferStream over a real grpcio client against the service's real grpc.aio server."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from inference.inference_support import Service

from sonobridge.api.inference.v1 import inference_pb2, inference_pb2_grpc
from sonobridge.inference.entrypoints.grpc_server import array_to_tensor
from sonobridge.inference.imaging.preprocess import to_tensor

MODEL = "image-quality"


@pytest.fixture(scope="module")
def stream(service: Service) -> Iterator[inference_pb2_grpc.InferenceServiceStub]:
    port = service.host.streams.wait_bound()  # type: ignore[attr-defined]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)


def frames(service: Service, n: int) -> list[inference_pb2.InferRequest]:
    spec = service.host.deps.models.get(MODEL, None).input_spec  # type: ignore[attr-defined]
    rng = np.random.default_rng(18)
    x = to_tensor(rng.integers(0, 256, (n, spec.height, spec.width), dtype=np.uint8), spec)
    return [
        inference_pb2.InferRequest(
            model_name=MODEL,
            request_id=f"frame-{i}",
            tensors=inference_pb2.TensorInputs(tensors=[array_to_tensor(spec.name, x[i : i + 1])]),
        )
        for i in range(n)
    ]


def outputs(response: inference_pb2.InferResponse) -> dict[str, bytes]:
    return {t.name: t.data for t in response.outputs}


def refused(call: grpc.RpcError) -> grpc.StatusCode:
    return call.code()  # type: ignore[no-any-return]


def test_frames_are_answered_in_order_as_unary_infer_answers_them(
    service: Service, stream: inference_pb2_grpc.InferenceServiceStub
) -> None:
    sent = frames(service, 4)
    answers = list(stream.InferStream(iter(sent), metadata=service.metadata(), timeout=60))
    unary = [service.grpc.Infer(r, metadata=service.metadata(), timeout=60) for r in sent]

    assert [a.request_id for a in answers] == [r.request_id for r in sent]
    assert [outputs(a) for a in answers] == [outputs(u) for u in unary]
    assert [list(a.labels) for a in answers] == [list(u.labels) for u in unary]
    assert {a.model_name for a in answers} == {MODEL}


def test_missing_expired_and_foreign_callers_are_refused(
    service: Service, stream: inference_pb2_grpc.InferenceServiceStub
) -> None:
    sent = frames(service, 1)
    expired = service.issuer.issue("nurse-1", ["operator"], "township-a", ttl_seconds=-3600)
    cases = {
        grpc.StatusCode.UNAUTHENTICATED: [(), [("authorization", f"Bearer {expired}")]],
        grpc.StatusCode.PERMISSION_DENIED: [
            [*service.metadata(), ("x-sonobridge-institution", "township-b")]
        ],
    }
    for code, metadatas in cases.items():
        for metadata in metadatas:
            with pytest.raises(grpc.RpcError) as call:
                list(stream.InferStream(iter(sent), metadata=metadata, timeout=60))
            assert refused(call.value) == code


def test_a_token_that_expires_mid_stream_ends_it_unauthenticated(
    service: Service, stream: inference_pb2_grpc.InferenceServiceStub
) -> None:
    first, second = frames(service, 2)
    token = service.issuer.issue("nurse-1", ["operator"], "township-a", ttl_seconds=2)
    outbox: queue.Queue[inference_pb2.InferRequest | None] = queue.Queue()
    call = stream.InferStream(
        iter(outbox.get, None), metadata=[("authorization", f"Bearer {token}")], timeout=60
    )
    outbox.put(first)
    assert next(call).request_id == first.request_id
    time.sleep(2.5)
    outbox.put(second)
    with pytest.raises(grpc.RpcError) as ended:
        next(call)
    assert refused(ended.value) == grpc.StatusCode.UNAUTHENTICATED


def test_a_bad_frame_ends_the_stream_with_invalid_argument(
    service: Service, stream: inference_pb2_grpc.InferenceServiceStub
) -> None:
    good = frames(service, 2)
    bad = inference_pb2.InferRequest()
    bad.CopyFrom(good[0])
    bad.tensors.tensors[0].data = bad.tensors.tensors[0].data[:-4]
    call = stream.InferStream(
        iter([good[0], bad, good[1]]), metadata=service.metadata(), timeout=60
    )
    assert next(call).request_id == good[0].request_id
    with pytest.raises(grpc.RpcError) as ended:
        next(call)
    assert refused(ended.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs" in (ended.value.details() or "")


def test_an_undecodable_frame_ends_the_stream_with_invalid_argument(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    port = service.host.streams.wait_bound()  # type: ignore[attr-defined]
    good = frames(service, 2)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = channel.stream_stream(
            "/sonobridge.api.inference.v1.InferenceService/InferStream",
            request_serializer=lambda data: data,
            response_deserializer=inference_pb2.InferResponse.FromString,
        )
        sent = [good[0].SerializeToString(), b"\x0a\x64x", good[1].SerializeToString()]
        call = raw(iter(sent), metadata=service.metadata(), timeout=60)
        assert next(call).request_id == good[0].request_id
        with pytest.raises(grpc.RpcError) as ended:
            next(call)
    assert refused(ended.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "not an InferRequest" in (ended.value.details() or "")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_frame_naming_a_huge_unknown_model_ends_not_found(
    service: Service, stream: inference_pb2_grpc.InferenceServiceStub
) -> None:
    frame = frames(service, 1)[0]
    frame.model_name = "m" * 100_000
    with pytest.raises(grpc.RpcError) as ended:
        list(stream.InferStream(iter([frame]), metadata=service.metadata(), timeout=60))
    # The detail does not echo the whole name: else the client drops the status for its size.
    assert refused(ended.value) == grpc.StatusCode.NOT_FOUND
    details = ended.value.details() or ""
    assert details.startswith("no model named") and len(details.encode()) <= 1024


def test_a_cancelled_stream_gives_back_its_slot(
    service: Service, stream: inference_pb2_grpc.InferenceServiceStub
) -> None:
    servicer = service.host.streams.servicer  # type: ignore[attr-defined]
    outbox: queue.Queue[inference_pb2.InferRequest | None] = queue.Queue()
    call = stream.InferStream(iter(outbox.get, None), metadata=service.metadata(), timeout=60)
    outbox.put(frames(service, 1)[0])
    next(call)
    assert servicer.open_streams == 1
    call.cancel()
    deadline = time.monotonic() + 10
    while servicer.open_streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert servicer.open_streams == 0
    outbox.put(None)
    # The server still answers new streams after the cancel.
    again = list(stream.InferStream(iter(frames(service, 1)), metadata=service.metadata()))
    assert len(again) == 1


def test_the_unary_port_sends_a_stream_to_the_stream_port(service: Service) -> None:
    with pytest.raises(grpc.RpcError) as call:
        list(service.grpc.InferStream(iter(frames(service, 1)), metadata=service.metadata()))
    assert refused(call.value) == grpc.StatusCode.UNIMPLEMENTED
    assert "INFERENCE__GRPC_STREAM_PORT" in (call.value.details() or "")
