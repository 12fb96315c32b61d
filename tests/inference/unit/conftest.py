"""Fixtures for inference unit tests: the packaged reference models in a fresh registry."""

import asyncio

import pytest

from sonobridge.inference.runtime.batcher import BatchPolicy
from sonobridge.inference.runtime.providers import SessionConfig
from sonobridge.inference.runtime.registry import ModelRegistry, packaged_models


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def registry(loop):
    reg = ModelRegistry(
        packaged_models(),
        SessionConfig(providers=("CPUExecutionProvider",)),
        BatchPolicy(max_batch_size=16, max_wait_ms=5, max_queue=512),
    )
    loop.run_until_complete(reg.load("image-quality"))
    loop.run_until_complete(reg.load("probe-health"))
    yield reg
    loop.run_until_complete(reg.close())
