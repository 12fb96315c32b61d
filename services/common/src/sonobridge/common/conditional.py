"""Conditional GET per RFC 9110: strong ETags from the bytes sent, If-None-Match, 304."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header, Response

IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match")]
"""The ETags a polling client already holds."""

# Shared caches must not answer for another reader; clients revalidate on every poll.
PRIVATE_REVALIDATE = "private, no-cache"


def entity_tag(content: bytes) -> str:
    """Return the strong ETag of a representation: a digest of exactly the bytes sent."""
    return f'"{hashlib.sha256(content).hexdigest()[:32]}"'


def _tags(header: str) -> list[str]:
    # An entity-tag may itself hold a comma inside its quotes, so split only between tags.
    tags: list[str] = []
    current: list[str] = []
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            tags.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    tags.append("".join(current).strip())
    return [t for t in tags if t]


def matches(if_none_match: str | None, etag: str) -> bool:
    """True when If-None-Match names `etag` (weak comparison, as RFC 9110 asks) or is `*`."""
    if not if_none_match:
        return False
    tags = _tags(if_none_match)
    opaque = etag.removeprefix("W/")
    return "*" in tags or opaque in (t.removeprefix("W/") for t in tags)


def conditional(
    content: bytes,
    if_none_match: str | None,
    *,
    media_type: str = "application/json",
    cache_control: str = PRIVATE_REVALIDATE,
    headers: dict[str, str] | None = None,
) -> Response:
    """Answer a GET with its ETag; 304 without a body when the client's copy is current."""
    etag = entity_tag(content)
    sent = {**(headers or {}), "ETag": etag, "Cache-Control": cache_control}
    if matches(if_none_match, etag):
        return Response(status_code=304, headers=sent)
    return Response(content, media_type=media_type, headers=sent)


def polled(body: Any, if_none_match: str | None) -> Response:
    """Answer a polled JSON read: the tag moves exactly when what the client would see moves."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return conditional(content, if_none_match)
