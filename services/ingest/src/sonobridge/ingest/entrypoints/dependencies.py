"""FastAPI dependencies: the use cases' dependencies and settings that bootstrap put on the app."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from sonobridge.ingest.handlers import IngestDeps


def dependencies(request: Request) -> IngestDeps:
    """Return the dependencies bootstrap built for this app."""
    return cast(IngestDeps, request.app.state.deps)


def public_base_url(request: Request) -> str | None:
    """Return the configured public URL of the service, if any."""
    return cast(str | None, getattr(request.app.state, "public_base_url", None))


Deps = Annotated[IngestDeps, Depends(dependencies)]
PublicBaseUrl = Annotated[str | None, Depends(public_base_url)]
