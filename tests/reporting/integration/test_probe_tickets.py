"""A maintenance ticket on a probe flags the open reads of its exams for their readers."""

from __future__ import annotations

from sqlalchemy import func, select

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import TICKET_OPENED
from sonobridge.common.bus.ports import publish
from sonobridge.common.envelope import wrap
from sonobridge.reporting.adapters import orm

from ..conftest import DAY0, finding, inference_completed, route_nodule_exam, send, wait_until


def _ticket(serial: str) -> events_pb2.TicketOpened:
    msg = events_pb2.TicketOpened(
        ticket_id="T-1",
        device_serial=serial,
        institution_id="township-a",
        symptom="dark vertical stripes",
        opened_by="maintenance",
    )
    msg.opened_at.FromDatetime(DAY0)
    return msg


def test_a_ticket_on_the_probe_flags_its_open_read_and_tells_the_reader_once(start_node):
    node = start_node()
    expert, read_id = route_nodule_exam(node, "1.2.826.0.1.3680043.10.14.1")
    other = inference_completed(
        "1.2.826.0.1.3680043.10.14.2",
        findings=[finding("237495005", "thyroid nodule", 0.91, abnormal=True)],
    )
    other.context.device_serial = "PROBE-002"
    send(node.bus, other)
    reads = wait_until(
        lambda: (r := expert.get("/v1/reads").json()["reads"]) and len(r) == 2 and r,
        what="second read",
    )
    other_id = next(r["read_id"] for r in reads if r["read_id"] != read_id)

    # Redelivered with a new event id (maintenance re-published it): still one flag.
    for _ in range(2):
        event = wrap(_ticket("PROBE-001"), source="maintenance", key="PROBE-001")
        publish(node.bus, TICKET_OPENED, event)
    feed = wait_until(
        lambda: [
            n
            for n in expert.get("/v1/notifications").json()["notifications"]
            if n["kind"] == "probe_under_repair"
        ],
        what="probe notification",
    )
    assert feed[0]["data"]["read_id"] == read_id
    assert feed[0]["data"]["advice"] == "probe under repair: consider image quality"

    wait_until(lambda: _tickets_consumed(node) == 2, what="both ticket events consumed")
    view = expert.get(f"/v1/reads/{read_id}").json()
    assert len(view["probe_warnings"]) == 1
    assert "dark vertical stripes" in view["probe_warnings"][0]["detail"]
    assert expert.get(f"/v1/reads/{other_id}").json()["probe_warnings"] == []
    kinds = [n["kind"] for n in expert.get("/v1/notifications").json()["notifications"]]
    assert kinds.count("probe_under_repair") == 1


def _tickets_consumed(node) -> int:
    inbox = orm.inbox
    with node.sessions.begin() as s:
        query = select(func.count()).select_from(inbox).where(inbox.c.topic == TICKET_OPENED)
        return int(s.execute(query).scalar_one())
