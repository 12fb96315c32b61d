"""Composition root: build the inference service from settings (tests pass their own parts)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Unpack

from sonobridge.api.events.v1.topics import INFERENCE_COMPLETED
from sonobridge.common.db import session_factory
from sonobridge.common.delivery import Outbox
from sonobridge.common.host import ServiceHost
from sonobridge.common.infrastructure import (
    Adapters,
    Plumbing,
    build_engine,
    build_object_store,
)
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.inference.adapters import orm
from sonobridge.inference.adapters.comparisons import SqlVersionComparisons
from sonobridge.inference.adapters.model_store import (
    ObjectStoreModelSource,
    publish_missing_models,
)
from sonobridge.inference.adapters.repositories import SqlExamWork
from sonobridge.inference.adapters.validation import SqlDeviceValidations
from sonobridge.inference.domain.comparison import VersionComparison
from sonobridge.inference.entrypoints import consumer, grpc_server, grpc_stream, rest
from sonobridge.inference.handlers import Dependencies, shadow, validation
from sonobridge.inference.imaging.decode import FrameSampling
from sonobridge.inference.metrics import SERVICE, InferenceMetrics
from sonobridge.inference.modules import load_clinical_modules
from sonobridge.inference.runtime.batcher import BatchPolicy
from sonobridge.inference.runtime.providers import SessionConfig
from sonobridge.inference.runtime.registry import ModelRegistry, packaged_models
from sonobridge.inference.runtime.server import ModelServer
from sonobridge.inference.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
PRODUCED_TOPICS = (INFERENCE_COMPLETED,)


def build_model_server(
    settings: Settings, store: ObjectStore, metrics: InferenceMetrics
) -> ModelServer:
    """Publish missing reference models, then load, warm up and pin the configured ones."""
    cfg = settings.inference
    if cfg.publish_packaged_models:
        publish_missing_models(packaged_models(), store)
    registry = ModelRegistry(
        ObjectStoreModelSource(store),
        SessionConfig(
            providers=cfg.provider_list(),
            intra_op_threads=cfg.intra_op_threads,
            inter_op_threads=cfg.inter_op_threads,
            trt_cache_dir=cfg.trt_cache_dir,
            device_id=cfg.device_id,
        ),
        BatchPolicy(
            max_batch_size=cfg.max_batch_size,
            max_wait_ms=cfg.max_wait_ms,
            max_queue=cfg.queue_size,
            direct_runs=cfg.direct_run_slots(),
            cpu_batching=cfg.cpu_batching,
        ),
        metrics,
    )
    server = ModelServer(registry, run_shadows=cfg.run_shadow_versions)
    server.load_and_pin(cfg.model_refs())
    for model in registry.loaded():
        log.info("model %s %s ready on %s", model.card.name, model.card.version, model.provider)
    return server


def compare_stored_versions(settings: Settings, model_name: str) -> VersionComparison:
    """Compare a gating model's versions from the deployment's database and registry (the CLI)."""
    registry = ModelRegistry(ObjectStoreModelSource(build_object_store(settings)))
    pinned = dict(settings.inference.model_refs()).get(model_name)
    # The version this deployment serves: its configured pin, else the newest released one.
    serving = pinned or registry.card(model_name).version
    engine = build_engine(settings, SERVICE)
    try:
        comparisons = SqlVersionComparisons(session_factory(engine))
        return shadow.report_comparison(comparisons, registry.card, model_name, serving)
    finally:
        engine.dispose()


def build(settings: Settings, **adapters: Unpack[Adapters]) -> ServiceHost:
    """Build adapters, migrate, load models, wire REST, gRPC, consumer and relay into a host."""
    plumbing = Plumbing.build(SERVICE, settings, **adapters)
    plumbing.migrate(MIGRATIONS)

    base = ServiceMetrics(SERVICE)
    metrics = InferenceMetrics(base.registry)
    models = build_model_server(settings, plumbing.store, metrics)
    cfg = settings.inference
    try:
        modules = load_clinical_modules(models.registry)
    except Exception:
        # The quality check and probe health must keep serving when a clinical module's card
        # or model is broken; the error is logged and counted, exams run without modules.
        log.exception("clinical modules failed to load; exams run without them")
        metrics.errors.labels("clinical-modules", "load").inc()
        modules = []
    for module in modules:
        log.info(
            "clinical module %s %s ready for %s",
            module.name,
            module.version,
            ",".join(sorted(module.exam_types)),
        )
    outbox = Outbox(orm.outbox)
    deps = Dependencies(
        models=models,
        store=plumbing.store,
        metrics=metrics,
        clock=plumbing.clock,
        exam_work=lambda session: SqlExamWork(session, outbox),
        sampling=FrameSampling(cfg.frames_per_instance),
        modules=modules,
        instance_delay_seconds=cfg.instance_delay_seconds,
        validations=SqlDeviceValidations(plumbing.sessions()),
        comparisons=SqlVersionComparisons(plumbing.sessions()),
    )
    validation.show_stored_states(deps)

    app = plumbing.app(base, models=models.check_ready)
    app.include_router(rest.router)
    app.state.deps = deps
    app.state.max_image_bytes = cfg.max_image_bytes

    workers = cfg.grpc_workers(any(m.batcher.batching for m in models.registry.loaded()))
    pool = grpc_server.Backlog(workers)
    grpc = plumbing.grpc_server(
        base,
        grpc_server.register(deps, plumbing.verifier),
        executor=pool,
        # Calls past the workers wait in the pool's queue: bound it as the batchers' is.
        interceptors=[grpc_server.AdmissionBound(pool, workers + cfg.queue_size, metrics)],
    )

    # InferStream runs on a grpc.aio server of its own thread and loop: streams on the sync
    # server would each hold a worker, and aio streams reach 0.8x raw at 32 clients.
    streams = grpc_stream.StreamServer(
        grpc_stream.InferStreamServicer(
            grpc_stream.answers(deps), plumbing.verifier, base, metrics, cfg.max_streams
        ),
        settings.grpc.host,
        cfg.stream_port(settings.grpc.port),
    )

    plumbing.bus.ensure_topics([*consumer.TOPICS, *PRODUCED_TOPICS])
    worker = plumbing.consumer(
        group=cfg.consumer_group,
        topics=consumer.TOPICS,
        stage=consumer.event_stage(deps, plumbing.sessions()),
        sessions=plumbing.sessions(),
        inbox=orm.inbox,
        metrics=base,
        lanes=cfg.consumer_lanes,
    )

    def run_consumer(stop: threading.Event) -> None:
        # Models outlive the consumer: unloading them under a handler in flight would fail
        # the exam on every retry and dead-letter it during an ordinary shutdown.
        try:
            worker.run(stop)
        finally:
            if stop.is_set():
                models.close()

    host = plumbing.host(
        app,
        grpc,
        {
            **plumbing.delivery_workers(orm.outbox, orm.inbox, base),
            "consumer": run_consumer,
            "infer-stream": streams,
        },
    )
    host.deps = deps  # type: ignore[attr-defined]
    host.streams = streams  # type: ignore[attr-defined]
    return host
