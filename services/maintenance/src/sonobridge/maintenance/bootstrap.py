"""Composition root: build the maintenance service from settings (tests pass their own parts)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from sonobridge.api.events.v1.topics import DEVICE_STATUS_CHANGED, TICKET_OPENED, TICKET_UPDATED
from sonobridge.common.access import AccessPolicy
from sonobridge.common.auth import TokenVerifier
from sonobridge.common.bus.ports import EventBus
from sonobridge.common.db import migrate, session_factory
from sonobridge.common.delivery import ConsumerWorker, OutboxRelay
from sonobridge.common.grpc import create_grpc_server
from sonobridge.common.host import ServiceHost
from sonobridge.common.http import create_service_app
from sonobridge.common.infrastructure import (
    build_engine,
    build_event_bus,
    build_object_store,
    build_verifier,
    dependency_checks,
)
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.objects.ports import ObjectStore
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


def utc_now() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


def migrate_database(settings: Settings, engine: Engine | None = None) -> None:
    """Bring the maintenance schema to the newest revision."""
    # Building the engine first creates the single-node data directory SQLite needs.
    engine = engine or build_engine(settings, SERVICE)
    migrate(engine.url.render_as_string(hide_password=False), MIGRATIONS)


def build(
    settings: Settings,
    *,
    bus: EventBus | None = None,
    store: ObjectStore | None = None,
    engine: Engine | None = None,
    verifier: TokenVerifier | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ServiceHost:
    """Build adapters, migrate, wire REST, gRPC, consumer, relay and timers into a host."""
    bus = bus or build_event_bus(settings)
    store = store or build_object_store(settings)
    engine = engine or build_engine(settings, SERVICE)
    verifier = verifier or build_verifier(settings)
    migrate_database(settings, engine)

    base = ServiceMetrics(SERVICE)
    metrics = MaintenanceMetrics(base)
    sessions = session_factory(engine)
    deps = Dependencies(
        units=SqlUnitsOfWork(sessions),
        config=settings.maintenance,
        clock=clock,
        metrics=metrics,
        store=store,
        access=AccessPolicy.from_settings(settings.access),
    )
    metrics.watch_fleet(lambda: fleet_snapshot(deps))

    app = create_service_app(
        service=SERVICE,
        metrics=base,
        verifier=verifier,
        cors_origins=settings.http.cors_origins,
        readiness={
            **dependency_checks(engine, store, bus),
        },
    )
    app.include_router(rest.router)
    app.state.deps = deps

    server, grpc_port, _ = create_grpc_server(
        metrics=base,
        register=grpc_server.register(deps, verifier),
        host=settings.grpc.host,
        port=settings.grpc.port,
    )

    bus.ensure_topics([*consumer.TOPICS, *PRODUCED_TOPICS])
    relay = OutboxRelay(
        engine, orm.outbox, bus, base, batch_size=settings.delivery.relay_batch_size
    )
    worker = ConsumerWorker(
        bus=bus,
        group=settings.maintenance.consumer_group,
        topics=consumer.TOPICS,
        handler=consumer.event_handler(deps),
        sessions=sessions,
        inbox=orm.inbox,
        metrics=base,
        max_attempts=settings.delivery.max_attempts,
        retry_backoff=settings.delivery.retry_backoff_seconds,
    )

    def run_relay(stop: threading.Event) -> None:
        relay.run(stop, settings.delivery.relay_interval_seconds)

    host = ServiceHost(
        SERVICE,
        app=app,
        http_host=settings.http.host,
        http_port=settings.http.port,
        grpc_server=server,
        grpc_port=grpc_port,
        workers={
            "outbox-relay": run_relay,
            "consumer": worker.run,
            "timers": Periodic(
                "timers", lambda: timers.tick(deps), deps.config.timer_interval_seconds
            ),
        },
    )
    host.deps = deps  # type: ignore[attr-defined]
    return host
