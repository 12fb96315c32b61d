"""`python -m sonobridge.inference validation-report`: a gating model's figures on frames."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.inference.domain.validation import GATING_MODELS, DeviceModel
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.handlers.reports import LabelledFrame, report_validation
from sonobridge.inference.metrics import InferenceMetrics
from sonobridge.inference.ports import ExamWork
from sonobridge.inference.runtime.providers import SessionConfig
from sonobridge.inference.runtime.registry import (
    LocalDirModelSource,
    ModelRegistry,
    packaged_models,
)
from sonobridge.inference.runtime.server import ModelServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sonobridge.inference validation-report",
        description=(
            "Run a gating model over one device model's labelled frames and write the report "
            "an admin promotes with. The manifest is a CSV with `file` (relative to it) and "
            "`quality_label` (acceptable, or the fault the frame shows: low_gain, "
            "lost_contact, dead_elements, motion_blur, wrong_depth)."
        ),
    )
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--manufacturer", required=True)
    parser.add_argument("--model-name", required=True, help="the device's model name")
    parser.add_argument(
        "--device-column", default="", help="keep only manifest rows whose `device` equals this"
    )
    parser.add_argument("--model", choices=GATING_MODELS, default="image-quality")
    parser.add_argument("--version", default=None, help="model version (default: newest)")
    parser.add_argument("--models-dir", type=Path, default=None, help="models/{name}/{version}/")
    parser.add_argument("--out", type=Path, default=None, help="report file (default: stdout)")
    return parser


def _frames(manifest: Path, device_column: str) -> Iterator[LabelledFrame]:
    with open(manifest, newline="") as fh:
        for row in csv.DictReader(fh):
            if device_column and row.get("device", "") != device_column:
                continue
            label = row["quality_label"].strip()
            fault = None if label == "acceptable" else label
            yield LabelledFrame(row["file"], (manifest.parent / row["file"]).read_bytes(), fault)


def run(argv: list[str]) -> int:
    """Write the report; the exit status is 0 when it was written."""
    args = _parser().parse_args(argv)
    source = LocalDirModelSource(args.models_dir) if args.models_dir else packaged_models()
    # Its own registry: the command may run inside a process that serves (the demo's node).
    metrics = InferenceMetrics(CollectorRegistry())
    server = ModelServer(ModelRegistry(source, SessionConfig(), metrics=metrics))
    try:
        server.load_and_pin([(args.model, args.version)])
        with tempfile.TemporaryDirectory(prefix="sonobridge-report-") as scratch:
            deps = Dependencies(
                models=server,
                store=LocalDirObjectStore(Path(scratch)),
                metrics=metrics,
                clock=lambda: datetime.now(UTC),
                exam_work=_no_exams,
            )
            device = DeviceModel.of(args.manufacturer, args.model_name)
            report = report_validation(
                deps, args.model, device, _frames(args.manifest, args.device_column)
            )
    finally:
        server.close()
    report["created_at"] = datetime.now(UTC).isoformat()
    report["manifest"] = str(args.manifest)
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _no_exams(_transaction: object) -> ExamWork:
    raise RuntimeError("the report command runs no exams")
