"""gRPC worker threads follow what the loaded models run at once, unless set."""

from __future__ import annotations

from sonobridge.inference.settings import InferenceSettings


def test_cpu_models_get_two_workers_per_run_slot_and_two_more() -> None:
    assert InferenceSettings(direct_runs=3).grpc_workers(batching=False) == 8


def test_batching_models_keep_enough_workers_for_a_whole_batch_in_flight() -> None:
    assert InferenceSettings(max_batch_size=32).grpc_workers(batching=True) == 64
    assert InferenceSettings(max_batch_size=128).grpc_workers(batching=True) == 256


def test_a_configured_worker_count_wins() -> None:
    cfg = InferenceSettings(grpc_max_workers=5, direct_runs=3)
    assert cfg.grpc_workers(batching=False) == cfg.grpc_workers(batching=True) == 5
