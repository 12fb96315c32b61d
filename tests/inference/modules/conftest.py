"""Fixtures for clinical-module tests: the packaged modules and small synthetic exams."""

import pytest

from sonobridge.inference.modules import load_clinical_modules
from sonobridge.inference.runtime.providers import SessionConfig


@pytest.fixture(scope="session")
def clinical_modules():
    return {m.name: m for m in load_clinical_modules(SessionConfig(("CPUExecutionProvider",)))}
