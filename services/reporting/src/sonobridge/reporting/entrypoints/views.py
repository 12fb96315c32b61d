"""JSON shapes of reads, drafts, reports, alerts and rosters, shared by REST and gRPC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sonobridge.common.audit import AuditRecord
from sonobridge.reporting.domain.assignment import Shift
from sonobridge.reporting.domain.policy import WorklistSpec
from sonobridge.reporting.domain.reads import OPEN_STATES
from sonobridge.reporting.domain.records import (
    Alert,
    Draft,
    Notification,
    QualityLabel,
    ReadRecord,
    ReportVersion,
    Verdict,
    iso,
)
from sonobridge.reporting.handlers.reads import ReadDetail
from sonobridge.reporting.handlers.reports import ChosenVersion

View = dict[str, Any]


def worklist_view(spec: WorklistSpec, depth: int) -> View:
    """Return a worklist with its visible depth."""
    return {
        "name": spec.name,
        "tier": spec.tier.value,
        "specialty": spec.specialty,
        "signer_roles": spec.signer_roles,
        "depth": depth,
    }


def read_summary(read: ReadRecord, now: datetime) -> View:
    """Return the worklist view of a read."""
    due = read.due_at
    return {
        "read_id": read.read_id,
        "study_instance_uid": read.study_uid,
        "exam_id": read.exam_id,
        "exam_type": read.exam_type,
        "institution_id": read.institution,
        "kind": read.kind,
        "route": read.route,
        "worklist": read.worklist,
        "priority": read.priority,
        "state": read.state,
        "assigned_to": read.assigned_to,
        "created_at": iso(read.created_at),
        "due_at": iso(due),
        "overdue": bool(due and read.state in OPEN_STATES and now > due),
        "escalation_level": read.escalation_level,
        "policy_version": read.policy_version,
        "reason": read.reason,
        "report_id": read.report_id,
        "signed_at": iso(read.signed_at),
    }


def read_detail(detail: ReadDetail, now: datetime, wado_base_url: str) -> View:
    """Return the exam view: the read, its AI results, frame links, draft and verdicts."""
    read, history = detail.read, detail.history
    base = wado_base_url.rstrip("/")
    frames = []
    for inst in detail.exam.instances if detail.exam else []:
        if not inst.get("number_of_frames"):
            continue  # a structured report or a waveform in the exam: no frame to show
        path = (
            f"{base}/studies/{inst['study_instance_uid']}/series/"
            f"{inst['series_instance_uid']}/instances/{inst['sop_instance_uid']}"
        )
        frames.append(
            {
                "sop_instance_uid": inst["sop_instance_uid"],
                "number_of_frames": int(inst["number_of_frames"]),
                "rendered": f"{path}/rendered",
                "first_frame_rendered": f"{path}/frames/1/rendered",
            }
        )
    return {
        **read_summary(read, now),
        "patient_ref": read.patient_ref,
        "operator_id": read.operator,
        "device_serial": read.device_serial,
        "inference_status": read.inference_status,
        "exam_quality": read.exam_quality,
        "ai_findings": read.ai_findings,
        "ai_models": read.ai_models,
        "frames": frames,
        "probe_warnings": [
            {"at": iso(h.at), "detail": h.detail} for h in history if h.kind == "probe_ticket"
        ],
        "draft": draft_view(detail.draft) if detail.draft else None,
        "verdicts": [verdict_view(v) for v in detail.verdicts],
        "history": [
            {
                "at": iso(h.at),
                "kind": h.kind,
                "actor": h.actor,
                "worklist": h.worklist,
                "assigned_to": h.assigned_to,
                "detail": h.detail,
            }
            for h in history
        ],
    }


def draft_view(d: Draft) -> View:
    """Return the API view of a draft."""
    return {
        "language": d.language,
        "title": d.title,
        "findings_text": d.findings_text,
        "conclusion": d.conclusion,
        "findings": d.findings,
        "revision": d.revision,
        "updated_by": d.updated_by,
        "updated_at": iso(d.updated_at),
    }


def verdict_view(v: Verdict) -> View:
    """Return the API view of a verdict."""
    return {**v.agreement(), "decided_by": v.decided_by}


def quality_label_view(label: QualityLabel) -> View:
    """Return the API view of an instance's quality label."""
    return {
        "sop_instance_uid": label.sop_instance_uid,
        "series_instance_uid": label.series_instance_uid,
        "label": label.label,
        "reason": label.reason or None,
        "labelled_by": label.labelled_by,
        "labelled_at": label.labelled_at.isoformat(),
    }


def version_view(v: ReportVersion, *, superseded: bool = False) -> View:
    """Return the API view of one report version."""
    return {
        "report_id": v.report_id,
        "version": v.version,
        "read_id": v.read_id,
        "study_instance_uid": v.study_uid,
        "institution_id": v.institution,
        "language": v.language,
        "title": v.title,
        "findings_text": v.findings_text,
        "conclusion": v.conclusion,
        "findings": v.findings,
        "ai_agreement": v.ai_agreement,
        "signed_by": v.signed_by,
        "signed_at": iso(v.signed_at),
        "amended_from_version": v.amended_from_version,
        "amend_reason": v.amend_reason,
        "pdf_object_key": v.pdf_key,
        "json_object_key": v.json_key,
        "superseded": superseded,
    }


def chosen_view(chosen: ChosenVersion) -> View:
    """Return a version's view with the list of the report's versions."""
    return {
        **version_view(chosen.version, superseded=chosen.superseded),
        "versions": chosen.versions,
    }


def alert_view(a: Alert) -> View:
    """Return the API view of a follow-up alert."""
    return {
        "alert_id": a.alert_id,
        "report_id": a.report_id,
        "report_version": a.report_version,
        "read_id": a.read_id,
        "study_instance_uid": a.study_uid,
        "institution_id": a.institution,
        "matched_terms": a.matched_terms,
        "state": a.state,
        "raised_at": iso(a.raised_at),
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": iso(a.acknowledged_at),
        "closed_by": a.closed_by,
        "closed_at": iso(a.closed_at),
        "note": a.note,
    }


def notification_view(n: Notification) -> View:
    """Return one item of the notification feed."""
    return {"id": n.id, "kind": n.kind, "at": iso(n.at), "data": n.payload}


def shift_view(s: Shift) -> View:
    """Return one duty of a roster."""
    return {
        "user": s.user,
        "role": s.role.value,
        "institution": s.institution,
        "starts_at": iso(s.starts_at),
        "ends_at": iso(s.ends_at),
    }


def audit_view(r: AuditRecord) -> View:
    """Return one audit record."""
    return {
        "at": iso(r.at),
        "user": r.actor,
        "roles": ",".join(sorted(r.roles)),
        "action": r.action,
        "read_id": r.resource_id if r.resource_type == "read" else None,
        "report_id": r.related_id if r.resource_type == "read" else r.resource_id or None,
        "detail": r.detail,
    }
