"""HTTP plumbing of the REST API: Idempotency-Key fingerprints and answers of changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from sonobridge.common import idempotency
from sonobridge.common.idempotency import Outcome, RequestKey

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
"""Clients send one per create; a retry with the same key returns the first response."""


def request_key(key: str | None, request: Request, body: BaseModel | None) -> RequestKey | None:
    """Pair an Idempotency-Key with a digest of the method, path and parsed body it came with."""
    payload = body.model_dump(mode="json") if body is not None else None
    return idempotency.request_key(key, request.method, request.url.path, payload)


def answer(outcome: Outcome) -> JSONResponse:
    """Render a change's outcome; a replay says so in `Idempotent-Replayed`."""
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)
