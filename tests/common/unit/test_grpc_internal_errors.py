"""gRPC errors: an unexpected one is INTERNAL with a logged error id, a domain one its status."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import grpc
import pytest
from google.protobuf import wrappers_pb2

from sonobridge.common.grpc import create_grpc_server
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.problems import NotFound


def _raise(request: bytes, context: grpc.ServicerContext) -> bytes:
    patient = "-".join(["DOE^CANARY", "19010203"])  # built at run time: in no source line
    if request == b"missing":
        raise NotFound("no such exam")
    if request.startswith(b"huge"):
        raise NotFound(f"no exam {request.decode()!r}")
    raise KeyError(f"[parameters: ({patient!r},)]")


def _register(server: grpc.Server) -> Iterable[str]:
    handler = grpc.method_handlers_generic_handler(
        "probe.Probe", {"Fail": grpc.unary_unary_rpc_method_handler(_raise)}
    )
    server.add_generic_rpc_handlers((handler,))
    return ["probe.Probe"]


@contextmanager
def _channel(register: Callable[[grpc.Server], Iterable[str]]) -> Iterator[grpc.Channel]:
    """A channel to a started server built by common's create_grpc_server with `register`."""
    server, port, _ = create_grpc_server(
        metrics=ServiceMetrics("probe"), register=register, host="127.0.0.1", port=0
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        server.stop(None)


def test_unexpected_grpc_error_is_internal_with_an_error_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _channel(_register) as channel:
        call = channel.unary_unary("/probe.Probe/Fail")
        with pytest.raises(grpc.RpcError) as failed:
            call(b"anything", timeout=10)
        with pytest.raises(grpc.RpcError) as missing:
            call(b"missing", timeout=10)
    assert failed.value.code() is grpc.StatusCode.INTERNAL
    match = re.search(r"error id ([0-9a-f-]{36})", failed.value.details())
    assert match, failed.value.details()
    [record] = [r for r in caplog.records if getattr(r, "error_id", None) == match.group(1)]
    assert "KeyError" in record.getMessage()
    assert "CANARY" not in str(vars(record)) and "CANARY" not in failed.value.details()
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("name", ["x" * 100_000, "\u00e9\u4e2d\U0001f600" * 30_000])
def test_a_domain_error_echoing_a_huge_input_keeps_its_status(name: str) -> None:
    with _channel(_register) as channel, pytest.raises(grpc.RpcError) as missing:
        channel.unary_unary("/probe.Probe/Fail")(f"huge{name}".encode(), timeout=10)
    # Not the client's RESOURCE_EXHAUSTED for trailers over its limit: the detail is cut.
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    details = missing.value.details()
    assert details.startswith("no exam 'huge") and details.endswith("... (cut)")


def _echo_register(server: grpc.Server) -> Iterable[str]:
    handler = grpc.method_handlers_generic_handler(
        "probe.Probe",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                lambda request, context: request,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=wrappers_pb2.StringValue.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    return ["probe.Probe"]


@pytest.mark.parametrize("garbage", [b"\x0a\xff", b"\xff\xff\xff\xff", b"\x0a\x02\xc3\x28"])
def test_bytes_that_are_no_request_are_invalid_argument_not_internal(
    garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with _channel(_echo_register) as channel:
        call = channel.unary_unary("/probe.Probe/Echo")
        with pytest.raises(grpc.RpcError) as refused:
            call(garbage, timeout=10)
        echoed = wrappers_pb2.StringValue.FromString(
            call(wrappers_pb2.StringValue(value="ok").SerializeToString(), timeout=10)
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid Echo request" in refused.value.details()
    assert echoed.value == "ok"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
