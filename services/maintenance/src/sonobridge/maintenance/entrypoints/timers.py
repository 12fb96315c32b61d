"""The timer worker: fire SLA breach timers and open due preventive tickets, periodically."""

from __future__ import annotations

import logging

from sonobridge.common.periodic import Periodic
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.timers import fire_due_timers, open_due_preventive

log = logging.getLogger(__name__)


def tick(deps: Dependencies) -> tuple[int, int]:
    """Run one pass; return (breaches fired, preventive tickets opened)."""
    fired = fire_due_timers(deps)
    opened = len(open_due_preventive(deps))
    if fired or opened:
        log.info("timers: %d breaches, %d preventive tickets", fired, opened)
    return fired, opened


def worker(deps: Dependencies) -> Periodic:
    """Return the ServiceHost worker that ticks every configured interval.

    The timers table is durable: a failed pass is logged and simply retried on the next tick.
    """
    return Periodic("timers", lambda: tick(deps), deps.config.timer_interval_seconds)
