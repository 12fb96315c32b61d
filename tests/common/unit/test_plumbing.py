"""Plumbing keeps the adapters a caller passes; protobuf timestamps round-trip as aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest

from sonobridge.common import infrastructure
from sonobridge.common.infrastructure import Plumbing
from sonobridge.common.settings import ServiceSettings
from sonobridge.common.timestamps import aware, timestamp


def test_plumbing_uses_what_the_caller_passed_and_builds_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    for name in ("build_event_bus", "build_object_store", "build_verifier"):
        monkeypatch.setattr(infrastructure, name, lambda _s, name=name: built.append(name) or name)
    bus, engine = cast(Any, object()), cast(Any, object())

    plumbing = Plumbing.build("ingest", ServiceSettings(data_dir=tmp_path), bus=bus, engine=engine)

    assert plumbing.bus is bus and plumbing.engine is engine
    assert plumbing.store == "build_object_store" and plumbing.verifier == "build_verifier"
    assert built == ["build_object_store", "build_verifier"]


def test_timestamps_round_trip_as_aware_utc() -> None:
    local = datetime(2026, 11, 30, 5, 0, 1, 250_000, tzinfo=timezone(timedelta(hours=2)))

    assert aware(timestamp(local)) == local
    assert aware(timestamp(local)).tzinfo is UTC
    assert aware(timestamp(datetime(2026, 1, 1))) == datetime(2026, 1, 1, tzinfo=UTC)
