"""Content negotiation for DICOMweb answers: what each Accept header lets us send."""

from __future__ import annotations

from collections.abc import Sequence

from sonobridge.ingest.domain.media import (
    MEDIA_TYPES,
    OCTET_STREAM,
    frame_media_type,
    served_transfer_syntax,
)
from sonobridge.ingest.domain.records import Instance
from sonobridge.ingest.entrypoints.dicomweb.views import DICOM_JSON, NotAcceptable


def media_range(candidate: str) -> tuple[str, dict[str, str]]:
    """Split one Accept entry into its media range and lower-cased parameters."""
    main, *params = candidate.split(";")
    values: dict[str, str] = {}
    for param in params:
        name, _, value = param.strip().partition("=")
        values[name.strip().lower()] = value.strip().strip('"')
    return main.strip().lower(), values


def check_accept_json(accept: str | None) -> None:
    """Allow DICOM JSON (or anything); refuse application/dicom+xml and other formats."""
    if not accept:
        return
    for candidate in accept.split(","):
        main, _ = media_range(candidate)
        if main in ("*/*", "application/*", DICOM_JSON, "application/json"):
            return
    raise NotAcceptable(
        f"search results and metadata are served as {DICOM_JSON} only (not application/dicom+xml)",
        reason="not_acceptable",
    )


def check_accept_dicom(accept: str | None, rows: Sequence[Instance]) -> None:
    """Allow multipart/related; type=application/dicom with the stored (or any) syntax."""
    if not accept or accept.strip() in ("*/*", "multipart/related"):
        return
    for candidate in accept.split(","):
        main, *params = candidate.split(";")
        main = main.strip().lower()
        values = {}
        for param in params:
            name, _, value = param.strip().partition("=")
            values[name.strip().lower()] = value.strip().strip('"')
        if main in ("*/*", "multipart/*"):
            return
        if main != "multipart/related":
            continue
        if values.get("type", "application/dicom").lower() != "application/dicom":
            continue
        syntax = values.get("transfer-syntax", "*")
        if syntax == "*" or all(r.transfer_syntax_uid == syntax for r in rows):
            return
    raise NotAcceptable(
        'instances are served as stored: multipart/related; type="application/dicom"; '
        "transfer-syntax=* (no transcoding)",
        reason="not_acceptable",
    )


def frame_representation(accept: str | None, stored_syntax: str) -> tuple[str, str]:
    """Pick (media type, transfer syntax) for frames from Accept; frames are never transcoded."""
    natural = frame_media_type(stored_syntax)
    syntax = served_transfer_syntax(stored_syntax)
    if not accept:
        return natural, syntax
    for candidate in accept.split(","):
        main, params = media_range(candidate)
        kind = params.get("type", "*/*").lower() if main == "multipart/related" else main
        wanted = params.get("transfer-syntax")
        matches = kind == "*/*" or kind == natural
        matches = matches or (kind.endswith("/*") and natural.startswith(kind[:-1]))
        if matches and wanted in (None, "*", syntax):
            return natural, syntax
        if kind == OCTET_STREAM and natural != OCTET_STREAM and wanted in ("*", stored_syntax):
            # Cornerstone (OHIF) asks for octet-stream with transfer-syntax=* and picks its
            # decoder from the part's transfer-syntax, so the compressed bitstream suits it.
            return OCTET_STREAM, stored_syntax
    raise NotAcceptable(
        f"frames of this instance are served as stored: {natural}; transfer-syntax={syntax} "
        f"(or application/octet-stream; transfer-syntax=*); no transcoding",
        reason="not_acceptable",
    )


def check_accept_bulk(accept: str | None) -> None:
    """Allow multipart/related with octet-stream (or any) parts: bulk data is never transcoded."""
    if not accept:
        return
    for candidate in accept.split(","):
        main, params = media_range(candidate)
        kind = params.get("type", "*/*").lower() if main == "multipart/related" else main
        if main in ("*/*", "multipart/*") or kind in ("*/*", "application/*", OCTET_STREAM):
            return
    raise NotAcceptable(
        f'bulk data is served as multipart/related; type="{OCTET_STREAM}"',
        reason="not_acceptable",
    )


def rendered_type(accept: str | None) -> str:
    """Pick the rendered media type (JPEG or PNG) the client accepts."""
    if not accept:
        return "image/jpeg"
    for candidate in accept.split(","):
        main = candidate.split(";")[0].strip().lower()
        if main in MEDIA_TYPES:
            return main
        if main in ("*/*", "image/*"):
            return "image/jpeg"
    raise NotAcceptable("rendered frames are available as image/jpeg or image/png")
