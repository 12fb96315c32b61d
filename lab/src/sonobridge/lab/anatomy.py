"""Wrong-anatomy findings and out-of-bound measurements on real exams, through serving's handlers.

`uv run --package sonobridge-lab python -m sonobridge.lab.anatomy [--realus DIR] [--hc18 DIR]`
`    [--card]` (record the figures in the view check's card)

Each realus-dev group (one video or patient) becomes one exam, plus a few HC18 heads; serving's
own `analyse_exam` runs the packaged models and clinical modules on them. Each exam is run once
per exam type a module is bound to, as if the app had stated that type: a nurse's preset is
often not the anatomy on screen, and the modules must not trust it. A finding is of the wrong
anatomy when its module is not built for the labelled organ of the frame it was made on; an
exam counts once however many of its runs had one.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.inference.domain.exams import CompletedExam, ExamInstance, Finding
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.handlers.exams import analyse_exam
from sonobridge.inference.metrics import InferenceMetrics
from sonobridge.inference.modules.base import ModuleFinding
from sonobridge.inference.modules.bounds import out_of_bounds
from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.inference.modules.loader import load_clinical_modules
from sonobridge.inference.runtime.providers import SessionConfig
from sonobridge.inference.runtime.registry import ModelRegistry, packaged_models
from sonobridge.inference.runtime.server import ModelServer
from sonobridge.lab.hc18 import DEFAULT_ROOT as HC18_ROOT
from sonobridge.lab.hc18 import read_index, splits, subset
from sonobridge.lab.training.view_evidence import parse_spacing
from sonobridge.lab.training.views import VERSION as VIEW_CHECK_VERSION

REALUS_ROOT = HC18_ROOT.parent / "realus-dev"
COMMAND = "uv run --package sonobridge-lab python -m sonobridge.lab.anatomy"
# The clinical modules each labelled organ may get findings from.
RIGHT_MODULES: dict[str, frozenset[str]] = {
    "lung": frozenset(),
    "other": frozenset(),
    "breast": frozenset({"focal-lesions"}),
    "carotid": frozenset({"carotid-imt"}),
    "fetal-head": frozenset({"fetal-biometry"}),
}
# One stated exam type per clinical module's card (lesions: abdomen, liver, thyroid).
STATED_TYPES = ("carotid", "kidney", "thyroid", "obstetric")
HC18_SOURCE = "frames/hc18_fetal/"
HC18_EXAMS = 6
MAX_ISSUE = 5.0


@dataclass(frozen=True)
class RealImage:
    """One real image of an exam with its labelled organ and the app's spacing."""

    path: Path
    organ: str
    spacing_mm: tuple[float, float] | None


@dataclass
class AnatomyReport:
    """Per exam: its organ, the wrong-anatomy findings and the out-of-bound measurements."""

    exams: dict[str, str] = field(default_factory=dict)
    wrong: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Exams with a wrong-anatomy finding that carries a value (a length, a count), not just
    # "not measurable".
    wrong_valued: set[str] = field(default_factory=set)
    impossible: list[str] = field(default_factory=list)
    # Exams where a module's own evidence gate declined a frame as not its anatomy.
    declined: set[str] = field(default_factory=set)
    findings: int = 0
    measurements: int = 0

    @property
    def wrong_exam_rate(self) -> float:
        """Share of exams with at least one wrong-anatomy finding."""
        return len(self.wrong) / max(len(self.exams), 1)

    def figures(self) -> dict[str, object]:
        """The figures as the view check's card records them."""
        return {
            "command": COMMAND,
            "exams": len(self.exams),
            "stated_exam_types": list(STATED_TYPES),
            "exams_with_wrong_anatomy_findings": len(self.wrong),
            "exams_with_wrong_anatomy_values": len(self.wrong_valued),
            "exams_declined_by_a_module_evidence_gate": len(self.declined),
            "findings": self.findings,
            "measurements": self.measurements,
            "out_of_bounds": len(self.impossible),
            "note": "realus-dev trained the view check: see real_cross_validation for frames "
            "it did not see",
        }

    def summary(self) -> str:
        """One line of figures for the card, the README and the test output."""
        return (
            f"{len(self.exams)} real exams x {len(STATED_TYPES)} stated exam types: "
            f"wrong-anatomy findings on {len(self.wrong)} exams "
            f"({100 * self.wrong_exam_rate:.1f}%), with a value on {len(self.wrong_valued)}; "
            f"{self.findings} findings, "
            f"{self.measurements} measurements, {len(self.impossible)} out of bounds"
        )


def real_exams(realus: Path, hc18: Path, n_hc18: int = HC18_EXAMS) -> dict[str, list[RealImage]]:
    """realus-dev's clean frames grouped into one exam per group, plus n_hc18 HC18 heads."""
    exams: dict[str, list[RealImage]] = defaultdict(list)
    with open(realus / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["quality_label"].strip() != "acceptable":
                continue
            # realus-dev files its HC18 heads under "other"; they are fetal heads.
            organ = "fetal-head" if row["file"].startswith(HC18_SOURCE) else row["organ"]
            image = RealImage(realus / row["file"], organ, parse_spacing(row["spacing_mm"]))
            exams[row["group"]].append(image)
    # Heads from the development split only, so no subject here trains the fetal module.
    for im in subset(splits(read_index(hc18))["development"], n_hc18):
        path = hc18 / "images" / im.filename
        exams[f"hc18:{im.subject:03d}"].append(
            RealImage(path, "fetal-head", (im.pixel_mm, im.pixel_mm))
        )
    return dict(exams)


def _exam(
    store: LocalDirObjectStore, n: int, images: list[RealImage], exam_type: str
) -> CompletedExam:
    study = f"2.25.{n}"
    instances = []
    for i, image in enumerate(images):
        data = image.path.read_bytes()
        key = f"real/{study}/{i}.png"
        store.put(key, io.BytesIO(data), length=len(data), content_type="image/png")
        instances.append(
            ExamInstance(f"{study}.{i}", key, hashlib.sha256(data).hexdigest(), image.spacing_mm)
        )
    return CompletedExam(study, f"exam-{n}", exam_type, "lab", "REAL", tuple(instances))


def measure(realus: Path = REALUS_ROOT, hc18: Path = HC18_ROOT) -> AnatomyReport:
    """Run every real exam through serving's analyse_exam with the packaged models and modules."""
    metrics = InferenceMetrics(CollectorRegistry())
    registry = ModelRegistry(packaged_models(), SessionConfig(), metrics=metrics)
    server = ModelServer(registry)
    report = AnatomyReport()
    try:
        available = packaged_models().list("models/")
        refs = [("image-quality", "1.0.0"), ("probe-health", "1.0.0")]
        if any(key.startswith("models/view-check/") for key in available):
            refs.append(("view-check", VIEW_CHECK_VERSION))
        server.load_and_pin(refs)
        with tempfile.TemporaryDirectory(prefix="sonobridge-anatomy-") as scratch:
            store = LocalDirObjectStore(Path(scratch))
            deps = Dependencies(
                models=server,
                store=store,
                metrics=metrics,
                clock=lambda: datetime.now(UTC),
                exam_work=lambda _transaction: None,
                modules=load_clinical_modules(registry),
            )
            runs = [
                (group, images, stated)
                for group, images in sorted(real_exams(realus, hc18).items())
                for stated in STATED_TYPES
            ]
            for n, (group, images, stated) in enumerate(runs):
                completed = _exam(store, n, images, stated)
                result = analyse_exam(deps, completed, group, lambda _key: None)
                assert result is not None
                organs = {
                    i.sop_instance_uid: im.organ
                    for i, im in zip(completed.instances, images, strict=True)
                }
                report.exams[group] = images[0].organ
                for f in result.findings:
                    _judge(report, group, stated, f, organs)
    finally:
        server.close()
    return report


def _judge(
    report: AnatomyReport, group: str, stated: str, f: Finding, organs: dict[str, str]
) -> None:
    report.findings += 1
    organ = organs.get(f.sop_instance_uid, "other")
    # The module's own evidence gate said "not this anatomy": no finding about the frame.
    declined = f.attributes.get("not_this_anatomy") == "true"
    if declined:
        report.declined.add(group)
    elif f.model_name not in RIGHT_MODULES.get(organ, frozenset()):
        report.wrong[group].append(f"stated {stated}: {f.model_name} {f.code} on {organ}")
        if f.value is not None:
            report.wrong_valued.add(group)
    if f.value is None:
        return
    report.measurements += 1
    as_module = ModuleFinding(
        f.code,
        f.code_system,
        f.display,
        f.value,
        f.unit,
        f.confidence,
        f.low_confidence,
        f.abnormal,
        f.sop_instance_uid,
    )
    if out_of_bounds(as_module) or f.value < 0:
        report.impossible.append(f"{group} (stated {stated}): {f.code}={f.value} {f.unit}")


def main(argv: list[str] | None = None) -> None:
    """Print the wrong-anatomy and out-of-bound figures of the packaged models."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--realus", type=Path, default=REALUS_ROOT)
    parser.add_argument("--hc18", type=Path, default=HC18_ROOT)
    parser.add_argument(
        "--card", action="store_true", help="record the figures in the view check's card"
    )
    args = parser.parse_args(argv)
    report = measure(args.realus, args.hc18)
    if args.card:
        path = MODELS_DIR / "view-check" / VIEW_CHECK_VERSION / "card.json"
        card = json.loads(path.read_text())
        card["held_out"]["real_exams_through_serving"] = report.figures()
        path.write_text(json.dumps(card, indent=2) + "\n")
    for group, wrong in sorted(report.wrong.items()):
        print(f"  {group} ({report.exams[group]}): {'; '.join(sorted(set(wrong)))}")
    for line in report.impossible:
        print(f"  out of bounds: {line}")
    print(report.summary())


if __name__ == "__main__":
    main()
