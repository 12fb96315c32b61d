"""The DeviceValidations contract, run against the unit tests' fake, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from inference.unit.handlers.fakes import FakeDeviceValidations
from sqlalchemy import select

from sonobridge.common.db import create_db_engine, migrate, session_factory
from sonobridge.inference.adapters import orm
from sonobridge.inference.adapters.validation import SqlDeviceValidations
from sonobridge.inference.bootstrap import MIGRATIONS
from sonobridge.inference.domain.validation import (
    DeviceModel,
    ExpertLabel,
    StateChange,
    ValidationState,
)
from sonobridge.inference.ports import DeviceValidations

BUTTERFLY = DeviceModel.of("Butterfly Network", "Butterfly iQ")
CX50 = DeviceModel.of("Philips Medical Systems", "CX50")
AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeviceValidations]:
    if request.param == "fake":
        yield FakeDeviceValidations()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'inference.sqlite3'}"
    else:
        url = str(request.getfixturevalue("pg_database"))
    migrate(url, MIGRATIONS)
    engine = create_db_engine(url)
    try:
        yield SqlDeviceValidations(session_factory(engine))
    finally:
        engine.dispose()


def _change(device: DeviceModel, to: ValidationState, at: datetime = AT) -> StateChange:
    return StateChange(
        "image-quality", "1.0.0", device, ValidationState.SHADOW, to, "it-1", "report", at
    )


def _label(uid: str, device: DeviceModel = BUTTERFLY, flagged: bool = False) -> ExpertLabel:
    return ExpertLabel("image-quality", device, uid, None, flagged, "dr-1", AT)


def test_a_change_is_found_again_by_model_and_device(store: DeviceValidations) -> None:
    assert store.find("image-quality", BUTTERFLY) is None
    store.change(_change(BUTTERFLY, ValidationState.GATING))
    store.change(_change(BUTTERFLY, ValidationState.ADVISORY, AT + timedelta(hours=1)))
    found = store.find("image-quality", BUTTERFLY)
    assert found is not None and found.state is ValidationState.ADVISORY
    assert found.changed_at == AT + timedelta(hours=1) and found.changed_by == "it-1"
    assert store.find("probe-health", BUTTERFLY) is None
    assert store.find("image-quality", CX50) is None
    assert [(v.device, v.state) for v in store.all()] == [(BUTTERFLY, ValidationState.ADVISORY)]


def test_the_window_is_newest_first_and_a_relabel_replaces_the_old_label(
    store: DeviceValidations,
) -> None:
    store.add_labels([_label("a"), _label("b"), _label("c", CX50)])
    store.add_labels([_label("a", flagged=True)])
    window = store.window("image-quality", BUTTERFLY, 10)
    assert [(x.sop_instance_uid, x.model_flagged) for x in window] == [("a", True), ("b", False)]
    assert [x.sop_instance_uid for x in store.window("image-quality", BUTTERFLY, 1)] == ["a"]
    assert store.window("probe-health", BUTTERFLY, 10) == []


def test_sql_changes_are_audited_in_the_same_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inference.sqlite3'}"
    migrate(url, MIGRATIONS)
    engine = create_db_engine(url)
    try:
        SqlDeviceValidations(session_factory(engine)).change(_change(CX50, ValidationState.GATING))
        with engine.connect() as connection:
            rows = connection.execute(select(orm.audit_log)).mappings().all()
    finally:
        engine.dispose()
    assert [(r["actor"], r["action"], r["resource_type"]) for r in rows] == [
        ("it-1", "validation:gating", "device-validation")
    ]
    assert rows[0]["resource_id"] == "image-quality|philips medical systems / cx50"
    assert "shadow -> gating: report" in rows[0]["detail"]
