"""Scan hours per device and centre, idle and overloaded devices, and redistribution moves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime


def daily_seconds(exam_seconds: float, telemetry_seconds: float) -> float:
    """Return one device-day's scan time.

    Exams and telemetry both measure the same scanning, so adding them would count it twice;
    each can miss some (unsynced telemetry, scans without an uploaded exam), so take the larger.
    """
    return max(exam_seconds, telemetry_seconds)


@dataclass(frozen=True)
class UtilisationPolicy:
    """Hours per day below which a device is idle and above which it is overloaded."""

    idle_hours_per_day: float
    overloaded_hours_per_day: float

    @property
    def comfortable_hours_per_day(self) -> float:
        """Return the load a donor centre may reach after giving a device away."""
        return (self.idle_hours_per_day + self.overloaded_hours_per_day) / 2


@dataclass(frozen=True)
class DeviceUsage:
    """Scan seconds by day for one device that is usable at `institution`."""

    serial: str
    institution_id: str
    seconds_by_day: Mapping[date, float]


@dataclass(frozen=True)
class DeviceLoad:
    """One device over the period."""

    serial: str
    institution_id: str
    scan_hours: float
    hours_per_day: float
    band: str


@dataclass(frozen=True)
class CentreLoad:
    """One institution over the period."""

    institution_id: str
    devices: int
    scan_hours: float
    hours_per_device_day: float
    band: str


@dataclass(frozen=True)
class Move:
    """A suggested transfer of one device between centres."""

    serial: str
    from_institution: str
    to_institution: str
    reason: str


@dataclass(frozen=True)
class UtilisationReport:
    """Loads for a period and the moves that would even them out."""

    days: int
    devices: list[DeviceLoad]
    centres: list[CentreLoad]
    moves: list[Move]

    @property
    def idle(self) -> list[DeviceLoad]:
        """Devices below the idle threshold."""
        return [d for d in self.devices if d.band == "idle"]

    @property
    def overloaded(self) -> list[DeviceLoad]:
        """Devices above the overload threshold."""
        return [d for d in self.devices if d.band == "overloaded"]


def _band(policy: UtilisationPolicy, hours_per_day: float) -> str:
    if hours_per_day < policy.idle_hours_per_day:
        return "idle"
    if hours_per_day > policy.overloaded_hours_per_day:
        return "overloaded"
    return "normal"


def analyse(
    policy: UtilisationPolicy, usage: Sequence[DeviceUsage], days: int
) -> UtilisationReport:
    """Compute loads over `days` days and greedy moves from idle-heavy to overloaded centres."""
    if days <= 0:
        raise ValueError("days must be positive")
    devices = []
    for u in sorted(usage, key=lambda u: u.serial):
        hours = sum(u.seconds_by_day.values()) / 3600
        devices.append(
            DeviceLoad(u.serial, u.institution_id, hours, hours / days, _band(policy, hours / days))
        )
    members: dict[str, list[DeviceLoad]] = {}
    for d in devices:
        members.setdefault(d.institution_id, []).append(d)

    def centre(inst: str, held: list[DeviceLoad]) -> CentreLoad:
        hours = sum(d.scan_hours for d in held)
        per = hours / (days * len(held)) if held else 0.0
        return CentreLoad(inst, len(held), hours, per, _band(policy, per))

    centres = [centre(i, m) for i, m in sorted(members.items())]
    moves = _suggest_moves(policy, {i: list(m) for i, m in members.items()}, days)
    return UtilisationReport(days, devices, centres, moves)


def _suggest_moves(
    policy: UtilisationPolicy, members: dict[str, list[DeviceLoad]], days: int
) -> list[Move]:
    # Demand stays with the centre (its patients), so a moved probe spreads the recipient's
    # hours over one more device and the donor's over one fewer.
    demand = {i: sum(d.scan_hours for d in m) / days for i, m in members.items()}

    def load(inst: str) -> float:
        return demand[inst] / len(members[inst]) if members[inst] else float("inf")

    moves: list[Move] = []
    # Each move takes a probe from a centre left at most comfortable to one above overload, so
    # it cannot flow back; the bound is only a guard.
    for _ in range(sum(len(m) for m in members.values())):
        hot = sorted(
            (i for i in members if load(i) > policy.overloaded_hours_per_day),
            key=lambda i: (-load(i), i),
        )
        donors = sorted(
            (
                i
                for i in members
                if len(members[i]) >= 2
                and demand[i] / (len(members[i]) - 1) <= policy.comfortable_hours_per_day
            ),
            key=lambda i: (load(i), i),
        )
        if not hot or not donors:
            return moves
        to, source = hot[0], donors[0]
        device = min(members[source], key=lambda d: (d.scan_hours, d.serial))
        members[source].remove(device)
        members[to].append(device)
        moves.append(
            Move(
                device.serial,
                source,
                to,
                f"{to} runs {demand[to] / (len(members[to]) - 1):.1f} h/day per probe; "
                f"{source} would run {load(source):.1f} h/day per probe without it",
            )
        )
    return moves


@dataclass(frozen=True)
class DailyUsage:
    """Scan seconds of one device on one local day, as exams and as telemetry reported them."""

    device_serial: str
    day: date
    institution_id: str
    exam_seconds: float = 0.0
    telemetry_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        """Return the day's scan time (see daily_seconds)."""
        return daily_seconds(self.exam_seconds, self.telemetry_seconds)


@dataclass(frozen=True)
class ExamScan:
    """A completed exam's scan time for its probe, counted once per exam key."""

    exam_key: str
    device_serial: str
    institution_id: str
    completed_at: datetime
    scan_seconds: float
