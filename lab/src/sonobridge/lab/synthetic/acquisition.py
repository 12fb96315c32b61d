"""Acquisition: speckle, attenuation, TGC, log compression, scan conversion and faults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage

from sonobridge.lab.synthetic.geometry import ProbeGeometry, ProbeKind, scan_conversion
from sonobridge.lab.synthetic.scene import Scene, build_scene

GENERATOR_VERSION = "1.0.0"


class Fault(StrEnum):
    """Acquisition faults that make an image unfit for reading."""

    LOW_GAIN = "low_gain"
    LOST_CONTACT = "lost_contact"
    DEAD_ELEMENTS = "dead_elements"
    MOTION_BLUR = "motion_blur"
    WRONG_DEPTH = "wrong_depth"


FAULTS: tuple[Fault, ...] = tuple(Fault)

_DEFAULT_PROBE: dict[str, ProbeKind] = {
    "abdomen": "convex",
    "liver": "convex",
    "kidney": "convex",
    "thyroid": "linear",
    "carotid": "linear",
    "cardiac": "phased",
}
_FREQ_MHZ: dict[str, float] = {"linear": 9.0, "convex": 3.5, "phased": 2.5}


@dataclass(frozen=True)
class ProbeState:
    """Hardware state of one probe; dead lines stay the same across all frames of an exam."""

    dead_lines: tuple[int, ...] = ()
    dead_gain: float = 0.1

    @classmethod
    def with_dead_elements(cls, rng: np.random.Generator, n_lines: int) -> ProbeState:
        """Draw 1-3 dead bands, each 1-3 scan lines wide, away from the array's ends."""
        lines: set[int] = set()
        for _ in range(int(rng.integers(1, 4))):
            start = int(rng.integers(int(n_lines * 0.12), int(n_lines * 0.88)))
            lines.update(range(start, start + int(rng.integers(1, 4))))
        return cls(tuple(sorted(lines)), float(rng.uniform(0.0, 0.2)))


@dataclass(frozen=True)
class AcquisitionSpec:
    """What to synthesise: exam type, probe, output size, faults and scene options."""

    exam_type: str = "abdomen"
    probe: ProbeKind | None = None
    faults: frozenset[Fault] = frozenset()
    height: int = 256
    width: int = 256
    rgb: bool = False
    n_lesions: int | None = None
    probe_state: ProbeState | None = None


@dataclass
class GroundTruth:
    """What the generator knows about a frame: faults, geometry, spacing and anatomy."""

    exam_type: str
    probe: str
    faults: tuple[str, ...]
    pixel_spacing_mm: tuple[float, float]
    depth_mm: float
    natural_depth_mm: float
    gain_db: float
    dead_lines: tuple[int, ...]
    dead_line_mask: np.ndarray
    fov_mask: np.ndarray
    anatomy: dict[str, Any] = field(default_factory=dict)

    @property
    def acceptable(self) -> bool:
        """Return True when the frame has no acquisition fault."""
        return not self.faults


@dataclass
class SyntheticFrame:
    """One generated B-mode frame and its ground truth."""

    image: np.ndarray
    truth: GroundTruth


@dataclass
class SyntheticExam:
    """A cine or series of frames from one probe on one patient."""

    frames: list[SyntheticFrame]
    probe_state: ProbeState

    def pixels(self) -> np.ndarray:
        """Stack the frames into (frames, H, W[, 3])."""
        return np.stack([f.image for f in self.frames])


@lru_cache(maxsize=16)
def _speckle_norm(sigma_axial: float, sigma_lateral: float) -> float:
    delta = np.zeros((41, 41))
    delta[20, 20] = 1.0
    k = ndimage.gaussian_filter(delta, (sigma_axial, sigma_lateral))
    # Rayleigh mean of a complex Gaussian with per-component std s is s*sqrt(pi/2).
    return float(np.sqrt((k**2).sum()) * math.sqrt(math.pi / 2))


def _geometry(rng: np.random.Generator, kind: ProbeKind, depth: float) -> ProbeGeometry:
    if kind == "linear":
        return ProbeGeometry("linear", depth, n_lines=128, width_mm=float(rng.uniform(36, 46)))
    if kind == "convex":
        return ProbeGeometry(
            "convex",
            depth,
            n_lines=128,
            sector_deg=float(rng.uniform(55, 72)),
            radius_mm=float(rng.uniform(35, 60)),
        )
    return ProbeGeometry("phased", depth, n_lines=128, sector_deg=float(rng.uniform(70, 90)))


def _reverberation(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # With air under the lens, echoes bounce between lens and skin: equally spaced bright
    # bands that fade with depth and nothing from the tissue.
    spacing = float(rng.uniform(1.5, 4.0))
    strength = float(rng.uniform(3, 12))
    decay = float(rng.uniform(4, 12))
    bands = np.exp(-0.5 * (((z % spacing) - spacing / 2) / (spacing * 0.12)) ** 2)
    return strength * bands * np.exp(-z / decay) + 0.002


def _motion_kernel(rng: np.random.Generator, length: int) -> np.ndarray:
    angle = float(rng.uniform(0, math.pi))
    size = length | 1
    k = np.zeros((size, size))
    c = size // 2
    for t in np.linspace(-c, c, 4 * size):
        k[round(c + t * math.sin(angle)), round(c + t * math.cos(angle))] = 1.0
    return k / k.sum()


def render(
    spec: AcquisitionSpec,
    rng: np.random.Generator,
    scene: Scene,
    noise_rng: np.random.Generator | None = None,
    prev_noise: np.ndarray | None = None,
    correlation: float = 0.0,
) -> tuple[SyntheticFrame, np.ndarray]:
    """Acquire one frame of a scene; return it and the complex scatterer field for cine reuse.

    Settings (depth, gain, faults' parameters) come from rng, speckle from noise_rng, so a cine
    can keep its settings while the speckle changes.
    """
    noise_rng = noise_rng or rng
    kind: ProbeKind = spec.probe or _DEFAULT_PROBE.get(spec.exam_type, "convex")
    faults = spec.faults
    natural = scene.natural_depth_mm
    if Fault.WRONG_DEPTH in faults:
        # Either far too deep (anatomy small, image bottom wasted) or too shallow (cut off).
        factor = rng.uniform(1.9, 2.8) if rng.random() < 0.5 else rng.uniform(0.4, 0.62)
    else:
        factor = rng.uniform(1.05, 1.3)
    geom = _geometry(rng, kind, float(natural * factor))
    x, z = geom.sample_positions()
    maps = scene.maps(x, z)
    freq = _FREQ_MHZ[kind]
    dz_cm = geom.sample_step_mm() / 10
    sigma_axial = max(0.35 / geom.sample_step_mm() * (3.5 / freq) ** 0.5, 0.6)
    sigma_lateral = 0.8
    shape = x.shape
    noise = noise_rng.standard_normal(shape) + 1j * noise_rng.standard_normal(shape)
    if prev_noise is not None and correlation > 0:
        noise = correlation * prev_noise + math.sqrt(1 - correlation**2) * noise
    scatter = noise * np.sqrt(maps.echo)
    env = np.hypot(
        ndimage.gaussian_filter(scatter.real, (sigma_axial, sigma_lateral)),
        ndimage.gaussian_filter(scatter.imag, (sigma_axial, sigma_lateral)),
    ) / _speckle_norm(sigma_axial, sigma_lateral)
    env = env + ndimage.gaussian_filter(maps.specular, (sigma_axial, sigma_lateral))
    # Round-trip attenuation accumulates along each line; TGC compensates for average tissue.
    att_db = 2 * freq * np.cumsum(maps.atten, axis=0) * dz_cm
    tgc_db = 2 * freq * 0.5 * z * 0.1 * float(rng.uniform(0.85, 1.1))
    gain_db = float(rng.uniform(-4, 4))
    if Fault.LOW_GAIN in faults:
        gain_db -= float(rng.uniform(16, 26))
    if Fault.LOST_CONTACT in faults:
        lost = np.ones(shape[1], dtype=bool)
        if rng.random() < 0.5:
            keep = int(rng.integers(0, int(0.3 * shape[1])))
            start = 0 if rng.random() < 0.5 else shape[1] - keep
            lost[start : start + keep] = False
        reverb = _reverberation(z, rng) * np.abs(noise) * 0.7
        env = np.where(lost[None, :], reverb * 10 ** ((att_db - tgc_db) / 20), env)
    signal = env * 10 ** ((gain_db + tgc_db - att_db) / 20)
    state = spec.probe_state
    if Fault.DEAD_ELEMENTS in faults and (state is None or not state.dead_lines):
        state = ProbeState.with_dead_elements(rng, geom.n_lines)
    dead: tuple[int, ...] = ()
    if state is not None and state.dead_lines and Fault.DEAD_ELEMENTS in faults:
        dead = tuple(i for i in state.dead_lines if i < geom.n_lines)
        signal[:, list(dead)] *= state.dead_gain
    electronic = 0.01 * np.abs(
        noise_rng.standard_normal(shape) + 1j * noise_rng.standard_normal(shape)
    )
    db = 20 * np.log10(signal + electronic)
    dyn_range = float(rng.uniform(50, 62))
    top = 14.0
    lines = np.clip((db - (top - dyn_range)) / dyn_range, 0, 1)
    sc = scan_conversion(geom, spec.height, spec.width)
    img = ndimage.map_coordinates(lines, [sc.sample_coord, sc.line_coord], order=1, cval=0.0)
    img = np.where(sc.fov_mask, img, 0.0)
    if Fault.MOTION_BLUR in faults:
        length = max(5, round(spec.width * float(rng.uniform(0.035, 0.08))))
        img = ndimage.convolve(img, _motion_kernel(rng, length), mode="nearest")
        img = np.where(sc.fov_mask, img, 0.0)
    gray = np.round(img * 255).astype(np.uint8)
    px, pz = sc.pixel_positions()
    dead_mask = np.zeros_like(sc.fov_mask)
    if dead:
        near = np.zeros_like(sc.fov_mask)
        for line in dead:
            near |= np.abs(sc.line_coord - line) < 0.5
        dead_mask = near & sc.fov_mask
    truth = GroundTruth(
        exam_type=scene.exam_type,
        probe=kind,
        faults=tuple(f.value for f in FAULTS if f in faults),
        pixel_spacing_mm=(sc.spacing_mm, sc.spacing_mm),
        depth_mm=geom.depth_mm,
        natural_depth_mm=natural,
        gain_db=gain_db,
        dead_lines=dead,
        dead_line_mask=dead_mask,
        fov_mask=sc.fov_mask,
        anatomy=scene.truth(px, pz),
    )
    image = np.repeat(gray[..., None], 3, axis=2) if spec.rgb else gray
    return SyntheticFrame(image, truth), noise


def generate_frame(seed: int, spec: AcquisitionSpec | None = None) -> SyntheticFrame:
    """Generate one B-mode frame; the same seed and spec always give the same pixels."""
    spec = spec or AcquisitionSpec()
    rng = np.random.default_rng(seed)
    scene = build_scene(rng, spec.exam_type, spec.n_lesions)
    frame, _ = render(spec, rng, scene)
    return frame


def generate_exam(
    seed: int, spec: AcquisitionSpec | None = None, n_frames: int = 8
) -> SyntheticExam:
    """Generate a cine of one scene with slight probe motion; probe faults persist across frames."""
    spec = spec or AcquisitionSpec()
    rng = np.random.default_rng(seed)
    state = spec.probe_state
    if Fault.DEAD_ELEMENTS in spec.faults and (state is None or not state.dead_lines):
        state = ProbeState.with_dead_elements(rng, 128)
    spec = replace(spec, probe_state=state)
    scene = build_scene(rng, spec.exam_type, spec.n_lesions)
    frames: list[SyntheticFrame] = []
    noise = None
    drift_x, drift_z = float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.1, 0.1))
    for i in range(n_frames):
        moved = scene.shifted(drift_x * i, drift_z * i)
        settings_rng = np.random.default_rng([seed, 1])
        noise_rng = np.random.default_rng([seed, 2, i])
        frame, noise = render(
            spec, settings_rng, moved, noise_rng=noise_rng, prev_noise=noise, correlation=0.6
        )
        frames.append(frame)
    return SyntheticExam(frames, state or ProbeState())
