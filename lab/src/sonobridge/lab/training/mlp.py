"""A one-hidden-layer MLP trained with Adam in numpy, plus temperature and Platt calibration."""

from __future__ import annotations

import numpy as np

from sonobridge.lab.training.graphs import MlpHead


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_head(
    feats: np.ndarray,
    labels: np.ndarray,
    n_out: int,
    seed: int,
    hidden: int = 32,
    epochs: int = 600,
    lr: float = 0.01,
    l2: float = 1e-3,
    weights: np.ndarray | None = None,
) -> MlpHead:
    """Fit a head; n_out == 1 trains a sigmoid (binary) output, otherwise softmax; `weights`
    (one per row) weigh each row's loss."""
    rng = np.random.default_rng(seed)
    mean = feats.mean(axis=0)
    std = feats.std(axis=0) + 1e-6
    x = (feats - mean) / std
    n, f = x.shape
    params = {
        "w1": rng.normal(0, np.sqrt(2 / f), (f, hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.normal(0, np.sqrt(1 / hidden), (hidden, n_out)),
        "b2": np.zeros(n_out),
    }
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    target = np.eye(n_out)[labels] if n_out > 1 else labels[:, None].astype(float)
    for t in range(1, epochs + 1):
        pre = x @ params["w1"] + params["b1"]
        h = np.maximum(pre, 0)
        z = h @ params["w2"] + params["b2"]
        p = _softmax(z) if n_out > 1 else 1 / (1 + np.exp(-z))
        dz = (
            (p - target) / n if weights is None else (p - target) * weights[:, None] / weights.sum()
        )
        grads = {"w2": h.T @ dz + l2 * params["w2"], "b2": dz.sum(axis=0)}
        dh = dz @ params["w2"].T * (pre > 0)
        grads["w1"] = x.T @ dh + l2 * params["w1"]
        grads["b1"] = dh.sum(axis=0)
        for k in params:
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
            params[k] -= lr * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
    return MlpHead(mean, std, params["w1"], params["b1"], params["w2"], params["b2"])


def train_head_minibatch(
    feats: np.ndarray,
    labels: np.ndarray,
    n_out: int,
    seed: int,
    hidden: int = 32,
    epochs: int = 20,
    batch: int = 1024,
    lr: float = 0.003,
    l2: float = 1e-4,
) -> MlpHead:
    """Fit a softmax head with minibatch Adam in float32: far fewer passes than full batch."""
    rng = np.random.default_rng(seed)
    mean = feats.mean(axis=0)
    std = feats.std(axis=0) + 1e-6
    x = ((feats - mean) / std).astype(np.float32)
    n, f = x.shape
    params = {
        "w1": rng.normal(0, np.sqrt(2 / f), (f, hidden)).astype(np.float32),
        "b1": np.zeros(hidden, dtype=np.float32),
        "w2": rng.normal(0, np.sqrt(1 / hidden), (hidden, n_out)).astype(np.float32),
        "b2": np.zeros(n_out, dtype=np.float32),
    }
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    target = np.eye(n_out, dtype=np.float32)[labels]
    t = 0
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            xb, yb = x[idx], target[idx]
            pre = xb @ params["w1"] + params["b1"]
            h = np.maximum(pre, 0)
            p = _softmax(h @ params["w2"] + params["b2"])
            dz = (p - yb) / len(idx)
            grads = {"w2": h.T @ dz + l2 * params["w2"], "b2": dz.sum(axis=0)}
            dh = dz @ params["w2"].T * (pre > 0)
            grads["w1"] = xb.T @ dh + l2 * params["w1"]
            grads["b1"] = dh.sum(axis=0)
            t += 1
            for k in params:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                step = (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
                params[k] = params[k] - np.float32(lr) * step.astype(np.float32)
    as64 = {k: val.astype(np.float64) for k, val in params.items()}
    return MlpHead(mean, std, as64["w1"], as64["b1"], as64["w2"], as64["b2"])


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Return the softmax temperature minimising NLL on a calibration split (grid search)."""
    best_t, best_nll = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 200)):
        p = _softmax(logits / t)
        nll = -np.log(p[np.arange(len(labels)), labels] + 1e-12).mean()
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def fit_platt(logits: np.ndarray, labels: np.ndarray, iters: int = 2000) -> tuple[float, float]:
    """Return (a, b) so that sigmoid(a*logit + b) is calibrated on a calibration split."""
    a, b = 1.0, 0.0
    y = labels.astype(float)
    z = logits.ravel()
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a * z + b)))
        ga, gb = ((p - y) * z).mean(), (p - y).mean()
        a -= 0.1 * ga
        b -= 0.1 * gb
    return float(a), float(b)
