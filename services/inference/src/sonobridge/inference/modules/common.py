"""Shared pieces of the clinical modules: cards, probabilities, overlays and codes."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw

from sonobridge.inference.domain.errors import ModelIntegrityError
from sonobridge.inference.modules.base import ModuleFrame

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
FINDING_SYSTEM = "urn:sonobridge:finding"


def normal_cdf(x: float | np.ndarray) -> float | np.ndarray:
    """Return the standard normal CDF."""
    if isinstance(x, np.ndarray):
        from scipy.special import ndtr

        return ndtr(x)
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def sigmoid(x: float | np.ndarray) -> float | np.ndarray:
    """Return the logistic function, clipped so large inputs do not overflow."""
    return 1 / (1 + np.exp(-np.clip(x, -60, 60)))


def call_confidence(p: float) -> float:
    """Return the confidence of a yes/no call made at p >= 0.5."""
    return float(max(p, 1 - p))


@dataclass(frozen=True)
class LoadedCard:
    """A clinical module's card plus, when it uses a network, that network's bytes."""

    raw: dict[str, Any]
    onnx: bytes | None

    @property
    def parameters(self) -> dict[str, Any]:
        """Return the fitted parameters the module runs with."""
        return self.raw["parameters"]


def load_card(name: str, version: str, runtime: object | None = None) -> LoadedCard:
    """Read a module's card (and verified ONNX) from the runtime's registry or the package."""
    card_fn = getattr(runtime, "card", None)
    if callable(card_fn):
        raw = dict(card_fn(name, version).raw)
        onnx = runtime.model_bytes(name, version) if raw.get("sha256") else None  # type: ignore[attr-defined]
        return LoadedCard(raw, onnx)
    folder = MODELS_DIR / name / version
    raw = json.loads((folder / "card.json").read_text())
    onnx = None
    if raw.get("sha256"):
        onnx = (folder / "model.onnx").read_bytes()
        import hashlib

        digest = hashlib.sha256(onnx).hexdigest()
        if digest != raw["sha256"]:
            raise ModelIntegrityError(f"{name} {version}: sha256 {digest} != card {raw['sha256']}")
    return LoadedCard(raw, onnx)


def onnx_session(model: bytes, runtime: object | None = None) -> ort.InferenceSession:
    """Open a session with the runtime's session config when given, else one CPU thread."""
    from sonobridge.inference.runtime.providers import SessionConfig, create_session

    config = getattr(runtime, "_session_config", None)
    if not isinstance(config, SessionConfig):
        config = runtime if isinstance(runtime, SessionConfig) else SessionConfig()
    return create_session(model, config)


def gray(frame: ModuleFrame) -> np.ndarray:
    """Return the frame as float32 grey levels, checking it is a 2-D uint8 image."""
    px = np.asarray(frame.pixels)
    if px.ndim == 3 and px.shape[2] in (3, 4):
        px = np.round(px[..., :3] @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    if px.ndim != 2 or px.dtype != np.uint8:
        raise ValueError(f"module frames must be uint8 HxW grey, got {px.dtype} {px.shape}")
    return px.astype(np.float32)


def spacing_of(frame: ModuleFrame) -> tuple[float, float] | None:
    """Return (row, col) mm per pixel, or None when the frame carries no usable calibration."""
    sp = frame.spacing_mm
    if sp is None or len(sp) != 2 or not all(np.isfinite(sp)) or min(sp) <= 0:
        return None
    return float(sp[0]), float(sp[1])


def canvas(pixels: np.ndarray) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """Return an RGB copy of a frame to draw measurements on."""
    img = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")
    return img, ImageDraw.Draw(img)


def png_bytes(img: Image.Image) -> bytes:
    """Encode an overlay as PNG."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def graphic(
    local_code: str, kind: str, points_rc: np.ndarray, frame: ModuleFrame
) -> dict[str, Any]:
    """Return a measurement's outline as JSON for the DICOM SR: image pixels, (column, row).

    DICOM SCOORDs put the column first and count from the top-left pixel's corner; the modules
    work in (row, column) pixel centres, hence the swap and the half-pixel shift.
    """
    pts = np.asarray(points_rc, dtype=float).reshape(-1, 2)
    return {
        "local_code": local_code,
        "graphic_type": kind,
        "points": [[round(c + 0.5, 2), round(r + 0.5, 2)] for r, c in pts],
        "sop_instance_uid": frame.sop_instance_uid,
        "frame_index": frame.frame_index,
    }
