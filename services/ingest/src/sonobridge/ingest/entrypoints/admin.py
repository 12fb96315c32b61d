"""REST /v1/admin for county IT: the registry of DIMSE calling AE titles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sonobridge.common.http import CurrentPrincipal
from sonobridge.ingest.domain.callers import DimseCaller
from sonobridge.ingest.entrypoints.dependencies import Deps
from sonobridge.ingest.handlers import callers


class DimseCallerIn(BaseModel):
    """The institution whose data a calling AE title sends."""

    institution_id: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=255)


def caller_json(caller: DimseCaller) -> dict[str, Any]:
    """Render one registration."""
    return {
        "ae_title": caller.ae_title,
        "institution_id": caller.institution_id,
        "description": caller.description,
    }


router = APIRouter(prefix="/v1/admin")


@router.get("/dimse-callers")
async def list_dimse_callers(principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    found = await run_in_threadpool(callers.list_callers, deps, principal)
    return {"callers": [caller_json(c) for c in found]}


@router.get("/dimse-callers/{ae_title}")
async def get_dimse_caller(
    ae_title: str, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    caller = await run_in_threadpool(callers.get_caller, deps, principal, ae_title)
    return caller_json(caller)


@router.put("/dimse-callers/{ae_title}")
async def put_dimse_caller(
    ae_title: str, body: DimseCallerIn, principal: CurrentPrincipal, response: Response, deps: Deps
) -> dict[str, Any]:
    caller, created = await run_in_threadpool(
        callers.register_caller,
        deps,
        principal,
        ae_title,
        body.institution_id,
        body.description,
    )
    if created:
        response.status_code = 201
    return caller_json(caller)


@router.delete("/dimse-callers/{ae_title}", status_code=204)
async def delete_dimse_caller(ae_title: str, principal: CurrentPrincipal, deps: Deps) -> Response:
    await run_in_threadpool(callers.remove_caller, deps, principal, ae_title)
    return Response(status_code=204)
