"""Calls past a gRPC server's concurrency bound get RESOURCE_EXHAUSTED at once, not a queue."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import grpc
import pytest

from sonobridge.common.grpc import create_grpc_server
from sonobridge.common.metrics import ServiceMetrics

entered, release = threading.Event(), threading.Event()


def _hold(request: bytes, context: grpc.ServicerContext) -> bytes:
    entered.set()
    release.wait(30)
    return request


def _register(server: grpc.Server) -> Iterable[str]:
    handler = grpc.method_handlers_generic_handler(
        "probe.Probe", {"Hold": grpc.unary_unary_rpc_method_handler(_hold)}
    )
    server.add_generic_rpc_handlers((handler,))
    return ["probe.Probe"]


def test_a_call_past_the_bound_is_resource_exhausted_and_the_held_one_completes() -> None:
    server, port, _ = create_grpc_server(
        metrics=ServiceMetrics("probe"),
        register=_register,
        host="127.0.0.1",
        port=0,
        max_workers=1,
        max_concurrent_rpcs=1,
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/probe.Probe/Hold")
            held = call.future(b"first", timeout=30)
            assert entered.wait(30)
            with pytest.raises(grpc.RpcError) as refused:
                call(b"second", timeout=10)
            release.set()
            assert held.result() == b"first"
    finally:
        release.set()
        server.stop(None)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
