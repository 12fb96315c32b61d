"""Scan-time use cases: count a completed exam's scan time for its probe."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.utilisation import DailyUsage, ExamScan
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.devices import device_for_event
from sonobridge.maintenance.ports import UnitOfWork


def add_usage(
    deps: Dependencies,
    work: UnitOfWork,
    serial: str,
    institution: str,
    day: date,
    *,
    exam: float = 0,
    telemetry: float = 0,
) -> None:
    """Add scan seconds to a device-day and count the growth of its scan time once."""
    stored = work.usage.day(serial, day)
    if stored is None:
        after = DailyUsage(serial, day, institution, exam, telemetry)
        work.usage.add_day(after)
        grew = after.seconds
    else:
        after = replace(
            stored,
            exam_seconds=stored.exam_seconds + exam,
            telemetry_seconds=stored.telemetry_seconds + telemetry,
        )
        work.usage.save_day(after)
        grew = after.seconds - stored.seconds
    if grew > 0:
        work.after_commit.append(lambda: deps.metrics.scan_seconds.labels(institution).inc(grew))


def record_exam_usage(deps: Dependencies, work: UnitOfWork, scan: ExamScan) -> bool:
    """Count an exam's scan time for its probe once; return False for a repeat."""
    if not scan.device_serial:
        return False
    if scan.scan_seconds < 0:
        raise InvalidRequest("scan_seconds must not be negative")
    if not scan.exam_key:
        raise InvalidRequest("ExamCompleted names neither exam_id nor study_instance_uid")
    if work.usage.exam_counted(scan.exam_key):
        return False
    day = deps.day(scan.completed_at)
    device = device_for_event(work, scan.device_serial, scan.institution_id, scan.completed_at)
    device.observe(scan.completed_at)
    work.devices.save(device)
    counted = replace(scan, institution_id=scan.institution_id or device.holder)
    work.usage.count_exam(counted, day)
    add_usage(deps, work, device.serial, counted.institution_id, day, exam=scan.scan_seconds)
    return True
