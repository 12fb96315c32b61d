"""Reporter ticket use cases on in-memory fakes: open, idempotency, photos, reads, redaction."""

from __future__ import annotations

import io

import pytest
from maintenance.maintenance_support import ADMIN, SERVICE, engineer, operator
from maintenance.unit.handlers.fakes import FakeRequestKeys, FakeUnits, fake_dependencies

from sonobridge.common.access import AccessPolicy
from sonobridge.common.idempotency import StoredAnswer
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound
from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.tickets import TicketSource, TicketState
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.devices import register_device, retire_device
from sonobridge.maintenance.handlers.tickets import (
    attach_photo,
    get_ticket,
    list_tickets,
    open_ticket,
    shown_to,
)

NURSE = operator("nurse-1", "township-a")


class MemoryStore:
    """An object store that keeps puts in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key, stream, *, length=None, content_type="", metadata=None):  # type: ignore[no-untyped-def]
        self.objects[key] = stream.read()


@pytest.fixture
def fleet() -> tuple[Dependencies, FakeUnits]:
    deps, units = fake_dependencies()
    register_device(deps, ADMIN, serial="HP-A1", model="HP-100", institution_id="township-a")
    register_device(deps, ADMIN, serial="HP-C1", model="HP-100", institution_id="township-c")
    return deps, units


def test_one_tap_report_assigns_a_regional_engineer_arms_timers_and_marks_device_faulty(fleet):
    deps, units = fleet
    ticket, created = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="no image")
    assert created and ticket.assignee == "eng-li" and ticket.region == "north"
    assert units.state.devices["HP-A1"].status is DeviceStatus.FAULTY
    assert units.kinds()[-2:] == ["ticket_opened", "device_status_changed"]
    assert {(t.clock, t.status) for t in units.state.timers} == {
        ("acknowledge", "pending"),
        ("onsite", "pending"),
    }
    assert units.state.audit[-1].action == "ticket.open"


def test_the_next_ticket_in_a_region_goes_to_the_least_loaded_engineer(fleet):
    deps, _ = fleet
    first, _ = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="no image")
    register_device(deps, ADMIN, serial="HP-A2", model="HP-100", institution_id="township-b")
    second, _ = open_ticket(deps, ADMIN, device_serial="HP-A2", symptom="cracked lens")
    assert {first.assignee, second.assignee} == {"eng-li", "eng-wang"}


def test_a_repeated_idempotency_key_returns_the_first_ticket(fleet):
    deps, units = fleet
    first, created = open_ticket(
        deps, NURSE, device_serial="HP-A1", symptom="noise", idempotency_key="k-1"
    )
    again, created_again = open_ticket(
        deps, NURSE, device_serial="HP-A1", symptom="noise", idempotency_key="k-1"
    )
    assert created and not created_again and again.id == first.id
    assert len(units.state.tickets) == 1
    with pytest.raises(InvalidRequest):
        open_ticket(deps, NURSE, device_serial="HP-A1", symptom="x", idempotency_key="k" * 129)


def test_an_idempotency_key_reused_for_another_report_is_refused_and_acts_once(fleet):
    deps, units = fleet
    open_ticket(deps, NURSE, device_serial="HP-A1", symptom="noise", idempotency_key="k-1")
    with pytest.raises(InvalidInput) as caught:
        open_ticket(deps, NURSE, device_serial="HP-A1", symptom="dark", idempotency_key="k-1")
    assert caught.value.status == 422
    assert len(units.state.tickets) == 1


def test_a_key_still_held_by_a_concurrent_report_is_a_conflict(fleet, monkeypatch):
    deps, units = fleet
    # Another request reserved the key and has not committed: its row is not visible yet.
    units.state.request_keys[(NURSE.user, "k-1")] = StoredAnswer("other", 0, {})
    monkeypatch.setattr(FakeRequestKeys, "find", lambda self, owner, key: None)
    with pytest.raises(Conflict) as caught:
        open_ticket(deps, NURSE, device_serial="HP-A1", symptom="noise", idempotency_key="k-1")
    assert caught.value.status == 409
    assert not units.state.tickets


def test_opening_is_refused_outside_scope_for_retired_devices_and_for_automatic_sources(fleet):
    deps, units = fleet
    with pytest.raises(NotFound):
        open_ticket(deps, NURSE, device_serial="HP-C1", symptom="noise")
    with pytest.raises(Forbidden):
        open_ticket(deps, NURSE, device_serial="HP-A1", symptom="x", source=TicketSource.TELEMETRY)
    with pytest.raises(InvalidRequest):
        open_ticket(deps, ADMIN, device_serial="HP-A1", symptom="x", institution_id="township-c")
    retire_device(deps, ADMIN, "HP-C1", "old")
    with pytest.raises(Conflict):
        open_ticket(deps, ADMIN, device_serial="HP-C1", symptom="x")
    assert units.state.tickets == {}
    ticket, _ = open_ticket(
        deps, SERVICE, device_serial="HP-A1", symptom="x", source=TicketSource.PROBE_HEALTH
    )
    assert ticket.source is TicketSource.PROBE_HEALTH


def test_photos_are_stored_under_the_ticket_and_linked_as_evidence(fleet):
    deps, _ = fleet
    store = MemoryStore()
    deps.store = store  # type: ignore[assignment]
    ticket, _ = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="cracked")
    key = attach_photo(deps, NURSE, ticket.id, io.BytesIO(b"jpeg"), content_type="image/jpeg")
    assert key.startswith(f"maintenance/tickets/{ticket.id}/") and key.endswith(".jpg")
    assert store.objects[key] == b"jpeg"
    assert get_ticket(deps, NURSE, ticket.id).evidence_keys == [key]
    with pytest.raises(InvalidRequest):
        attach_photo(deps, NURSE, ticket.id, io.BytesIO(b"x"), content_type="text/plain")
    with pytest.raises(NotFound):
        attach_photo(deps, NURSE, "nope", io.BytesIO(b"x"), content_type="image/png")


def test_photos_need_an_object_store(fleet):
    deps, _ = fleet
    ticket, _ = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="cracked")
    with pytest.raises(NotFound, match="object store"):
        attach_photo(deps, NURSE, ticket.id, io.BytesIO(b"x"), content_type="image/png")


def test_reads_are_scoped_and_paged(fleet):
    deps, _ = fleet
    own, _ = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="noise")
    other, _ = open_ticket(deps, ADMIN, device_serial="HP-C1", symptom="noise")
    with pytest.raises(NotFound):
        get_ticket(deps, NURSE, other.id)
    assert [t.id for t in list_tickets(deps, NURSE)[0]] == [own.id]
    page, cursor = list_tickets(deps, ADMIN, limit=1)
    assert len(page) == 1 and cursor == page[0].id
    assert list_tickets(deps, ADMIN, states=[TicketState.CLOSED]) == ([], "")
    with pytest.raises(InvalidRequest):
        list_tickets(deps, ADMIN, limit=1001)


def test_callers_without_read_access_see_no_exam_references(fleet):
    deps, _ = fleet
    deps.access = AccessPolicy()
    ticket, _ = open_ticket(
        deps,
        SERVICE,
        device_serial="HP-A1",
        symptom="dead elements in exam 1.2.840.1.2",
        source=TicketSource.PROBE_HEALTH,
        evidence_keys=["derived/1.2.840.1.2/x.json", "maintenance/tickets/t/p.jpg"],
    )
    vendor = engineer("eng-li")
    # vendor engineers repair probes; they read no patient data of any institution
    shown = shown_to(deps, vendor, ticket)
    assert shown.study_instance_uid == "" and shown.evidence_keys == ["maintenance/tickets/t/p.jpg"]
    assert "1.2.840.1.2" not in shown.history[0].note and "[withheld]" in shown.history[0].note
    assert shown_to(deps, ADMIN, ticket) is ticket
