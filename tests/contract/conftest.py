"""Fixtures that build each adapter of every port, so one contract suite covers them all."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.kafka import KafkaEventBus
from sonobridge.common.bus.ports import EventBus
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.objects.minio import MinioObjectStore
from sonobridge.common.objects.ports import ObjectStore


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.infra)])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventBus]:
    """Each adapter in turn: the embedded log in a temp file, then the real local Kafka."""
    adapter: EventBus
    if request.param == "embedded":
        adapter = EmbeddedEventBus(tmp_path / "events.sqlite3")
    else:
        adapter = KafkaEventBus(request.getfixturevalue("kafka_bootstrap"), partitions=3)
    yield adapter
    adapter.close()


@pytest.fixture
def topic(bus: EventBus) -> str:
    """A fresh topic per test, created up front so consumers see every partition."""
    name = f"test.contract.{uuid.uuid4().hex[:12]}"
    bus.ensure_topics([name, f"{name}.dlq"])
    return name


# The second S3 server, built by deploy/local/install.sh unless SONOBRIDGE_SEAWEEDFS=0.
S3_SERVERS = ["minio"] + (
    ["seaweedfs"] if os.environ.get("SONOBRIDGE_SEAWEEDFS", "1") == "1" else []
)


@pytest.fixture(
    params=["localdir", *(pytest.param(name, marks=pytest.mark.infra) for name in S3_SERVERS)]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each adapter: a local directory, then the S3 one (fresh bucket) on MinIO and SeaweedFS."""
    if request.param == "localdir":
        return LocalDirObjectStore(tmp_path / "objects")
    server = "minio_endpoint" if request.param == "minio" else "seaweedfs_s3_endpoint"
    endpoint = request.getfixturevalue(server)
    minio_store = MinioObjectStore(
        endpoint.endpoint,
        endpoint.access_key,
        endpoint.secret_key,
        f"contract-{uuid.uuid4().hex[:12]}",
    )
    minio_store.ensure_bucket()
    return minio_store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each database: a SQLite file, then a fresh database on the real local PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.sqlite3'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture(
    params=["single-node", pytest.param("cluster", marks=pytest.mark.infra)],
)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, EventBus]]:
    """A database URL with the bus of its edition: SQLite + embedded log, PostgreSQL + Kafka."""
    bus_adapter: EventBus
    if request.param == "single-node":
        url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
        bus_adapter = EmbeddedEventBus(tmp_path / "events.sqlite3")
    else:
        url = str(request.getfixturevalue("pg_database"))
        bus_adapter = KafkaEventBus(request.getfixturevalue("kafka_bootstrap"))
    yield url, bus_adapter
    bus_adapter.close()
