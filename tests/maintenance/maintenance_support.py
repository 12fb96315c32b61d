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

    with deps.units.sessions.begin() as session:
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


def inference_completed(  # type: ignore[no-untyped-def]
    serial: str,
    study: str,
    at: datetime,
    *,
    fraction: float = 0.05,
    suspected: bool = True,
    institution: str = "township-a",
):
    """Return an InferenceCompleted with a probe-health verdict for one exam."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from sonobridge.api.events.v1 import events_pb2

    done = Timestamp()
    done.FromDatetime(at)
    return events_pb2.InferenceCompleted(
        context=events_pb2.ExamContext(
            exam_id=f"exam-{study}",
            study_instance_uid=study,
            institution_id=institution,
            device_serial=serial,
            operator_id="nurse-1",
        ),
        inference_id=f"inf-{study}",
        completed_at=done,
        status=events_pb2.INFERENCE_STATUS_COMPLETED,
        derived_object_keys=[f"derived/{study}/probe-health/1.0/columns.json"],
        probe_health=events_pb2.ProbeHealth(
            device_serial=serial,
            dead_element_fraction=fraction,
            dead_element_columns=int(fraction * 128),
            suspected_fault=suspected,
            confidence=0.9,
        ),
    )


def exam_completed(  # type: ignore[no-untyped-def]
    serial: str, study: str, at: datetime, scan_seconds: float, institution: str = "township-a"
):
    """Return an ExamCompleted for one exam scanned with `serial`."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from sonobridge.api.events.v1 import events_pb2

    done = Timestamp()
    done.FromDatetime(at)
    return events_pb2.ExamCompleted(
        context=events_pb2.ExamContext(
            exam_id=f"exam-{study}",
            study_instance_uid=study,
            institution_id=institution,
            device_serial=serial,
            operator_id="nurse-1",
        ),
        completed_at=done,
        scan_seconds=scan_seconds,
    )


def wait_for(condition, timeout: float = 20.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll `condition` until it returns a truthy value; fail loudly on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
