"""Helpers shared by the maintenance tests: a fake clock, settings and principals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sonobridge.common.auth import Principal
from sonobridge.maintenance.settings import MaintenanceSettings, RegionSettings, ScheduleSettings

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward and return the new time."""
        self.now += timedelta(**delta)
        return self.now

    def at(self, when: datetime) -> datetime:
        """Jump to `when` (never backwards)."""
        assert when >= self.now, "the fake clock only moves forward"
        self.now = when
        return when


def maintenance_config() -> MaintenanceSettings:
    """Two regions, three engineers, one preventive schedule; defaults for SLA and rules."""
    return MaintenanceSettings(
        regions=[
            RegionSettings(
                name="north",
                institutions=["township-a", "township-b", "county-hospital"],
                engineers=["eng-li", "eng-wang"],
                escalation_contact="manager-zhao",
            ),
            RegionSettings(
                name="south",
                institutions=["township-c"],
                engineers=["eng-chen"],
                escalation_contact="manager-sun",
            ),
        ],
        preventive=[ScheduleSettings(model="HP-200", kind="calibration", every_days=90)],
    )


ADMIN = Principal("admin-1", frozenset({"admin"}))
SERVICE = Principal("inference", frozenset({"service"}))


def engineer(name: str) -> Principal:
    """Return an engineer principal."""
    return Principal(name, frozenset({"engineer"}), "vendor")


def operator(name: str, institution: str) -> Principal:
    """Return an operator principal at `institution`."""
    return Principal(name, frozenset({"operator"}), institution)


def outbox_events(deps, type_suffix: str) -> list:  # type: ignore[no-untyped-def]
    """Return the decoded outbox messages whose ce_type ends with `type_suffix`, in order."""
    from sqlalchemy import select

    from sonobridge.api.events.v1.topics import message_class_for
    from sonobridge.maintenance.adapters import orm

    with deps.sessions.begin() as session:
        rows = session.execute(select(orm.outbox).order_by(orm.outbox.c.id)).fetchall()
    found = []
    for row in rows:
        if row.type.endswith(type_suffix):
            message = message_class_for(row.type)()
            message.ParseFromString(row.data)
            found.append(message)
    return found


def sample_value(registry, name: str, labels: dict[str, str] | None = None) -> float:  # type: ignore[no-untyped-def]
    """Return a metric sample's value from a registry (0 when absent)."""
    value = registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value
