"""A started inference service on single-node adapters, shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from inference.inference_support import Service, start_service

from sonobridge.common.auth import LocalIssuer


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer) -> Iterator[Service]:
    running = start_service(tmp_path_factory.mktemp("inference"), issuer, max_wait_ms=5.0)
    try:
        yield running
    finally:
        running.close()
