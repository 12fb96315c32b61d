"""Maintenance service settings: the shared sections plus SLA, rules, schedules and regions."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from sonobridge.common.settings import ServiceSettings
from sonobridge.maintenance.domain.assignment import Region
from sonobridge.maintenance.domain.health import ProbeHealthRule, TelemetryRules
from sonobridge.maintenance.domain.preventive import PreventiveSchedule
from sonobridge.maintenance.domain.tickets import SlaTargets
from sonobridge.maintenance.domain.utilisation import UtilisationPolicy


class SlaSettings(BaseModel):
    """Acknowledge and on-site targets; preventive tickets get their own, looser ones."""

    acknowledge_minutes: float = Field(default=60, gt=0)
    onsite_hours: float = Field(default=24, gt=0)
    preventive_acknowledge_hours: float = Field(default=24, gt=0)
    preventive_onsite_hours: float = Field(default=168, gt=0)

    def targets(self, preventive: bool = False) -> SlaTargets:
        """Return the targets for a fault or a preventive ticket."""
        if preventive:
            return SlaTargets(
                timedelta(hours=self.preventive_acknowledge_hours),
                timedelta(hours=self.preventive_onsite_hours),
            )
        return SlaTargets(
            timedelta(minutes=self.acknowledge_minutes), timedelta(hours=self.onsite_hours)
        )


class ProbeHealthSettings(BaseModel):
    """How many exams with dead-element findings, within what window, open a ticket."""

    min_findings: int = Field(default=3, ge=1)
    window_hours: float = Field(default=72, gt=0)
    min_dead_fraction: float = Field(default=0.02, gt=0, le=1)

    def rule(self) -> ProbeHealthRule:
        """Return the domain rule."""
        return ProbeHealthRule(
            self.min_findings, timedelta(hours=self.window_hours), self.min_dead_fraction
        )


class TelemetrySettings(BaseModel):
    """Drop and temperature thresholds."""

    drops_threshold: int = Field(default=3, ge=1)
    drops_window_hours: float = Field(default=24, gt=0)
    max_temperature_celsius: float = 43.0
    overheat_samples: int = Field(default=3, ge=1)
    overheat_window_hours: float = Field(default=24, gt=0)
    max_samples_per_batch: int = Field(default=5000, ge=1)

    def rules(self) -> TelemetryRules:
        """Return the domain rules."""
        return TelemetryRules(
            self.drops_threshold,
            timedelta(hours=self.drops_window_hours),
            self.max_temperature_celsius,
            self.overheat_samples,
            timedelta(hours=self.overheat_window_hours),
        )


class ScheduleSettings(BaseModel):
    """One preventive task for one model."""

    model: str
    kind: str
    every_days: float = Field(gt=0)

    def schedule(self) -> PreventiveSchedule:
        """Return the domain schedule."""
        return PreventiveSchedule(self.model, self.kind, timedelta(days=self.every_days))


class RegionSettings(BaseModel):
    """Institutions an engineer team covers, and whom breaches escalate to."""

    name: str
    institutions: list[str]
    engineers: list[str]
    escalation_contact: str = ""

    def region(self) -> Region:
        """Return the domain region."""
        return Region(
            self.name,
            frozenset(self.institutions),
            tuple(self.engineers),
            self.escalation_contact,
        )


class UtilisationSettings(BaseModel):
    """Bands of scan hours per device and day."""

    idle_hours_per_day: float = Field(default=2, ge=0)
    overloaded_hours_per_day: float = Field(default=6, gt=0)
    # Days are counted in the consortium's local time (e.g. 8 for China Standard Time).
    utc_offset_hours: float = Field(default=0, ge=-14, le=14)

    def policy(self) -> UtilisationPolicy:
        """Return the domain policy."""
        return UtilisationPolicy(self.idle_hours_per_day, self.overloaded_hours_per_day)


class MaintenanceSettings(BaseModel):
    """Everything the maintenance rules need (MAINTENANCE__* variables; lists as JSON)."""

    sla: SlaSettings = SlaSettings()
    probe_health: ProbeHealthSettings = ProbeHealthSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    utilisation: UtilisationSettings = UtilisationSettings()
    preventive: list[ScheduleSettings] = []
    regions: list[RegionSettings] = []
    # Tests on a shared broker pass a unique group; deployments keep the default.
    consumer_group: str = "sonobridge-maintenance"
    timer_interval_seconds: float = Field(default=5.0, gt=0)
    max_photo_bytes: int = Field(default=20 * 1024 * 1024, gt=0)

    def schedules(self) -> list[PreventiveSchedule]:
        """Return every preventive schedule."""
        return [s.schedule() for s in self.preventive]

    def domain_regions(self) -> list[Region]:
        """Return every region."""
        return [r.region() for r in self.regions]


class Settings(ServiceSettings):
    """Settings of the maintenance service."""

    maintenance: MaintenanceSettings = MaintenanceSettings()
