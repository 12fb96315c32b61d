"""Composition root: build the maintenance service from settings (tests pass their own parts)."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from sonobridge.api.events.v1.topics import DEVICE_STATUS_CHANGED, TICKET_OPENED, TICKET_UPDATED
from sonobridge.common.access import AccessPolicy
from sonobridge.common.host import ServiceHost
from sonobridge.common.infrastructure import Adapters, Plumbing
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.periodic import Periodic
from sonobridge.maintenance.adapters import orm
from sonobridge.maintenance.adapters.unit_of_work import SqlUnitsOfWork
from sonobridge.maintenance.entrypoints import consumer, grpc_server, rest
from sonobridge.maintenance.handlers import Dependencies, timers
from sonobridge.maintenance.handlers.fleet import fleet_snapshot
from sonobridge.maintenance.metrics import SERVICE, MaintenanceMetrics
from sonobridge.maintenance.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
PRODUCED_TOPICS = (TICKET_OPENED, TICKET_UPDATED, DEVICE_STATUS_CHANGED)


def build(settings: Settings, **adapters: Unpack[Adapters]) -> ServiceHost:
    """Build adapters, migrate, wire REST, gRPC, consumer, relay and timers into a host."""
    plumbing = Plumbing.build(SERVICE, settings, **adapters)
    plumbing.migrate(MIGRATIONS)

    base = ServiceMetrics(SERVICE)
    metrics = MaintenanceMetrics(base)
    sessions = plumbing.sessions()
    deps = Dependencies(
        units=SqlUnitsOfWork(sessions),
        config=settings.maintenance,
        clock=plumbing.clock,
        metrics=metrics,
        store=plumbing.store,
        access=AccessPolicy.from_settings(settings.access),
    )
    metrics.watch_fleet(lambda: fleet_snapshot(deps))

    app = plumbing.app(base)
    app.include_router(rest.router)
    app.state.deps = deps

    grpc = plumbing.grpc_server(base, grpc_server.register(deps, plumbing.verifier))

    plumbing.bus.ensure_topics([*consumer.TOPICS, *PRODUCED_TOPICS])
    worker = plumbing.consumer(
        group=settings.maintenance.consumer_group,
        topics=consumer.TOPICS,
        handler=consumer.event_handler(deps),
        sessions=sessions,
        inbox=orm.inbox,
        metrics=base,
    )
    host = plumbing.host(
        app,
        grpc,
        {
            **plumbing.delivery_workers(orm.outbox, orm.inbox, base),
            "consumer": worker.run,
            "timers": Periodic(
                "timers", lambda: timers.tick(deps), deps.config.timer_interval_seconds
            ),
        },
    )
    host.deps = deps  # type: ignore[attr-defined]
    return host
