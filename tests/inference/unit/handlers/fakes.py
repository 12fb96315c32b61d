"""Hand-written fakes of the inference ports, and a Dependencies built from them."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from prometheus_client import CollectorRegistry
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from sonobridge.common.objects.ports import ObjectInfo, ObjectNotFound
from sonobridge.inference.domain.comparison import LabelledVerdict
from sonobridge.inference.domain.errors import ModelNotFound, ModelNotLoaded
from sonobridge.inference.domain.exams import (
    CompletedExam,
    ExamInstance,
    InferenceResult,
    RecordedQuality,
    RecordedResult,
    ResultKey,
)
from sonobridge.inference.domain.model_card import ModelCard, in_shadow
from sonobridge.inference.domain.validation import (
    DeviceModel,
    DeviceValidation,
    ExpertLabel,
    StateChange,
    ValidationState,
)
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.imaging.decode import FrameSampling
from sonobridge.inference.imaging.preprocess import InputSpec
from sonobridge.inference.metrics import InferenceMetrics

QUALITY_LABELS = ("acceptable", "low_gain", "lost_contact")
Outputs = Callable[[np.ndarray], dict[str, Any]]


def card(
    name: str,
    version: str = "1.0.0",
    *,
    labels: tuple[str, ...] = (),
    thresholds: dict[str, Any] | None = None,
    exam_types: tuple[str, ...] = (),
    kind: str = "",
    task: str = "",
    validation: dict[str, Any] | None = None,
) -> ModelCard:
    """Return a model card with just the fields the use cases read."""
    raw: dict[str, Any] = {"name": name, "version": version, "size_bytes": 10}
    if kind:
        raw["kind"] = kind
    if validation:
        raw["validation"] = validation
    return ModelCard(
        name=name,
        version=version,
        task=task,
        exam_types=exam_types,
        labels=labels,
        thresholds=thresholds or {},
        sha256=f"{name}-{version}-sha",
        raw=raw,
    )


GATING_VALIDATION = {
    "validated_device_models": [
        {
            "manufacturer": "SonoBridge Synthetic",
            "model_name": "Handheld Synthetic Probe",
            "state": "gating",
        }
    ],
    "promotion": {"min_frames": 50, "max_false_rescan_rate": 0.15, "min_fault_catch_rate": 0.8},
    "demotion": {
        "window": 10,
        "min_labels": 4,
        "max_false_rescan_rate": 0.25,
        "demote_to": "advisory",
    },
}
QUALITY_CARD = card(
    "image-quality",
    labels=QUALITY_LABELS,
    thresholds={"rescan_if_acceptable_below": 0.5},
    task="frame quality",
    validation=GATING_VALIDATION,
)
PROBE_CARD = card(
    "probe-health",
    thresholds={"frame": 0.5, "exam": 0.5},
    task="dead elements",
    validation=GATING_VALIDATION,
)


class FakeDeviceValidations:
    """Stored states and labels in dicts; `everywhere`: a state stored for every device."""

    def __init__(self, everywhere: ValidationState | None = None) -> None:
        self.everywhere = everywhere
        self.states: dict[tuple[str, DeviceModel], DeviceValidation] = {}
        self.changes: list[StateChange] = []
        self.labels: dict[tuple[str, str], ExpertLabel] = {}

    def find(self, model_name: str, device: DeviceModel) -> DeviceValidation | None:
        found = self.states.get((model_name, device))
        if found is None and self.everywhere is not None:
            return DeviceValidation(model_name, device, self.everywhere)
        return found

    def all(self) -> list[DeviceValidation]:
        return list(self.states.values())

    def change(self, change: StateChange) -> None:
        self.changes.append(change)
        self.states[(change.model_name, change.device)] = change.validation

    def add_labels(self, labels: Sequence[ExpertLabel]) -> None:
        for label in labels:
            # Re-inserted so a relabelled instance counts as the newest.
            self.labels.pop((label.model_name, label.sop_instance_uid), None)
            self.labels[(label.model_name, label.sop_instance_uid)] = label

    def window(self, model_name: str, device: DeviceModel, size: int) -> list[ExpertLabel]:
        mine = [
            x for x in self.labels.values() if x.model_name == model_name and x.device == device
        ]
        return list(reversed(mine))[:size]


SMALL_INPUT = InputSpec("x", 8, 8)


@dataclass(frozen=True)
class FakeModel:
    """A loaded model: its card and a small input."""

    card: ModelCard
    input_spec: InputSpec = SMALL_INPUT


def quality_outputs(acceptable: float, fault: str = "low_gain") -> Outputs:
    """Return a quality model that gives every frame `acceptable`, the rest to `fault`."""
    row = [acceptable if label == "acceptable" else 0.0 for label in QUALITY_LABELS]
    row[QUALITY_LABELS.index(fault)] = 1.0 - acceptable

    def run(x: np.ndarray) -> dict[str, Any]:
        return {"probabilities": np.tile(np.asarray(row, np.float32), (len(x), 1))}

    return run


def probe_outputs(score: float) -> Outputs:
    """Return a probe-health model that scores every frame `score`."""

    def run(x: np.ndarray) -> dict[str, Any]:
        return {"probabilities": np.full((len(x), 1), score, np.float32)}

    return run


class FakeCatalog:
    """Stored cards by name and version; loaded and pinned versions in sets and dicts."""

    def __init__(self, cards: list[ModelCard]) -> None:
        self.cards = {(c.name, c.version): c for c in cards}
        self.loaded: set[tuple[str, str]] = set()
        self.pins: dict[str, str] = {}

    def available(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for name, version in sorted(self.cards):
            found.setdefault(name, []).append(version)
        return found

    def card(self, name: str, version: str | None = None) -> ModelCard:
        version = version or self.available().get(name, [""])[-1]
        try:
            return self.cards[(name, version)]
        except KeyError:
            raise ModelNotFound(f"model {name} version {version} is not in the registry") from None

    def card_bytes(self, name: str, version: str) -> bytes:
        return f'{{"name": "{self.card(name, version).name}"}}'.encode()

    def model_bytes(self, name: str, version: str) -> bytes:
        return f"onnx:{self.card(name, version).name}".encode()

    def pinned(self, name: str) -> str | None:
        return self.pins.get(name)

    def is_loaded(self, name: str, version: str) -> bool:
        return (name, version) in self.loaded

    def pin(self, name: str, version: str) -> None:
        self.pins[name] = version


class FakeModels:
    """Serving over a FakeCatalog; each model's outputs come from a function of its input."""

    def __init__(self, catalog: FakeCatalog, outputs: dict[str, Outputs]) -> None:
        self.catalog = catalog
        self.outputs = outputs
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    @property
    def registry(self) -> FakeCatalog:
        return self.catalog

    def get(self, name: str, version: str | None = None) -> FakeModel:
        version = version or self.catalog.pins.get(name)
        loaded = [v for n, v in sorted(self.catalog.loaded) if n == name]
        if version is None and loaded:
            version = loaded[-1]
        if version is None or (name, version) not in self.catalog.loaded:
            # As the registry: what is not stored at all is not found, not merely not loaded.
            stored = {v for n, v in self.catalog.cards if n == name}
            if not stored or (version is not None and version not in stored):
                raise ModelNotFound(f"no model named {name!r} in the registry")
            raise ModelNotLoaded(f"model {name} {version} is not loaded")
        return FakeModel(self.catalog.cards[(name, version)])

    def infer(self, name: str, x: np.ndarray, version: str | None = None) -> dict[str, Any]:
        self.calls.append((name, tuple(x.shape)))
        # "name@version" gives one version outputs of its own (a shadow beside the served).
        return self.outputs.get(f"{name}@{version}", self.outputs[name])(x)

    def load(self, name: str, version: str | None = None) -> FakeModel:
        c = self.catalog.card(name, version)
        self.catalog.loaded.add((c.name, c.version))
        return FakeModel(c)

    def unload(self, name: str, version: str) -> None:
        self.catalog.loaded.discard((name, version))

    def shadow_versions(self, name: str) -> list[str]:
        pinned = self.catalog.pins.get(name)
        return [
            v
            for n, v in sorted(self.catalog.loaded)
            if n == name and v != pinned and in_shadow(self.catalog.cards[(n, v)].raw)
        ]


class FakeStore:
    """Objects in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        data = stream.read()
        self.objects[key] = (data, content_type)
        return ObjectInfo(key, len(data), content_type, metadata or {})

    @contextmanager
    def open(self, key: str) -> Iterator[Iterator[bytes]]:
        if key not in self.objects:
            raise ObjectNotFound(f"no object {key}")
        data = self.objects[key][0]
        yield iter([data[:100], data[100:]])

    def stat(self, key: str) -> ObjectInfo | None:
        if key not in self.objects:
            return None
        data, content_type = self.objects[key]
        return ObjectInfo(key, len(data), content_type, {})

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def list(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def check(self) -> None:
        return None


class FakeResults:
    """Recorded results in a list."""

    def __init__(self) -> None:
        self.added: list[InferenceResult] = []

    def find(self, key: ResultKey) -> RecordedResult | None:
        for r in self.added:
            if r.key == key:
                return RecordedResult(r.inference_id, key, r.status)
        return None

    def add(self, result: InferenceResult) -> None:
        self.added.append(result)

    def quality_of(self, study_instance_uid: str, sop_instance_uid: str) -> RecordedQuality | None:
        for r in reversed(self.added):
            if r.exam.study_instance_uid != study_instance_uid:
                continue
            for q in r.instance_quality:
                if q.sop_instance_uid == sop_instance_uid:
                    device = q.assessment.device_model
                    return RecordedQuality(sop_instance_uid, device, q.model_flagged)
        return None


class FakeComparisons:
    """Recorded results' verdicts joined to the labels a FakeDeviceValidations keeps."""

    def __init__(self, results: FakeResults, validations: FakeDeviceValidations) -> None:
        self.results = results
        self.validations = validations

    def labelled(self, model_name: str, device: DeviceModel | None = None) -> list[LabelledVerdict]:
        newest = {lb.sop_instance_uid: lb for lb in self.validations.labels.values()}
        verdicts = {
            (v.sop_instance_uid, v.model_version): v
            for r in self.results.added
            for v in r.verdicts
            if v.model_name == model_name
        }
        return [
            LabelledVerdict(v, replace(newest[uid], model_name=model_name))
            for (uid, _), v in verdicts.items()
            if uid in newest and (device is None or newest[uid].device == device)
        ]


@dataclass
class FakeExamWork:
    """The exam pipeline's unit of work: results and published events in memory."""

    results: FakeResults = field(default_factory=FakeResults)
    published: list[InferenceResult] = field(default_factory=list)

    def publish(self, result: InferenceResult) -> None:
        self.published.append(result)


class Clock:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class World:
    """The fakes a test drives and inspects, and the Dependencies built from them."""

    catalog: FakeCatalog
    models: FakeModels
    store: FakeStore
    work: FakeExamWork
    registry: CollectorRegistry
    deps: Dependencies
    validations: FakeDeviceValidations

    def count(self, name: str, **labels: str) -> float:
        """Return a metric sample's value (0 when never counted)."""
        return self.registry.get_sample_value(name, labels) or 0.0


def world(
    *,
    acceptable: float = 0.9,
    fault: str = "low_gain",
    probe_score: float = 0.1,
    cards: list[ModelCard] | None = None,
    state: ValidationState | None = ValidationState.GATING,
) -> World:
    """Return fakes with the quality and probe-health models loaded and pinned.

    `state` is stored for every device model (gating: today's verdicts); None stores none,
    so each device gets its card's default.
    """
    catalog = FakeCatalog([QUALITY_CARD, PROBE_CARD, *(cards or [])])
    for c in (QUALITY_CARD, PROBE_CARD):
        catalog.loaded.add((c.name, c.version))
        catalog.pins[c.name] = c.version
    models = FakeModels(
        catalog,
        {
            "image-quality": quality_outputs(acceptable, fault),
            "probe-health": probe_outputs(probe_score),
        },
    )
    store = FakeStore()
    work = FakeExamWork()
    registry = CollectorRegistry()
    deps = Dependencies(
        models=models,
        store=store,
        metrics=InferenceMetrics(registry),
        clock=Clock(),
        exam_work=lambda _transaction: work,
        sampling=FrameSampling(4),
        validations=(validations := FakeDeviceValidations(state)),
        comparisons=FakeComparisons(work.results, validations),
    )
    return World(catalog, models, store, work, registry, deps, validations)


def png(value: int = 120, size: int = 16) -> bytes:
    """Return a grey PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def report_dicom() -> bytes:
    """Return a DICOM object without Pixel Data (a report beside the images)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def exam(
    store: FakeStore,
    objects: list[bytes | None],
    *,
    exam_type: str = "thyroid",
    study: str = "1.2.3",
    spacing: tuple[float, float] | None = None,
) -> CompletedExam:
    """Store the objects (None: listed but never stored) and return their completed exam."""
    instances = []
    for i, data in enumerate(objects):
        key = f"studies/{study}/{i}.dcm"
        if data is not None:
            store.objects[key] = (data, "application/dicom")
        instances.append(ExamInstance(f"{study}.{i}", key, f"sha-{i}", spacing))
    return CompletedExam(
        study_instance_uid=study,
        exam_id="exam-1",
        exam_type=exam_type,
        institution_id="township-a",
        device_serial="PROBE-1",
        instances=tuple(instances),
    )


def see_view(w: World, view: str) -> None:
    """Load a fake view check that gives every frame `view`, so anatomy-bound modules run."""
    labels = (view, "other")
    view_card = card("view-check", labels=labels, thresholds={"min_confidence": 0.5})
    w.catalog.cards[(view_card.name, view_card.version)] = view_card
    w.catalog.loaded.add((view_card.name, view_card.version))
    w.catalog.pins[view_card.name] = view_card.version
    w.models.outputs["view-check"] = lambda x: {
        "probabilities": np.tile(np.asarray([0.95, 0.05], np.float32), (len(x), 1))
    }
