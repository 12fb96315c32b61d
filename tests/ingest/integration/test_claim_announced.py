"""A claim taken with its queued event and audit record writes all three, or none of them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ingest.ingest_support import instance_row
from sqlalchemy import func, select

from sonobridge.common.audit import audit_record
from sonobridge.common.auth import Principal
from sonobridge.common.db import create_db_engine, migrate, session_factory
from sonobridge.common.delivery import Outbox
from sonobridge.ingest import adapters
from sonobridge.ingest.adapters.orm import audit_log, instances, outbox
from sonobridge.ingest.adapters.repository import unit_of_work
from sonobridge.ingest.domain.events import InstanceStored
from sonobridge.ingest.domain.model import Channel
from sonobridge.ingest.domain.records import Instance

MIGRATIONS = Path(adapters.__file__).parents[1] / "migrations"
AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WRITER = Principal("nurse", frozenset({"operator"}), "east", "north")


def _instance(sha256: str) -> Instance:
    row = instance_row(7, "9.1", ("east", "north"), claimed_at=AT)
    given = {"sha256": sha256, "stored_at": AT, "series_number": 1, "instance_number": 1}
    return Instance(**(row | given))  # type: ignore[arg-type]


def _claim_announced(unit: object, instance: Instance, outcome: str) -> bool:
    with unit() as work:  # type: ignore[operator]
        work.emit(InstanceStored(instance, None, Channel.STOW, False, AT))
        work.audit.append(
            audit_record(
                at=AT,
                actor=WRITER,
                action="store_instance",
                resource_type="instance",
                resource_id=instance.sop_instance_uid,
                institution_id="east",
                channel="stow",
                outcome=outcome,
            )
        )
        claimed: bool = work.try_claim_announced(instance)
    return claimed


def test_a_lost_claim_writes_neither_its_event_nor_its_audit_record(database_url: str) -> None:
    migrate(database_url, MIGRATIONS)
    engine = create_db_engine(database_url)
    unit = unit_of_work(session_factory(engine), Outbox(outbox))
    try:
        assert _claim_announced(unit, _instance("a" * 64), "first")
        # Another writer of the same SOP Instance UID, with other bytes: its claim finds the row.
        assert not _claim_announced(unit, _instance("b" * 64), "second")
        with engine.connect() as conn:
            assert conn.execute(select(instances.c.sha256)).scalars().all() == ["a" * 64]
            assert conn.execute(select(audit_log.c.outcome)).scalars().all() == ["first"]
            events = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
            assert events == 1
    finally:
        engine.dispose()
