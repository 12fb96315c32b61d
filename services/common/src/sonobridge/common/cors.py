"""CORS for every REST and DICOMweb route, so browser viewers on another origin can call us."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# What OHIF/dicomweb-client, tus-js-client and the app send; the safelisted ones are implied.
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "Idempotency-Key",
    "If-None-Match",
    "If-Match",
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
    "Upload-Concat",
    "Upload-Defer-Length",
    "X-HTTP-Method-Override",
    "X-Requested-With",
)

# Without these a browser hides them from scripts: tus clients resume from Upload-Offset and
# follow Location, QIDO-RS reports truncation in Warning, the app revalidates with ETag.
EXPOSED_HEADERS = (
    "Warning",
    "Location",
    "ETag",
    "Content-Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
)


def install_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Answer preflights and mark responses readable for `origins` only (none: same-origin)."""
    # Added last, so it wraps the other middleware: a preflight is answered before any route
    # (tus OPTIONS included) or token check runs, and error responses carry the headers too.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=600,
    )
