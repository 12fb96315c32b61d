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
    reference_distances: Sequence[float] | None = None,
) -> FrameView:
    """Turn one frame's probabilities into the view serving acts on.

    Below min_confidence, on a view the model was never trained to see, or when the frame's
    nearest training frame is a real frame of another view, the frame is "other": no
    anatomy-bound module measures it, which costs a finding but never invents one.
    reference_distances (when the model gives them) are the distances to each view's nearest
    real training frame, then to the nearest generator frame, which vouches for no view.
    """
    best = max(range(len(labels)), key=lambda i: probabilities[i])
    top, confidence = labels[best], float(probabilities[best])
    view = top if confidence >= min_confidence and top in claimed else OTHER
    # A confident head can still extrapolate to a frame unlike any it was trained on (a
    # lung read as a kidney): the real frame it most resembles then says otherwise.
    if reference_distances is not None and _nearest(reference_distances) not in (best, len(labels)):
        view = OTHER
    return FrameView(view, round(confidence, 4), top)


def _nearest(distances: Sequence[float]) -> int:
    return min(range(len(distances)), key=lambda i: distances[i])


def measures_on(anatomy: frozenset[str] | None, view: FrameView) -> bool:
    """Whether a module built for `anatomy` (None: any) may measure a frame of this view."""
    return anatomy is None or view.view in anatomy


def anatomy_of(module_name: str) -> frozenset[str] | None:
    """The views a module is built for; None for a module that names no anatomy."""
    return MODULE_ANATOMY.get(module_name)
