"""Request bodies of the REST API, validated by pydantic before a handler sees them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from sonobridge.common.inputs import Instant, Int32
from sonobridge.maintenance.domain.tickets import TicketState


class DeviceIn(BaseModel):
    """A probe to register."""

    serial: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=128)
    institution_id: str = Field(min_length=1, max_length=128)
    manufacturer: str = Field("", max_length=128)
    firmware_version: str = Field("", max_length=64)
    spare: bool = False
    operators: list[str] = []


class TransferIn(BaseModel):
    """Move a probe to another institution."""

    to_institution_id: str = Field(min_length=1, max_length=128)
    note: str = Field("", max_length=2000)


class OperatorsIn(BaseModel):
    """The operators assigned to a probe."""

    operators: list[str]


class RetireIn(BaseModel):
    """Why a probe leaves the fleet."""

    reason: str = Field(min_length=1, max_length=2000)


class TicketIn(BaseModel):
    """A one-tap fault report."""

    device_serial: str = Field(min_length=1, max_length=128)
    symptom: str = Field(min_length=1, max_length=2000)
    institution_id: str = Field("", max_length=128)


class TransitionIn(BaseModel):
    """Move a ticket to another state."""

    to: TicketState
    note: str = Field("", max_length=2000)


class PauseIn(BaseModel):
    """Stop the SLA clocks."""

    reason: str = Field(min_length=1, max_length=2000)


class NoteIn(BaseModel):
    """An optional note."""

    note: str = Field("", max_length=2000)


class AssigneeIn(BaseModel):
    """Hand a ticket to another engineer."""

    engineer: str = Field(min_length=1, max_length=128)
    note: str = Field("", max_length=2000)


class LoanerIn(BaseModel):
    """The spare to lend."""

    device_serial: str = Field(min_length=1, max_length=128)


class SampleIn(BaseModel):
    """One telemetry reading."""

    recorded_at: Instant
    battery_percent: float | None = None
    temperature_celsius: float | None = None
    drops: Int32 = 0
    scan_seconds: float = 0.0
    firmware_version: str = Field("", max_length=64)
    error_codes: list[str] = []


class TelemetryBatchIn(BaseModel):
    """A batch of readings from the app's offline buffer."""

    batch_id: str = Field(min_length=1, max_length=128)
    device_serial: str = Field(min_length=1, max_length=128)
    samples: list[SampleIn] = Field(min_length=1)
