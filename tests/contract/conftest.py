"""Fixtures that build each adapter of every port, so one contract suite covers them all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.kafka import KafkaEventBus
from sonobridge.common.bus.ports import EventBus


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
