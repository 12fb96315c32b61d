"""Breach timers survive a restart of the single-node service and fire exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
from maintenance.maintenance_support import FakeClock, maintenance_config, wait_for

from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.db import create_db_engine
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.settings import GrpcSettings, HttpSettings
from sonobridge.maintenance.bootstrap import build
from sonobridge.maintenance.handlers.devices import register_device
from sonobridge.maintenance.handlers.tickets import list_tickets, open_ticket
from sonobridge.maintenance.handlers.timers import fire_due_timers
from sonobridge.maintenance.settings import Settings


def start(tmp: Path, issuer: LocalIssuer, clock: FakeClock):  # type: ignore[no-untyped-def]
    config = maintenance_config()
    config.timer_interval_seconds = 0.1
    settings = Settings(
        data_dir=tmp,
        http=HttpSettings(host="127.0.0.1", port=0),
        grpc=GrpcSettings(host="127.0.0.1", port=0),
        maintenance=config,
    )
    bus = EmbeddedEventBus(tmp / "events.sqlite3")
    engine = create_db_engine(f"sqlite:///{tmp / 'maintenance.sqlite3'}")
    host = build(
        settings,
        bus=bus,
        store=LocalDirObjectStore(tmp / "objects"),
        engine=engine,
        verifier=issuer.verifier(),
        clock=clock,
    )
    host.start()
    return host, bus, engine


def test_breach_timer_fires_once_after_a_restart(tmp_path: Path, issuer: LocalIssuer):
    clock = FakeClock()
    admin = {"Authorization": f"Bearer {issuer.issue('admin-1', ['admin'])}"}
    host, bus, engine = start(tmp_path, issuer, clock)
    http = httpx.Client(base_url=f"http://127.0.0.1:{host.http_port}", timeout=30)
    http.post(
        "/v1/devices",
        headers=admin,
        json={"serial": "HP-1", "model": "HP-100", "institution_id": "township-a"},
    )
    tid = http.post(
        "/v1/tickets", headers=admin, json={"device_serial": "HP-1", "symptom": "no image"}
    ).json()["ticket_id"]
    http.close()
    host.stop()
    engine.dispose()
    bus.close()

    # The deadline passes while the service is down.
    clock.advance(hours=2)
    for _ in range(2):  # two restarts: the second must not fire again
        host, bus, engine = start(tmp_path, issuer, clock)
        http = httpx.Client(base_url=f"http://127.0.0.1:{host.http_port}", timeout=30)

        def breached(client: httpx.Client = http) -> bool:
            ticket = client.get(f"/v1/tickets/{tid}", headers=admin).json()
            return bool(ticket["sla"]["ack_breached"])

        wait_for(breached)
        history = http.get(f"/v1/tickets/{tid}/history", headers=admin).json()["history"]
        assert [h["kind"] for h in history].count("breach") == 1
        http.close()
        host.stop()
        engine.dispose()
        bus.close()


def test_two_timer_passes_racing_on_one_database_fire_once(deps, clock: FakeClock):
    from maintenance.maintenance_support import ADMIN

    register_device(deps, ADMIN, serial="HP-1", model="HP-100", institution_id="township-a")
    for _ in range(5):
        open_ticket(deps, ADMIN, device_serial="HP-1", symptom="no image")
    clock.advance(hours=30)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def sweep() -> None:
        barrier.wait()
        results.append(fire_due_timers(deps))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 5 tickets x 2 clocks (acknowledge and on site) = 10 breaches in total, whoever fired them
    assert sum(results) == 10
    tickets, _ = list_tickets(deps, ADMIN)
    assert all([c.kind for c in t.history].count("breach") == 2 for t in tickets)
    reg = deps.metrics.base.registry
    total = sum(
        reg.get_sample_value("sonobridge_maintenance_ticket_sla_breaches_total", {"clock": c})
        for c in ("acknowledge", "onsite")
    )
    assert total == 10
