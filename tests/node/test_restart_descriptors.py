"""A single node stopped and started again in one process closes the databases it opened."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sonobridge.node.cli import wait_ready
from sonobridge.node.edition import NodePorts, SingleNode

# Inference loads its models at start (seconds each time); the others own databases the same way.
RESTARTED = ("ingest", "reporting", "maintenance")


def open_under(directory: Path) -> list[str]:
    """Paths of this process's open descriptors that lie in `directory`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile, or the listing's own descriptor
        if target.startswith(f"{directory}/"):
            found.append(target)
    return sorted(found)


@pytest.fixture
def no_collector() -> Iterator[None]:
    """Keep the cycle collector out, so only what stop() closes counts as closed."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@pytest.mark.usefixtures("no_collector")
def test_each_stop_closes_the_service_databases(tmp_path: Path) -> None:
    data_dir = tmp_path.resolve()
    after_stop = []
    for _ in range(3):
        node = SingleNode(data_dir, ports=NodePorts.ephemeral(), services=RESTARTED)
        node.start()
        try:
            wait_ready(node)
            for url in node.urls().values():
                with httpx.Client(base_url=url, timeout=30) as client:
                    assert client.get("/readyz").status_code == 200
            assert any(p.endswith(".sqlite3") for p in open_under(data_dir))
        finally:
            node.stop()
        del node
        after_stop.append(open_under(data_dir))
    # Before hosts closed what they built, each start left its services' pools open: the web
    # framework keeps endpoint callables, and what they reach, for the life of the process.
    assert after_stop == [[], [], []]
