"""Anatomy in physical coordinates: layers, lesions, vessels and organs with their ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

LesionKind = Literal["cystic", "solid_hypo", "solid_hyper"]
ExamType = Literal["abdomen", "liver", "thyroid", "carotid", "kidney", "cardiac"]
EXAM_TYPES: tuple[str, ...] = ("abdomen", "liver", "thyroid", "carotid", "kidney", "cardiac")

# Relative backscatter and attenuation (dB/cm/MHz) per lesion kind; cysts barely attenuate,
# which is what produces posterior acoustic enhancement behind them.
_LESION_ACOUSTICS: dict[str, tuple[float, float]] = {
    "cystic": (0.0001, 0.05),
    "solid_hypo": (0.3, 0.7),
    "solid_hyper": (2.8, 0.9),
}


@dataclass
class TissueMaps:
    """Acoustic properties sampled on a grid: backscatter, attenuation and specular echoes."""

    echo: np.ndarray
    atten: np.ndarray
    specular: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> TissueMaps:
        """Return maps of soft tissue with no structures."""
        return cls(np.ones(shape), np.full(shape, 0.5), np.zeros(shape))


class Structure(Protocol):
    """Something in the body that changes the echoes and may carry ground truth."""

    def paint(self, x: np.ndarray, z: np.ndarray, maps: TissueMaps) -> None:
        """Write this structure's acoustic properties into the maps at (x, z) mm."""

    def truth(self, x: np.ndarray, z: np.ndarray) -> dict[str, Any]:
        """Return ground truth on the pixel grid (x, z) mm; empty when it has none."""


def _wavy(x: np.ndarray, z0: float, slope: float, amp: float, period: float, phase: float):
    return z0 + slope * x + amp * np.sin(2 * math.pi * x / period + phase)


@dataclass
class Layer:
    """A tissue layer from its top boundary down to the next layer, with a specular top edge."""

    top_mm: float
    echo: float
    atten: float = 0.5
    boundary_echo: float = 0.0
    slope: float = 0.0
    amp_mm: float = 0.0
    period_mm: float = 40.0
    phase: float = 0.0
    striation: float = 0.0

    def boundary(self, x: np.ndarray) -> np.ndarray:
        """Return the depth of the layer's top boundary under lateral position x."""
        return _wavy(x, self.top_mm, self.slope, self.amp_mm, self.period_mm, self.phase)

    def paint(self, x: np.ndarray, z: np.ndarray, maps: TissueMaps) -> None:
        """Fill everything below the boundary with this tissue."""
        b = self.boundary(x)
        below = z >= b
        echo = self.echo
        if self.striation:
            # Muscle fibres run roughly parallel to the skin: banded backscatter.
            echo = self.echo * (1 + self.striation * np.sin(2 * math.pi * (z - b) / 1.6))
        maps.echo[:] = np.where(below, echo, maps.echo)
        maps.atten[:] = np.where(below, self.atten, maps.atten)
        if self.boundary_echo:
            maps.specular += self.boundary_echo * np.exp(-0.5 * ((z - b) / 0.35) ** 2)

    def truth(self, x: np.ndarray, z: np.ndarray) -> dict[str, Any]:
        """Layers carry no ground truth of their own."""
        return {}


@dataclass
class Lesion:
    """A focal elliptical lesion: cystic (anechoic) or solid (hypo- or hyperechoic)."""

    kind: LesionKind
    cx_mm: float
    cz_mm: float
    rx_mm: float
    rz_mm: float
    angle: float = 0.0

    def inside(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Return True where (x, z) lies within the lesion."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dz = x - self.cx_mm, z - self.cz_mm
        u, v = c * dx + s * dz, -s * dx + c * dz
        return (u / self.rx_mm) ** 2 + (v / self.rz_mm) ** 2 <= 1.0

    @property
    def diameter_mm(self) -> float:
        """Return the longest diameter."""
        return 2 * max(self.rx_mm, self.rz_mm)

    def paint(self, x: np.ndarray, z: np.ndarray, maps: TissueMaps) -> None:
        """Replace the tissue inside the ellipse with the lesion's acoustics."""
        m = self.inside(x, z)
        echo, atten = _LESION_ACOUSTICS[self.kind]
        maps.echo[m] = echo
        maps.atten[m] = atten
        maps.specular[m] = 0.0

    def truth(self, x: np.ndarray, z: np.ndarray) -> dict[str, Any]:
        """Return the lesion's mask, kind and size."""
        return {
            "lesion": {
                "kind": self.kind,
                "diameter_mm": self.diameter_mm,
                "center_mm": (self.cx_mm, self.cz_mm),
                "mask": self.inside(x, z),
            }
        }


@dataclass
class CarotidArtery:
    """A longitudinal carotid: anechoic lumen between near and far walls of known IMT."""

    lumen_top_mm: float
    lumen_diameter_mm: float
    imt_mm: float
    near_imt_mm: float = 0.5
    plaque_imt_mm: float = 0.0
    plaque_x_mm: float = 0.0
    plaque_len_mm: float = 8.0

    def far_imt(self, x: np.ndarray) -> np.ndarray:
        """Return the far-wall intima-media thickness at lateral position x."""
        if self.plaque_imt_mm <= 0:
            return np.full_like(x, self.imt_mm, dtype=float)
        bump = np.exp(-0.5 * ((x - self.plaque_x_mm) / (self.plaque_len_mm / 4)) ** 2)
        return self.imt_mm + (self.plaque_imt_mm - self.imt_mm) * bump

    def _bands(self, x: np.ndarray) -> dict[str, np.ndarray]:
        far_li = self.lumen_top_mm + self.lumen_diameter_mm
        imt = self.far_imt(x)
        return {
            "far_lumen_intima": np.broadcast_to(far_li, x.shape),
            "far_media_adventitia": far_li + imt,
        }

    def paint(self, x: np.ndarray, z: np.ndarray, maps: TissueMaps) -> None:
        """Draw near wall, lumen and the far wall's intima, media and adventitia."""
        top = self.lumen_top_mm
        bands = self._bands(x)
        li, ma = bands["far_lumen_intima"], bands["far_media_adventitia"]
        near_ma = top - self.near_imt_mm
        lumen = (z >= top) & (z < li)
        # Plaque sits on the far wall inside the lumen, so the lumen narrows where it grows.
        maps.echo[lumen] = 0.0001
        maps.atten[lumen] = 0.02
        maps.specular[lumen] = 0.0
        intima_w = 0.25
        intima = (z >= li) & (z < li + intima_w)
        media = (z >= li + intima_w) & (z < ma)
        adventitia = (z >= ma) & (z < ma + 0.9)
        maps.echo[intima] = 2.5
        maps.echo[media] = 0.25
        maps.echo[adventitia] = 5.0
        near_adv = (z >= near_ma - 0.8) & (z < near_ma)
        near_media = (z >= near_ma) & (z < top - intima_w)
        near_intima = (z >= top - intima_w) & (z < top)
        maps.echo[near_adv] = 4.0
        maps.echo[near_media] = 0.3
        maps.echo[near_intima] = 1.8

    def truth(self, x: np.ndarray, z: np.ndarray) -> dict[str, Any]:
        """Return the far-wall interfaces per column and the IMT in mm."""
        cols = x[0]
        bands = self._bands(cols)
        imt = self.far_imt(cols)
        return {
            "carotid": {
                "imt_mm": float(self.imt_mm),
                "max_imt_mm": float(imt.max()),
                "plaque": bool(self.plaque_imt_mm >= 1.5),
                "far_lumen_intima_mm": bands["far_lumen_intima"].copy(),
                "far_media_adventitia_mm": bands["far_media_adventitia"].copy(),
                "lumen_mask": (z >= self.lumen_top_mm) & (z < bands["far_lumen_intima"][None, :]),
            }
        }


@dataclass
class Kidney:
    """A long-axis kidney: elliptical cortex, hypoechoic pyramids and a bright central sinus."""

    cx_mm: float
    cz_mm: float
    length_mm: float
    width_mm: float
    cortex_echo: float
    cortex_mm: float = 8.0
    angle: float = 0.0

    def _uv(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dz = x - self.cx_mm, z - self.cz_mm
        return c * dx + s * dz, -s * dx + c * dz

    def inside(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Return True within the renal capsule."""
        u, v = self._uv(x, z)
        return (u / (self.length_mm / 2)) ** 2 + (v / (self.width_mm / 2)) ** 2 <= 1.0

    def paint(self, x: np.ndarray, z: np.ndarray, maps: TissueMaps) -> None:
        """Draw capsule, cortex, pyramids and sinus fat."""
        u, v = self._uv(x, z)
        a, b = self.length_mm / 2, self.width_mm / 2
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        kidney = rho <= 1.0
        inner = 1.0 - self.cortex_mm / b
        sinus = rho <= max(inner - 0.25, 0.15)
        medulla = (rho > max(inner - 0.25, 0.15)) & (rho <= inner)
        pyramids = medulla & (np.sin(np.arctan2(v / b, u / a) * 7) > -0.2)
        maps.echo[kidney] = self.cortex_echo
        maps.echo[pyramids] = 0.25
        maps.echo[sinus] = 2.2
        maps.atten[kidney] = 0.6
        maps.specular += 2.0 * np.exp(-0.5 * ((rho - 1.0) / 0.02) ** 2)

    def truth(self, x: np.ndarray, z: np.ndarray) -> dict[str, Any]:
        """Return the kidney's length, cortical echogenicity and mask."""
        return {
            "kidney": {
                "length_mm": float(self.length_mm),
                "width_mm": float(self.width_mm),
                "cortical_echogenicity": float(self.cortex_echo),
                "mask": self.inside(x, z),
            }
        }


@dataclass
class Scene:
    """A body region under the probe: structures painted in order, deep boundary last."""

    exam_type: str
    natural_depth_mm: float
    structures: list[Any] = field(default_factory=list)

    def maps(self, x: np.ndarray, z: np.ndarray) -> TissueMaps:
        """Sample the scene's acoustic properties at (x, z) mm."""
        maps = TissueMaps.empty(x.shape)
        for s in self.structures:
            s.paint(x, z, maps)
        return maps

    def truth(self, x: np.ndarray, z: np.ndarray) -> dict[str, Any]:
        """Collect ground truth of all structures on the pixel grid."""
        out: dict[str, Any] = {"lesions": []}
        for s in self.structures:
            for key, value in s.truth(x, z).items():
                if key == "lesion":
                    out["lesions"].append(value)
                else:
                    out[key] = value
        return out

    def shifted(self, dx_mm: float, dz_mm: float) -> Scene:
        """Return the scene as seen after a small probe movement (for cine frames)."""
        return Scene(
            self.exam_type,
            self.natural_depth_mm,
            [_Shifted(s, dx_mm, dz_mm) for s in self.structures],
        )


@dataclass
class _Shifted:
    inner: Any
    dx: float
    dz: float

    def paint(self, x: np.ndarray, z: np.ndarray, maps: TissueMaps) -> None:
        self.inner.paint(x - self.dx, z - self.dz, maps)

    def truth(self, x: np.ndarray, z: np.ndarray) -> dict[str, Any]:
        return self.inner.truth(x - self.dx, z - self.dz)


def _deep_boundary(rng: np.random.Generator, depth: float) -> Layer:
    # A strong reflector (fascia, diaphragm, bone) with heavily attenuating tissue beyond: it
    # marks where the anatomy of interest ends, which is what a correct depth setting frames.
    return Layer(
        top_mm=depth,
        echo=0.15,
        atten=3.0,
        boundary_echo=float(rng.uniform(6, 14)),
        slope=float(rng.uniform(-0.1, 0.1)),
        amp_mm=float(rng.uniform(0, depth * 0.04)),
        period_mm=float(rng.uniform(30, 90)),
        phase=float(rng.uniform(0, 6.28)),
    )


def _superficial(rng: np.random.Generator, scale: float) -> list[Any]:
    skin = Layer(0.0, echo=float(rng.uniform(1.2, 2.0)), atten=0.6)
    fat = Layer(
        float(rng.uniform(1.5, 3.0)) * scale,
        echo=float(rng.uniform(0.25, 0.5)),
        atten=0.6,
        boundary_echo=1.5,
        amp_mm=float(rng.uniform(0, 1.5)) * scale,
        period_mm=float(rng.uniform(20, 60)),
        phase=float(rng.uniform(0, 6.28)),
    )
    muscle = Layer(
        float(rng.uniform(4, 8)) * scale,
        echo=float(rng.uniform(0.6, 0.9)),
        atten=1.0,
        boundary_echo=3.0,
        slope=float(rng.uniform(-0.08, 0.08)),
        amp_mm=float(rng.uniform(0, 2)) * scale,
        striation=0.5,
        phase=float(rng.uniform(0, 6.28)),
    )
    return [skin, fat, muscle]


def _random_lesion(rng: np.random.Generator, x_half: float, z_lo: float, z_hi: float) -> Lesion:
    kind: LesionKind = rng.choice(["cystic", "solid_hypo", "solid_hyper"])  # type: ignore[assignment]
    r = float(rng.uniform(0.04, 0.12)) * (z_hi - z_lo + 20)
    return Lesion(
        kind=kind,
        cx_mm=float(rng.uniform(-x_half * 0.6, x_half * 0.6)),
        cz_mm=float(rng.uniform(z_lo + r, max(z_hi - r, z_lo + r + 1))),
        rx_mm=r * float(rng.uniform(0.8, 1.3)),
        rz_mm=r * float(rng.uniform(0.7, 1.1)),
        angle=float(rng.uniform(-0.4, 0.4)),
    )


def build_scene(rng: np.random.Generator, exam_type: str, n_lesions: int | None = None) -> Scene:
    """Draw a random scene for an exam type; all randomness comes from rng."""
    if exam_type not in EXAM_TYPES:
        raise ValueError(f"unknown exam type {exam_type!r}; expected one of {EXAM_TYPES}")
    if exam_type in ("thyroid", "carotid"):
        depth = float(rng.uniform(28, 40))
        scale = 0.5
        x_half = 19.0
    elif exam_type == "cardiac":
        depth = float(rng.uniform(110, 150))
        scale = 1.2
        x_half = 60.0
    else:
        depth = float(rng.uniform(100, 150))
        scale = 1.5
        x_half = 70.0
    structures: list[Any] = _superficial(rng, scale)
    organ_top = structures[-1].top_mm + float(rng.uniform(4, 10)) * scale
    structures.append(
        Layer(
            organ_top,
            echo=float(rng.uniform(0.9, 1.2)),
            atten=0.5,
            boundary_echo=float(rng.uniform(2, 5)),
            amp_mm=float(rng.uniform(0, 3)) * scale,
            period_mm=float(rng.uniform(40, 120)),
            phase=float(rng.uniform(0, 6.28)),
        )
    )
    if n_lesions is None:
        n_lesions = (
            int(rng.choice([0, 0, 1, 1, 2])) if exam_type not in ("carotid", "cardiac") else 0
        )
    if exam_type == "carotid":
        imt = float(rng.uniform(0.45, 1.4))
        plaque = float(rng.uniform(1.5, 3.0)) if rng.random() < 0.25 else 0.0
        structures.append(
            CarotidArtery(
                lumen_top_mm=float(rng.uniform(0.3, 0.4)) * depth,
                lumen_diameter_mm=float(rng.uniform(5.5, 8.0)),
                imt_mm=imt,
                plaque_imt_mm=plaque,
                plaque_x_mm=float(rng.uniform(-8, 8)),
            )
        )
    if exam_type == "kidney":
        length = float(rng.uniform(75, 125))
        structures.append(
            Kidney(
                cx_mm=float(rng.uniform(-10, 10)),
                cz_mm=organ_top + float(rng.uniform(35, 50)),
                length_mm=length,
                width_mm=length * float(rng.uniform(0.4, 0.5)),
                cortex_echo=float(rng.uniform(0.5, 1.8)),
                angle=float(rng.uniform(-0.25, 0.25)),
            )
        )
    for _ in range(n_lesions):
        structures.append(_random_lesion(rng, x_half, organ_top + 3, depth - 5))
    structures.append(_deep_boundary(rng, depth))
    return Scene(exam_type, depth, structures)
