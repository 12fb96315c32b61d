"""Where DICOMweb lives: its router and the URLs handed back in answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sonobridge.common.auth import Principal
from sonobridge.common.http import CurrentPrincipal
from sonobridge.ingest.domain.records import Instance
from sonobridge.ingest.entrypoints.dependencies import Deps, PublicBaseUrl
from sonobridge.ingest.handlers import IngestDeps

PREFIX = "/dicomweb"
# One router for every DICOMweb route; stow, qido and wado add theirs on import, in that order.
router = APIRouter(prefix=PREFIX)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORWARDING_HEADERS = ("forwarded", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-for")


def _request_base(request: Request) -> str:
    """Return the URL the client called, with the port even when its Host header left it out.

    dicomweb-client sends `Host: <host>` without the port; a client that reached us directly
    came through our listening port, so that port belongs in the URLs we hand back. Through a
    proxy (forwarding headers present) the Host header is taken as is.
    """
    url = request.base_url
    server = request.scope.get("server")
    forwarded = any(h in request.headers for h in _FORWARDING_HEADERS)
    if url.port is None and server and not forwarded:
        port = int(server[1])
        if port != _DEFAULT_PORTS.get(url.scheme):
            url = url.replace(port=port)
    return str(url)


def base_url(request: Request, public_base_url: str | None) -> str:
    """Return the DICOMweb root URL for answers to this request."""
    # Behind a proxy or port mapping, the configured public URL is what clients can reach.
    return (public_base_url or _request_base(request)).rstrip("/") + PREFIX


def instance_url(base: str, instance: Instance) -> str:
    """Return the WADO-RS URL of an instance."""
    return (
        f"{base}/studies/{instance.study_instance_uid}/series/{instance.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )


@dataclass(frozen=True)
class DicomWebRequest:
    """One QIDO-RS or WADO-RS request: who asks, the use cases, and the root answers link to."""

    request: Request
    principal: Principal
    deps: IngestDeps
    public_base_url: str | None

    @property
    def base(self) -> str:
        """The DICOMweb root URL for answers to this request."""
        return base_url(self.request, self.public_base_url)

    @property
    def accept(self) -> str | None:
        """The request's Accept header."""
        return self.request.headers.get("accept")


async def dicomweb_request(
    request: Request, principal: CurrentPrincipal, deps: Deps, public: PublicBaseUrl
) -> DicomWebRequest:
    """Collect what every QIDO-RS and WADO-RS route needs, as one dependency."""
    return DicomWebRequest(request, principal, deps, public)


Call = Annotated[DicomWebRequest, Depends(dicomweb_request)]
