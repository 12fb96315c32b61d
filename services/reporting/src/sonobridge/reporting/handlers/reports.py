"""Signed reports: view a version, fetch its PDF/JSON object key, export it as FHIR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sonobridge.common.auth import Principal
from sonobridge.common.objects.ports import read_all
from sonobridge.common.problems import NotFound
from sonobridge.reporting.domain.access import may_view
from sonobridge.reporting.domain.records import ReadRecord, ReportVersion
from sonobridge.reporting.handlers.scope import audit, spec_of
from sonobridge.reporting.ports import Dependencies, Reporting


@dataclass(frozen=True)
class ChosenVersion:
    """One version of a report, and the numbers of all its versions."""

    version: ReportVersion
    versions: list[int]

    @property
    def superseded(self) -> bool:
        """True when a later version exists."""
        return self.version.version < self.versions[-1]


def _visible_versions(
    repo: Reporting, deps: Dependencies, principal: Principal, report_id: str
) -> tuple[list[ReportVersion], ReadRecord]:
    versions = repo.report_versions(report_id)
    if not versions:
        raise NotFound(f"no report {report_id}")
    read = repo.read(versions[0].read_id)
    if read is None or not may_view(
        principal, spec_of(deps, read.worklist), read.institution, deps.access
    ):
        raise NotFound(f"no report {report_id}")
    return versions, read


def _choose(versions: list[ReportVersion], report_id: str, version: int) -> ReportVersion:
    chosen = (
        versions[-1] if version == 0 else next((v for v in versions if v.version == version), None)
    )
    if chosen is None:
        raise NotFound(f"report {report_id} has no version {version}")
    return chosen


def get_report(
    deps: Dependencies, principal: Principal, report_id: str, version: int = 0
) -> ChosenVersion:
    """Return one version of a report (0: the latest) and the list of its versions."""
    with deps.unit() as work:
        repo = work.reporting
        versions, _read = _visible_versions(repo, deps, principal, report_id)
        chosen = _choose(versions, report_id, version)
        audit(
            repo,
            deps,
            principal,
            "view_report",
            read_id=chosen.read_id,
            report_id=report_id,
            detail=f"v{chosen.version}",
        )
    return ChosenVersion(chosen, [v.version for v in versions])


def report_object_key(
    deps: Dependencies, principal: Principal, report_id: str, version: int, kind: str
) -> str:
    """Return the object key of a version's PDF or JSON, auditing the access."""
    with deps.unit() as work:
        repo = work.reporting
        versions, _read = _visible_versions(repo, deps, principal, report_id)
        chosen = next((v for v in versions if v.version == version), None)
        if chosen is None:
            raise NotFound(f"report {report_id} has no version {version}")
        audit(
            repo,
            deps,
            principal,
            f"download_{kind}",
            read_id=chosen.read_id,
            report_id=report_id,
            detail=f"v{version}",
        )
    return chosen.pdf_key if kind == "pdf" else chosen.json_key


def report_document_bytes(
    deps: Dependencies, principal: Principal, report_id: str, version: int, kind: str
) -> bytes:
    """Return a version's stored PDF or JSON document, auditing the access."""
    return read_all(deps.store, report_object_key(deps, principal, report_id, version, kind))


def report_fhir(
    deps: Dependencies, principal: Principal, report_id: str, version: int = 0
) -> dict[str, Any]:
    """Return the FHIR Bundle of a report version."""
    with deps.unit() as work:
        repo = work.reporting
        versions, read = _visible_versions(repo, deps, principal, report_id)
        chosen = _choose(versions, report_id, version)
        exam = repo.exam(read.study_uid)
        audit(
            repo,
            deps,
            principal,
            "export_fhir",
            read_id=read.read_id,
            report_id=report_id,
            detail=f"v{chosen.version}",
        )
    return deps.fhir_bundle(chosen, read, exam)
