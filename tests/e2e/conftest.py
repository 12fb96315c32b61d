"""Both editions for the end-to-end suite: the single node in-process, the cluster as processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.ports import EventBus
from sonobridge.node.consortium import Consortium, demo_consortium, seed
from sonobridge.node.demo import node_settings_for


@dataclass
class Edition:
    """A running edition as the tests see it: service URLs, the issuer and an observer bus."""

    name: str
    urls: dict[str, str]
    issuer: LocalIssuer
    consortium: Consortium
    bus: EventBus

    def token(self, user: str) -> str:
        """A token for one of the consortium's people."""
        return self.consortium.token(self.issuer, user)


def _single(tmp: Path) -> Iterator[Edition]:
    from sonobridge.node.cli import wait_ready
    from sonobridge.node.edition import NodePorts, SingleNode

    consortium = demo_consortium()
    node = SingleNode(
        tmp, ports=NodePorts.ephemeral(), extra_settings=node_settings_for(consortium, tmp)
    )
    node.start()
    try:
        wait_ready(node)
        yield Edition("single", node.urls(), node.issuer, consortium, node.bus)
    finally:
        node.stop()


def _cluster(tmp: Path, request: pytest.FixtureRequest) -> Iterator[Edition]:
    from sonobridge.common.bus.kafka import KafkaEventBus
    from sonobridge.node.cluster import ClusterEdition, Infra
    from sonobridge.node.issuer import issuer_for

    kafka = request.getfixturevalue("kafka_bootstrap")
    minio = request.getfixturevalue("minio_endpoint")
    pg_url = request.getfixturevalue("postgres_url")
    infra = Infra(kafka, minio.endpoint, minio.access_key, minio.secret_key, pg_url)
    consortium = demo_consortium()
    edition = ClusterEdition.ephemeral(tmp, infra, consortium, deployment=f"e2e{os.getpid()}")
    edition.prepare(fresh=True)
    bus = KafkaEventBus(kafka)
    try:
        edition.start()
        yield Edition("cluster", edition.urls(), issuer_for(tmp), consortium, bus)
    finally:
        edition.stop()
        bus.close()
        edition.drop_databases()


@pytest.fixture(
    scope="module",
    params=["single", pytest.param("cluster", marks=pytest.mark.infra)],
)
def edition(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each edition in turn, started fresh and seeded with the demo consortium."""
    tmp = tmp_path_factory.mktemp(f"e2e-{request.param}")
    running = _single(tmp) if request.param == "single" else _cluster(tmp, request)
    with _Closing(running) as ed:
        admin = ed.consortium.with_role("admin")[0].user
        seed(ed.consortium, ed.urls, ed.token(admin))
        yield ed


class _Closing:
    def __init__(self, gen: Iterator[Edition]) -> None:
        self.gen = gen

    def __enter__(self) -> Edition:
        return next(self.gen)

    def __exit__(self, *_: object) -> None:
        for _ in self.gen:
            pass
