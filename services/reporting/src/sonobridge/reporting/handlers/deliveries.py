"""Outbound HTTP: queue webhooks with each published event, and attempt due deliveries."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta

from sonobridge.reporting.domain.events import Published
from sonobridge.reporting.domain.records import Delivery, JsonObject
from sonobridge.reporting.ports import Dependencies, Reporting, Sender, Work

log = logging.getLogger(__name__)


def publish(
    work: Work, deps: Dependencies, event: Published, *, key: str, webhook: str, at: datetime
) -> None:
    """Stage an event in the outbox and queue it to every configured webhook."""
    payload = work.emit(event, key)
    queue_webhooks(work.reporting, deps, webhook, payload, at)


def queue_webhooks(
    repo: Reporting, deps: Dependencies, event_type: str, payload: JsonObject, at: datetime
) -> None:
    """Queue one delivery of the event to each webhook URL."""
    body = json.dumps({"type": event_type, "data": payload}, ensure_ascii=False, sort_keys=True)
    for url in deps.settings.webhook_urls:
        repo.add_delivery(
            Delivery(
                channel="webhook",
                target=url,
                event_type=event_type,
                delivery_id=str(uuid.uuid4()),
                body=body,
                next_attempt_at=at,
            )
        )


def deliver_due(deps: Dependencies, sender: Sender, limit: int = 50) -> int:
    """Attempt due webhook and FHIR deliveries; back off exponentially, give up after the limit."""
    settings = deps.settings
    now = deps.clock()
    with deps.unit() as work:
        due = work.reporting.due_deliveries(now, limit)
    for d in due:
        outcome = sender.post(
            d.target,
            d.body,
            channel=d.channel,
            event_type=d.event_type,
            delivery_id=d.delivery_id,
            timestamp=str(int(now.timestamp())),
        )
        attempts = d.attempts + 1
        with deps.unit() as work:
            repo = work.reporting
            if outcome.ok:
                repo.update_delivery(
                    d.id, attempts=attempts, delivered_at=deps.clock(), last_error=""
                )
            elif not outcome.retryable or attempts >= settings.webhook_max_attempts:
                log.error(
                    "giving up %s delivery %s to %s: %s",
                    d.channel,
                    d.delivery_id,
                    d.target,
                    outcome.error,
                )
                repo.update_delivery(
                    d.id, attempts=attempts, gave_up_at=deps.clock(), last_error=outcome.error
                )
            else:
                wait = settings.webhook_backoff_seconds * 2 ** (attempts - 1)
                repo.update_delivery(
                    d.id,
                    attempts=attempts,
                    last_error=outcome.error,
                    next_attempt_at=deps.clock() + timedelta(seconds=wait),
                )
    return len(due)
