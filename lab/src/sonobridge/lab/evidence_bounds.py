"""Where the clinical modules' evidence gates were fixed: what the gates see on their own data.

`uv run --package sonobridge-lab python -m sonobridge.lab.evidence_bounds [--hc18 DIR]`

Fetal head: the range of each gate measure over HC18's training heads, with their own spacing
and with the gate's nominal width (as for a frame sent without spacing); the gate's bounds are
that range rounded outward. Carotid: the gate's measures on generator carotids and how many
frames of the generator's other scenes pass. No realus-dev frame is read.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from sonobridge.inference.modules import fetal
from sonobridge.inference.modules.carotid_evidence import carotid_evidence
from sonobridge.lab.hc18 import DEFAULT_ROOT, read_index, splits
from sonobridge.lab.held_out import Recipe, cases

CAROTID_SEED = 51
OTHER_SCENES = ("thyroid", "kidney", "liver", "abdomen")


def head_ranges(root: Path = DEFAULT_ROOT) -> dict[str, tuple[float, float]]:
    """Min and max of each fetal gate measure over HC18's training heads, both spacings."""
    module = fetal.load()
    seen: dict[str, list[float]] = {}
    for im in splits(read_index(root))["train"]:
        frame = im.frame(root)
        # Without spacing the gate judges the frame as NOMINAL_WIDTH_MM wide.
        for judged in (frame, replace(frame, spacing_mm=None)):
            evidence = module.evidence(judged)
            if not evidence.measures:
                seen.setdefault("no_head_region", []).append(1.0)
            for key, value in evidence.measures.items():
                seen.setdefault(key, []).append(value)
    return {k: (float(np.min(v)), float(np.max(v))) for k, v in seen.items()}


def carotid_figures() -> dict[str, object]:
    """The carotid gate's measures on generator carotids and its pass count on other scenes."""

    def frames(scene: str, count: int):
        recipe = Recipe((scene,), seed=CAROTID_SEED, count=count, size=384, fault_rate=0.0)
        return [f for case in cases(recipe) for f in case.frames]

    carotids = [carotid_evidence(f) for f in frames("carotid", 40)]
    others = [carotid_evidence(f) for s in OTHER_SCENES for f in frames(s, 15)]
    shares = [e.measures.get("walled_share", 0.0) for e in carotids]
    spreads = [e.measures["calibre_spread"] for e in carotids if "calibre_spread" in e.measures]
    return {
        "carotid_frames": len(carotids),
        "carotid_pass": sum(e.present for e in carotids),
        "walled_share_min": min(shares),
        "calibre_spread_max": max(spreads),
        "other_scene_frames": len(others),
        "other_scene_pass": sum(e.present for e in others),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the figures the gates' bounds were fixed from."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hc18", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    print("carotid gate on the generator:", carotid_figures())
    for key, (lo, hi) in head_ranges(args.hc18).items():
        print(f"HC18 training heads: {key} {lo:.3f} .. {hi:.3f}")


if __name__ == "__main__":
    main()
