"""HTTP plumbing of the REST API: Idempotency-Key fingerprints, answers, ETag'd polling."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from sonobridge.reporting.ports import Outcome, RequestKey

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
"""Clients send one per create; a retry with the same key returns the first response."""


def request_key(key: str | None, request: Request, body: BaseModel | None) -> RequestKey | None:
    """Pair an Idempotency-Key with a digest of the method, path and parsed body it came with."""
    if key is None:
        return None
    payload = body.model_dump(mode="json") if body is not None else None
    canonical = json.dumps(
        [request.method, request.url.path, payload], sort_keys=True, separators=(",", ":")
    )
    return RequestKey(key, hashlib.sha256(canonical.encode()).hexdigest())


def answer(outcome: Outcome) -> JSONResponse:
    """Render a change's outcome; a replay says so in `Idempotent-Replayed`."""
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)


IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match")]
"""The ETags a polling client already holds."""


def entity_tag(content: bytes) -> str:
    """Return the strong ETag of a representation: a digest of exactly the bytes sent."""
    return f'"{hashlib.sha256(content).hexdigest()[:32]}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """True when If-None-Match names `etag` (weak comparison, as RFC 9110 asks) or is `*`."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in (t.removeprefix("W/") for t in tags)


def polled(body: dict[str, Any], if_none_match: str | None) -> Response:
    """Answer a polled read with its ETag; 304 without a body when the client's copy is current."""
    # The tag hashes the representation itself, so it moves exactly when what the client would
    # see moves: a claim, a new draft revision, an amendment, an `overdue` flag turning true.
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    etag = entity_tag(content)
    # no-cache: shared caches must not answer for another reader; clients revalidate each poll.
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)
