"""The single-node edition starts all four services, each healthy, ready, observable and on gRPC."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sonobridge.node.edition import SERVICES, NodePorts, SingleNode


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    data_dir: Path = tmp_path_factory.mktemp("single-node")
    single = SingleNode(data_dir, ports=NodePorts.ephemeral())
    single.start()
    yield single
    single.stop()


@pytest.mark.parametrize("service", SERVICES)
def test_service_is_live_ready_and_exports_metrics(node: SingleNode, service: str) -> None:
    base = node.urls()[service]
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/healthz").json()["service"] == service
        ready = client.get("/readyz")
        for _ in range(60):
            if ready.status_code == 200:
                break
            ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        metrics = client.get("/metrics").text
    assert f"sonobridge_{service}_dependency_up" in metrics
    assert f"sonobridge_{service}_http_requests_total" in metrics


@pytest.mark.parametrize("service", SERVICES)
def test_service_answers_grpc_health_and_reflection(node: SingleNode, service: str) -> None:
    port = node.hosts[service].grpc_port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = list(
            reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
            )
        )
    names = {s.name for s in answer.list_services_response.service}
    assert f"sonobridge.api.{service}.v1.{service.capitalize()}Service" in names
    assert "grpc.health.v1.Health" in names


def test_unauthenticated_calls_are_refused_with_problem_json(node: SingleNode) -> None:
    for service in SERVICES:
        with httpx.Client(base_url=node.urls()[service], timeout=30) as client:
            paths = client.get("/openapi.json").json()["paths"]
            gets = [p for p in paths if p.startswith("/v1/") and "get" in paths[p]]
            assert gets, f"{service} publishes no GET under /v1"
            path = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", gets[0])
            response = client.get(path)
        assert response.status_code == 401, (service, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("service", SERVICES)
def test_service_answers_grpc_reflection_v1(node: SingleNode, service: str) -> None:
    # A v1 client (grpcurl and Postman ask v1 first); v1's messages are v1alpha's, wire for wire.
    port = node.hosts[service].grpc_port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        listed, described = list(
            info(
                iter(
                    [
                        reflection_pb2.ServerReflectionRequest(list_services=""),
                        reflection_pb2.ServerReflectionRequest(
                            file_containing_symbol="grpc.reflection.v1.ServerReflection"
                        ),
                    ]
                ),
                timeout=10,
            )
        )
    names = {s.name for s in listed.list_services_response.service}
    assert f"sonobridge.api.{service}.v1.{service.capitalize()}Service" in names
    assert {"grpc.reflection.v1.ServerReflection", "grpc.health.v1.Health"} <= names
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    assert any(
        f.package == "grpc.reflection.v1" and f.service[0].name == "ServerReflection" for f in files
    ), described
