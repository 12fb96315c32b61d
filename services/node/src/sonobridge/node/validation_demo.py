"""The demo's validation step: a real device model stays shadow, a validated one is promoted."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image
from pydicom.data import get_testdata_file

from sonobridge.inference.entrypoints import report_command
from sonobridge.lab.synthetic import AcquisitionSpec, Fault, generate_frame

Printer = Callable[[str], None]

REAL_EXAMPLE = "examples_palette.dcm"
# A second generator-made device: its frames are labelled by construction, so its report can
# be computed here; any real device needs its own consortium-labelled frames instead.
VALIDATED = {"manufacturer": "SonoBridge Synthetic", "model_name": "Handheld Synthetic Probe 2"}
CLEAN_FRAMES, FRAMES_PER_FAULT = 150, 15


def _labelled_frames(folder: Path) -> Path:
    """Write generator frames (clean and each fault) as PNGs with a manifest; return it."""
    rows = []
    plan = [(None, CLEAN_FRAMES)] + [(fault, FRAMES_PER_FAULT) for fault in Fault]
    for fault, count in plan:
        for i in range(count):
            faults = frozenset() if fault is None else frozenset({fault})
            seed = 50_000 + len(rows)
            image = generate_frame(seed, AcquisitionSpec(faults=faults)).image
            name = f"{fault.value if fault else 'clean'}-{i:03d}.png"
            Image.fromarray(image).save(folder / name)
            rows.append({"file": name, "quality_label": fault.value if fault else "acceptable"})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "quality_label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def show_device_validation(
    inference_url: str, admin_token: str, scratch: Path, printer: Printer
) -> bool:
    """Check a real example in shadow, then report on and promote the validated device model."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    printer("\nValidation per device model (image quality):")
    with httpx.Client(base_url=inference_url, headers=headers, timeout=60) as http:
        data = Path(get_testdata_file(REAL_EXAMPLE)).read_bytes()
        check = http.post(
            "/v1/quality-checks", content=data, headers={"Content-Type": "application/dicom"}
        ).json()
        own = "acceptable" if check["model_acceptable"] else "rescan"
        printer(
            f"  {check['device_model']}: {check['validation']}, the app is told "
            f"'{check['advice']}' (the model alone would say {own})"
        )
        scratch.mkdir(parents=True, exist_ok=True)
        manifest = _labelled_frames(scratch)
        report_file = scratch / "validation-report.json"
        report_command.run(
            [
                "--manifest", str(manifest),
                "--manufacturer", VALIDATED["manufacturer"],
                "--model-name", VALIDATED["model_name"],
                "--out", str(report_file),
            ]
        )  # fmt: skip
        report = json.loads(report_file.read_text())
        printer(
            f"  validation report for {VALIDATED['manufacturer']} / {VALIDATED['model_name']}: "
            f"{report['n_frames']} labelled frames, false-rescan rate "
            f"{report['false_rescan_rate']:.2f}, fault catch rate {report['fault_catch_rate']:.2f}"
        )
        answer = http.post(
            "/v1/validation/promotions",
            json={"report": report, "reason": "demo: validation report on labelled frames"},
        )
        if answer.status_code != 201:
            printer(f"  promotion refused: {answer.json().get('detail', answer.text)}")
            return False
        change = answer.json()
        printer(
            f"  promoted {change['device_model']}: {change['from_state']} -> "
            f"{change['to_state']} by {change['changed_by']} (audited)"
        )
        return True
