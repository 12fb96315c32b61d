"""One-vs-clean fault detectors on small, pre-declared feature blocks, OR-ed with the head."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from sonobridge.lab.faults import InjectedFault
from sonobridge.lab.training.datasets import QUALITY_CLASSES
from sonobridge.lab.training.graphs import _Graph, standardise
from sonobridge.lab.training.native_features import native_blocks

# Fixed before any cross-validated figure of 1.5.0 was seen, from what each fault does to the
# image: blur flattens how pixel differences grow with distance along one direction, and a
# lifted side leaves dark, flat, echo-less scanlines near the face.
BLOCKS: dict[InjectedFault, tuple[str, ...]] = {
    InjectedFault.MOTION_BLUR: ("saturation", "sharpness"),
    InjectedFault.LOST_CONTACT_PARTIAL: ("scanlines",),
}
# The same L2 as the head's, on standardised features.
L2 = 1e-2
# Thresholds on a detector's probability of "clean", spread evenly in logit; 0 turns it off,
# so the inner folds may also choose not to use it.
SIDE_THRESHOLDS = (0.0, *(round(float(t), 5) for t in 1 / (1 + np.exp(-np.linspace(-8, 4, 25)))))
HEAD_THRESHOLDS = tuple(round(t, 2) for t in np.linspace(0.01, 0.95, 95))
FALSE_RESCAN_BUDGET = 0.15


@dataclass(frozen=True)
class FaultDetector:
    """A logistic score of one fault against clean frames on one block of features."""

    fault: InjectedFault
    columns: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    w: np.ndarray
    b: float

    def clean_probability(self, feats: np.ndarray) -> np.ndarray:
        """Return the detector's probability that each row is clean."""
        z = (feats[:, self.columns] - self.mean) / self.std
        return np.asarray(1 / (1 + np.exp(z @ self.w + self.b)))


def block_columns(fault: InjectedFault, n_features: int) -> np.ndarray:
    """Return the absolute feature columns of the fault's declared blocks."""
    blocks = native_blocks()
    cols = [np.arange(n_features)[blocks[name]] for name in BLOCKS[fault]]
    return np.concatenate(cols)


def fit_detector(
    feats: np.ndarray, faults: Sequence[InjectedFault | None], fault: InjectedFault
) -> FaultDetector:
    """Fit the fault's detector on its samples against the clean ones, the two weighted equal."""
    is_fault = np.array([f == fault for f in faults])
    is_clean = np.array([f is None for f in faults])
    cols = block_columns(fault, feats.shape[1])
    x = feats[is_fault | is_clean][:, cols]
    y = is_fault[is_fault | is_clean].astype(float)
    weight = np.where(y == 1, 0.5 / y.sum(), 0.5 / (1 - y).sum())
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s = z @ theta[:-1] + theta[-1]
        p = 1 / (1 + np.exp(-s))
        value = np.sum(weight * (np.logaddexp(0, s) - y * s)) + 0.5 * L2 * theta[:-1] @ theta[:-1]
        grad_s = weight * (p - y)
        grad = np.append(z.T @ grad_s + L2 * theta[:-1], grad_s.sum())
        return float(value), grad

    theta = minimize(loss, np.zeros(len(cols) + 1), jac=True, method="L-BFGS-B").x
    return FaultDetector(fault, cols, mean, std, theta[:-1], float(theta[-1]))


def choose_thresholds(
    p_ok: np.ndarray, q_clean: np.ndarray, faults: Sequence[InjectedFault | None]
) -> tuple[float, tuple[float, ...]]:
    """Return the head's and each detector's threshold that catch the worst-caught fault best
    while false rescans stay within the budget (fewer false rescans break ties).

    A sample is flagged when p_ok is below the head's threshold or any detector's probability
    of clean (column of q_clean) is below its own.
    """
    fault_of = np.array([0 if f is None else 1 + list(InjectedFault).index(f) for f in faults])
    onehot = np.eye(len(InjectedFault) + 1)[fault_of]
    onehot /= onehot.sum(axis=0)
    head_flags = p_ok[None, :] < np.array(HEAD_THRESHOLDS)[:, None]
    best: tuple[float, float] | None = None
    chosen: tuple[float, tuple[float, ...]] = (HEAD_THRESHOLDS[0], ())
    for taus in itertools.product(SIDE_THRESHOLDS, repeat=q_clean.shape[1]):
        side = np.zeros(len(p_ok), dtype=bool)
        for k, tau in enumerate(taus):
            side |= q_clean[:, k] < tau
        rates = (head_flags | side[None, :]) @ onehot
        false_rescans = rates[:, 0]
        score = rates[:, 1:].min(axis=1) - 2 * np.maximum(0.0, false_rescans - FALSE_RESCAN_BUDGET)
        i = int(np.lexsort((false_rescans, -score))[0])
        key = (float(score[i]), -float(false_rescans[i]))
        if best is None or key > best:
            best, chosen = key, (HEAD_THRESHOLDS[i], tuple(taus))
    return chosen


def served_acceptable(
    p_ok: np.ndarray, q_clean: np.ndarray, threshold: float, taus: Sequence[float]
) -> np.ndarray:
    """Return the served 'acceptable' probability: below threshold exactly when one fires."""
    out = p_ok.copy()
    for k, tau in enumerate(taus):
        if tau > 0:
            out = np.minimum(out, q_clean[:, k] * threshold / tau)
    return out


def detector_layers(
    detectors: Sequence[FaultDetector], taus: Sequence[float], threshold: float
) -> Callable[[_Graph, str, str], str]:
    """Return graph layers that lower 'acceptable' as served_acceptable does and move the
    lowered share to the firing detector's class, so the reason names its fault."""

    def layers(g: _Graph, feats: str, probs: str) -> str:
        p_ok = g.op(
            "Slice",
            [probs, g.const(np.array([0])), g.const(np.array([1])), g.const(np.array([1]))],
        )
        shortfalls, moves = [], []
        for d, tau in zip(detectors, taus, strict=True):
            if tau <= 0:
                continue
            cols = g.op("Gather", [feats, g.const(d.columns.astype(np.int64))], axis=1)
            z = standardise(g, cols, d.mean, d.std)
            logit = g.op(
                "Add",
                [
                    g.op("MatMul", [z, g.const(d.w.astype(np.float32)[:, None])]),
                    g.const(np.float32(d.b)),
                ],
            )
            q = g.op("Sigmoid", [g.op("Neg", [logit])])
            bound = g.op("Mul", [q, g.const(np.float32(threshold / tau))])
            shortfalls.append(g.op("Relu", [g.op("Sub", [p_ok, bound])]))
            move = np.zeros(len(QUALITY_CLASSES), dtype=np.float32)
            move[0], move[QUALITY_CLASSES.index(d.fault.quality_label)] = -1.0, 1.0
            moves.append(move)
        if not shortfalls:
            return probs
        short = g.op("Concat", shortfalls, axis=1)
        lowered = g.reduce("ReduceMax", short, [1], keepdims=1)
        total = g.op(
            "Add",
            [
                g.op("ReduceSum", [short, g.const(np.array([1]))], keepdims=1),
                g.const(np.float32(1e-12)),
            ],
        )
        share = g.op("Mul", [g.op("Div", [short, total]), lowered])
        return g.op("Add", [probs, g.op("MatMul", [share, g.const(np.stack(moves))])])

    return layers
