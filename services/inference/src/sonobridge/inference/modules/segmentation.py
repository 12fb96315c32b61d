"""Run a packaged pixel-segmentation network and bring its probabilities to frame size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.modules.common import onnx_session


class PixelSegmenter:
    """An ONNX model mapping [N,1,S,S] frames to per-class probabilities [N,C,S,S]."""

    def __init__(self, model: bytes, input_card: dict, runtime: object | None = None) -> None:
        self.spec = InputSpec.from_card(input_card)
        self.session = onnx_session(model, runtime)

    def probabilities(self, pixels: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Return class probabilities (C, H, W) at the frame's own size (or at `shape`)."""
        x = to_tensor(pixels.astype(np.uint8), self.spec)
        probs = self.session.run(["probabilities"], {self.spec.name: x})[0][0]
        h, w = shape or pixels.shape
        return np.stack(
            [
                np.asarray(Image.fromarray(p).resize((w, h), Image.Resampling.BILINEAR))
                for p in probs.astype(np.float32)
            ]
        )
