"""Stratified group folds: a group never spans two folds, and each class's groups spread over
as many folds as it has groups, so every training set holds each class with two or more groups."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_group_folds(
    groups: Sequence[str], labels: Sequence[int], k: int, seed: int
) -> list[int]:
    """Assign each item a fold (the rule of scikit-learn's StratifiedGroupKFold, made exact for
    groups of one class): classes with the fewest groups are placed first; each class's groups,
    in an order drawn with `seed`, go to the fold with the fewest groups of that class, then the
    fewest items, then the lowest index."""
    label_of: dict[str, int] = {}
    size: dict[str, int] = {}
    for group, label in zip(groups, labels, strict=True):
        if label_of.setdefault(group, label) != label:
            raise ValueError(f"group {group!r} holds more than one class")
        size[group] = size.get(group, 0) + 1
    by_class: dict[int, list[str]] = {}
    for group in sorted(label_of):
        by_class.setdefault(label_of[group], []).append(group)
    rng = np.random.default_rng(seed)
    load = [0] * k
    fold_of: dict[str, int] = {}
    # Rare classes first: their few groups must land in different folds before the frame
    # balance of the common classes constrains anything.
    for label in sorted(by_class, key=lambda c: (len(by_class[c]), c)):
        members = by_class[label]
        count = [0] * k
        for i in rng.permutation(len(members)):
            group = members[int(i)]
            fold = min(range(k), key=lambda f: (count[f], load[f], f))
            fold_of[group] = fold
            count[fold] += 1
            load[fold] += size[group]
    return [fold_of[g] for g in groups]
