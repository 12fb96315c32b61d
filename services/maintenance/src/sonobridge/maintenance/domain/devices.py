"""The probe fleet: devices, their service status, operators, transfers and loans."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sonobridge.common.history import HistoryEntry
from sonobridge.maintenance.domain.errors import DeviceUnavailable, InvalidRequest


class DeviceStatus(StrEnum):
    """Service status of a probe."""

    IN_SERVICE = "in_service"
    FAULTY = "faulty"
    IN_REPAIR = "in_repair"
    LOANED_OUT = "loaned_out"
    RETIRED = "retired"


@dataclass(frozen=True)
class StatusChange:
    """A device status change to announce (DeviceStatusChanged)."""

    serial: str
    institution_id: str
    from_status: DeviceStatus
    to_status: DeviceStatus
    at: datetime
    reason: str
    ticket_id: str = ""


@dataclass
class Device:
    """One handheld probe."""

    serial: str
    model: str
    institution_id: str
    manufacturer: str = ""
    firmware_version: str = ""
    status: DeviceStatus = DeviceStatus.IN_SERVICE
    operators: list[str] = field(default_factory=list)
    spare: bool = False
    loaned_to: str = ""
    registered_at: datetime | None = None
    last_seen_at: datetime | None = None
    firmware_seen_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.serial.strip():
            raise InvalidRequest("device serial must not be empty")
        if not self.institution_id.strip():
            raise InvalidRequest("device institution must not be empty")

    @property
    def holder(self) -> str:
        """Return the institution that has the probe in hand now."""
        return self.loaned_to or self.institution_id

    def set_status(
        self, to: DeviceStatus, *, at: datetime, reason: str, ticket_id: str = ""
    ) -> StatusChange | None:
        """Change status; return the change, or None when nothing changed."""
        if self.status is DeviceStatus.RETIRED and to is not DeviceStatus.RETIRED:
            raise DeviceUnavailable(f"device {self.serial} is retired")
        if to is self.status:
            return None
        change = StatusChange(
            self.serial, self.institution_id, self.status, to, at, reason, ticket_id
        )
        self.status = to
        return change

    def transfer(self, to_institution: str) -> str:
        """Move the device's home to another institution; return the previous home."""
        if not to_institution.strip():
            raise InvalidRequest("target institution must not be empty")
        if to_institution == self.institution_id:
            raise InvalidRequest(f"device {self.serial} already belongs to {to_institution}")
        if self.status is DeviceStatus.LOANED_OUT:
            raise DeviceUnavailable(f"device {self.serial} is on loan; take it back first")
        if self.status is DeviceStatus.RETIRED:
            raise DeviceUnavailable(f"device {self.serial} is retired")
        previous, self.institution_id = self.institution_id, to_institution
        # Operators are people of the old centre; the new centre assigns its own.
        self.operators = []
        return previous

    def lend_to(self, institution: str, *, at: datetime, ticket_id: str) -> StatusChange:
        """Lend this spare to `institution`."""
        if not self.spare:
            raise DeviceUnavailable(f"device {self.serial} is not a spare")
        if self.status is not DeviceStatus.IN_SERVICE:
            raise DeviceUnavailable(f"spare {self.serial} is {self.status.value}, not in service")
        change = self.set_status(
            DeviceStatus.LOANED_OUT, at=at, reason=f"lent to {institution}", ticket_id=ticket_id
        )
        self.loaned_to = institution
        assert change is not None
        return change

    def take_back(self, *, at: datetime, ticket_id: str) -> StatusChange:
        """Return this loaner to its home pool."""
        if self.status is not DeviceStatus.LOANED_OUT:
            raise DeviceUnavailable(f"device {self.serial} is not on loan")
        holder, self.loaned_to = self.loaned_to, ""
        change = self.set_status(
            DeviceStatus.IN_SERVICE, at=at, reason=f"returned from {holder}", ticket_id=ticket_id
        )
        assert change is not None
        return change

    def observe(self, at: datetime, firmware: str = "") -> None:
        """Note a sign of life; firmware only moves forward in time, so late batches never win."""
        if self.last_seen_at is None or at > self.last_seen_at:
            self.last_seen_at = at
        if firmware and (self.firmware_seen_at is None or at >= self.firmware_seen_at):
            self.firmware_version = firmware
            self.firmware_seen_at = at


@dataclass(frozen=True, kw_only=True)
class DeviceHistoryEntry(HistoryEntry):
    """One registration, transfer, operator or status change in a device's history."""

    from_value: str = ""
    to_value: str = ""
    note: str = ""
    ticket_id: str = ""
