"""Rules that turn probe-health findings and telemetry into automatic fault tickets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sonobridge.maintenance.domain.errors import InvalidRequest


@dataclass(frozen=True)
class ProbeHealthRule:
    """Open a ticket once dead elements persist over `min_findings` consecutive exams of one
    probe within `window`.

    Consecutive, not merely several: the model's false alarm on one clean exam is rare and
    random (7% of clean real exams at probe-health 1.1.0), while dead lines stay in every exam,
    so a clean exam in between says the earlier signal was noise.
    """

    min_findings: int
    window: timedelta
    min_dead_fraction: float

    def is_fault_signal(self, *, suspected_fault: bool, dead_fraction: float) -> bool:
        """Return True when one exam's probe-health verdict counts towards a ticket."""
        return suspected_fault or dead_fraction >= self.min_dead_fraction

    def persists(self, findings: Sequence[ProbeFinding]) -> bool:
        """Return True when `min_findings` fault signals follow each other inside one window.

        Findings arrive out of order, so they are judged in the order the exams were made.
        """
        run: list[datetime] = []
        for finding in sorted(findings, key=lambda f: f.observed_at):
            if not finding.fault_signal:
                run = []
                continue
            run.append(finding.observed_at)
            while run[-1] - run[0] > self.window:
                run.pop(0)
            if len(run) >= self.min_findings:
                return True
        return False


@dataclass(frozen=True)
class TelemetryReading:
    """The parts of a telemetry sample the rules look at."""

    recorded_at: datetime
    temperature_c: float | None
    drops: int


@dataclass(frozen=True)
class TelemetryRules:
    """Thresholds for drops and overheating."""

    drops_threshold: int
    drops_window: timedelta
    max_temperature_c: float
    overheat_samples: int
    overheat_window: timedelta


@dataclass(frozen=True)
class TelemetryAlarm:
    """A telemetry rule that fired, with the symptom for the ticket."""

    rule: str
    symptom: str


def _max_in_window(
    points: Sequence[tuple[datetime, int]], window: timedelta
) -> tuple[int, datetime | None]:
    points = sorted(points)
    best, best_start = 0, None
    for i, (start, _) in enumerate(points):
        total = sum(n for t, n in points[i:] if t - start <= window)
        if total > best:
            best, best_start = total, start
    return best, best_start


def evaluate_telemetry(
    rules: TelemetryRules, readings: Sequence[TelemetryReading]
) -> list[TelemetryAlarm]:
    """Return the alarms raised by `readings` (any window counts, so order does not matter)."""
    alarms: list[TelemetryAlarm] = []
    drops, _ = _max_in_window([(r.recorded_at, r.drops) for r in readings], rules.drops_window)
    if drops >= rules.drops_threshold:
        hours = rules.drops_window.total_seconds() / 3600
        alarms.append(
            TelemetryAlarm("drops", f"repeated drops: {drops} drops/shocks within {hours:g} h")
        )
    hot = [
        (r.recorded_at, 1)
        for r in readings
        if r.temperature_c is not None and r.temperature_c > rules.max_temperature_c
    ]
    count, _ = _max_in_window(hot, rules.overheat_window)
    if count >= rules.overheat_samples:
        alarms.append(
            TelemetryAlarm(
                "overheating",
                f"overheating: {count} readings above {rules.max_temperature_c:g} °C",
            )
        )
    return alarms


@dataclass(frozen=True)
class TelemetrySample:
    """One telemetry reading as the app sends it."""

    recorded_at: datetime
    battery_percent: float | None = None
    temperature_c: float | None = None
    drops: int = 0
    scan_seconds: float = 0.0
    firmware_version: str = ""
    error_codes: tuple[str, ...] = ()


def check_sample(sample: TelemetrySample, now: datetime) -> None:
    """Reject a reading no real probe can produce."""
    if sample.recorded_at.tzinfo is None:
        raise InvalidRequest("recorded_at must carry a time zone")
    if sample.recorded_at > now + timedelta(days=1):
        raise InvalidRequest(
            f"sample recorded_at {sample.recorded_at.isoformat()} is in the future"
        )
    if sample.battery_percent is not None and not 0 <= sample.battery_percent <= 100:
        raise InvalidRequest("battery_percent must be within 0..100")
    if sample.temperature_c is not None and not -40 <= sample.temperature_c <= 120:
        raise InvalidRequest("temperature must be within -40..120 °C")
    if sample.drops < 0 or sample.scan_seconds < 0:
        raise InvalidRequest("drops and scan_seconds must not be negative")
    if sample.scan_seconds > 86400:
        raise InvalidRequest("scan_seconds of one sample must not exceed a day")


@dataclass(frozen=True)
class TelemetryBatch:
    """What one telemetry batch changed, kept so that a resent batch is answered the same."""

    batch_id: str
    device_serial: str
    received_at: datetime
    accepted: int
    duplicates: int
    opened_ticket_ids: tuple[str, ...]


@dataclass(frozen=True)
class ProbeVerdict:
    """One exam's probe-health verdict from inference."""

    finding_id: str
    device_serial: str
    institution_id: str
    study_instance_uid: str
    observed_at: datetime
    suspected_fault: bool
    dead_element_fraction: float
    dead_element_columns: int
    evidence_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeFinding:
    """A stored probe-health verdict of one exam, waiting for enough company to open a ticket.

    A clean exam is stored (fault_signal False) only while fault signals wait: it interrupts
    their persistence.
    """

    finding_id: str
    observed_at: datetime
    evidence_keys: tuple[str, ...]
    fault_signal: bool = True
