"""Held-out metrics shared by training and drift tests: accuracy, ROC AUC, ECE."""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the ROC AUC of scores for binary labels (Mann-Whitney, ties averaged)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> float:
    """Return the ECE: bin-size-weighted gap between confidence and accuracy in equal-width bins."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - ok[m].mean())
    return float(ece)


def multiclass_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Return accuracy, top-label ECE, one-vs-rest AUCs and per-class precision/recall."""
    pred = probs.argmax(axis=1)
    per_class = {}
    for k, name in enumerate(classes):
        tp = int(((pred == k) & (labels == k)).sum())
        per_class[name] = {
            "support": int((labels == k).sum()),
            "precision": tp / max(int((pred == k).sum()), 1),
            "recall": tp / max(int((labels == k).sum()), 1),
            "auc": roc_auc(labels == k, probs[:, k]),
        }
    return {
        "n": len(labels),
        "accuracy": float((pred == labels).mean()),
        "macro_auc": float(np.mean([c["auc"] for c in per_class.values()])),
        "ece": expected_calibration_error(probs.max(axis=1), pred == labels),
        "per_class": per_class,
    }


def binary_metrics(prob: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Return accuracy at threshold, AUC, ECE, sensitivity and specificity."""
    y = np.asarray(labels).astype(bool)
    pred = prob >= threshold
    conf = np.where(pred, prob, 1 - prob)
    return {
        "n": len(y),
        "accuracy": float((pred == y).mean()),
        "auc": roc_auc(y, prob),
        "ece": expected_calibration_error(conf, pred == y),
        "sensitivity": float(pred[y].mean()) if y.any() else float("nan"),
        "specificity": float((~pred[~y]).mean()) if (~y).any() else float("nan"),
    }
