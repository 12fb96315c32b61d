"""Composition root: build the reporting service's adapters, use cases and transports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Unpack

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.api.events.v1.topics import FOLLOWUP_ALERTED, REPORT_ROUTED, REPORT_SIGNED
from sonobridge.common.access import AccessPolicy
from sonobridge.common.delivery import EventHandler, Outbox
from sonobridge.common.host import ServiceHost
from sonobridge.common.infrastructure import Adapters, Plumbing
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.common.periodic import Periodic
from sonobridge.reporting.adapters import messages, orm
from sonobridge.reporting.adapters.deferred import DeferredPdfRenderer, fhir_bundle
from sonobridge.reporting.adapters.policy_file import read_policy
from sonobridge.reporting.adapters.unit import SqlUnits
from sonobridge.reporting.adapters.webhooks import HttpSender
from sonobridge.reporting.domain.policy import Policy
from sonobridge.reporting.entrypoints import consumer, grpc_server, reading, rest
from sonobridge.reporting.handlers.clock import tick
from sonobridge.reporting.handlers.deliveries import deliver_due
from sonobridge.reporting.metrics import ReportingMetrics
from sonobridge.reporting.ports import Dependencies
from sonobridge.reporting.settings import Settings

SERVICE = "reporting"
MIGRATIONS = Path(__file__).parent / "migrations"


def _immediate_sqlite_transactions(engine: Engine) -> None:
    # Several workers write one SQLite file: a deferred transaction that reads and then writes
    # fails at once with SQLITE_BUSY when another commits in between; BEGIN IMMEDIATE queues
    # for the write lock (within the busy timeout) instead.
    if engine.dialect.name != "sqlite" or event.contains(engine, "begin", _begin_immediate):
        return
    event.listen(engine, "connect", _autocommit_driver)
    event.listen(engine, "begin", _begin_immediate)


def _autocommit_driver(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def dependencies(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    policy: Policy,
    clock: Callable[[], datetime],
    store: ObjectStore,
    metrics: ReportingMetrics,
    render_pdf: Callable[[dict[str, Any]], bytes],
) -> Dependencies:
    """Wire the use cases' ports to their SQLAlchemy, protobuf and FHIR adapters."""
    units = SqlUnits(sessions, Outbox(orm.outbox), clock)
    return Dependencies(
        unit=units.unit,
        joined=units.joined,
        once=units.once,
        policy=policy,
        clock=clock,
        store=store,
        metrics=metrics,
        settings=settings.reporting,
        render_pdf=render_pdf,
        fhir_bundle=fhir_bundle,
        normalize_findings=messages.normalize_findings,
        access=AccessPolicy.from_settings(settings.access),
    )


def event_handler(deps: Dependencies) -> EventHandler:
    """Return the consumer's handler, decoding protobuf events into the domain's."""
    return consumer.event_handler(deps, messages.consumed)


def build(settings: Settings, **adapters: Unpack[Adapters]) -> ServiceHost:
    """Build the reporting service; callers may pass adapters, otherwise settings decide."""
    policy = read_policy(settings.reporting.policy_path)
    renderer = DeferredPdfRenderer(settings.reporting.pdf_font_path)
    plumbing = Plumbing.build(SERVICE, settings, **adapters)
    _immediate_sqlite_transactions(plumbing.engine)
    plumbing.migrate(MIGRATIONS)
    metrics = ReportingMetrics()
    sessions = plumbing.sessions()
    deps = dependencies(
        settings,
        sessions,
        policy=policy,
        clock=plumbing.clock,
        store=plumbing.store,
        metrics=metrics,
        render_pdf=renderer,
    )
    app = plumbing.app(metrics)
    app.include_router(rest.router)
    reading.install(app, settings.reporting.reading)
    app.state.deps = deps
    # Tests and tools inspect the database through the same sessions.
    app.state.sessions = sessions
    grpc = plumbing.grpc_server(metrics, grpc_server.register(deps, plumbing.verifier))
    worker = plumbing.consumer(
        group=settings.reporting.consumer_group,
        topics=consumer.TOPICS,
        handler=event_handler(deps),
        sessions=sessions,
        inbox=orm.inbox,
        metrics=metrics,
    )
    secret = settings.reporting.webhook_secret
    sender = HttpSender(
        secret=secret.get_secret_value().encode() if secret else None,
        timeout=settings.reporting.webhook_timeout_seconds,
    )
    # Produced topics too: a first publish to a missing topic can time out and be re-shipped.
    plumbing.bus.ensure_topics([*consumer.TOPICS, REPORT_ROUTED, REPORT_SIGNED, FOLLOWUP_ALERTED])
    return plumbing.host(
        app,
        grpc,
        {
            **plumbing.delivery_workers(orm.outbox, orm.inbox, metrics),
            "consumer": worker.run,
            "timers": Periodic(
                "timers", lambda: tick(deps), settings.reporting.timer_interval_seconds
            ),
            "deliveries": Periodic(
                "deliveries",
                lambda: deliver_due(deps, sender),
                settings.reporting.delivery_interval_seconds,
            ),
        },
    )
