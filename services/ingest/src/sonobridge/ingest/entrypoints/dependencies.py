"""FastAPI dependencies: the use cases' dependencies and settings that bootstrap put on the app."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from sonobridge.common.http import app_deps
from sonobridge.ingest.handlers import IngestDeps


async def public_base_url(request: Request) -> str | None:
    """Return the configured public URL of the service, if any."""
    return cast(str | None, getattr(request.app.state, "public_base_url", None))


Deps = Annotated[IngestDeps, Depends(app_deps)]
PublicBaseUrl = Annotated[str | None, Depends(public_base_url)]
