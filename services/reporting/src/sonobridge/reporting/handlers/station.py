"""The reading station's pages: a worklist with probe warnings and an exam with its labels."""

from __future__ import annotations

from dataclasses import dataclass

from sonobridge.common.auth import Principal
from sonobridge.common.objects.ports import read_all
from sonobridge.common.problems import Forbidden, NotFound
from sonobridge.reporting.domain.access import STATION_ROLES, may_use_station
from sonobridge.reporting.domain.records import QualityLabel, ReadRecord, ReportVersion
from sonobridge.reporting.handlers import reads
from sonobridge.reporting.handlers.reads import ReadDetail
from sonobridge.reporting.handlers.scope import audit, visible_read
from sonobridge.reporting.ports import Dependencies

PROBE_TICKET = "probe_ticket"


@dataclass(frozen=True)
class WorklistRow:
    """A read on the station's worklist with the warnings about the probe that scanned it."""

    read: ReadRecord
    probe_warnings: list[str]


@dataclass(frozen=True)
class ExamPage:
    """Everything the exam page shows: the read's detail, its labels and its signed versions."""

    detail: ReadDetail
    labels: list[QualityLabel]
    versions: list[ReportVersion]


def require_station(principal: Principal) -> None:
    """Raise Forbidden unless the caller may use the reading station."""
    if not may_use_station(principal):
        raise Forbidden(f"the reading station needs one of the roles {', '.join(STATION_ROLES)}")


def station_worklist(
    deps: Dependencies, principal: Principal, limit: int = 200
) -> list[WorklistRow]:
    """Return the caller's open reads, most urgent first, each with its probe warnings."""
    require_station(principal)
    page, _ = reads.list_reads(
        deps, principal, worklist=None, states=None, assigned_to=None, cursor=None, limit=limit
    )
    with deps.unit() as work:
        repo = work.reporting
        return [
            WorklistRow(r, [h.detail for h in repo.history(r.read_id) if h.kind == PROBE_TICKET])
            for r in page
        ]


def exam_page(deps: Dependencies, principal: Principal, read_id: str) -> ExamPage:
    """Return a read's exam page (auditing the view like the API's read view)."""
    require_station(principal)
    detail = reads.view_read(deps, principal, read_id)
    with deps.unit() as work:
        repo = work.reporting
        labels = sorted(repo.quality_labels(read_id), key=lambda lb: lb.sop_instance_uid)
        versions = repo.report_versions(detail.read.report_id) if detail.read.report_id else []
    return ExamPage(detail, labels, versions)


@dataclass(frozen=True)
class Image:
    """One image of the exam, as the quality-label form lists it."""

    sop_instance_uid: str
    series_instance_uid: str
    frames: int


def images_of(detail: ReadDetail) -> list[Image]:
    """Return the exam's images (instances with frames; a structured report has none)."""
    found = []
    for inst in detail.exam.instances if detail.exam else []:
        if inst.get("number_of_frames"):
            found.append(
                Image(
                    str(inst.get("sop_instance_uid", "")),
                    str(inst.get("series_instance_uid", "")),
                    int(inst["number_of_frames"]),
                )
            )
    return found


_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".json": "application/json"}


def evidence(deps: Dependencies, principal: Principal, read_id: str, key: str) -> tuple[bytes, str]:
    """Return one evidence object an AI finding of the read names, with its media type."""
    require_station(principal)
    with deps.unit() as work:
        repo = work.reporting
        read = visible_read(repo, deps, principal, read_id)
        named = {str(k) for f in read.ai_findings for k in f.get("evidence_object_keys", [])}
        # Only keys the read's findings name: the store holds every institution's objects.
        if key not in named:
            raise NotFound(f"read {read_id} names no evidence {key}")
        audit(repo, deps, principal, "view_evidence", read_id=read_id, detail=key)
    suffix = key[key.rfind(".") :].lower() if "." in key else ""
    return read_all(deps.store, key), _MEDIA_TYPES.get(suffix, "application/octet-stream")
