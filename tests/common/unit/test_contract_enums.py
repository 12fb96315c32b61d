"""Domain enums map onto the contract's enum values by name, and a missing one fails at once."""

from __future__ import annotations

from enum import StrEnum

import pytest

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.contract_enums import contract_values


class _Source(StrEnum):
    APP = "app"
    PROBE_HEALTH = "probe_health"


class _Unknown(StrEnum):
    APP = "app"
    CARRIER_PIGEON = "carrier_pigeon"


def test_each_member_maps_to_the_contract_value_of_its_name() -> None:
    assert contract_values(_Source, events_pb2.TicketSource, "TICKET_SOURCE_") == {
        _Source.APP: events_pb2.TICKET_SOURCE_APP,
        _Source.PROBE_HEALTH: events_pb2.TICKET_SOURCE_PROBE_HEALTH,
    }


def test_a_member_the_contract_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="CARRIER_PIGEON"):
        contract_values(_Unknown, events_pb2.TicketSource, "TICKET_SOURCE_")
