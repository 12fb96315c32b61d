"""The audit record and its SQL log: appended in the caller's session, read back per resource."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import MetaData, create_engine
from sqlalchemy.orm import Session

from sonobridge.common.audit import AuditRecord, audit_record
from sonobridge.common.auth import Principal
from sonobridge.common.sql_records import SqlAuditLog, audit_table

AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def test_a_record_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        AuditRecord(at=datetime(2026, 11, 30), actor="u", action="a")


def test_a_callers_record_names_them_and_the_resources_institution() -> None:
    caller = Principal("dr-li", frozenset({"radiologist"}), institution="county-hospital")
    record = audit_record(
        at=AT,
        actor=caller,
        action="view_instance",
        institution_id="township-clinic",
        resource_type="instance",
        resource_id="1.2.3",
        channel="dicomweb",
    )
    assert (record.actor, record.roles) == ("dr-li", frozenset({"radiologist"}))
    # The resource's institution, not the caller's: a county reader sees a township's exam.
    assert record.institution_id == "township-clinic"
    assert (record.outcome, record.related_id, record.detail) == ("ok", None, "")


def test_records_come_back_in_order_with_every_field() -> None:
    metadata = MetaData()
    table = audit_table(metadata)
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    shanghai = timezone(timedelta(hours=8))
    with Session(engine) as session, session.begin():
        log = SqlAuditLog(session, table)
        log.append(
            AuditRecord(
                at=AT.astimezone(shanghai),
                actor="dr-li",
                roles=frozenset({"radiologist", "admin"}),
                institution_id="county-hospital",
                action="signed",
                resource_type="report",
                resource_id="rep-1",
                related_id="read-1",
                channel="rest",
                request_id="req-9",
            )
        )
        log.append(
            AuditRecord(
                at=AT,
                actor="dr-li",
                action="view_read",
                resource_type="read",
                resource_id="read-1",
                outcome="rejected:" + "x" * 100,
                detail="y" * 5000,
            )
        )
        log.append(AuditRecord(at=AT, actor="ops", action="roster_set", detail="ward: 3 shifts"))
    with Session(engine) as session:
        log = SqlAuditLog(session, table)
        everything = log.trail()
        assert [r.action for r in everything] == ["signed", "view_read", "roster_set"]
        signed = everything[0]
        assert signed.at == AT and signed.at.tzinfo is not None
        assert signed.roles == frozenset({"radiologist", "admin"})
        assert (signed.institution_id, signed.channel, signed.request_id) == (
            "county-hospital",
            "rest",
            "req-9",
        )
        assert len(everything[1].outcome) == 32 and len(everything[1].detail) == 2000
        about_read = log.trail(resource_type="read", resource_id="read-1")
        assert [r.action for r in about_read] == ["signed", "view_read"]
        assert [r.action for r in log.trail(resource_type="report")] == ["signed"]
        assert [r.action for r in log.trail(after=everything[1].id or 0)] == ["roster_set"]
        assert len(log.trail(limit=1)) == 1
