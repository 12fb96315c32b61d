"""gRPC reflection is served on demand: the server starts without grpcio-reflection loaded."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from collections.abc import Iterable

import grpc

from sonobridge.common.grpc import create_grpc_server
from sonobridge.common.metrics import ServiceMetrics


def register(server: grpc.Server) -> Iterable[str]:
    handler = grpc.method_handlers_generic_handler("probe.Probe", {})
    server.add_generic_rpc_handlers((handler,))
    return ["probe.Probe"]


server, port, _ = create_grpc_server(
    metrics=ServiceMetrics("probe"), register=register, host="127.0.0.1", port=0
)
server.start()
print("loaded at start:", "grpc_reflection.v1alpha.reflection" in sys.modules)
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    for path in ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                 "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"):
        call = channel.stream_stream(
            path,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        [answer] = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                             timeout=30))
        print(path.split("/")[1], sorted(s.name for s in answer.list_services_response.service))
server.stop(None)
"""


def test_reflection_loads_on_the_first_call_and_answers_v1_and_v1alpha() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out[0] == "loaded at start: False"
    names = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "probe.Probe",
    ]
    assert out[1:] == [
        f"grpc.reflection.v1alpha.ServerReflection {names}",
        f"grpc.reflection.v1.ServerReflection {names}",
    ]
