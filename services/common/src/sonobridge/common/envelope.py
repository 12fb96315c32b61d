"""CloudEvents binary-mode envelope over Kafka headers, carrying protobuf payloads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from google.protobuf.message import DecodeError, Message

from sonobridge.api.events.v1.topics import UnknownEventError, message_class_for

SPEC_VERSION = "1.0"
PROTOBUF = "application/protobuf"


class ProtoMessage(Protocol):
    """The parts of a protobuf message the envelope needs."""

    @property
    def DESCRIPTOR(self) -> Any: ...  # noqa: N802 - protobuf's name

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...  # noqa: N802


class UnreadableEvent(ValueError):
    """A record whose headers are not a CloudEvent this project can read."""


@dataclass(frozen=True)
class CloudEvent:
    """One event: CloudEvents attributes plus the encoded payload and its partition key."""

    id: str
    source: str
    type: str
    time: datetime
    key: str
    data: bytes
    content_type: str = PROTOBUF
    traceparent: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)

    def headers(self) -> list[tuple[str, bytes]]:
        """Return Kafka headers in the CloudEvents Kafka protocol binding (binary mode)."""
        headers = [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("content-type", self.content_type.encode()),
        ]
        if self.traceparent:
            headers.append(("traceparent", self.traceparent.encode()))
        headers.extend((f"ce_{name}", value.encode()) for name, value in self.extensions.items())
        return headers

    @classmethod
    def from_record(
        cls, key: bytes | str | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> CloudEvent:
        """Rebuild an event from a record's key, value and headers."""
        values: dict[str, str] = {}
        for name, raw in headers:
            try:
                values[name] = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
            except UnicodeDecodeError as exc:
                raise UnreadableEvent(f"header {name} is not UTF-8") from exc
        missing = [h for h in ("ce_id", "ce_source", "ce_type", "ce_time") if h not in values]
        if missing:
            raise UnreadableEvent(f"record lacks CloudEvents headers {', '.join(missing)}")
        if values.get("ce_specversion") != SPEC_VERSION:
            raise UnreadableEvent(f"unsupported specversion {values.get('ce_specversion')!r}")
        try:
            time = datetime.fromisoformat(values["ce_time"])
        except ValueError as exc:
            raise UnreadableEvent(f"bad ce_time {values['ce_time']!r}") from exc
        known = {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"}
        extensions = {
            name[3:]: val
            for name, val in values.items()
            if name.startswith("ce_") and name not in known
        }
        return cls(
            id=values["ce_id"],
            source=values["ce_source"],
            type=values["ce_type"],
            time=time,
            key=key.decode() if isinstance(key, bytes) else (key or ""),
            data=bytes(value),
            content_type=values.get("content-type", PROTOBUF),
            traceparent=values.get("traceparent"),
            extensions=extensions,
        )


def wrap(
    message: ProtoMessage,
    *,
    source: str,
    key: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    """Wrap a protobuf message; the id is fixed here, once, so retries keep it."""
    return CloudEvent(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=message.DESCRIPTOR.full_name,
        time=time or datetime.now(UTC),
        key=key,
        data=message.SerializeToString(deterministic=True),
    )


def unpack(event: CloudEvent) -> Message:
    """Decode the payload into its registered message class; UnreadableEvent if impossible."""
    if event.content_type != PROTOBUF:
        raise UnreadableEvent(f"unsupported content-type {event.content_type!r}")
    try:
        message = message_class_for(event.type)()
        message.ParseFromString(event.data)
    except (UnknownEventError, DecodeError) as exc:
        raise UnreadableEvent(f"cannot decode {event.type}: {exc}") from exc
    return message
