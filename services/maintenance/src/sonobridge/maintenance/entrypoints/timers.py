"""The timer loop: fire SLA breach timers and open due preventive tickets."""

from __future__ import annotations

import logging
import threading

from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.timers import fire_due_timers, open_due_preventive

log = logging.getLogger(__name__)


def tick(deps: Dependencies) -> tuple[int, int]:
    """Run one pass; return (breaches fired, preventive tickets opened)."""
    fired = fire_due_timers(deps)
    opened = open_due_preventive(deps)
    return fired, len(opened)


def run(deps: Dependencies, stop: threading.Event) -> None:
    """Tick every configured interval until `stop` is set."""
    interval = deps.config.timer_interval_seconds
    while not stop.is_set():
        try:
            fired, opened = tick(deps)
            if fired or opened:
                log.info("timers: %d breaches, %d preventive tickets", fired, opened)
        except Exception:
            # The timers table is durable: a failed pass is simply retried on the next tick.
            log.exception("timer pass failed")
        stop.wait(interval)
