"""The delivery settings refuse an inbox retention that a redelivered event could outlive."""

from __future__ import annotations

import pytest

from sonobridge.common.settings import DeliverySettings, ServiceSettings


def test_an_inbox_retention_shorter_than_the_redelivery_horizon_stops_start_up() -> None:
    with pytest.raises(ValueError, match="inbox_retention_days"):
        DeliverySettings(inbox_retention_days=7, redelivery_horizon_days=14)
    settings = DeliverySettings(inbox_retention_days=30, redelivery_horizon_days=30)
    assert settings.inbox_retention_days >= settings.redelivery_horizon_days
    assert DeliverySettings().inbox_retention_days >= DeliverySettings().redelivery_horizon_days


def test_retention_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY__OUTBOX_RETENTION_DAYS", "2.5")
    monkeypatch.setenv("DELIVERY__INBOX_RETENTION_DAYS", "21")
    delivery = ServiceSettings().delivery
    assert (delivery.outbox_retention_days, delivery.inbox_retention_days) == (2.5, 21)
    monkeypatch.setenv("DELIVERY__INBOX_RETENTION_DAYS", "3")
    with pytest.raises(ValueError, match="redelivery_horizon_days"):
        ServiceSettings()
