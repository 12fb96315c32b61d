"""Maintenance tickets: validated lifecycle, append-only history, SLA clocks and reassignment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sonobridge.common.history import HistoryEntry
from sonobridge.maintenance.domain.errors import InvalidRequest, InvalidTransition
from sonobridge.maintenance.domain.sla import ZERO, Pause, SlaClock, paused_within


class TicketState(StrEnum):
    """Lifecycle states, in the order a ticket normally passes them."""

    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class TicketSource(StrEnum):
    """What opened the ticket."""

    APP = "app"
    PROBE_HEALTH = "probe_health"
    TELEMETRY = "telemetry"
    PREVENTIVE = "preventive"


S = TicketState
# Remote fixes (firmware push, advice by phone) may resolve a ticket before anyone is on site.
TRANSITIONS: dict[TicketState, frozenset[TicketState]] = {
    S.OPENED: frozenset({S.ACKNOWLEDGED, S.CANCELLED}),
    S.ACKNOWLEDGED: frozenset({S.DISPATCHED, S.RESOLVED, S.CANCELLED}),
    S.DISPATCHED: frozenset({S.ON_SITE, S.RESOLVED, S.CANCELLED}),
    S.ON_SITE: frozenset({S.RESOLVED}),
    S.RESOLVED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}
OPEN_STATES = frozenset({S.OPENED, S.ACKNOWLEDGED, S.DISPATCHED, S.ON_SITE})
PAUSABLE_STATES = frozenset({S.ACKNOWLEDGED, S.DISPATCHED, S.ON_SITE})
ACTIVE_STATES = OPEN_STATES | {S.RESOLVED}

ACK_CLOCK = "acknowledge"
ONSITE_CLOCK = "onsite"


@dataclass(frozen=True)
class SlaTargets:
    """How long the engineer has to acknowledge and to be on site."""

    acknowledge: timedelta
    onsite: timedelta


@dataclass(frozen=True, kw_only=True)
class TicketChange(HistoryEntry):
    """One entry of a ticket's append-only history."""

    from_state: TicketState
    to_state: TicketState
    assignee: str
    note: str = ""


@dataclass
class Ticket:
    """A maintenance case for one device, with its clocks and history."""

    id: str
    device_serial: str
    institution_id: str
    symptom: str
    source: TicketSource
    opened_by: str
    opened_at: datetime
    targets: SlaTargets
    state: TicketState = S.OPENED
    assignee: str = ""
    region: str = ""
    evidence_keys: list[str] = field(default_factory=list)
    study_instance_uid: str = ""
    acknowledged_at: datetime | None = None
    dispatched_at: datetime | None = None
    on_site_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None
    pauses: list[Pause] = field(default_factory=list)
    ack_breached: bool = False
    onsite_breached: bool = False
    loaner_serial: str = ""
    updated_at: datetime | None = None
    history: list[TicketChange] = field(default_factory=list)
    # History entries not yet stored; the repository appends them and never rewrites old ones.
    new_changes: list[TicketChange] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        *,
        ticket_id: str,
        device_serial: str,
        institution_id: str,
        symptom: str,
        source: TicketSource,
        opened_by: str,
        at: datetime,
        targets: SlaTargets,
        assignee: str = "",
        region: str = "",
        evidence_keys: list[str] | None = None,
        study_instance_uid: str = "",
    ) -> Ticket:
        """Open a ticket; both SLA clocks start now."""
        if not symptom.strip():
            raise InvalidRequest("symptom must not be empty")
        if len(symptom) > 2000:
            raise InvalidRequest("symptom must be at most 2000 characters")
        ticket = cls(
            id=ticket_id,
            device_serial=device_serial,
            institution_id=institution_id,
            symptom=symptom.strip(),
            source=source,
            opened_by=opened_by,
            opened_at=at,
            targets=targets,
            assignee=assignee,
            region=region,
            evidence_keys=list(evidence_keys or []),
            study_instance_uid=study_instance_uid,
            updated_at=at,
        )
        ticket._record(at, opened_by, "opened", S.OPENED, note=symptom.strip())
        return ticket

    # -- clocks -------------------------------------------------------------------------------

    @property
    def ack_clock(self) -> SlaClock:
        """Opened -> acknowledged; it also stops if the ticket ends without acknowledgement."""
        return SlaClock(ACK_CLOCK, self.opened_at, self.targets.acknowledge, self._ack_stop())

    @property
    def onsite_clock(self) -> SlaClock:
        """Opened -> on site; a remote resolution or cancellation also stops it."""
        return SlaClock(ONSITE_CLOCK, self.opened_at, self.targets.onsite, self._onsite_stop())

    def _ack_stop(self) -> datetime | None:
        return self.acknowledged_at or self.cancelled_at

    def _onsite_stop(self) -> datetime | None:
        return self.on_site_at or self.resolved_at or self.cancelled_at

    def clock(self, name: str) -> SlaClock:
        """Return the clock called `name`."""
        if name == ACK_CLOCK:
            return self.ack_clock
        if name == ONSITE_CLOCK:
            return self.onsite_clock
        raise ValueError(f"unknown clock {name!r}")

    @property
    def paused(self) -> bool:
        """True while a pause is open."""
        return bool(self.pauses) and self.pauses[-1].ended_at is None

    def paused_total(self, now: datetime) -> timedelta:
        """Return all paused time so far."""
        return paused_within(self.pauses, self.opened_at, now) if self.pauses else ZERO

    def ack_due_at(self, now: datetime) -> datetime:
        """Return the acknowledgement deadline, pauses included."""
        return self.ack_clock.due_at(self.pauses, now)

    def onsite_due_at(self, now: datetime) -> datetime:
        """Return the on-site deadline, pauses included."""
        return self.onsite_clock.due_at(self.pauses, now)

    def time_to_acknowledge(self) -> timedelta | None:
        """Return opened -> acknowledged net of pauses, once acknowledged."""
        if self.acknowledged_at is None:
            return None
        return self.ack_clock.elapsed(self.pauses, self.acknowledged_at)

    def time_to_onsite(self) -> timedelta | None:
        """Return opened -> on site net of pauses, once on site."""
        if self.on_site_at is None:
            return None
        return self.onsite_clock.elapsed(self.pauses, self.on_site_at)

    def running_clocks(self) -> list[SlaClock]:
        """Return the clocks that have not stopped."""
        return [c for c in (self.ack_clock, self.onsite_clock) if c.stopped_at is None]

    def is_breached(self, name: str) -> bool:
        """Return the stored breach flag of clock `name`."""
        return self.ack_breached if name == ACK_CLOCK else self.onsite_breached

    def unflagged_breaches(self, now: datetime) -> list[str]:
        """Return clocks past their target at `now` whose breach is not yet recorded."""
        return [
            c.name
            for c in (self.ack_clock, self.onsite_clock)
            if not self.is_breached(c.name) and c.breached(self.pauses, now)
        ]

    def sla_status(self, now: datetime) -> str:
        """Return `paused`, `breached` or `ok` (the label of the open-tickets gauge)."""
        if self.paused:
            return "paused"
        if self.ack_breached or self.onsite_breached:
            return "breached"
        if any(c.breached(self.pauses, now) for c in self.running_clocks()):
            return "breached"
        return "ok"

    # -- changes ------------------------------------------------------------------------------

    def _record(
        self, at: datetime, actor: str, kind: str, from_state: TicketState, note: str = ""
    ) -> TicketChange:
        change = TicketChange(
            at=at,
            actor=actor,
            kind=kind,
            from_state=from_state,
            to_state=self.state,
            assignee=self.assignee,
            note=note,
        )
        self.history.append(change)
        self.new_changes.append(change)
        self.updated_at = at
        return change

    def _end_pause(self, at: datetime, actor: str, why: str) -> None:
        if self.paused:
            last = self.pauses[-1]
            self.pauses[-1] = Pause(last.started_at, at, last.reason)
            self._record(at, actor, "resumed", self.state, why)

    def _check_time(self, at: datetime) -> None:
        if self.updated_at is not None and at < self.updated_at:
            raise InvalidRequest("a ticket change cannot be dated before the previous change")

    def transition(self, to: TicketState, *, at: datetime, actor: str, note: str = "") -> None:
        """Move to state `to` if the lifecycle allows it; record the step."""
        self._check_time(at)
        if to not in TRANSITIONS[self.state]:
            raise InvalidTransition(
                f"ticket {self.id} cannot go from {self.state.value} to {to.value}"
            )
        if to in (S.ON_SITE, S.RESOLVED, S.CANCELLED):
            # Parts arrived or the case ended: a still-open pause closes with the step.
            self._end_pause(at, actor, f"pause ended by {to.value}")
        before = self.state
        if to is S.ACKNOWLEDGED:
            self.acknowledged_at = at
            if not self.assignee:
                self.assignee = actor
        elif to is S.DISPATCHED:
            self.dispatched_at = at
        elif to is S.ON_SITE:
            self.on_site_at = at
        elif to is S.RESOLVED:
            self.resolved_at = at
        elif to is S.CLOSED:
            self.closed_at = at
        elif to is S.CANCELLED:
            self.cancelled_at = at
        self.state = to
        self._record(at, actor, "transition", before, note)

    def pause(self, *, at: datetime, actor: str, reason: str) -> None:
        """Stop the running clocks (e.g. waiting for parts)."""
        self._check_time(at)
        if self.state not in PAUSABLE_STATES:
            raise InvalidTransition(
                f"ticket {self.id} in state {self.state.value} cannot be paused; "
                "acknowledge it first"
            )
        if self.paused:
            raise InvalidTransition(f"ticket {self.id} is already paused")
        if not reason.strip():
            raise InvalidRequest("a pause needs a reason")
        self.pauses.append(Pause(at, None, reason.strip()))
        self._record(at, actor, "paused", self.state, reason.strip())

    def resume(self, *, at: datetime, actor: str, note: str = "") -> None:
        """Restart the clocks after a pause."""
        self._check_time(at)
        if not self.paused:
            raise InvalidTransition(f"ticket {self.id} is not paused")
        self._end_pause(at, actor, note or "resumed")

    def reassign(self, engineer: str, *, at: datetime, actor: str, note: str = "") -> None:
        """Hand the ticket to another engineer.

        The clocks are the centre's promise, not the engineer's: reassignment never restarts or
        extends them. A dispatched ticket returns to acknowledged because the new engineer has
        not set off yet; the dispatch time of the first engineer stays in the history.
        """
        self._check_time(at)
        if self.state not in OPEN_STATES:
            raise InvalidTransition(f"ticket {self.id} in state {self.state.value} is not open")
        if not engineer.strip():
            raise InvalidRequest("engineer must not be empty")
        if engineer == self.assignee:
            raise InvalidTransition(f"ticket {self.id} is already assigned to {engineer}")
        before = self.state
        previous = self.assignee or "nobody"
        self.assignee = engineer
        if self.state is S.DISPATCHED:
            self.state = S.ACKNOWLEDGED
            self.dispatched_at = None
        self._record(at, actor, "reassigned", before, note or f"from {previous}")

    def record_breach(self, clock: str, *, at: datetime, actor: str, escalate_to: str) -> bool:
        """Flag clock `clock` as breached once; return False if it already was."""
        if self.is_breached(clock):
            return False
        if clock == ACK_CLOCK:
            self.ack_breached = True
        else:
            self.onsite_breached = True
        who = self.assignee or "unassigned"
        note = f"{clock} SLA breached (assignee {who})"
        if escalate_to:
            note += f"; escalated to {escalate_to}"
        self._record(at, actor, "breach", self.state, note)
        return True

    def add_evidence(self, keys: list[str], *, at: datetime, actor: str, note: str) -> list[str]:
        """Link evidence object keys; return the ones that were new."""
        fresh = [k for k in keys if k not in self.evidence_keys]
        if fresh or note:
            self.evidence_keys.extend(fresh)
            self._record(max(at, self.updated_at or at), actor, "evidence", self.state, note)
        return fresh

    def lend_loaner(self, serial: str, *, at: datetime, actor: str) -> None:
        """Record a spare probe lent to the centre for this case."""
        self._check_time(at)
        if self.state not in ACTIVE_STATES:
            raise InvalidTransition(f"ticket {self.id} is {self.state.value}; no loaner needed")
        if self.loaner_serial:
            raise InvalidTransition(f"ticket {self.id} already has loaner {self.loaner_serial}")
        self.loaner_serial = serial
        self._record(at, actor, "loaner_lent", self.state, serial)

    def take_back_loaner(self, *, at: datetime, actor: str) -> str:
        """Record the loaner's return; return its serial."""
        self._check_time(at)
        if not self.loaner_serial:
            raise InvalidTransition(f"ticket {self.id} has no loaner out")
        serial, self.loaner_serial = self.loaner_serial, ""
        self._record(at, actor, "loaner_returned", self.state, serial)
        return serial

    def check_can_close(self) -> None:
        """Refuse to close while a loaner is still out, so spares are never lost track of."""
        if self.loaner_serial:
            raise InvalidTransition(
                f"return loaner {self.loaner_serial} before closing ticket {self.id}"
            )
