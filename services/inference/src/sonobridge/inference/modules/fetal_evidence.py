"""Fetal-head evidence: a head-shaped region whose outline is an ellipse on a bright skull ring."""

from __future__ import annotations

from sonobridge.inference.modules.base import Evidence

# Fixed a priori from the 489 HC18 training heads (split seed 81), each measured with its own
# spacing and again with NOMINAL_WIDTH_MM: every bound is the range those heads span, rounded
# outward, so no training head fails it (the card's "evidence" section; realus-dev not used).
MIN_MEAN_PROBABILITY = 0.849
MIN_MINOR_MAJOR = 0.60
MAX_FIT_RESIDUAL = 0.34
ELLIPSE_FILL = (0.73, 1.18)
MIN_SKULL_RING = 0.36
# Head circumferences the module's card calls plausible; only judged when spacing is known.
PLAUSIBLE_HC_MM = (40.0, 400.0)
# Frames without pixel spacing are judged as if the frame were this wide (an obstetric preset).
NOMINAL_WIDTH_MM = 120.0


def judge_head(
    mean_p: float,
    minor_major: float,
    residual: float,
    fill: float,
    skull_ring: float,
    hc_mm: float | None,
) -> Evidence:
    """Whether a segmented head region looks like a fetal head (hc_mm None: spacing unknown)."""
    measures = {
        "mean_probability": mean_p,
        "minor_major": minor_major,
        "fit_residual": residual,
        "ellipse_fill": fill,
        "skull_ring": skull_ring,
    }
    if hc_mm is not None:
        measures["hc_mm"] = hc_mm
    checks = (
        (mean_p >= MIN_MEAN_PROBABILITY, "head region unsure"),
        (minor_major >= MIN_MINOR_MAJOR, "outline too elongated for a head"),
        (residual <= MAX_FIT_RESIDUAL, "outline not an ellipse"),
        (ELLIPSE_FILL[0] <= fill <= ELLIPSE_FILL[1], "region does not fill its ellipse"),
        (skull_ring >= MIN_SKULL_RING, "no skull echo ring"),
        (
            hc_mm is None or PLAUSIBLE_HC_MM[0] <= hc_mm <= PLAUSIBLE_HC_MM[1],
            "head circumference outside gestational bounds",
        ),
    )
    failed = [reason for ok, reason in checks if not ok]
    return Evidence(not failed, "; ".join(failed), measures)


def describe() -> dict[str, object]:
    """The gate as the module's card records it."""
    return {
        "rule": "a frame is measured only when the module itself sees a fetal head: mean "
        f"P(head) >= {MIN_MEAN_PROBABILITY}, minor/major axis >= {MIN_MINOR_MAJOR}, ellipse "
        f"fit residual <= {MAX_FIT_RESIDUAL}, region filling {ELLIPSE_FILL[0]}-"
        f"{ELLIPSE_FILL[1]} of its ellipse, skull echo ring (share of normals whose bright "
        f"ridge agrees with the refitted ellipse) >= {MIN_SKULL_RING}, and with pixel spacing "
        f"HC within {PLAUSIBLE_HC_MM[0]}-{PLAUSIBLE_HC_MM[1]} mm; else 'not measurable: not "
        "a fetal head'",
        "nominal_width_mm_without_spacing": NOMINAL_WIDTH_MM,
        "chosen": "a priori: the range spanned by the 489 HC18 training heads (split seed 81) "
        "with their own spacing and with the nominal width, rounded outward (mean P(head) and "
        "the HC bounds are this card's plausibility thresholds); realus-dev was not used; "
        "sonobridge.lab.evidence_bounds prints the ranges",
    }
