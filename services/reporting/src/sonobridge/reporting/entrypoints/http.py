"""HTTP plumbing of the REST API: Idempotency-Key fingerprints and answers of changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from sonobridge.common import idempotency
from sonobridge.common.auth import Principal
from sonobridge.common.http import CurrentPrincipal, app_deps
from sonobridge.common.idempotency import Outcome, RequestKey
from sonobridge.reporting.ports import Dependencies, Work

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


@dataclass(frozen=True)
class KeyedRequest:
    """A change request with its caller, the service and its optional Idempotency-Key."""

    request: Request
    deps: Dependencies
    principal: Principal
    idempotency_key: str | None

    def run(
        self,
        status: int,
        change: Callable[[Work], dict[str, Any]],
        body: BaseModel | None = None,
    ) -> JSONResponse:
        """Run `change` once per key (fingerprinted with `body`) and render its outcome."""
        key = request_key(self.idempotency_key, self.request, body)
        return answer(self.deps.once(self.principal.user, key, status, change))


def keyed_request(
    request: Request,
    deps: Annotated[Dependencies, Depends(app_deps)],
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> KeyedRequest:
    """Collect what every keyed change route needs, as one dependency."""
    return KeyedRequest(request, deps, principal, idempotency_key)


Keyed = Annotated[KeyedRequest, Depends(keyed_request)]
