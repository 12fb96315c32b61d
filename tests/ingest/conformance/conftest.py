"""The conformance suites' server: each module runs its stock clients against both editions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ingest.conformance.conformance_support import Server, cluster_server, single_server


@pytest.fixture(scope="module", params=["single", pytest.param("cluster", marks=pytest.mark.infra)])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per edition for the module; every test uses its own fresh UIDs."""
    suite = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    tmp = tmp_path_factory.mktemp(f"{suite}-{request.param}")
    if request.param == "single":
        with single_server(tmp) as single:
            yield single
        return
    with cluster_server(
        tmp,
        request.getfixturevalue("issuer"),
        request.getfixturevalue("minio_endpoint"),
        request.getfixturevalue("postgres_url"),
        suite.replace("_", "-"),
    ) as cluster:
        yield cluster
