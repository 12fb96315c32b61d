"""Outbound HTTP: HMAC-SHA256 signed webhooks and FHIR bundle pushes."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Imported by the first delivery: the single node would otherwise pay for httpx (and, where
    # installed, its CLI's rich and click) before it is ready, for webhooks that may never fire.
    import httpx

SIGNATURE_HEADER = "X-SonoBridge-Signature"
TIMESTAMP_HEADER = "X-SonoBridge-Timestamp"
EVENT_HEADER = "X-SonoBridge-Event"
DELIVERY_HEADER = "X-SonoBridge-Delivery"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """Return the signature header value: sha256 HMAC over "<timestamp>.<body>"."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Check a signature header value in constant time (for receivers and tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True)
class DeliveryOutcome:
    """Whether a POST was accepted, and why not."""

    ok: bool
    error: str = ""
    retryable: bool = True


class HttpSender:
    """POSTs webhook and FHIR bodies; 2xx is success, 4xx other than 408/429 is permanent."""

    def __init__(self, *, secret: bytes | None, timeout: float) -> None:
        self.secret = secret
        self.timeout = timeout

    @cached_property
    def client(self) -> httpx.Client:
        """The connection pool, made on the first delivery: its TLS context costs start-up time."""
        import httpx

        return httpx.Client(timeout=self.timeout)

    def post(
        self,
        url: str,
        body: str,
        *,
        channel: str,
        event_type: str,
        delivery_id: str,
        timestamp: str,
    ) -> DeliveryOutcome:
        """Send one delivery attempt."""
        import httpx

        data = body.encode()
        if channel == "fhir":
            headers = {"Content-Type": "application/fhir+json"}
        else:
            headers = {
                "Content-Type": "application/json",
                EVENT_HEADER: event_type,
                DELIVERY_HEADER: delivery_id,
                TIMESTAMP_HEADER: timestamp,
            }
            if self.secret is not None:
                headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, data)
        try:
            response = self.client.post(url, content=data, headers=headers)
        except httpx.HTTPError as exc:
            return DeliveryOutcome(False, f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return DeliveryOutcome(True)
        permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
        return DeliveryOutcome(
            False, f"HTTP {response.status_code}: {response.text[:200]}", not permanent
        )

    def close(self) -> None:
        """Release connections, if any were made."""
        if "client" in self.__dict__:
            self.client.close()
