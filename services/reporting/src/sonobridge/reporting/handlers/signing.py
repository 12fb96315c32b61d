"""Sign and amend reports: store the version, its PDF and JSON, publish, alert, audit-sample."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict, InvalidInput, NotFound
from sonobridge.reporting.domain import reads as read_rules
from sonobridge.reporting.domain.assignment import DutyRole
from sonobridge.reporting.domain.clock import TimerKind
from sonobridge.reporting.domain.events import ExamContext, FollowupAlerted, ReportSigned
from sonobridge.reporting.domain.followup import match_terms
from sonobridge.reporting.domain.policy import Priority, Route
from sonobridge.reporting.domain.reads import ReadKind, ReadState
from sonobridge.reporting.domain.records import (
    Alert,
    Delivery,
    Draft,
    HistoryEntry,
    JsonObject,
    ReadRecord,
    ReportVersion,
    iso,
)
from sonobridge.reporting.handlers.deliveries import publish
from sonobridge.reporting.handlers.routing import announce_routing
from sonobridge.reporting.handlers.scope import (
    SYSTEM,
    audit,
    pick_reader,
    require_reader,
    visible_read,
)
from sonobridge.reporting.ports import Dependencies, Work


def sign_read(work: Work, deps: Dependencies, principal: Principal, read_id: str) -> ReportVersion:
    """Sign the read's draft as report version 1: events, PDF, FHIR, webhooks, follow-up."""
    now = deps.clock()
    repo = work.reporting
    read = visible_read(repo, deps, principal, read_id, lock=True)
    require_reader(principal, deps, read)
    read_rules.ready_to_sign(read.lifecycle(), principal.user)
    draft = repo.draft(read_id)
    if draft is None:
        raise Conflict(f"read {read_id} has no draft to sign")
    verdicts = repo.verdicts(read_id)
    decided = {(v.finding_code, v.model_name) for v in verdicts}
    missing = [
        f.get("code", "")
        for f in read.ai_findings
        if (f.get("code", ""), f.get("model_name", "")) not in decided
    ]
    if missing:
        raise InvalidInput(f"give a verdict (agree/modify/reject) on AI findings {missing}")
    report_id = str(uuid.uuid4())
    version = store_version(
        work,
        deps,
        read,
        draft,
        report_id=report_id,
        version=1,
        agreement=[v.agreement() for v in verdicts],
        signer=principal.user,
        at=now,
    )
    repo.update_read(read_id, state=ReadState.SIGNED.value, report_id=report_id, signed_at=now)
    repo.add_history(
        read_id,
        HistoryEntry(
            at=now,
            kind="signed",
            actor=principal.user,
            worklist=read.worklist,
            assigned_to=principal.user,
            detail=f"report {report_id} v1",
        ),
    )
    repo.delete_draft(read_id)
    audit(repo, deps, principal, "signed", read_id=read_id, report_id=report_id)
    if read.audit_sampled and read.kind == ReadKind.PRIMARY.value:
        open_audit_read(work, deps, read, now)
    started = read.exam_completed_at or read.created_at
    seconds = max(0.0, (now - started).total_seconds())
    priority, institution = read.priority, read.institution

    def count() -> None:
        deps.metrics.turnaround.labels(priority, institution).observe(seconds)
        for v in verdicts:
            deps.metrics.ai_verdicts.labels(v.model_name, v.model_version, v.verdict).inc()

    work.after_commit(count)
    return version


def amend_report(
    work: Work,
    deps: Dependencies,
    principal: Principal,
    report_id: str,
    *,
    conclusion: str | None,
    findings_text: str | None,
    findings: list[JsonObject] | None,
    reason: str,
) -> ReportVersion:
    """Sign a new version of a report; earlier versions stay as they were."""
    if not reason.strip():
        raise InvalidInput("an amendment needs a reason")
    now = deps.clock()
    repo = work.reporting
    versions = repo.report_versions(report_id)
    if not versions:
        raise NotFound(f"no report {report_id}")
    latest = versions[-1]
    read = visible_read(repo, deps, principal, latest.read_id, lock=True)
    require_reader(principal, deps, read)
    draft = Draft(
        read_id=read.read_id,
        language=latest.language,
        title=latest.title,
        findings_text=findings_text if findings_text is not None else latest.findings_text,
        conclusion=conclusion if conclusion is not None else latest.conclusion,
        findings=deps.normalize_findings(findings) if findings is not None else latest.findings,
        updated_by=principal.user,
        updated_at=now,
        revision=0,
    )
    version = store_version(
        work,
        deps,
        read,
        draft,
        report_id=report_id,
        version=latest.version + 1,
        agreement=latest.ai_agreement,
        signer=principal.user,
        at=now,
        amended_from=latest.version,
        reason=reason,
    )
    repo.add_history(
        read.read_id,
        HistoryEntry(
            at=now,
            kind="amended",
            actor=principal.user,
            worklist=read.worklist,
            assigned_to=read.assigned_to,
            detail=f"report {report_id} v{version.version}: {reason}",
        ),
    )
    audit(
        repo,
        deps,
        principal,
        "amended",
        read_id=read.read_id,
        report_id=report_id,
        detail=reason,
    )
    return version


def store_version(
    work: Work,
    deps: Dependencies,
    read: ReadRecord,
    draft: Draft,
    *,
    report_id: str,
    version: int,
    agreement: list[JsonObject],
    signer: str,
    at: datetime,
    amended_from: int = 0,
    reason: str = "",
) -> ReportVersion:
    """Store a signed version and its documents; publish it, queue FHIR, notify, alert."""
    repo = work.reporting
    signed = ReportVersion(
        report_id=report_id,
        version=version,
        read_id=read.read_id,
        study_uid=read.study_uid,
        institution=read.institution,
        language=draft.language,
        title=draft.title,
        findings_text=draft.findings_text,
        conclusion=draft.conclusion,
        findings=draft.findings,
        ai_agreement=agreement,
        signed_by=signer,
        signed_at=at,
        amended_from_version=amended_from,
        amend_reason=reason,
        pdf_key=f"reports/{report_id}/v{version}.pdf",
        json_key=f"reports/{report_id}/v{version}.json",
    )
    document = report_document(signed, read)
    # Objects first: if the commit then fails, a retry writes a new report id, and these orphans
    # are never referenced.
    body = json.dumps(document, ensure_ascii=False, indent=2).encode()
    deps.store.put(
        signed.json_key, io.BytesIO(body), length=len(body), content_type="application/json"
    )
    pdf = deps.render_pdf(document)
    deps.store.put(signed.pdf_key, io.BytesIO(pdf), length=len(pdf), content_type="application/pdf")
    repo.add_report_version(signed)
    event = ReportSigned(
        context=ExamContext.of(read),
        read_id=read.read_id,
        report_id=report_id,
        version=version,
        signed_by=signer,
        signed_at=at,
        pdf_key=signed.pdf_key,
        json_key=signed.json_key,
        conclusion=draft.conclusion,
        findings=draft.findings,
        ai_agreement=agreement,
        amended_from_version=amended_from,
    )
    publish(work, deps, event, key=read.study_uid, webhook="report.signed", at=at)
    if deps.settings.fhir_endpoint:
        bundle = deps.fhir_bundle(signed, read, repo.exam(read.study_uid))
        repo.add_delivery(
            Delivery(
                channel="fhir",
                target=deps.settings.fhir_endpoint,
                event_type="report.signed",
                delivery_id=str(uuid.uuid4()),
                body=json.dumps(bundle, ensure_ascii=False),
                next_attempt_at=at,
            )
        )
    repo.notify(
        kind="report_signed",
        at=at,
        role="operator",
        institution=read.institution,
        payload={
            "read_id": read.read_id,
            "report_id": report_id,
            "version": version,
            "study_instance_uid": read.study_uid,
        },
    )
    raise_followup(work, deps, read, signed, at)
    return signed


def raise_followup(
    work: Work, deps: Dependencies, read: ReadRecord, version: ReportVersion, at: datetime
) -> None:
    """Open a follow-up alert for terms of the version not alerted on the report before."""
    repo = work.reporting
    codes = [f.get("code", "") for f in version.findings]
    matched = match_terms([version.findings_text, version.conclusion], codes, deps.terms)
    fresh = [t for t in matched if t not in repo.alerted_terms(version.report_id)]
    if not fresh:
        return
    alert = Alert(
        alert_id=str(uuid.uuid4()),
        report_id=version.report_id,
        report_version=version.version,
        read_id=read.read_id,
        study_uid=read.study_uid,
        institution=read.institution,
        matched_terms=fresh,
        state="open",
        raised_at=at,
    )
    repo.add_alert(alert)
    event = FollowupAlerted(
        context=ExamContext.of(read),
        alert_id=alert.alert_id,
        report_id=version.report_id,
        report_version=version.version,
        matched_terms=fresh,
        raised_at=at,
    )
    publish(work, deps, event, key=read.study_uid, webhook="followup.alerted", at=at)
    repo.notify(
        kind="followup_alert",
        at=at,
        role="coordinator",
        institution=read.institution,
        payload={
            "alert_id": alert.alert_id,
            "report_id": version.report_id,
            "matched_terms": fresh,
            "patient_ref": read.patient_ref,
            "study_instance_uid": read.study_uid,
        },
    )


def open_audit_read(work: Work, deps: Dependencies, read: ReadRecord, now: datetime) -> None:
    """Queue an expert audit read of a sampled self-confirmed read (once per exam)."""
    policy = deps.policy
    spec = policy.worklist(policy.audit_worklist)
    repo = work.reporting
    if repo.read_for_study(read.study_uid, ReadKind.AUDIT.value) is not None:
        return
    due = now + policy.target(Priority.ROUTINE)
    assignee = pick_reader(repo, spec, DutyRole.PRIMARY, now, read.institution)
    audit_read = replace(
        read,
        read_id=str(uuid.uuid4()),
        kind=ReadKind.AUDIT.value,
        route=Route.EXPERT.value,
        worklist=spec.name,
        priority=Priority.ROUTINE.value,
        state=ReadState.QUEUED.value,
        assigned_to=assignee,
        created_at=now,
        due_at=due,
        first_due_at=due,
        escalation_level=0,
        rule="self-confirm-audit",
        reason=f"random audit of self-confirmed read {read.read_id}",
        audit_sampled=False,
        audit_of=read.read_id,
        report_id=None,
        signed_at=None,
    )
    repo.add_read(audit_read)
    repo.add_history(
        audit_read.read_id,
        HistoryEntry(
            at=now,
            kind="routed",
            actor=SYSTEM,
            worklist=spec.name,
            assigned_to=assignee,
            detail=audit_read.reason,
        ),
    )
    repo.arm_timer(TimerKind.TARGET.value, audit_read.read_id, due, now)
    announce_routing(work, deps, audit_read, now)


def report_document(version: ReportVersion, read: ReadRecord) -> dict[str, Any]:
    """Return the JSON document of a report version (also the PDF's content)."""
    return {
        "report_id": version.report_id,
        "version": version.version,
        "read_id": read.read_id,
        "language": version.language,
        "title": version.title,
        "exam": {
            "study_instance_uid": read.study_uid,
            "exam_id": read.exam_id,
            "exam_type": read.exam_type,
            "institution_id": read.institution,
            "patient_ref": read.patient_ref,
            "operator_id": read.operator,
        },
        "findings_text": version.findings_text,
        "conclusion": version.conclusion,
        "findings": version.findings,
        "ai_agreement": version.ai_agreement,
        "signed_by": version.signed_by,
        "signed_at": iso(version.signed_at),
        "amended_from_version": version.amended_from_version,
        "amend_reason": version.amend_reason,
    }
