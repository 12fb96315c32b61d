"""Quality labels: the expert reading a claimed read says which instances were fit to read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput
from sonobridge.reporting.domain.events import QualityLabelled
from sonobridge.reporting.domain.reads import ReadState
from sonobridge.reporting.domain.records import (
    QUALITY_LABELS,
    QUALITY_REASONS,
    JsonObject,
    QualityLabel,
    ReadRecord,
)
from sonobridge.reporting.handlers.scope import audit, require_reader, visible_read
from sonobridge.reporting.ports import Dependencies


def label_quality(
    deps: Dependencies, principal: Principal, read_id: str, labels: Sequence[dict[str, Any]]
) -> list[QualityLabel]:
    """Keep the claimant's quality label of each named instance and publish each one."""
    now = deps.clock()
    with deps.unit() as work:
        repo = work.reporting
        read = visible_read(repo, deps, principal, read_id, lock=True)
        require_reader(principal, deps, read)
        _require_claimant(principal, read)
        exam = repo.exam(read.study_uid)
        instances = {
            str(i.get("sop_instance_uid", "")): i for i in (exam.instances if exam else [])
        }
        role = _labeller_role(principal, deps, read)
        kept = [_label(read, instances, given, principal.user, role, now) for given in labels]
        for label in kept:
            repo.put_quality_label(label)
            work.emit(_event(read, label), read.study_uid)
        audit(
            repo,
            deps,
            principal,
            "quality_labelled",
            read_id=read_id,
            detail=",".join(f"{lb.sop_instance_uid}={lb.label}" for lb in kept),
        )
        return sorted(repo.quality_labels(read_id), key=lambda lb: lb.sop_instance_uid)


def _require_claimant(principal: Principal, read: ReadRecord) -> None:
    # Labels judge the images the claimant is reading; anyone else has not looked at them.
    if read.state != ReadState.CLAIMED.value:
        raise Conflict(f"read {read.read_id} is {read.state}; claim it to label its images")
    if read.assigned_to != principal.user:
        raise Forbidden(f"read {read.read_id} is claimed by another reader")


def _labeller_role(principal: Principal, deps: Dependencies, read: ReadRecord) -> str:
    signers = deps.policy.worklist(read.worklist).signer_roles
    return next((r for r in signers if r in principal.roles), "expert")


def _label(
    read: ReadRecord,
    instances: dict[str, JsonObject],
    given: dict[str, Any],
    user: str,
    role: str,
    now: datetime,
) -> QualityLabel:
    sop = str(given.get("sop_instance_uid") or "")
    instance = instances.get(sop)
    if instance is None:
        raise InvalidInput(f"instance {sop!r} is not part of the exam of read {read.read_id}")
    label = given.get("label")
    if label not in QUALITY_LABELS:
        raise InvalidInput(f"label must be one of {', '.join(QUALITY_LABELS)}")
    reason = given.get("reason") or ""
    if label == "rescan" and reason not in QUALITY_REASONS:
        raise InvalidInput(f"a rescan label needs a reason: one of {', '.join(QUALITY_REASONS)}")
    if label == "acceptable" and reason:
        raise InvalidInput("an acceptable label takes no reason")
    return QualityLabel(
        read_id=read.read_id,
        sop_instance_uid=sop,
        series_instance_uid=str(instance.get("series_instance_uid", "")),
        label=label,
        reason=reason,
        labelled_by=user,
        labelled_role=role,
        labelled_at=now,
    )


def _event(read: ReadRecord, label: QualityLabel) -> QualityLabelled:
    return QualityLabelled(
        exam_id=read.exam_id,
        study_uid=read.study_uid,
        read_id=read.read_id,
        series_uid=label.series_instance_uid,
        sop_uid=label.sop_instance_uid,
        # ExamCompleted names no device model; inference takes it from its own result.
        device_manufacturer="",
        device_model_name="",
        label=label.label,
        reason=label.reason,
        labelled_role=label.labelled_role,
        labelled_at=label.labelled_at,
    )
