"""AI results into the study: an inference run's measurement report and overlays, stored once."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sonobridge.common.auth import Principal
from sonobridge.common.objects.ports import ObjectNotFound, read_all
from sonobridge.ingest.domain.ai_results import AiResult, with_module_details
from sonobridge.ingest.domain.model import Channel, Scope
from sonobridge.ingest.domain.records import Instance
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.handlers.instances import StoredInstance, store_instance
from sonobridge.ingest.ports import AiResultRenderer

log = logging.getLogger(__name__)

# Ingest writes on the inference service's behalf, into the institution that owns the study.
AI_WRITER = "service:inference"


@dataclass(frozen=True)
class StoredAiResult:
    """What one inference run left in its study."""

    report: StoredInstance | None
    overlays: tuple[StoredInstance, ...]
    # Findings on images this ingest does not hold (left out of the report).
    unreferenced: int = 0


def store_ai_results(
    deps: IngestDeps, renderer: AiResultRenderer, result: AiResult
) -> StoredAiResult:
    """Store an inference run as a TID 1500 report and overlay captures in the exam's study.

    The objects' UIDs and bytes follow from the run alone, so a redelivered event finds them
    stored and writes nothing new (the bus delivers at least once).
    """
    if not result.measurements and not result.overlays:
        return StoredAiResult(None, ())  # nothing measured or drawn: no report to write
    result = with_module_details(result, _module_details(deps, result))
    sources, owner = _sources(deps, result)
    if not sources or owner is None:
        log.warning("inference %s: none of its images is stored here", result.inference_id)
        return StoredAiResult(None, (), len(result.measurements))
    writer = Principal(AI_WRITER, frozenset({"service"}), owner.institution_id, owner.consortium_id)
    unreferenced = sum(1 for m in result.measurements if m.sop_instance_uid not in sources)
    report = None
    if any(m.sop_instance_uid in sources for m in result.measurements):
        body = renderer.measurement_report(result, sources)
        report = _store(deps, writer, owner, result.study_instance_uid, body)
    overlays = []
    for number, overlay in enumerate(result.overlays, start=1):
        source = sources.get(overlay.sop_instance_uid)
        if source is None:
            continue
        try:
            png = read_all(deps.store, overlay.object_key)
        except ObjectNotFound:
            log.warning("inference %s: overlay %s is gone", result.inference_id, overlay.object_key)
            continue
        body = renderer.overlay_capture(result, overlay, png, source, number)
        overlays.append(_store(deps, writer, owner, result.study_instance_uid, body))
    return StoredAiResult(report, tuple(overlays), unreferenced)


def _module_details(deps: IngestDeps, result: AiResult) -> dict[tuple[str, str], dict[str, Any]]:
    """Read each module's details; a missing or unreadable one leaves its findings unplaced."""
    details: dict[tuple[str, str], dict[str, Any]] = {}
    for key in result.details_keys:
        try:
            body = json.loads(read_all(deps.store, key))
        except (ObjectNotFound, ValueError):
            log.warning("inference %s: findings %s unreadable", result.inference_id, key)
            continue
        if isinstance(body, dict) and isinstance(body.get("details"), dict):
            details[(str(body.get("module")), str(body.get("version")))] = body["details"]
    return details


def _sources(deps: IngestDeps, result: AiResult) -> tuple[dict[str, dict[str, Any]], Scope | None]:
    """Return the stored headers of the images the run refers to, and who owns the study."""
    found: list[Instance] = []
    with deps.unit() as work:
        for uid in result.source_uids():
            instance = work.instances.get(uid)
            if (
                instance is not None
                and instance.status == "stored"
                and instance.study_instance_uid == result.study_instance_uid
            ):
                found.append(instance)
    if not found:
        return {}, None
    owner = Scope(found[0].institution_id, found[0].consortium_id)
    return {i.sop_instance_uid: json.loads(i.metadata_json) for i in found}, owner


def _store(
    deps: IngestDeps, writer: Principal, owner: Scope, study: str, body: bytes
) -> StoredInstance:
    with deps.spool.from_chunks(iter([body])) as spooled:
        return store_instance(
            deps, writer, spooled, channel=Channel.AI, expected_study=study, scope=owner
        )
