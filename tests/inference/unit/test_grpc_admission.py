"""Inference calls past the gRPC pool's bound are shed at once with UNAVAILABLE, retry later."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import grpc
import pytest
from prometheus_client import CollectorRegistry

from sonobridge.common.grpc import create_grpc_server
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.inference.entrypoints.grpc_server import SERVICE_NAME, AdmissionBound, Backlog
from sonobridge.inference.metrics import InferenceMetrics

entered, release = threading.Event(), threading.Event()


def _hold(request: bytes, context: grpc.ServicerContext) -> bytes:
    entered.set()
    release.wait(30)
    return request


def _register(server: grpc.Server) -> Iterable[str]:
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME, {"Hold": grpc.unary_unary_rpc_method_handler(_hold)}
    )
    server.add_generic_rpc_handlers((handler,))
    return [SERVICE_NAME]


def test_a_call_past_the_bound_is_shed_and_the_held_one_completes() -> None:
    registry = CollectorRegistry()
    pool = Backlog(1)
    server, port, _ = create_grpc_server(
        metrics=ServiceMetrics("probe", registry=registry),
        register=_register,
        host="127.0.0.1",
        port=0,
        executor=pool,
        interceptors=[AdmissionBound(pool, 1, InferenceMetrics(registry))],
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(f"/{SERVICE_NAME}/Hold")
            held = call.future(b"first", timeout=30)
            assert entered.wait(30)
            with pytest.raises(grpc.RpcError) as refused:
                call(b"second", timeout=10)
            release.set()
            assert held.result() == b"first"
            # The worker counts the call out just after answering it; then the bound admits again.
            deadline = time.monotonic() + 10
            while pool.held and time.monotonic() < deadline:
                time.sleep(0.01)
            assert call(b"third", timeout=10) == b"third"
    finally:
        release.set()
        server.stop(None)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "retry later" in refused.value.details()
    shed = registry.get_sample_value("sonobridge_inference_requests_shed_total", {"model": "*"})
    assert shed == 1.0
