"""The HC18 fetal-head images: subject-grouped splits and the card's figures through module.run."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sonobridge.inference.modules.base import ModuleFrame
from sonobridge.lab.evaluation import expected_calibration_error

# The project's datasets live beside the repository root (../shared/datasets).
DEFAULT_ROOT = Path(__file__).resolve().parents[4].parent / "shared" / "datasets" / "hc18"
SPLIT_SEED = 81
SPLIT_SHARES = (("train", 0.6), ("calibration", 0.2), ("development", 0.2))
WITHIN_MM = 3.0
ECE_BINS = 10
PAPER = {"mean_abs_diff_mm": 2.8, "sd_mm": 3.3, "test_images": 335}


@dataclass(frozen=True)
class Hc18Image:
    """One HC18 image's row: file, subject, isotropic pixel size and the expert's HC."""

    filename: str
    subject: int
    pixel_mm: float
    hc_mm: float

    def pixels(self, root: Path) -> np.ndarray:
        """Return the grey image (540 x 800 uint8)."""
        return np.asarray(Image.open(root / "images" / self.filename).convert("L"))

    def mask(self, root: Path) -> np.ndarray:
        """Return the expert's filled head ellipse as a boolean mask."""
        name = self.filename.replace(".png", "_Mask.png")
        m = np.asarray(Image.open(root / "masks" / name).convert("L"))
        return m > 127

    def frame(self, root: Path, app_ga_weeks: float | None = None) -> ModuleFrame:
        """Return the image as a module frame with its spacing."""
        return ModuleFrame(
            self.pixels(root),
            (self.pixel_mm, self.pixel_mm),
            f"hc18-{self.filename.removesuffix('.png')}",
            0,
            app_ga_weeks,
        )


def read_index(root: Path = DEFAULT_ROOT) -> list[Hc18Image]:
    """Read hc18.csv."""
    with (root / "hc18.csv").open() as fh:
        return [
            Hc18Image(
                r["filename"],
                int(r["subject"]),
                float(r["pixel_size_mm"]),
                float(r["head_circumference_mm"]),
            )
            for r in csv.DictReader(fh)
        ]


def splits(images: list[Hc18Image], seed: int = SPLIT_SEED) -> dict[str, list[Hc18Image]]:
    """Split by subject (all of a subject's images in one split): train, calibration, dev."""
    subjects = sorted({im.subject for im in images})
    order = np.random.default_rng(seed).permutation(len(subjects))
    shuffled = [subjects[i] for i in order]
    out: dict[str, list[Hc18Image]] = {}
    start = 0
    for k, (name, share) in enumerate(SPLIT_SHARES):
        end = len(shuffled) if k == len(SPLIT_SHARES) - 1 else start + round(share * len(shuffled))
        chosen = set(shuffled[start:end])
        out[name] = [im for im in images if im.subject in chosen]
        start = end
    return out


def subset(images: list[Hc18Image], n: int) -> list[Hc18Image]:
    """Return n images spread evenly over a split (a fixed, ordered subset)."""
    if n >= len(images):
        return list(images)
    return [images[i] for i in np.linspace(0, len(images) - 1, n).round().astype(int)]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def measure(module: Any, images: list[Hc18Image], root: Path = DEFAULT_ROOT) -> list[dict]:
    """Run the module on each image; return per-image error, confidence, label and Dice."""
    from sonobridge.inference.modules.fetal import Ellipse

    rows = []
    for im in images:
        frame = im.frame(root)
        out = module.run([frame])
        hc = out.details.get("hc_mm")
        if hc is None:
            rows.append({"filename": im.filename, "subject": im.subject, "measured": False})
            continue
        ellipse = Ellipse.from_description(out.details["ellipse_mm"])
        assert frame.spacing_mm is not None
        mine = ellipse.inside(
            frame.pixels.shape, frame.spacing_mm, out.details["calibration_scale"]
        )
        rows.append(
            {
                "filename": im.filename,
                "subject": im.subject,
                "measured": True,
                "error_mm": hc - im.hc_mm,
                "confidence": out.details["confidence"],
                "low_confidence": any(f.low_confidence for f in out.findings),
                "dice": _dice(mine, im.mask(root)),
            }
        )
    return rows


def summarise(rows: list[dict]) -> dict[str, Any]:
    """Return the card's figures from measure()'s rows."""
    done = [r for r in rows if r["measured"]]
    errors = np.array([r["error_mm"] for r in done])
    e = np.abs(errors)
    ok = e <= WITHIN_MM
    lows = np.array([r["low_confidence"] for r in done], dtype=bool)
    conf = np.array([r["confidence"] for r in done])

    def r3(x: float, nd: int = 3) -> float:
        return round(float(x), nd) if math.isfinite(x) else float("nan")

    return {
        "images": len(rows),
        "subjects": len({r["subject"] for r in rows}),
        "not_measured": len(rows) - len(done),
        "hc_mean_abs_diff_mm": r3(e.mean()),
        "hc_abs_diff_sd_mm": r3(e.std(ddof=1)),
        "hc_mean_diff_mm": r3(errors.mean()),
        "hc_within_3mm": r3(ok.mean()),
        "dice": r3(np.mean([r["dice"] for r in done])),
        "confidence_ece": r3(expected_calibration_error(conf, ok, bins=ECE_BINS), 4),
        "mean_confidence": r3(conf.mean()),
        "low_confidence_share": r3(lows.mean()),
        "hc_mean_abs_diff_mm_not_low_confidence": r3(e[~lows].mean())
        if (~lows).any()
        else float("nan"),
    }


def metrics(module: Any, images: list[Hc18Image], root: Path = DEFAULT_ROOT) -> dict[str, Any]:
    """Run the module on each image and return the card's figures (HC error, Dice, ECE)."""
    return summarise(measure(module, images, root))
