"""Run a packaged pixel-segmentation network and bring its probabilities to frame size."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.modules.common import LoadedCard, onnx_session


class PixelSegmenter:
    """An ONNX model mapping [N,1,S,S] frames to per-class probabilities [N,C,S,S]."""

    def __init__(self, model: bytes, input_card: dict, runtime: object | None = None) -> None:
        self.spec = InputSpec.from_card(input_card)
        # Opened on the first exam that needs it: a node that never sees a kidney or a fetal
        # head never pays the session's memory or its start-up time. The card's digest was
        # checked on load, so a corrupt file still fails start-up.
        self._model: bytes | None = model
        self._runtime = runtime
        self._session: ort.InferenceSession | None = None
        self._opening = threading.Lock()

    @property
    def session(self) -> ort.InferenceSession:
        """Return the network's session, opening it on first use."""
        if self._session is None:
            with self._opening:
                if self._session is None:
                    assert self._model is not None
                    self._session = onnx_session(self._model, self._runtime)
                    self._model = None
        return self._session

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


class SegmentingModule:
    """A clinical module run by its card's segmentation network: identity, card and digest."""

    name: str
    version: str
    exam_types: frozenset[str]

    def __init_subclass__(
        cls, *, name: str, version: str, exam_types: frozenset[str], **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.name, cls.version, cls.exam_types = name, version, exam_types

    def __init__(self, card: LoadedCard, runtime: object | None = None) -> None:
        if card.onnx is None:
            raise ValueError(f"{self.name} card has no model.onnx")
        self.card = card.raw
        self.sha256: str = card.raw["sha256"]
        self.segmenter = PixelSegmenter(card.onnx, card.raw["input"], runtime)
