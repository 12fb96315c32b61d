"""Use cases of the inference service; gRPC, REST and the consumer call these and nothing else."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.auth import Principal
from sonobridge.common.delivery import Outbox
from sonobridge.common.objects.ports import ObjectNotFound, ObjectStore
from sonobridge.common.problems import Conflict, InvalidInput, Problem, UnsupportedMediaType
from sonobridge.inference.adapters import messages, orm
from sonobridge.inference.domain.errors import ModelNotFound, NoPixelData
from sonobridge.inference.domain.model_card import ModelCard, version_key
from sonobridge.inference.domain.probe_health import (
    ProbeHealthAssessment,
    assess_probe_health,
    count_dark_lines,
)
from sonobridge.inference.domain.quality import QualityVerdict, judge_cine, judge_quality
from sonobridge.inference.imaging.decode import (
    DecodedImage,
    FrameSampling,
    FrameSelection,
    decode_file,
    decode_image,
)
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.inference.metrics import InferenceMetrics
from sonobridge.inference.modules import ExamModule, ModuleFrame, ModuleOutput
from sonobridge.inference.modules.terminology import bind
from sonobridge.inference.runtime.registry import LoadedModel, ModelRegistry
from sonobridge.inference.runtime.server import ModelServer

log = logging.getLogger(__name__)

SOURCE = "inference"
QUALITY_MODEL = "image-quality"
PROBE_HEALTH_MODEL = "probe-health"
MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "application/dicom"})
# Object stores stream in chunks; the temp file keeps only one instance on disk at a time.
_SPOOL_BYTES = 8 * 1024 * 1024

Clock = Callable[[], datetime]


@dataclass
class Dependencies:
    """What the use cases need; bootstrap builds it, tests pass their own parts."""

    models: ModelServer
    store: ObjectStore
    outbox: Outbox
    metrics: InferenceMetrics
    clock: Clock
    sampling: FrameSampling = field(default_factory=FrameSampling)
    modules: list[ExamModule] = field(default_factory=list)
    instance_delay_seconds: float = 0.0


@dataclass(frozen=True)
class QualityCheck:
    """The quality verdict for an image or cine, per sampled frame and overall."""

    verdict: QualityVerdict
    frames: list[QualityVerdict]
    frame_indices: list[int]
    model: str
    model_version: str


# --- the async core (used on the serving loop and by tests that drive a registry) -------------


def _judge_frames(
    model: LoadedModel, probabilities: np.ndarray, indices: list[int]
) -> QualityCheck:
    threshold = float(model.card.thresholds["rescan_if_acceptable_below"])
    verdicts = [judge_quality(p, model.card.labels, threshold) for p in probabilities]
    return QualityCheck(
        judge_cine(verdicts),
        verdicts,
        indices or list(range(len(verdicts))),
        model.card.name,
        model.card.version,
    )


def _probe_health(model: LoadedModel, scores: np.ndarray) -> ProbeHealthAssessment:
    t = model.card.thresholds
    return assess_probe_health(scores, float(t["frame"]), float(t["exam"]))


async def check_quality(
    data: bytes, registry: ModelRegistry, sampling: FrameSampling | None = None
) -> QualityCheck:
    """Decode a JPEG/PNG/DICOM instance and judge whether it must be re-acquired."""
    decoded = decode_image(data, sampling)
    return await check_quality_frames(decoded.frames, registry, decoded.frame_indices)


async def check_quality_frames(
    frames: np.ndarray, registry: ModelRegistry, frame_indices: list[int] | None = None
) -> QualityCheck:
    """Judge grayscale uint8 frames (N, H, W) with the image-quality model."""
    model = registry.get(QUALITY_MODEL)
    out = await registry.infer(QUALITY_MODEL, to_tensor(frames, model.input_spec))
    return _judge_frames(model, out["probabilities"], frame_indices or [])


async def assess_exam_probe_health(
    frames: np.ndarray, registry: ModelRegistry
) -> tuple[ProbeHealthAssessment, np.ndarray, str]:
    """Score every frame of an exam for dead elements and decide for the exam."""
    model = registry.get(PROBE_HEALTH_MODEL)
    out = await registry.infer(PROBE_HEALTH_MODEL, to_tensor(frames, model.input_spec))
    scores = out["probabilities"][:, 0]
    return _probe_health(model, scores), scores, model.card.version


# --- request/response use cases (called from gRPC and REST threads) ---------------------------


def _preprocess(deps: Dependencies, model: LoadedModel, frames: np.ndarray) -> np.ndarray:
    started = time.perf_counter()
    x = to_tensor(frames, model.input_spec)
    deps.metrics.stage_seconds.labels(model.card.name, "preprocess").observe(
        time.perf_counter() - started
    )
    return x


def _run(
    deps: Dependencies, model: LoadedModel, x: np.ndarray, started: float
) -> dict[str, np.ndarray]:
    name = model.card.name
    try:
        out = deps.models.infer(name, x, model.card.version)
    except Problem:
        raise
    except Exception:
        deps.metrics.errors.labels(name, "run").inc()
        raise
    deps.metrics.stage_seconds.labels(name, "total").observe(time.perf_counter() - started)
    return out


def _decode(deps: Dependencies, model: str, data: bytes, media_type: str, frame: int):
    if media_type and media_type.split(";")[0].strip().lower() not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"media type {media_type!r} is not supported; send image/jpeg, image/png or "
            "application/dicom"
        )
    try:
        return decode_image(data, FrameSelection(frame))
    except Problem:
        deps.metrics.errors.labels(model, "decode").inc()
        raise


def assess_quality(
    deps: Dependencies, frames: np.ndarray, frame_indices: list[int], started: float | None = None
) -> QualityCheck:
    """Judge decoded grayscale frames (N, H, W) with the pinned image-quality model."""
    started = time.perf_counter() if started is None else started
    model = deps.models.get(QUALITY_MODEL)
    out = _run(deps, model, _preprocess(deps, model, frames), started)
    return _judge_frames(model, out["probabilities"], frame_indices)


def check_image_quality(
    deps: Dependencies,
    data: bytes,
    media_type: str,
    frame_index: int = 0,
    *,
    institution: str | None = None,
    operator: str = "",
) -> tuple[QualityCheck, float]:
    """Judge one frame the app just captured; return the verdict and server time in ms."""
    started = time.perf_counter()
    decoded = _decode(deps, QUALITY_MODEL, data, media_type, frame_index)
    check = assess_quality(deps, decoded.frames, decoded.frame_indices, started)
    outcome = "acceptable" if check.verdict.acceptable else "rescan"
    deps.metrics.quality_assessments.labels(institution or "", operator, outcome).inc()
    return check, (time.perf_counter() - started) * 1000


@dataclass(frozen=True)
class Inference:
    """Raw outputs of one model run and the labels they score, best first."""

    card: ModelCard
    outputs: dict[str, np.ndarray]
    labels: list[tuple[str, float]]
    latency_ms: float


def _labels(card: ModelCard, outputs: dict[str, np.ndarray]) -> list[tuple[str, float]]:
    probs = outputs.get("probabilities")
    if probs is None or probs.ndim != 2 or probs.shape[0] != 1:
        return []
    row = probs[0]
    if row.shape[0] != len(card.labels):
        return []
    return sorted(
        ((label, float(p)) for label, p in zip(card.labels, row, strict=True)),
        key=lambda lp: -lp[1],
    )


def infer_image(
    deps: Dependencies,
    name: str,
    version: str | None,
    data: bytes,
    media_type: str,
    frame_index: int = 0,
) -> Inference:
    """Decode and preprocess an image as the model's card says, then run the model."""
    started = time.perf_counter()
    model = deps.models.get(name, version or None)
    decoded = _decode(deps, name, data, media_type, frame_index)
    out = _run(deps, model, _preprocess(deps, model, decoded.frames), started)
    return Inference(model.card, out, _labels(model.card, out), _ms(started))


def infer_tensors(
    deps: Dependencies, name: str, version: str | None, tensors: dict[str, np.ndarray]
) -> Inference:
    """Run the model on caller-prepared tensors, fed as they are."""
    started = time.perf_counter()
    model = deps.models.get(name, version or None)
    want = model.input_spec.name
    if set(tensors) != {want}:
        raise InvalidInput(f"{name} takes one input named {want!r}, got {sorted(tensors)}")
    out = _run(deps, model, tensors[want], started)
    return Inference(model.card, out, _labels(model.card, out), _ms(started))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


@dataclass(frozen=True)
class StoredModel:
    """A registry entry as clients see it."""

    card: ModelCard
    loaded: bool
    pinned: bool


def _resolve_version(deps: Dependencies, name: str, version: str | None) -> str:
    registry = deps.models.registry
    if version:
        return version
    pinned = registry.pinned(name)
    if pinned:
        return pinned
    versions = registry.available().get(name)
    if not versions:
        raise ModelNotFound(f"no model named {name!r} in the registry")
    return versions[-1]


def list_models(deps: Dependencies, exam_type: str = "", task: int = 0) -> list[StoredModel]:
    """Return stored model versions sorted by name then version, optionally filtered."""
    registry = deps.models.registry
    found = []
    for name, versions in registry.available().items():
        for version in sorted(versions, key=version_key):
            card = registry.card(name, version)
            if exam_type and exam_type not in card.exam_types:
                continue
            if task and messages.model_task(card) != task:
                continue
            found.append(
                StoredModel(
                    card, registry.is_loaded(name, version), registry.pinned(name) == version
                )
            )
    return found


def get_model(deps: Dependencies, name: str, version: str | None = None) -> StoredModel:
    """Return one model version (pinned, else latest, when version is empty)."""
    if not name:
        raise InvalidInput("model name is required")
    registry = deps.models.registry
    version = _resolve_version(deps, name, version)
    card = registry.card(name, version)
    return StoredModel(card, registry.is_loaded(name, version), registry.pinned(name) == version)


def load_model(deps: Dependencies, principal: Principal, name: str, version: str) -> StoredModel:
    """Load and warm up a stored model version in this replica (admins only)."""
    principal.require_role("admin")
    deps.models.registry.card(name, version)  # 404 before any work when it is not stored
    deps.models.load(name, version)
    return get_model(deps, name, version)


def unload_model(deps: Dependencies, principal: Principal, name: str, version: str) -> StoredModel:
    """Unload a model version from this replica (admins only)."""
    principal.require_role("admin")
    deps.models.registry.card(name, version)  # 404 (or 422 for a bad name) before the replica
    if not deps.models.registry.is_loaded(name, version):
        raise Conflict(f"model {name} {version} is not loaded", reason="not_loaded")
    deps.models.unload(name, version)
    return get_model(deps, name, version)


def pin_model(deps: Dependencies, principal: Principal, name: str, version: str) -> StoredModel:
    """Serve this loaded version for requests that name no version (admins only)."""
    principal.require_role("admin")
    deps.models.registry.card(name, version)  # 404 (or 422 for a bad name) before the replica
    if not deps.models.registry.is_loaded(name, version):
        # An admin's request the replica's state contradicts (409), not an outage (503).
        raise Conflict(f"load {name} {version} before pinning it", reason="not_loaded")
    deps.models.registry.pin(name, version)
    return get_model(deps, name, version)


def card_json(deps: Dependencies, card: ModelCard) -> str:
    """Return a model's card.json text exactly as stored."""
    return deps.models.registry.card_bytes(card.name, card.version).decode()


def model_artifact(deps: Dependencies, name: str, version: str) -> tuple[ModelCard, bytes]:
    """Return a model's card and its ONNX bytes, verified against the card's hash."""
    registry = deps.models.registry
    card = registry.card(name, version)
    return card, registry.model_bytes(name, version)


# --- the exam pipeline (ExamCompleted -> InferenceCompleted) ----------------------------------


class InvalidExam(InvalidInput):
    """An ExamCompleted event that can never be processed (no study, no instances)."""


def _timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _manifest_sha256(exam: events_pb2.ExamCompleted) -> str:
    if exam.manifest_sha256:
        return exam.manifest_sha256
    lines = sorted(f"{i.sop_instance_uid}:{i.sha256}" for i in exam.instances)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _read_instance(deps: Dependencies, ref: events_pb2.InstanceRef) -> DecodedImage:
    # Stream to a temp file: a cine can be hundreds of MB and only sampled frames are needed.
    with tempfile.NamedTemporaryFile(prefix="sonobridge-inference-", suffix=".dcm") as tmp:
        with deps.store.open(ref.object_key) as chunks:
            for chunk in chunks:
                tmp.write(chunk)
        tmp.flush()
        return decode_file(tmp.name, deps.sampling)


def _put_json(deps: Dependencies, key: str, body: Any) -> str:
    data = json.dumps(body, indent=2, sort_keys=True, default=float).encode()
    return _put(deps, key, data, "application/json")


def _put(deps: Dependencies, key: str, data: bytes, content_type: str) -> str:
    deps.store.put(key, io.BytesIO(data), length=len(data), content_type=content_type)
    return key


@dataclass
class _ExamRun:
    instance_quality: list[events_pb2.InstanceQuality] = field(default_factory=list)
    quality_detail: list[dict[str, Any]] = field(default_factory=list)
    probe_scores: list[float] = field(default_factory=list)
    dark_columns: tuple[int, float] = (0, 0.0)
    module_frames: list[ModuleFrame] = field(default_factory=list)
    # Parallel to module_frames: the quality model's per-frame verdict.
    frame_acceptable: list[bool] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    decoded: int = 0
    # Structured reports, waveforms and other objects without pixels, passed over.
    skipped: int = 0


def _analyse_instance(
    deps: Dependencies,
    run: _ExamRun,
    ref: events_pb2.InstanceRef,
    quality: LoadedModel,
    probe: LoadedModel,
) -> None:
    started = time.perf_counter()
    try:
        decoded = _read_instance(deps, ref)
    except NoPixelData:
        # An exam may carry a report or an ECG beside its images; there is nothing to infer on.
        run.skipped += 1
        return
    except (Problem, ObjectNotFound) as exc:
        # The other instances still count; the run ends PARTIAL with the reason.
        deps.metrics.errors.labels(QUALITY_MODEL, "instance").inc()
        run.errors.append(f"{ref.sop_instance_uid}: {exc}")
        return
    run.decoded += 1
    check = assess_quality(deps, decoded.frames, decoded.frame_indices, started)
    assessment = messages.quality_assessment(check.verdict, check.model_version)
    run.instance_quality.append(
        events_pb2.InstanceQuality(sop_instance_uid=ref.sop_instance_uid, assessment=assessment)
    )
    run.quality_detail.append(
        {
            "sop_instance_uid": ref.sop_instance_uid,
            "object_key": ref.object_key,
            "acceptable": check.verdict.acceptable,
            "reason": check.verdict.reason,
            "confidence": check.verdict.confidence,
            "probabilities": check.verdict.probabilities,
            "frames": [
                {"frame_index": i, "acceptable": v.acceptable, "reason": v.reason}
                for i, v in zip(check.frame_indices, check.frames, strict=True)
            ],
        }
    )
    x = _preprocess(deps, probe, decoded.frames)
    out = _run(deps, probe, x, time.perf_counter())
    run.probe_scores.extend(float(s) for s in out["probabilities"][:, 0])
    dark = count_dark_lines(decoded.frames)
    if dark.fraction > run.dark_columns[1]:
        run.dark_columns = (dark.columns, dark.fraction)
    spacing = decoded.spacing_mm
    if spacing is None and ref.HasField("app_pixel_spacing"):
        # The DICOM's own calibration wins; the app's fills in for images that carry none.
        spacing = (ref.app_pixel_spacing.row_mm, ref.app_pixel_spacing.column_mm)
    run.module_frames.extend(
        ModuleFrame(frame, spacing, ref.sop_instance_uid, index)
        for frame, index in zip(decoded.frames, decoded.frame_indices, strict=True)
    )
    verdicts = dict(zip(check.frame_indices, check.frames, strict=True))
    run.frame_acceptable.extend(
        verdicts[i].acceptable if i in verdicts else check.verdict.acceptable
        for i in decoded.frame_indices
    )


@dataclass(frozen=True)
class _ModuleInput:
    """The frames the clinical modules measure on, chosen once per exam."""

    frames: list[ModuleFrame]
    skipped: int
    # True when the quality model rejected every frame: all findings then go to an expert.
    unreadable: bool
    exam_type: str


def _module_input(run: _ExamRun, exam_type: str) -> _ModuleInput:
    """Pick the frames to measure on: the readable ones, else all of them marked unreadable.

    An expert measures on readable frames only; when the quality model rejects every frame the
    modules still run (the nurse sees what was attempted) but every finding goes to an expert.
    """
    readable = [f for f, ok in zip(run.module_frames, run.frame_acceptable, strict=True) if ok]
    if not readable:
        return _ModuleInput(list(run.module_frames), 0, True, exam_type)
    return _ModuleInput(readable, len(run.module_frames) - len(readable), False, exam_type)


def _finish_findings(out: ModuleOutput, given: _ModuleInput) -> ModuleOutput:
    """Code a module's findings in SNOMED CT and label those made on unreadable frames."""
    findings = [bind(f, given.exam_type) for f in out.findings]
    if given.unreadable:
        findings = [
            replace(
                f,
                low_confidence=True,
                attributes={**f.attributes, "image_quality": "not acceptable"},
            )
            for f in findings
        ]
    out.findings = findings
    out.details["frames_skipped_for_quality"] = given.skipped
    out.details["all_frames_below_quality"] = given.unreadable
    return out


def _run_module(
    deps: Dependencies, module: ExamModule, given: _ModuleInput, errors: list[str]
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
    return _finish_findings(out, given)


def infer_exam(
    deps: Dependencies, session: Session, exam: events_pb2.ExamCompleted, event_id: str
) -> str | None:
    """Run every applicable model over a completed exam and record one result with its event.

    Returns the inference id, or None when this exam already has a result for these models
    (a redelivery or a re-published event): nothing is written twice.
    """
    ctx = exam.context
    study = ctx.study_instance_uid
    if not study:
        raise InvalidExam("ExamCompleted has no study_instance_uid")
    if not exam.instances:
        raise InvalidExam(f"ExamCompleted for {study} lists no instances")
    quality = deps.models.get(QUALITY_MODEL)
    probe = deps.models.get(PROBE_HEALTH_MODEL)
    exam_type = messages.exam_type_name(ctx.exam_type)
    modules = [m for m in deps.modules if exam_type and exam_type in m.exam_types]
    used = [(quality.card.name, quality.card.version), (probe.card.name, probe.card.version)]
    used += [(m.name, m.version) for m in modules]
    model_versions = ",".join(f"{n}@{v}" for n, v in sorted(used))
    manifest = _manifest_sha256(exam)
    results = orm.inference_results
    existing = session.execute(
        select(results.c.inference_id).where(
            results.c.study_instance_uid == study,
            results.c.manifest_sha256 == manifest,
            results.c.model_versions == model_versions,
        )
    ).first()
    if existing is not None:
        log.info("exam %s already has inference %s; skipping", study, existing.inference_id)
        return None
    inference_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{study}|{manifest}|{model_versions}"))
    started_at = deps.clock()
    log.info("exam %s: inferring over %d instances", study, len(exam.instances))

    run = _ExamRun()
    for ref in exam.instances:
        _analyse_instance(deps, run, ref, quality, probe)
        if deps.instance_delay_seconds:
            time.sleep(deps.instance_delay_seconds)

    derived: list[str] = []
    findings: list[events_pb2.Finding] = []
    q_prefix = f"derived/{study}/{quality.card.name}/{quality.card.version}"
    p_prefix = f"derived/{study}/{probe.card.name}/{probe.card.version}"
    probe_health = events_pb2.ProbeHealth(device_serial=ctx.device_serial)
    if run.decoded:
        derived.append(
            _put_json(deps, f"{q_prefix}/quality.json", {"instances": run.quality_detail})
        )
        verdict = _probe_health(probe, np.asarray(run.probe_scores))
        suspected = verdict.dead_elements_suspected
        probe_health = events_pb2.ProbeHealth(
            device_serial=ctx.device_serial,
            dead_element_fraction=run.dark_columns[1] if suspected else 0.0,
            dead_element_columns=run.dark_columns[0] if suspected else 0,
            suspected_fault=suspected,
            confidence=verdict.score if suspected else 1.0 - verdict.score,
        )
        derived.append(
            _put_json(
                deps,
                f"{p_prefix}/probe-health.json",
                {
                    "device_serial": ctx.device_serial,
                    "suspected_fault": suspected,
                    "score": verdict.score,
                    "frames": verdict.frames,
                    "frames_flagged": verdict.frames_flagged,
                    "frame_scores": run.probe_scores,
                    "dark_columns": run.dark_columns[0],
                    "dark_column_fraction": run.dark_columns[1],
                },
            )
        )
        given = _module_input(run, exam_type)
        for module in modules:
            out = _run_module(deps, module, given, run.errors)
            if out is None:
                continue
            prefix = f"derived/{study}/{out.module}/{out.version}"
            evidence = [
                _put(deps, f"{prefix}/{n}", png, "image/png") for n, png in out.overlays.items()
            ]
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
            derived += [*evidence, findings_key]
            for f in out.findings:
                finding = events_pb2.Finding(
                    code=f.code,
                    code_system=f.code_system,
                    display=f.display,
                    unit=f.unit,
                    confidence=f.confidence,
                    low_confidence=f.low_confidence,
                    model_name=out.module,
                    model_version=out.version,
                    evidence_object_keys=[findings_key, *evidence],
                    sop_instance_uid=f.sop_instance_uid,
                    attributes=f.attributes,
                    abnormal=f.abnormal,
                )
                if f.value is not None:
                    finding.value = float(f.value)
                findings.append(finding)

    if run.decoded == 0:
        status = events_pb2.INFERENCE_STATUS_FAILED
    elif run.errors:
        status = events_pb2.INFERENCE_STATUS_PARTIAL
    else:
        status = events_pb2.INFERENCE_STATUS_COMPLETED
    completed_at = deps.clock()
    exam_quality = messages.exam_quality([iq.assessment for iq in run.instance_quality])
    refs = [(quality.card.name, quality.card.version, quality.card.sha256)]
    refs.append((probe.card.name, probe.card.version, probe.card.sha256))
    refs += [(m.name, m.version, getattr(m, "sha256", "") or "") for m in modules]
    event = events_pb2.InferenceCompleted(
        context=ctx,
        exam_quality=exam_quality,
        instance_quality=run.instance_quality,
        findings=findings,
        models=[events_pb2.ModelRef(name=n, version=v, sha256=s) for n, v, s in refs],
        derived_object_keys=derived,
        started_at=_timestamp(started_at),
        completed_at=_timestamp(completed_at),
        status=status,
        error_message="; ".join(run.errors)[:4000],
        probe_health=probe_health,
        inference_id=inference_id,
    )
    session.execute(
        insert(results).values(
            inference_id=inference_id,
            study_instance_uid=study,
            manifest_sha256=manifest,
            model_versions=model_versions,
            exam_id=ctx.exam_id,
            exam_type=exam_type,
            institution_id=ctx.institution_id,
            device_serial=ctx.device_serial,
            status=events_pb2.InferenceStatus.Name(status).removeprefix("INFERENCE_STATUS_"),
            exam_acceptable="yes" if exam_quality.acceptable else "no",
            summary={
                "findings": len(findings),
                "instances": len(exam.instances),
                "instances_analysed": run.decoded,
                "instances_without_pixels": run.skipped,
                "probe_suspected_fault": probe_health.suspected_fault,
            },
            derived_object_keys=derived,
            error_message=event.error_message,
            source_event_id=event_id,
            started_at=started_at,
            completed_at=completed_at,
        )
    )
    deps.outbox.emit(session, event, source=SOURCE, key=study)
    return inference_id
