"""Shared test set-up: the real-infrastructure fixtures and the local token issuer."""

from __future__ import annotations

import pytest

from sonobridge.common.auth import LocalIssuer

pytest_plugins = ["infra_fixtures", "descriptor_watch"]


@pytest.fixture(scope="session")
def issuer() -> LocalIssuer:
    """A token issuer shared by the session (RSA key generation is slow)."""
    return LocalIssuer("https://issuer.test/sonobridge", audience="sonobridge")
