"""A started inference service on single-node adapters, shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from sonobridge.api.inference.v1 import inference_pb2_grpc
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.db import create_db_engine
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.settings import GrpcSettings, HttpSettings
from sonobridge.inference.bootstrap import build
from sonobridge.inference.settings import InferenceSettings, Settings


class Service:
    """A started inference host and what a test needs to talk to it."""

    def __init__(self, tmp: Path, issuer: LocalIssuer, config: InferenceSettings) -> None:
        settings = Settings(
            data_dir=tmp,
            http=HttpSettings(host="127.0.0.1", port=0),
            grpc=GrpcSettings(host="127.0.0.1", port=0),
            inference=config,
        )
        self.bus = EmbeddedEventBus(tmp / "events.sqlite3")
        self.store = LocalDirObjectStore(tmp / "objects")
        self.engine = create_db_engine(f"sqlite:///{tmp / 'inference.sqlite3'}")
        self.host = build(
            settings, bus=self.bus, store=self.store, engine=self.engine, verifier=issuer.verifier()
        )
        self.host.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.host.http_port}", timeout=60)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.host.grpc_port}")
        self.grpc = inference_pb2_grpc.InferenceServiceStub(self.channel)
        self.issuer = issuer

    def token(self, user: str = "nurse-1", institution: str = "township-a") -> str:
        return self.issuer.issue(user, ["operator"], institution)

    def headers(self, **kw: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kw)}"}

    def metadata(self, **kw: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token(**kw)}")]

    def close(self) -> None:
        self.http.close()
        self.channel.close()
        self.host.stop()
        self.engine.dispose()
        self.bus.close()


def start_service(tmp: Path, issuer: LocalIssuer, **config: object) -> Service:
    """Start a service with CPU-only sessions and the given inference settings."""
    return Service(tmp, issuer, InferenceSettings(providers="CPUExecutionProvider", **config))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer) -> Iterator[Service]:
    running = start_service(tmp_path_factory.mktemp("inference"), issuer, max_wait_ms=5.0)
    try:
        yield running
    finally:
        running.close()
