"""Turn grayscale frames into the float32 [N, 1, H, W] tensor a model card asks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class InputSpec:
    """A model's input: tensor name, size and the scaling applied to 8-bit pixels."""

    name: str
    height: int
    width: int
    scale: float = 1.0 / 255.0
    resample: str = "bilinear"

    @classmethod
    def from_card(cls, card_input: dict[str, Any]) -> InputSpec:
        """Read the input spec from a card's `input` section."""
        shape = card_input["shape"]
        pre = card_input.get("preprocessing", {})
        return cls(
            name=card_input["name"],
            height=int(shape[2]),
            width=int(shape[3]),
            scale=float(pre.get("scale", 1.0 / 255.0)),
            resample=str(pre.get("resample", "bilinear")),
        )


_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX}


def to_tensor(frames: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize each uint8 frame (N, H, W) or (H, W) to the spec and scale to float32 [N,1,h,w]."""
    arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise ValueError(f"expected uint8 grayscale frames (N, H, W), got {arr.dtype} {arr.shape}")
    out = np.empty((arr.shape[0], 1, spec.height, spec.width), dtype=np.float32)
    for i, frame in enumerate(arr):
        # Pillow's bilinear filter widens its support when shrinking, so it also anti-aliases.
        resized = Image.fromarray(frame).resize((spec.width, spec.height), _RESAMPLE[spec.resample])
        out[i, 0] = np.asarray(resized, dtype=np.float32) * np.float32(spec.scale)
    return out
