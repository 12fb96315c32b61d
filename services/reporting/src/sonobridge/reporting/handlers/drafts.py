"""Drafts and verdicts: start a draft from the template, edit it, judge the AI findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict, InvalidInput, NotFound
from sonobridge.reporting.domain.reads import OPEN_STATES
from sonobridge.reporting.domain.records import Draft, Verdict
from sonobridge.reporting.domain.templates import draft_for
from sonobridge.reporting.handlers.routing import ai_findings
from sonobridge.reporting.handlers.scope import audit, require_reader, visible_read
from sonobridge.reporting.ports import Dependencies, Work

VERDICTS = ("agree", "modify", "reject")


def create_draft(
    work: Work, deps: Dependencies, principal: Principal, read_id: str, language: str
) -> Draft:
    """Start a draft from the exam type's template and the AI findings (replaces a draft)."""
    now = deps.clock()
    repo = work.reporting
    read = visible_read(repo, deps, principal, read_id, lock=True)
    require_reader(principal, deps, read)
    if read.state not in OPEN_STATES:
        raise Conflict(f"read {read_id} is {read.state}; no draft can be started")
    template = draft_for(read.exam_type, language, ai_findings(read.ai_findings))
    previous = repo.draft(read_id)
    draft = Draft(
        read_id=read_id,
        language=template.language,
        title=template.title,
        findings_text=template.findings_text,
        conclusion=template.conclusion,
        findings=list(read.ai_findings),
        updated_by=principal.user,
        updated_at=now,
        revision=(previous.revision + 1) if previous else 1,
    )
    repo.put_draft(draft)
    audit(repo, deps, principal, "draft_created", read_id=read_id, detail=language)
    return draft


def edit_draft(
    deps: Dependencies,
    principal: Principal,
    read_id: str,
    *,
    changes: dict[str, Any],
    revision: int | None,
) -> Draft:
    """Change a draft's text or findings; `revision` guards against overwriting another edit."""
    now = deps.clock()
    given = {k: v for k, v in changes.items() if v is not None}
    with deps.unit() as work:
        repo = work.reporting
        read = visible_read(repo, deps, principal, read_id, lock=True)
        require_reader(principal, deps, read)
        draft = repo.draft(read_id)
        if draft is None:
            raise NotFound(f"read {read_id} has no draft; create one first")
        if revision is not None and revision != draft.revision:
            raise Conflict(f"draft is at revision {draft.revision}, not {revision}")
        if "findings" in given:
            given["findings"] = deps.normalize_findings(given["findings"])
        edited = replace(
            draft, **given, updated_by=principal.user, updated_at=now, revision=draft.revision + 1
        )
        repo.put_draft(edited)
        audit(
            repo, deps, principal, "draft_edited", read_id=read_id, detail=",".join(sorted(given))
        )
    return edited


def record_verdicts(
    deps: Dependencies, principal: Principal, read_id: str, verdicts: Sequence[dict[str, Any]]
) -> list[Verdict]:
    """Store the reader's agree/modify/reject on AI findings, against the model version."""
    now = deps.clock()
    with deps.unit() as work:
        repo = work.reporting
        read = visible_read(repo, deps, principal, read_id, lock=True)
        require_reader(principal, deps, read)
        if read.state not in OPEN_STATES:
            raise Conflict(f"read {read_id} is {read.state}; verdicts are closed")
        findings = {(f.get("code", ""), f.get("model_name", "")): f for f in read.ai_findings}
        by_code = {f.get("code", ""): f for f in read.ai_findings}
        for v in verdicts:
            if v["verdict"] not in VERDICTS:
                raise InvalidInput(f"verdict must be one of {', '.join(VERDICTS)}")
            key = (v["finding_code"], v.get("model_name") or "")
            finding = findings.get(key) or (
                by_code.get(v["finding_code"]) if not v.get("model_name") else None
            )
            if finding is None:
                raise InvalidInput(f"read {read_id} has no AI finding {v['finding_code']!r}")
            repo.put_verdict(
                Verdict(
                    read_id=read_id,
                    finding_code=v["finding_code"],
                    model_name=finding.get("model_name", ""),
                    model_version=finding.get("model_version", ""),
                    verdict=v["verdict"],
                    comment=v.get("comment") or "",
                    decided_by=principal.user,
                    decided_at=now,
                )
            )
        audit(
            repo,
            deps,
            principal,
            "verdicts_recorded",
            read_id=read_id,
            detail=",".join(f"{v['finding_code']}={v['verdict']}" for v in verdicts),
        )
        return repo.verdicts(read_id)
