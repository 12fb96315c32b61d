"""Build the edition's adapters (bus, object store, database, token verifier) from settings."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict, Unpack

import grpc
from fastapi import FastAPI
from sqlalchemy import Engine, Table
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.common.auth import LocalIssuer, TokenVerifier
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.ports import EventBus
from sonobridge.common.db import check_database, create_db_engine, migrate, session_factory
from sonobridge.common.delivery import ConsumerWorker, EventHandler, EventStage, OutboxRelay
from sonobridge.common.grpc import Registration, create_grpc_server
from sonobridge.common.host import Release, ServiceHost, Worker
from sonobridge.common.http import ReadinessCheck, create_service_app
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.common.retention import DeliveryRetention
from sonobridge.common.settings import Edition, ServiceSettings

LOCAL_ISSUER = "sonobridge-local"


def build_event_bus(settings: ServiceSettings) -> EventBus:
    """Kafka for the cluster edition, the embedded log for a single node."""
    if settings.edition is Edition.CLUSTER:
        # Imported here: a single node never loads the Kafka client (its start-up time).
        from sonobridge.common.bus.kafka import KafkaEventBus

        return KafkaEventBus(
            settings.kafka.bootstrap_servers,
            client_id=settings.kafka.client_id,
            request_timeout_ms=settings.kafka.request_timeout_ms,
        )
    return EmbeddedEventBus(settings.event_log_path())


def build_object_store(settings: ServiceSettings) -> ObjectStore:
    """MinIO for the cluster edition, a local directory for a single node."""
    if settings.edition is Edition.CLUSTER:
        # Imported here: a single node never loads the S3 client (its start-up time).
        from sonobridge.common.objects.minio import MinioObjectStore

        s = settings.storage
        assert s.access_key is not None and s.secret_key is not None
        store = MinioObjectStore(
            s.endpoint,
            s.access_key.get_secret_value(),
            s.secret_key.get_secret_value(),
            s.bucket,
            secure=s.secure,
            region=s.region,
            part_size=s.part_size_bytes,
        )
        store.ensure_bucket()
        return store
    return LocalDirObjectStore(settings.object_root())


def build_engine(settings: ServiceSettings, service: str) -> Engine:
    """PostgreSQL from DB__URL, or the service's SQLite file on a single node."""
    return create_db_engine(
        settings.database_url(service), pool_size=settings.db.pool_size, echo=settings.db.echo
    )


def local_issuer(data_dir: Path) -> LocalIssuer:
    """Return the single node's token issuer, its key kept in the data directory across restarts."""
    key_path = data_dir / "issuer-key.pem"
    if key_path.exists():
        return LocalIssuer(LOCAL_ISSUER, private_pem=key_path.read_bytes())
    issuer = LocalIssuer(LOCAL_ISSUER)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = key_path.with_suffix(".tmp")
    tmp.write_bytes(issuer.private_pem())
    tmp.chmod(0o600)
    tmp.replace(key_path)
    return issuer


def build_verifier(settings: ServiceSettings) -> TokenVerifier:
    """Verify against the configured JWKS URL, or trust the single node's own issuer."""
    a = settings.auth
    if a.jwks_url:
        return TokenVerifier(
            audience=a.audience,
            issuer=a.issuer or None,
            jwks_url=a.jwks_url,
            leeway_seconds=a.leeway_seconds,
        )
    return local_issuer(settings.data_dir).verifier(a.leeway_seconds)


def dependency_checks(
    engine: Engine, store: ObjectStore, bus: EventBus
) -> dict[str, ReadinessCheck]:
    """Readiness checks for the three dependencies every service has, named as in the metrics."""
    return {
        "database": lambda: check_database(engine),
        "object_store": store.check,
        "event_bus": bus.check,
    }


def utc_now() -> datetime:
    """The production clock: the current time, aware, in UTC."""
    return datetime.now(UTC)


class Adapters(TypedDict, total=False):
    """Adapters a caller built itself (tests, the single node): `build` uses them as given."""

    bus: EventBus
    store: ObjectStore
    engine: Engine
    verifier: TokenVerifier
    # Tests pin time; every service otherwise runs on utc_now.
    clock: Callable[[], datetime]


@dataclass(frozen=True)
class Plumbing:
    """The adapters one service runs on, built from settings unless tests or the node pass them."""

    service: str
    settings: ServiceSettings
    bus: EventBus
    store: ObjectStore
    engine: Engine
    verifier: TokenVerifier
    clock: Callable[[], datetime]
    # Closes the bus and the engine built here, not the caller's: the node shares its bus.
    releases: tuple[Release, ...] = ()

    @classmethod
    def build(
        cls, service: str, settings: ServiceSettings, **adapters: Unpack[Adapters]
    ) -> Plumbing:
        """Build whichever adapter the caller did not pass, as the settings' edition says."""
        releases: list[Release] = []
        bus = adapters.get("bus")
        if bus is None:
            bus = build_event_bus(settings)
            releases.append(bus.close)
        engine = adapters.get("engine")
        if engine is None:
            engine = build_engine(settings, service)
            releases.append(engine.dispose)
        return cls(
            service=service,
            settings=settings,
            bus=bus,
            store=adapters.get("store") or build_object_store(settings),
            engine=engine,
            verifier=adapters.get("verifier") or build_verifier(settings),
            clock=adapters.get("clock") or utc_now,
            releases=tuple(releases),
        )

    def sessions(self) -> sessionmaker[Session]:
        """A session factory on the service's database."""
        return session_factory(self.engine)

    def migrate(self, migrations: Path) -> None:
        """Upgrade the service's schema to head with the Alembic scripts in `migrations`."""
        migrate_service(self.settings, self.service, migrations, self.engine)

    def readiness(self) -> dict[str, ReadinessCheck]:
        """Readiness checks of the database, object store and event bus."""
        return dependency_checks(self.engine, self.store, self.bus)

    def app(self, metrics: ServiceMetrics, **checks: ReadinessCheck) -> FastAPI:
        """The service's FastAPI app, ready when `checks` and its dependencies all pass."""
        return create_service_app(
            service=self.service,
            metrics=metrics,
            verifier=self.verifier,
            cors_origins=self.settings.http.cors_origins,
            readiness={**checks, **self.readiness()},
        )

    def grpc_server(
        self,
        metrics: ServiceMetrics,
        register: Registration,
        *,
        max_workers: int = 8,
        executor: ThreadPoolExecutor | None = None,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
    ) -> tuple[grpc.Server, int, object]:
        """The service's gRPC server on the configured address, with health and reflection."""
        return create_grpc_server(
            metrics=metrics,
            register=register,
            host=self.settings.grpc.host,
            port=self.settings.grpc.port,
            max_workers=max_workers,
            executor=executor,
            interceptors=interceptors,
        )

    def relay(self, outbox: Table, metrics: ServiceMetrics) -> Worker:
        """The worker that ships the service's outbox to the bus at the configured pace."""
        delivery = self.settings.delivery
        relay = OutboxRelay(self.engine, outbox, self.bus, metrics, delivery.relay_batch_size)

        def run(stop: threading.Event) -> None:
            relay.run(stop, delivery.relay_interval_seconds)

        return run

    def retention(self, outbox: Table, inbox: Table, metrics: ServiceMetrics) -> Worker:
        """The worker that purges shipped outbox rows and expired inbox records as configured."""
        delivery = self.settings.delivery
        retention = DeliveryRetention(
            self.engine,
            outbox,
            inbox,
            metrics,
            outbox_retention=timedelta(days=delivery.outbox_retention_days),
            inbox_retention=timedelta(days=delivery.inbox_retention_days),
            # The real clock, not `self.clock`: the relay and the inbox stamp rows with it.
            batch_size=delivery.retention_batch_size,
        )

        def run(stop: threading.Event) -> None:
            retention.run(stop, delivery.retention_interval_seconds)

        return run

    def delivery_workers(
        self, outbox: Table, inbox: Table, metrics: ServiceMetrics
    ) -> dict[str, Worker]:
        """The outbox relay and the delivery retention, the workers every service runs."""
        return {
            "outbox-relay": self.relay(outbox, metrics),
            "delivery-retention": self.retention(outbox, inbox, metrics),
        }

    def consumer(
        self,
        *,
        group: str,
        topics: Sequence[str],
        handler: EventHandler | None = None,
        stage: EventStage | None = None,
        sessions: sessionmaker[Session],
        inbox: Table,
        metrics: ServiceMetrics,
        lanes: int = 1,
    ) -> ConsumerWorker:
        """A consumer of `topics` that records each event in `inbox`, retrying as configured."""
        return ConsumerWorker(
            bus=self.bus,
            group=group,
            topics=topics,
            handler=handler,
            stage=stage,
            sessions=sessions,
            inbox=inbox,
            metrics=metrics,
            max_attempts=self.settings.delivery.max_attempts,
            retry_backoff=self.settings.delivery.retry_backoff_seconds,
            lanes=lanes,
        )

    def host(
        self,
        app: FastAPI,
        grpc_server: tuple[grpc.Server, int, object],
        workers: dict[str, Worker],
    ) -> ServiceHost:
        """Serve `app`, the gRPC server and the workers on the configured addresses."""
        server, grpc_port, _health = grpc_server
        return ServiceHost(
            self.service,
            app=app,
            http_host=self.settings.http.host,
            http_port=self.settings.http.port,
            grpc_server=server,
            grpc_port=grpc_port,
            workers=workers,
            releases=list(self.releases),
        )


def migrate_service(
    settings: ServiceSettings, service: str, migrations: Path, engine: Engine | None = None
) -> None:
    """Upgrade the service's schema to head on `engine`, or on the database its settings name."""
    # Building the engine first creates the single node's data directory for its SQLite file.
    engine = engine or build_engine(settings, service)
    migrate(engine.url.render_as_string(hide_password=False), migrations, engine=engine)
