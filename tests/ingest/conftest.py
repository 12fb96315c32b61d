"""Fixtures for ingest tests: a running single-node ingest service per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest.ingest_support import RunningIngest, running_ingest

from sonobridge.common.auth import LocalIssuer


@pytest.fixture
def ingest(tmp_path: Path, issuer: LocalIssuer) -> Iterator[RunningIngest]:
    """Ingest on SQLite, a local-directory object store and the embedded event log."""
    with running_ingest(tmp_path, issuer) as running:
        yield running
