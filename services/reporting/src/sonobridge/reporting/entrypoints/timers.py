"""Background workers: fire durable timers, refresh worklist depth, ship webhooks and FHIR."""

from __future__ import annotations

from sonobridge.common.periodic import Periodic
from sonobridge.reporting.handlers.clock import fire_due_timers, refresh_worklist_depth
from sonobridge.reporting.handlers.deliveries import deliver_due
from sonobridge.reporting.ports import Dependencies, Sender


def timer_loop(deps: Dependencies, interval: float) -> Periodic:
    """Return a worker that fires due timers every `interval` seconds until stopped."""

    def tick() -> None:
        # A failed timer rolled back and stays unfired: the next pass retries it.
        fire_due_timers(deps)
        refresh_worklist_depth(deps)

    return Periodic("timers", tick, interval)


def delivery_loop(deps: Dependencies, sender: Sender, interval: float) -> Periodic:
    """Return a worker that attempts due webhook and FHIR deliveries."""
    return Periodic("deliveries", lambda: deliver_due(deps, sender), interval)
