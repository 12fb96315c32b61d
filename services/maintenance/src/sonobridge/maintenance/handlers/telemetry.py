"""Telemetry use case: store a batch idempotently and open tickets on drops or overheating."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict
from sonobridge.maintenance.domain.devices import Device
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.health import (
    TelemetryBatch,
    TelemetrySample,
    check_sample,
    evaluate_telemetry,
)
from sonobridge.maintenance.domain.tickets import TicketSource
from sonobridge.maintenance.handlers import SERVICE, Dependencies, scope
from sonobridge.maintenance.handlers.lifecycle import open_ticket_for
from sonobridge.maintenance.handlers.usage import add_usage
from sonobridge.maintenance.ports import UnitOfWork


@dataclass(frozen=True)
class TelemetryResult:
    """What a telemetry batch changed."""

    accepted: int
    duplicates: int
    opened_ticket_ids: list[str]
    replayed: bool = False


def record_telemetry(
    deps: Dependencies,
    principal: Principal,
    *,
    device_serial: str,
    samples: Sequence[TelemetrySample],
    batch_id: str = "",
) -> TelemetryResult:
    """Store a telemetry batch idempotently (per batch id and per sample time) and apply rules."""
    principal.require_role("operator", "physician", "engineer", "admin", "service")
    now = deps.now()
    if not samples:
        raise InvalidRequest("a telemetry batch needs at least one sample")
    if len(samples) > deps.config.telemetry.max_samples_per_batch:
        raise InvalidRequest(
            f"at most {deps.config.telemetry.max_samples_per_batch} samples per batch"
        )
    for sample in samples:
        check_sample(sample, now)
    with deps.units() as work:
        if batch_id:
            known = work.telemetry.batch(batch_id)
            if known is not None:
                if known.device_serial != device_serial:
                    raise Conflict(f"batch {batch_id} was sent for device {known.device_serial}")
                return TelemetryResult(0, len(samples), list(known.opened_ticket_ids), True)
        device = scope.device(work, device_serial, principal)
        stored = work.telemetry.stored_times(device_serial, [s.recorded_at for s in samples])
        fresh: dict[datetime, TelemetrySample] = {}
        for sample in samples:
            at = sample.recorded_at.astimezone(UTC)
            if at not in stored and at not in fresh:
                fresh[at] = replace(sample, recorded_at=at)
        work.telemetry.add_samples(device_serial, batch_id, [s for _, s in sorted(fresh.items())])
        per_day: dict[date, float] = {}
        for at, sample in sorted(fresh.items()):
            device.observe(at, sample.firmware_version)
            if sample.scan_seconds:
                day = deps.day(at)
                per_day[day] = per_day.get(day, 0.0) + sample.scan_seconds
        for day, seconds in sorted(per_day.items()):
            add_usage(deps, work, device_serial, device.holder, day, telemetry=seconds)
        work.devices.save(device)
        opened = _apply_rules(deps, work, device, list(fresh), now) if fresh else []
        if batch_id:
            work.telemetry.add_batch(
                TelemetryBatch(
                    batch_id=batch_id,
                    device_serial=device_serial,
                    received_at=now,
                    accepted=len(fresh),
                    duplicates=len(samples) - len(fresh),
                    opened_ticket_ids=tuple(opened),
                )
            )
        work.audit.write(
            at=now,
            actor=principal.user,
            action="telemetry.record",
            target=device_serial,
            detail=f"{len(fresh)} new of {len(samples)}",
        )
    return TelemetryResult(len(fresh), len(samples) - len(fresh), opened)


def _apply_rules(
    deps: Dependencies, work: UnitOfWork, device: Device, new_times: list[datetime], now: datetime
) -> list[str]:
    rules = deps.config.telemetry.rules()
    span = max(rules.drops_window, rules.overheat_window)
    readings = work.telemetry.readings(device.serial, min(new_times) - span, max(new_times) + span)
    watermark = work.tickets.last_repair(device.serial)
    opened: list[str] = []
    for alarm_rule in ("drops", "overheating"):
        last = work.tickets.latest_opened_at(
            device.serial, source=TicketSource.TELEMETRY, rule=alarm_rule
        )
        since = max((t for t in (watermark, last) if t is not None), default=None)
        considered = [r for r in readings if since is None or r.recorded_at > since]
        alarms = [a for a in evaluate_telemetry(rules, considered) if a.rule == alarm_rule]
        if not alarms:
            continue
        alarm = alarms[0]
        current = work.tickets.open_fault_ticket(device.serial)
        if current is not None:
            marker = f"telemetry {alarm.rule}:"
            opened_by_rule = work.tickets.rule_of(current.id) == alarm.rule
            if not opened_by_rule and not any(c.note.startswith(marker) for c in current.history):
                current.add_evidence([], at=now, actor=SERVICE, note=f"{marker} {alarm.symptom}")
                work.tickets.save(current)
            continue
        ticket = open_ticket_for(
            deps,
            work,
            device,
            symptom=alarm.symptom,
            source=TicketSource.TELEMETRY,
            opened_by=SERVICE,
            at=now,
            rule=alarm.rule,
        )
        opened.append(ticket.id)
    return opened
