"""Ingest's domain and handlers stay clean under mypy."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "services/ingest/src/sonobridge/ingest"


@pytest.mark.slow
def test_domain_and_handlers_type_check_cleanly() -> None:
    stdout, stderr, status = api.run(
        ["--strict", "--no-error-summary", str(SRC / "domain"), str(SRC / "handlers")]
    )
    assert status == 0, stdout + stderr
