"""Domain errors shared by transports, and their RFC 9457 problem+json rendering."""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error a client can act on; transports map `status` to HTTP, gRPC or DICOM codes."""

    status = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        """Render as a problem+json body."""
        body: dict[str, Any] = {
            "type": f"https://sonobridge.invalid/problems/{self.type_slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class InvalidInput(Problem):
    """The request is malformed or violates a rule."""

    status, title, type_slug = 422, "Invalid input", "invalid-input"


class Unauthenticated(Problem):
    """No valid credentials."""

    status, title, type_slug = 401, "Unauthenticated", "unauthenticated"


class Forbidden(Problem):
    """Valid credentials without the right role or scope."""

    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(Problem):
    """Nothing the caller may see exists at that name."""

    status, title, type_slug = 404, "Not found", "not-found"


class Conflict(Problem):
    """The request contradicts what is already stored."""

    status, title, type_slug = 409, "Conflict", "conflict"


class PayloadTooLarge(Problem):
    """The request body is above the configured limit."""

    status, title, type_slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(Problem):
    """The content type cannot be handled."""

    status, title, type_slug = 415, "Unsupported media type", "unsupported-media-type"


class Unavailable(Problem):
    """Temporarily unable to serve (overload or a dependency down); the client may retry."""

    status, title, type_slug = 503, "Service unavailable", "unavailable"
