"""Webhook and FHIR deliveries over fakes: queued with events, retried with back-off."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sonobridge.reporting.handlers import deliveries

from .fakes import harness, routed


@dataclass
class Answer:
    ok: bool
    retryable: bool = True
    error: str = ""


class ScriptedSender:
    """Answers each post with the next scripted answer."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.posted: list[str] = []

    def post(self, url, body, *, channel, event_type, delivery_id, timestamp):
        self.posted.append(url)
        return self.answers.pop(0)


def _hooked():
    return harness(webhook_urls=["http://hook.test/a"], webhook_secret="s3cret")


def test_a_published_event_is_queued_to_every_webhook():
    h = _hooked()
    routed(h)
    [delivery] = h.tables.deliveries
    body = json.loads(delivery.body)
    assert (delivery.channel, delivery.event_type, body["type"]) == (
        "webhook",
        "report.routed",
        "report.routed",
    )
    assert body["data"] == {"event": "ReadRouted", "key": "1.2.3"}


def test_a_failed_delivery_backs_off_and_a_success_ends_it():
    h = _hooked()
    routed(h)
    sender = ScriptedSender(Answer(ok=False, error="503"), Answer(ok=True))
    assert deliveries.deliver_due(h.deps, sender) == 1
    [delivery] = h.tables.deliveries
    assert (delivery.attempts, delivery.last_error) == (1, "503")
    assert deliveries.deliver_due(h.deps, sender) == 0
    h.clock.advance(seconds=h.deps.settings.webhook_backoff_seconds)
    assert deliveries.deliver_due(h.deps, sender) == 1
    h.clock.advance(days=1)
    assert deliveries.deliver_due(h.deps, sender) == 0
    assert sender.posted == ["http://hook.test/a"] * 2


def test_a_permanent_failure_gives_up_at_once():
    h = _hooked()
    routed(h)
    deliveries.deliver_due(h.deps, ScriptedSender(Answer(ok=False, retryable=False, error="400")))
    h.clock.advance(days=1)
    assert deliveries.deliver_due(h.deps, ScriptedSender()) == 0
