"""Typed settings sections shared by every service; each service composes its own Settings."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Edition(StrEnum):
    """Which adapters a service runs with."""

    SINGLE = "single"
    CLUSTER = "cluster"


class HttpSettings(BaseModel):
    """REST listener."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Browser origins (scheme://host[:port]) allowed to call the API cross-origin, e.g. a viewer
    # served elsewhere; empty means same-origin only. HTTP__CORS_ORIGINS='["https://viewer.x"]'.
    cors_origins: list[str] = Field(default_factory=list)

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        # An origin has no path, query or trailing slash; a browser would never send one that
        # does, so such an entry would silently match nothing.
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[^/?#\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin like https://viewer.example:8443")
        return value


class GrpcSettings(BaseModel):
    """gRPC listener."""

    host: str = "127.0.0.1"
    port: int = Field(50051, ge=0, le=65535)


class LogSettings(BaseModel):
    """Log level and format."""

    level: str = "INFO"
    json_format: bool = True


class KafkaSettings(BaseModel):
    """Kafka connection, used by the cluster edition."""

    bootstrap_servers: str = ""
    client_id: str = "sonobridge"
    request_timeout_ms: int = 30_000


class StorageSettings(BaseModel):
    """Object store: MinIO (cluster) or a local directory (single node)."""

    endpoint: str = ""
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    bucket: str = "sonobridge"
    secure: bool = False
    region: str | None = None
    root: Path | None = None
    part_size_bytes: int = Field(16 * 1024 * 1024, ge=5 * 1024 * 1024)


class DbSettings(BaseModel):
    """Database URL (SQLAlchemy form)."""

    url: SecretStr | None = None
    pool_size: int = 5
    echo: bool = False


class AuthSettings(BaseModel):
    """OIDC bearer-token verification."""

    jwks_url: str = ""
    issuer: str = ""
    audience: str = "sonobridge"
    leeway_seconds: int = 30


class AccessSettings(BaseModel):
    """The institution registry the access policy reads (who serves whom)."""

    # JSON file `{"institutions": [{id, tier, consortium, served_by}]}`; without it every
    # reader reaches only its own institution.
    institutions_file: Path | None = None


class DeliverySettings(BaseModel):
    """Consumer retries, dead-lettering, the outbox relay and the outbox and inbox retention."""

    max_attempts: int = Field(5, ge=1)
    retry_backoff_seconds: float = Field(0.2, ge=0)
    relay_interval_seconds: float = Field(0.2, gt=0)
    relay_batch_size: int = Field(100, ge=1)
    # Shipped outbox rows are kept this long for inspection, then purged; unshipped ones never.
    outbox_retention_days: float = Field(7, gt=0)
    # The longest the bus may hand a consumer an event again. A group whose offsets are lost
    # (Kafka expires an idle group's after offsets.retention.minutes) restarts from the earliest
    # record still kept, and Kafka deletes a record only with its whole segment: up to the
    # topics' retention.ms (7 days in deploy/k8s) plus segment.ms (Kafka's default, 7 days).
    redelivery_horizon_days: float = Field(14, gt=0)
    # An inbox record is what drops a duplicate delivery. A record is processed after the bus
    # took the event, so one kept for the redelivery horizon outlives every copy still readable.
    inbox_retention_days: float = Field(14, gt=0)
    # How long the single node's embedded event log keeps a record every group has committed
    # past; unset, the redelivery horizon. It is that horizon for the embedded bus: a group
    # reading from the earliest record (a new or reset group) gets records no older than this,
    # whose inbox entries are no older either (an entry is written after its record was
    # appended) and so are kept for the inbox retention, which is at least the horizon. (Each
    # purge runs every retention interval, so at equal retentions a record may outlive its
    # entry by up to one interval.) The embedded log never expires a group's offsets: only a
    # group new to the log reads from the earliest record, and it has no entries to miss.
    # A record some group has not committed past is kept whatever its age.
    event_log_retention_days: float | None = Field(None, gt=0)
    retention_interval_seconds: float = Field(600, gt=0)
    retention_batch_size: int = Field(500, ge=1)

    @model_validator(mode="after")
    def _inbox_outlives_redelivery(self) -> DeliverySettings:
        # A shorter inbox would let a redelivered event through as new: its effects twice.
        if self.inbox_retention_days < self.redelivery_horizon_days:
            raise ValueError(
                f"inbox_retention_days ({self.inbox_retention_days:g}) must be at least "
                f"redelivery_horizon_days ({self.redelivery_horizon_days:g}): a duplicate "
                "delivered after its inbox record was purged would be processed again"
            )
        if self.event_log_retention() > timedelta(days=self.redelivery_horizon_days):
            raise ValueError(
                f"event_log_retention_days ({self.event_log_retention_days:g}) must be at most "
                f"redelivery_horizon_days ({self.redelivery_horizon_days:g}): the log would "
                "hand out records whose inbox entries may already be purged"
            )
        return self

    def event_log_retention(self) -> timedelta:
        """How long the embedded log keeps fully consumed records: the horizon unless set."""
        days = self.event_log_retention_days
        return timedelta(days=self.redelivery_horizon_days if days is None else days)


class ServiceSettings(BaseSettings):
    """Settings every service shares; services subclass it to add their own sections."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", env_file=".env", extra="ignore", case_sensitive=False
    )

    edition: Edition = Edition.SINGLE
    data_dir: Path = Path("var/single-node")
    http: HttpSettings = HttpSettings()
    grpc: GrpcSettings = GrpcSettings()
    log: LogSettings = LogSettings()
    kafka: KafkaSettings = KafkaSettings()
    storage: StorageSettings = StorageSettings()
    db: DbSettings = DbSettings()
    auth: AuthSettings = AuthSettings()
    access: AccessSettings = AccessSettings()
    delivery: DeliverySettings = DeliverySettings()

    @model_validator(mode="after")
    def _cluster_needs_servers(self) -> ServiceSettings:
        # The cluster edition has no sensible defaults for its servers: fail at start-up, by name.
        if self.edition is Edition.CLUSTER:
            missing = [
                name
                for name, value in (
                    ("KAFKA__BOOTSTRAP_SERVERS", self.kafka.bootstrap_servers),
                    ("STORAGE__ENDPOINT", self.storage.endpoint),
                    ("STORAGE__ACCESS_KEY", self.storage.access_key),
                    ("STORAGE__SECRET_KEY", self.storage.secret_key),
                    ("DB__URL", self.db.url),
                    ("AUTH__JWKS_URL", self.auth.jwks_url),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"cluster edition needs {', '.join(missing)}")
        return self

    def database_url(self, service: str) -> str:
        """Return the configured database URL, or the single-node SQLite file for `service`."""
        if self.db.url is not None:
            return self.db.url.get_secret_value()
        return f"sqlite:///{(self.data_dir / f'{service}.sqlite3').resolve()}"

    def object_root(self) -> Path:
        """Return the single-node object directory."""
        return (self.storage.root or self.data_dir / "objects").resolve()

    def event_log_path(self) -> Path:
        """Return the single-node embedded event log file, shared by all services on the node."""
        return (self.data_dir / "events.sqlite3").resolve()
