"""Warm-up batch sizes: batch 1 on CPU keeps the idle arena small."""

from __future__ import annotations

from sonobridge.inference.runtime.registry import warm_up_batches


def test_cpu_models_warm_at_batch_one_only() -> None:
    assert warm_up_batches("CPUExecutionProvider", 32) == [1]


def test_accelerators_warm_at_one_and_the_largest_batch() -> None:
    assert warm_up_batches("CUDAExecutionProvider", 32) == [1, 32]
    assert warm_up_batches("TensorrtExecutionProvider", 1) == [1]
