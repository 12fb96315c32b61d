"""Frame views (which anatomy a frame shows) and which clinical modules may measure on them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OTHER = "other"
# Stated when no view model is loaded: anatomy-bound modules then measure nothing.
UNCHECKED = "unchecked"

# The views each clinical module is built for, by module name. A module missing here (a
# plug-in that names no anatomy) measures every frame.
MODULE_ANATOMY: Mapping[str, frozenset[str]] = {
    "carotid-imt": frozenset({"carotid-long", "carotid-transverse"}),
    "kidney": frozenset({"kidney"}),
    "fetal-biometry": frozenset({"fetal-head"}),
    # The lesion module's sizes and codes are for thyroid nodules, breast and liver masses.
    "focal-lesions": frozenset({"thyroid", "breast", "liver"}),
}


@dataclass(frozen=True)
class FrameView:
    """The view the check gave one frame, with its confidence (top probability)."""

    view: str
    confidence: float
    # The model's top view before the confidence floor and unclaimed views turned it "other".
    model_view: str = ""

    @property
    def checked(self) -> bool:
        """Whether a view model looked at the frame."""
        return self.view != UNCHECKED


def read_view(
    labels: Sequence[str],
    probabilities: Sequence[float],
    min_confidence: float,
    claimed: frozenset[str],
) -> FrameView:
    """Turn one frame's probabilities into the view serving acts on.

    Below min_confidence, or on a view the model was never trained to see, the frame is
    "other": no anatomy-bound module measures it, which costs a finding but never invents one.
    """
    best = max(range(len(labels)), key=lambda i: probabilities[i])
    top, confidence = labels[best], float(probabilities[best])
    view = top if confidence >= min_confidence and top in claimed else OTHER
    return FrameView(view, round(confidence, 4), top)


def measures_on(anatomy: frozenset[str] | None, view: FrameView) -> bool:
    """Whether a module built for `anatomy` (None: any) may measure a frame of this view."""
    return anatomy is None or view.view in anatomy


def anatomy_of(module_name: str) -> frozenset[str] | None:
    """The views a module is built for; None for a module that names no anatomy."""
    return MODULE_ANATOMY.get(module_name)
