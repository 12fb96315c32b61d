"""Background loops: fire durable timers, refresh worklist depth, ship webhooks and FHIR."""

from __future__ import annotations

import logging
import threading

from sonobridge.common.host import Worker
from sonobridge.reporting.handlers.clock import fire_due_timers, refresh_worklist_depth
from sonobridge.reporting.handlers.deliveries import deliver_due
from sonobridge.reporting.ports import Dependencies, Sender

log = logging.getLogger(__name__)


def timer_loop(deps: Dependencies, interval: float) -> Worker:
    """Return a worker that fires due timers every `interval` seconds until stopped."""

    def run(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                fire_due_timers(deps)
                refresh_worklist_depth(deps)
            except Exception:
                # A failed timer rolled back and stays unfired: the next pass retries it.
                log.exception("timer pass failed; retrying")
            stop.wait(interval)

    return run


def delivery_loop(deps: Dependencies, sender: Sender, interval: float) -> Worker:
    """Return a worker that attempts due webhook and FHIR deliveries."""

    def run(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                deliver_due(deps, sender)
            except Exception:
                log.exception("delivery pass failed; retrying")
            stop.wait(interval)

    return run
