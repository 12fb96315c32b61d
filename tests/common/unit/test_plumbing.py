"""Plumbing keeps the adapters a caller passes; protobuf timestamps round-trip as aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common import infrastructure
from sonobridge.common.infrastructure import Plumbing, utc_now
from sonobridge.common.settings import ServiceSettings
from sonobridge.common.timestamps import aware, optional_time, set_times, timestamp


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
    assert plumbing.clock is utc_now


def test_plumbing_runs_on_the_clock_a_test_pins(tmp_path: Path) -> None:
    pinned = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    fakes = {name: cast(Any, object()) for name in ("bus", "store", "engine", "verifier")}

    plumbing = Plumbing.build(
        "ingest", ServiceSettings(data_dir=tmp_path), clock=lambda: pinned, **fakes
    )

    assert plumbing.clock() == pinned


def test_timestamps_round_trip_as_aware_utc() -> None:
    local = datetime(2026, 11, 30, 5, 0, 1, 250_000, tzinfo=timezone(timedelta(hours=2)))

    assert aware(timestamp(local)) == local
    assert aware(timestamp(local)).tzinfo is UTC
    assert aware(timestamp(datetime(2026, 1, 1))) == datetime(2026, 1, 1, tzinfo=UTC)


def test_unset_timestamp_fields_stay_unset_and_read_back_as_none() -> None:
    started = datetime(2026, 11, 30, 8, 15, tzinfo=UTC)
    message = events_pb2.ExamCompleted()

    set_times(message, started_at=started, completed_at=None)

    assert message.HasField("started_at") and not message.HasField("completed_at")
    assert optional_time(message, "started_at") == started
    assert optional_time(message, "completed_at") is None
