"""Probe-health use case: record an exam's dead-element verdict and open or extend a ticket."""

from __future__ import annotations

from dataclasses import replace

from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.health import ProbeVerdict
from sonobridge.maintenance.domain.tickets import TicketSource
from sonobridge.maintenance.handlers import SERVICE, Dependencies
from sonobridge.maintenance.handlers.devices import device_for_event
from sonobridge.maintenance.handlers.lifecycle import open_ticket_for
from sonobridge.maintenance.ports import UnitOfWork


def record_probe_health(deps: Dependencies, work: UnitOfWork, verdict: ProbeVerdict) -> str:
    """Record one exam's probe-health verdict; open or extend a ticket when the rule says so.

    Returns 'ignored', 'duplicate', 'interrupted', 'recorded', 'linked' or 'opened'.
    """
    serial = verdict.device_serial
    rule = deps.config.probe_health.rule()
    if not serial:
        return "ignored"
    if not rule.is_fault_signal(
        suspected_fault=verdict.suspected_fault, dead_fraction=verdict.dead_element_fraction
    ):
        return _record_clean_exam(work, verdict)
    if not verdict.finding_id:
        raise InvalidRequest("InferenceCompleted names neither inference_id nor study")
    if work.findings.known(verdict.finding_id):
        return "duplicate"
    at = verdict.observed_at
    device = device_for_event(work, serial, verdict.institution_id, at)
    evidence = list(dict.fromkeys(verdict.evidence_keys))
    work.findings.add(replace(verdict, evidence_keys=tuple(evidence)))
    now = deps.now()
    note = (
        f"probe health: {verdict.dead_element_fraction:.1%} dead elements in exam "
        f"{verdict.study_instance_uid}"
    )
    open_ticket = work.tickets.open_fault_ticket(serial)
    if open_ticket is not None:
        # One open case per probe: more evidence joins it instead of opening a duplicate.
        open_ticket.add_evidence(evidence, at=now, actor=SERVICE, note=note)
        work.tickets.save(open_ticket)
        work.findings.link([verdict.finding_id], open_ticket.id)
        return "linked"
    # Signals from before the last repair are history, not faults.
    pending = work.findings.unticketed(serial, work.tickets.last_repair(serial))
    if not rule.persists(pending):
        return "recorded"
    signals = [f for f in pending if f.fault_signal]
    keys = list(dict.fromkeys(k for f in signals for k in f.evidence_keys))
    ticket = open_ticket_for(
        deps,
        work,
        device,
        symptom=(
            f"dead transducer elements seen in {len(signals)} exams "
            f"(latest {verdict.dead_element_fraction:.1%}, "
            f"{verdict.dead_element_columns} dark scan lines)"
        ),
        source=TicketSource.PROBE_HEALTH,
        opened_by=SERVICE,
        at=now,
        institution_id=verdict.institution_id or device.holder,
        evidence=keys,
        study_uid=verdict.study_instance_uid,
        rule="probe_health",
    )
    work.findings.link([f.finding_id for f in pending], ticket.id)
    return "opened"


def _record_clean_exam(work: UnitOfWork, verdict: ProbeVerdict) -> str:
    """Keep a clean exam only while fault signals of its probe wait: it interrupts them."""
    serial = verdict.device_serial
    if not verdict.finding_id or work.tickets.open_fault_ticket(serial) is not None:
        return "ignored"
    pending = work.findings.unticketed(serial, work.tickets.last_repair(serial))
    if not any(f.fault_signal for f in pending) or work.findings.known(verdict.finding_id):
        return "ignored"
    work.findings.add(verdict, fault_signal=False)
    return "interrupted"
