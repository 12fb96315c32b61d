"""The exam pipeline: one completed exam in, one recorded result and its event out."""

from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sonobridge.common.objects.ports import ObjectNotFound
from sonobridge.common.problems import Problem
from sonobridge.inference.domain.errors import NoPixelData
from sonobridge.inference.domain.exams import (
    CompletedExam,
    ExamInstance,
    Finding,
    InferenceResult,
    InferenceStatus,
    InstanceQuality,
    InstanceVerdict,
    ModelUse,
    ProbeHealth,
    RecordedResult,
    ResultKey,
)
from sonobridge.inference.domain.probe_health import count_dark_lines
from sonobridge.inference.domain.quality import summarise_exam
from sonobridge.inference.domain.readable import ModuleInput, choose_frames, finish_findings
from sonobridge.inference.domain.validation import (
    UNKNOWN_DEVICE,
    DeviceModel,
    ValidationState,
    gate_probe_health,
)
from sonobridge.inference.handlers import Dependencies, shadow
from sonobridge.inference.handlers.quality import (
    PROBE_HEALTH_MODEL,
    QUALITY_MODEL,
    assess_quality,
    device_of,
    probe_health,
)
from sonobridge.inference.handlers.serving import preprocess, run_model
from sonobridge.inference.handlers.validation import device_state
from sonobridge.inference.handlers.views import check_views, frames_for, view_model, with_views
from sonobridge.inference.imaging.decode import DecodedImage, decode_file
from sonobridge.inference.modules.base import ExamModule, ModuleFrame, ModuleOutput
from sonobridge.inference.modules.bounds import field_of, within_physical_bounds
from sonobridge.inference.ports import ExamWork, ServedModel

log = logging.getLogger(__name__)

# The whole error text would not fit the event or the table; the first errors say enough.
_ERROR_CHARS = 4000


@dataclass
class _ExamRun:
    instance_quality: list[InstanceQuality] = field(default_factory=list)
    quality_detail: list[dict[str, Any]] = field(default_factory=list)
    probe_scores: list[float] = field(default_factory=list)
    dark_columns: tuple[int, float] = (0, 0.0)
    module_frames: list[ModuleFrame] = field(default_factory=list)
    # Parallel to module_frames: the quality model's per-frame verdict.
    frame_acceptable: list[bool] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Serving and shadow versions' own verdicts per instance, for the comparison only.
    verdicts: list[InstanceVerdict] = field(default_factory=list)
    decoded: int = 0
    # The probe's device model: the first decoded instance that names one.
    device: DeviceModel = UNKNOWN_DEVICE
    # Structured reports, waveforms and other objects without pixels, passed over.
    skipped: int = 0


@dataclass
class _Evidence:
    findings: list[Finding] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)


def infer_exam(
    deps: Dependencies, work: ExamWork, exam: CompletedExam, event_id: str
) -> str | None:
    """Run every applicable model over a completed exam and record one result with its event.

    Returns the inference id, or None when this exam already has a result for these models
    (a redelivery or a re-published event): nothing is written twice.
    """
    result = analyse_exam(deps, exam, event_id, work.results.find)
    return None if result is None else record_result(work, result)


def analyse_exam(
    deps: Dependencies,
    exam: CompletedExam,
    event_id: str,
    find: Callable[[ResultKey], RecordedResult | None],
) -> InferenceResult | None:
    """Run every applicable model over a completed exam; None when it already has a result."""
    exam.require_instances()
    study = exam.study_instance_uid
    quality = deps.models.get(QUALITY_MODEL)
    probe = deps.models.get(PROBE_HEALTH_MODEL)
    modules = [m for m in deps.modules if exam.exam_type and exam.exam_type in m.exam_types]
    used = [_use(quality), _use(probe)]
    views = view_model(deps) if modules else None
    if views is not None:
        used.append(_use(views))
    used += [ModelUse(m.name, m.version, getattr(m, "sha256", "") or "") for m in modules]
    key = ResultKey.of(exam, used)
    recorded = find(key)
    if recorded is not None:
        log.info("exam %s already has inference %s; skipping", study, recorded.inference_id)
        return None
    started_at = deps.clock()
    log.info("exam %s: inferring over %d instances", study, len(exam.instances))

    run = _ExamRun()
    for instance in exam.instances:
        _analyse_instance(deps, run, instance, probe)
        if deps.instance_delay_seconds:
            time.sleep(deps.instance_delay_seconds)

    evidence = _Evidence()
    health = ProbeHealth(device_serial=exam.device_serial)
    if run.decoded:
        health = _conclude(deps, run, exam, (quality, probe), modules, evidence)
    result = InferenceResult(
        key=key,
        exam=exam,
        status=InferenceStatus.of(run.decoded, run.errors),
        exam_quality=summarise_exam([iq.assessment for iq in run.instance_quality]),
        instance_quality=tuple(run.instance_quality),
        findings=tuple(evidence.findings),
        models=tuple(used),
        derived_object_keys=tuple(evidence.derived),
        probe_health=health,
        error_message="; ".join(run.errors)[:_ERROR_CHARS],
        source_event_id=event_id,
        started_at=started_at,
        completed_at=deps.clock(),
        instances_analysed=run.decoded,
        instances_without_pixels=run.skipped,
        verdicts=tuple(run.verdicts),
    )
    return result


def record_result(work: ExamWork, result: InferenceResult) -> str | None:
    """Record the result with its event; None when a result for the same key got there first."""
    recorded = work.results.find(result.key)
    if recorded is not None:
        log.info(
            "exam %s already has inference %s; not recording another",
            result.exam.study_instance_uid,
            recorded.inference_id,
        )
        return None
    work.results.add(result)
    work.publish(result)
    return result.inference_id


def _conclude(
    deps: Dependencies,
    run: _ExamRun,
    exam: CompletedExam,
    models: tuple[ServedModel, ServedModel],
    modules: list[ExamModule],
    evidence: _Evidence,
) -> ProbeHealth:
    """Store quality, probe health and module outputs as derived objects; decide probe health."""
    quality, probe = models
    study = exam.study_instance_uid
    evidence.derived.append(_store_quality(deps, run, study, quality))
    health = _store_probe_health(deps, run, exam, probe, evidence)
    given = choose_frames(run.module_frames, run.frame_acceptable, exam.exam_type)
    if not modules:
        return health
    # A module measures only frames whose view is its anatomy: never a kidney on a lung.
    views = check_views(deps, view_model(deps), given)
    measured: dict[str, int] = {}
    for module in modules:
        mine = frames_for(module, given, views)
        measured[module.name] = len(mine.frames)
        if not mine.frames:
            continue
        out = _run_module(deps, module, mine, run.errors)
        if out is not None:
            _store_module_output(deps, with_views(out, mine, views), study, evidence)
    if views.model is not None:
        card = views.model.card
        key = f"derived/{study}/{card.name}/{card.version}/views.json"
        evidence.derived.append(_put_json(deps, key, views.record(measured)))
    return health


def _use(model: ServedModel) -> ModelUse:
    return ModelUse(model.card.name, model.card.version, model.card.sha256)


def _read_instance(deps: Dependencies, instance: ExamInstance) -> DecodedImage:
    # Stream to a temp file: a cine can be hundreds of MB and only sampled frames are needed.
    with tempfile.NamedTemporaryFile(prefix="sonobridge-inference-", suffix=".dcm") as tmp:
        with deps.store.open(instance.object_key) as chunks:
            for chunk in chunks:
                tmp.write(chunk)
        tmp.flush()
        return decode_file(tmp.name, deps.sampling)


def _analyse_instance(
    deps: Dependencies, run: _ExamRun, instance: ExamInstance, probe: ServedModel
) -> None:
    started = time.perf_counter()
    uid = instance.sop_instance_uid
    try:
        decoded = _read_instance(deps, instance)
    except NoPixelData:
        # An exam may carry a report or an ECG beside its images; there is nothing to infer on.
        run.skipped += 1
        return
    except (Problem, ObjectNotFound) as exc:
        # The other instances still count; the run ends PARTIAL with the reason.
        deps.metrics.errors.labels(QUALITY_MODEL, "instance").inc()
        run.errors.append(f"{uid}: {exc}")
        return
    run.decoded += 1
    device = device_of(decoded)
    if not run.device.known:
        run.device = device
    check = assess_quality(deps, decoded.frames, decoded.frame_indices, started, device)
    run.instance_quality.append(InstanceQuality(uid, check.assessment))
    run.quality_detail.append(
        {
            "sop_instance_uid": uid,
            "object_key": instance.object_key,
            "acceptable": check.verdict.acceptable,
            "reason": check.verdict.reason,
            "confidence": check.verdict.confidence,
            "probabilities": check.verdict.probabilities,
            "validation": check.validation,
            "device_model": check.device_model,
            "frames": [
                {"frame_index": i, "acceptable": v.acceptable, "reason": v.reason}
                for i, v in zip(check.frame_indices, check.frames, strict=True)
            ],
        }
    )
    out = run_model(deps, probe, preprocess(deps, probe, decoded.frames), time.perf_counter())
    scores = out["probabilities"][:, 0]
    run.probe_scores.extend(float(s) for s in scores)
    served = (check, probe, scores)
    run.verdicts += shadow.judge_instance(deps, uid, device, decoded.frames, served)
    dark = count_dark_lines(decoded.frames)
    if dark.fraction > run.dark_columns[1]:
        run.dark_columns = (dark.columns, dark.fraction)
    # The DICOM's own calibration wins; the app's fills in for images that carry none.
    spacing = decoded.spacing_mm
    if spacing is None:
        spacing = instance.app_spacing_mm
    run.module_frames.extend(
        ModuleFrame(frame, spacing, uid, index, instance.app_gestational_age_weeks)
        for frame, index in zip(decoded.frames, decoded.frame_indices, strict=True)
    )
    verdicts = dict(zip(check.frame_indices, check.frames, strict=True))
    # Only a gating model may keep frames from the modules or mark their findings unreadable.
    gates = check.validation == ValidationState.GATING
    run.frame_acceptable.extend(
        (verdicts[i].acceptable if i in verdicts else check.verdict.acceptable) or not gates
        for i in decoded.frame_indices
    )


def _store_quality(deps: Dependencies, run: _ExamRun, study: str, quality: ServedModel) -> str:
    prefix = f"derived/{study}/{quality.card.name}/{quality.card.version}"
    return _put_json(deps, f"{prefix}/quality.json", {"instances": run.quality_detail})


def _store_probe_health(
    deps: Dependencies,
    run: _ExamRun,
    exam: CompletedExam,
    probe: ServedModel,
    evidence: _Evidence,
) -> ProbeHealth:
    verdict = probe_health(probe, np.asarray(run.probe_scores))
    suspected = verdict.dead_elements_suspected
    state = device_state(deps, probe, run.device)
    prefix = f"derived/{exam.study_instance_uid}/{probe.card.name}/{probe.card.version}"
    key = _put_json(
        deps,
        f"{prefix}/probe-health.json",
        {
            "device_serial": exam.device_serial,
            "suspected_fault": suspected,
            "score": verdict.score,
            "frames": verdict.frames,
            "frames_flagged": verdict.frames_flagged,
            "frame_scores": run.probe_scores,
            "dark_columns": run.dark_columns[0],
            "dark_column_fraction": run.dark_columns[1],
            "validation": state.value,
            "device_model": run.device.key,
        },
    )
    evidence.derived.append(key)
    health = ProbeHealth(
        device_serial=exam.device_serial,
        suspected_fault=suspected,
        dead_element_fraction=run.dark_columns[1] if suspected else 0.0,
        dead_element_columns=run.dark_columns[0] if suspected else 0,
        confidence=verdict.score if suspected else 1.0 - verdict.score,
    )
    return gate_probe_health(health, state)


def _run_module(
    deps: Dependencies, module: ExamModule, given: ModuleInput, errors: list[str]
) -> ModuleOutput | None:
    started = time.perf_counter()
    try:
        out = module.run(given.frames)
    except Exception as exc:  # one module failing must not lose the others' results
        log.exception("module %s failed", module.name)
        deps.metrics.errors.labels(module.name, "module").inc()
        errors.append(f"module {module.name}: {exc}")
        return None
    deps.metrics.stage_seconds.labels(module.name, "total").observe(time.perf_counter() - started)
    # A value no anatomy can have is an artefact of a wrong frame, never a finding.
    return finish_findings(within_physical_bounds(out, field_of(given.frames)), given)


def _store_module_output(
    deps: Dependencies, out: ModuleOutput, study: str, evidence: _Evidence
) -> None:
    prefix = f"derived/{study}/{out.module}/{out.version}"
    overlays = [_put(deps, f"{prefix}/{n}", png, "image/png") for n, png in out.overlays.items()]
    findings_key = _put_json(
        deps,
        f"{prefix}/findings.json",
        {
            "module": out.module,
            "version": out.version,
            "findings": [f.__dict__ for f in out.findings],
            "details": out.details,
        },
    )
    evidence.derived += [*overlays, findings_key]
    evidence.findings += [
        Finding(
            **f.coded(),
            sop_instance_uid=f.sop_instance_uid,
            attributes=dict(f.attributes),
            model_name=out.module,
            model_version=out.version,
            evidence_object_keys=(findings_key, *overlays),
        )
        for f in out.findings
    ]


def _put_json(deps: Dependencies, key: str, body: Any) -> str:
    data = json.dumps(body, indent=2, sort_keys=True, default=float).encode()
    return _put(deps, key, data, "application/json")


def _put(deps: Dependencies, key: str, data: bytes, content_type: str) -> str:
    deps.store.put(key, io.BytesIO(data), length=len(data), content_type=content_type)
    return key
