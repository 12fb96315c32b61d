"""Composition root: build ingest's adapters, transports and workers from settings."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Unpack

from sonobridge.common.access import AccessPolicy
from sonobridge.common.delivery import Outbox
from sonobridge.common.host import ServiceHost, Worker
from sonobridge.common.infrastructure import Adapters, Plumbing
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.periodic import Periodic
from sonobridge.ingest.adapters import messages
from sonobridge.ingest.adapters.ai_dicom_deferred import DeferredAiRenderer
from sonobridge.ingest.adapters.codec import PydicomCodec
from sonobridge.ingest.adapters.group_commit import GroupCommit
from sonobridge.ingest.adapters.orm import inbox as inbox_table
from sonobridge.ingest.adapters.orm import outbox as outbox_table
from sonobridge.ingest.adapters.repository import unit_of_work
from sonobridge.ingest.adapters.spool import Spool
from sonobridge.ingest.entrypoints import admin, consumer, dicomweb, grpc_server, rest
from sonobridge.ingest.entrypoints.dimse_listener import DimseListener
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.handlers.recovery import drop_unindexed, expire_uploads, recover_uploads
from sonobridge.ingest.metrics import IngestMetrics
from sonobridge.ingest.settings import Settings

SERVICE = "ingest"
MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
# A spool file untouched this long belongs to a request that died (live ones write or finish).
_SPOOL_MAX_AGE_S = 3600.0


def build(settings: Settings, **adapters: Unpack[Adapters]) -> ServiceHost:
    """Build the ingest service; callers may pass adapters they built (tests, single node)."""
    plumbing = Plumbing.build(SERVICE, settings, **adapters)
    store = plumbing.store
    # A local-directory store belongs to this one process (the single node): whatever a
    # request left half-done before start-up is dead. Shared stores only reclaim by age.
    sole_owner = isinstance(store, LocalDirObjectStore)
    interrupted: tuple[str, ...] = ()
    if isinstance(store, LocalDirObjectStore):
        store.purge_temp()
        interrupted = store.take_interrupted()
    plumbing.migrate(MIGRATIONS)

    service_metrics = ServiceMetrics(SERVICE)
    metrics = IngestMetrics(service_metrics)
    spool = Spool(settings.spool_path(), settings.ingest.max_instance_bytes)
    sessions, outbox = plumbing.sessions(), Outbox(outbox_table)
    # SQLite admits one writer: concurrent requests share its transactions (group commit).
    grouped = GroupCommit(sessions, outbox) if plumbing.engine.dialect.name == "sqlite" else None
    deps = IngestDeps(
        unit=unit_of_work(sessions, outbox),
        store=plumbing.store,
        spool=spool,
        codec=PydicomCodec(),
        metrics=metrics,
        clock=plumbing.clock,
        max_instance_bytes=settings.ingest.max_instance_bytes,
        upload_expiry=timedelta(seconds=settings.ingest.upload_expiry_seconds),
        access=AccessPolicy.from_settings(settings.access),
        upload_commit_bytes=settings.ingest.upload_commit_bytes,
        upload_commit_seconds=settings.ingest.upload_commit_seconds,
        upload_lock_lease=timedelta(seconds=settings.ingest.upload_lock_lease_seconds),
        grouped=grouped,
    )

    unindexed = drop_unindexed(deps, interrupted)
    recovered = recover_uploads(deps, sole_owner=sole_owner)
    spooled = spool.reclaim(None if sole_owner else _SPOOL_MAX_AGE_S)
    if any((recovered.reopened, recovered.claims_released, recovered.parts_removed)):
        log.info(
            "start-up recovery: reopened %d upload(s), released %d claim(s), removed %d part(s)",
            recovered.reopened,
            recovered.claims_released,
            recovered.parts_removed,
        )
    if spooled or unindexed:
        log.info(
            "start-up recovery: removed %d spool file(s) and %d object(s) never indexed",
            spooled,
            unindexed,
        )

    app = plumbing.app(service_metrics)
    app.include_router(rest.router)
    app.include_router(dicomweb.router)
    app.include_router(admin.router)
    app.state.deps = deps
    app.state.public_base_url = settings.ingest.public_base_url

    grpc = plumbing.grpc_server(
        service_metrics, grpc_server.register(deps, plumbing.verifier, messages)
    )

    workers: dict[str, Worker] = {
        **plumbing.delivery_workers(outbox_table, inbox_table, service_metrics),
        "upload-expiry": Periodic(
            "upload-expiry",
            lambda: _sweep_uploads(deps),
            settings.ingest.expiry_sweep_seconds,
        ),
    }
    if settings.ingest.ai_results_enabled:
        plumbing.bus.ensure_topics(list(consumer.TOPICS))
        workers["ai-results"] = plumbing.consumer(
            group=settings.ingest.consumer_group,
            topics=consumer.TOPICS,
            stage=consumer.event_stage(deps, DeferredAiRenderer()),
            sessions=plumbing.sessions(),
            inbox=inbox_table,
            metrics=service_metrics,
        ).run
    if settings.ingest.dimse_enabled:
        scp = DimseListener(deps, settings.ingest)
        app.state.dimse = scp
        workers["dimse-scp"] = scp.run
    return plumbing.host(app, grpc, workers)


def _sweep_uploads(deps: IngestDeps) -> None:
    """Expire old uploads, recover what dead requests left and reclaim stale spool files."""
    removed = expire_uploads(deps)
    if removed:
        log.info("expired %d upload(s)", removed)
    recovered = recover_uploads(deps, sole_owner=False)
    spooled = deps.spool.reclaim(_SPOOL_MAX_AGE_S)
    if recovered.reopened or recovered.parts_removed or spooled:
        log.info(
            "upload sweep: reopened %d stale upload(s), removed %d part(s) and %d spool file(s)",
            recovered.reopened,
            recovered.parts_removed,
            spooled,
        )
