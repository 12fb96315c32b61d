"""Stratified group folds: groups stay whole and every training set holds each class it can."""

import pytest

from sonobridge.lab.training.folds import stratified_group_folds


def _items() -> tuple[list[str], list[int]]:
    # Many one-frame groups of class 0 (HC18-like), a few larger groups of class 1, and two
    # small groups of a rare class 2 that a frame-balanced split lumps into one fold.
    groups, labels = [], []
    for i in range(40):
        groups.append(f"a{i}")
        labels.append(0)
    for i in range(6):
        groups += [f"b{i}"] * 3
        labels += [1] * 3
    groups += ["c0", "c0", "c0", "c1"]
    labels += [2, 2, 2, 2]
    return groups, labels


def test_a_group_is_never_in_two_folds():
    groups, labels = _items()
    folds = stratified_group_folds(groups, labels, 5, seed=34)
    fold_of: dict[str, set[int]] = {}
    for g, f in zip(groups, folds, strict=True):
        fold_of.setdefault(g, set()).add(f)
    assert all(len(fs) == 1 for fs in fold_of.values())
    assert set(folds) == set(range(5))


@pytest.mark.parametrize("k", [2, 4, 5])
def test_every_training_set_holds_each_class_with_two_or_more_groups(k):
    groups, labels = _items()
    folds = stratified_group_folds(groups, labels, k, seed=34)
    for held in range(k):
        train = {y for y, f in zip(labels, folds, strict=True) if f != held}
        assert train == {0, 1, 2}


def test_the_seed_fixes_the_folds_and_frames_stay_balanced():
    groups, labels = _items()
    first = stratified_group_folds(groups, labels, 5, seed=34)
    assert first == stratified_group_folds(groups, labels, 5, seed=34)
    sizes = [first.count(f) for f in range(5)]
    assert max(sizes) - min(sizes) <= 3


def test_a_group_with_two_classes_is_refused():
    with pytest.raises(ValueError, match="more than one class"):
        stratified_group_folds(["g", "g"], [0, 1], 2, seed=1)
