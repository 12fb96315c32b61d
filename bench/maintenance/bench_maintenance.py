"""Benchmark: telemetry intake, probe-health events, breach timers and the metrics scrape.

Runs the maintenance handlers on a SQLite file (the single-node edition) or on PostgreSQL
(--pg URL). Telemetry figures are printed as ratios against one-sample batches measured in the
same run; the scrape is timed against the fleet size. Usage:
    uv run python bench/maintenance/bench_maintenance.py [--devices 200] [--samples 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.auth import Principal
from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.maintenance.__main__ import SPEC
from sonobridge.maintenance.adapters.unit_of_work import SqlUnitsOfWork
from sonobridge.maintenance.domain.health import TelemetrySample
from sonobridge.maintenance.entrypoints.consumer import probe_verdict
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.devices import register_device
from sonobridge.maintenance.handlers.fleet import fleet_snapshot
from sonobridge.maintenance.handlers.probe_health import record_probe_health
from sonobridge.maintenance.handlers.telemetry import record_telemetry
from sonobridge.maintenance.handlers.tickets import list_tickets
from sonobridge.maintenance.handlers.timers import fire_due_timers
from sonobridge.maintenance.metrics import MaintenanceMetrics
from sonobridge.maintenance.settings import MaintenanceSettings, RegionSettings, Settings

ADMIN = Principal("bench-admin", frozenset({"admin"}))
APP = Principal("bench-app", frozenset({"service"}))
START = datetime(2026, 3, 1, tzinfo=UTC)


class Clock:
    """A settable clock so SLA timers can be made due without waiting."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def build(url: str, clock: Clock, tmp: Path) -> Dependencies:
    settings = Settings(
        data_dir=tmp,
        maintenance=MaintenanceSettings(
            regions=[
                RegionSettings(
                    name="county",
                    institutions=[f"centre-{i}" for i in range(20)],
                    engineers=[f"eng-{i}" for i in range(6)],
                    escalation_contact="manager",
                )
            ]
        ),
    )
    engine = create_db_engine(url)
    SPEC.migrate_database(settings, engine)
    return Dependencies(
        units=SqlUnitsOfWork(session_factory(engine)),
        config=settings.maintenance,
        clock=clock,
        metrics=MaintenanceMetrics(ServiceMetrics("maintenance")),
    )


def telemetry_rate(deps: Dependencies, serial: str, batch: int, total: int) -> float:
    """Return samples stored per second when the app sends `batch` samples per request."""
    sent = 0
    began = time.perf_counter()
    base = START - timedelta(days=20)
    while sent < total:
        samples = [
            TelemetrySample(
                recorded_at=base + timedelta(seconds=30 * (sent + i)),
                battery_percent=80,
                temperature_c=36,
                scan_seconds=20,
            )
            for i in range(min(batch, total - sent))
        ]
        record_telemetry(
            deps, APP, device_serial=serial, samples=samples, batch_id=f"{serial}-{sent}"
        )
        sent += len(samples)
    return sent / (time.perf_counter() - began)


def probe_event(serial: str, n: int) -> events_pb2.InferenceCompleted:
    done = Timestamp()
    done.FromDatetime(START - timedelta(hours=n % 48))
    return events_pb2.InferenceCompleted(
        context=events_pb2.ExamContext(
            study_instance_uid=f"{serial}.{n}", institution_id="centre-0", device_serial=serial
        ),
        inference_id=f"{serial}-{n}",
        completed_at=done,
        derived_object_keys=[f"derived/{serial}.{n}/probe/1/x.json"],
        probe_health=events_pb2.ProbeHealth(
            device_serial=serial, dead_element_fraction=0.05, suspected_fault=True
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--pg", default="", help="PostgreSQL URL instead of SQLite")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.pg or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        clock = Clock()
        deps = build(url, clock, Path(tmp))
        began = time.perf_counter()
        for i in range(args.devices):
            register_device(
                deps, ADMIN, serial=f"P{i:05d}", model="HP-100", institution_id=f"centre-{i % 20}"
            )
        register_s = time.perf_counter() - began
        print(f"database: {'postgresql' if args.pg else 'sqlite'}")
        print(f"register {args.devices} devices: {args.devices / register_s:8.1f} devices/s")

        baseline = telemetry_rate(deps, "P00000", 1, max(50, args.samples // 20))
        print(f"telemetry, 1 sample per batch (baseline): {baseline:8.1f} samples/s")
        for n, batch in enumerate((50, 500), start=1):
            rate = telemetry_rate(deps, f"P{n:05d}", batch, args.samples)
            print(
                f"telemetry, {batch:3d} samples per batch: {rate:8.1f} samples/s "
                f"({rate / baseline:5.1f}x baseline)"
            )

        began = time.perf_counter()
        outcomes: dict[str, int] = {}
        for n in range(args.events):
            serial = f"P{3 + n % 50:05d}"
            with deps.units() as work:
                outcome = record_probe_health(
                    deps, work, probe_verdict(probe_event(serial, n), START)
                )
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        events_s = time.perf_counter() - began
        print(f"probe-health events: {args.events / events_s:8.1f} events/s {outcomes}")

        opened = list_tickets(deps, ADMIN, limit=1000)[0]
        began = time.perf_counter()
        snapshot = fleet_snapshot(deps)
        scrape_s = time.perf_counter() - began
        print(
            f"metrics scrape with {sum(snapshot.open_tickets.values())} open tickets and "
            f"{args.devices} devices: {scrape_s * 1000:8.1f} ms"
        )

        clock.now = START + timedelta(hours=30)
        began = time.perf_counter()
        fired = 0
        while batch_fired := fire_due_timers(deps):
            fired += batch_fired
        timers_s = time.perf_counter() - began
        print(
            f"breach timers: {fired} breaches for {len(opened)} tickets in {timers_s:.2f} s "
            f"({fired / timers_s if timers_s else 0:8.1f} breaches/s)"
        )


if __name__ == "__main__":
    main()
