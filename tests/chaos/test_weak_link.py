"""A township app uploads one exam over a slow link cut at intervals; the server keeps it whole.

CI form: an 8 MB exam cut twice (the cut period scaled to the size). Long form, as in issue 20:
`make weak-link` (50 MB, a cut every 30 s for the whole upload). The speed figures are printed,
not asserted; the benchmark is bench/links/bench_weak_link.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaos.weak_link import (
    MB,
    LinkShape,
    Toxiproxy,
    WeakLinkResult,
    padded_exam,
    run_weak_link,
)

from sonobridge.api.events.v1 import topics
from sonobridge.node.consortium import Consortium, demo_consortium, seed
from sonobridge.node.demo import node_settings_for
from sonobridge.node.flow import EventWatch

pytestmark = [pytest.mark.infra, pytest.mark.slow]

SIZE_MB = float(os.environ.get("SONOBRIDGE_WEAK_LINK_MB", "8"))
LONG_FORM = SIZE_MB >= 50
# The link cuts every 30 s of a 50 MB upload; the CI form keeps that share per byte.
CUT_EVERY_S = 30.0 if LONG_FORM else 30.0 * SIZE_MB / 50
MAX_CUTS = 1_000 if LONG_FORM else 2
# 0: the server sees each cut at once. Issue 20's case (the PATCH's bytes thrown away on an
# immediate resume) needs the server to notice late: SONOBRIDGE_WEAK_LINK_NOTICE_S=20.
NOTICE_S = float(os.environ.get("SONOBRIDGE_WEAK_LINK_NOTICE_S", "0"))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Consortium]]:
    """The single-node edition, seeded with the demo consortium."""
    from sonobridge.node.cli import wait_ready
    from sonobridge.node.edition import NodePorts, SingleNode

    tmp: Path = tmp_path_factory.mktemp("weak-link")
    consortium = demo_consortium()
    running = SingleNode(
        tmp, ports=NodePorts.ephemeral(), extra_settings=node_settings_for(consortium, tmp)
    )
    running.start()
    try:
        wait_ready(running)
        admin = consortium.with_role("admin")[0].user
        seed(consortium, running.urls(), consortium.token(running.issuer, admin))
        yield running, consortium
    finally:
        running.stop()


@pytest.fixture(scope="module")
def measured(
    node: tuple[Any, Consortium], toxiproxy_api: str
) -> Iterator[tuple[WeakLinkResult, EventWatch]]:
    """Run the measurement once; the tests below each check one fact of it."""
    running, consortium = node
    watch = EventWatch(running.bus, f"weak-link-{os.getpid()}")
    link = LinkShape(cut_every_s=CUT_EVERY_S, max_cuts=MAX_CUTS, server_notices_after_s=NOTICE_S)
    token = consortium.token(running.issuer, padded_exam(0).operator)
    try:
        result = run_weak_link(
            Toxiproxy(toxiproxy_api),
            running.urls()["ingest"],
            token,
            int(SIZE_MB * MB),
            link,
            deadline_s=120 if not LONG_FORM else 3600,
        )
        yield result, watch
    finally:
        watch.close()


def test_the_exam_is_stored_byte_identical_once(measured: Any) -> None:
    result, _watch = measured
    exam = result.exam
    assert exam["state"] == "completed", exam
    assert exam["received_instance_count"] == 1
    [instance] = exam["instances"]
    assert instance["sha256"] == result.sha256
    assert instance["size_bytes"] == result.resumable.size


def test_the_link_was_cut_while_uploading(measured: Any) -> None:
    result, _watch = measured
    assert result.resumable.cuts >= (1 if LONG_FORM else MAX_CUTS)


def test_the_exam_is_completed_once(measured: Any) -> None:
    result, watch = measured
    assert result.exam["completion_states"] == ["completed", "completed"]
    study = result.exam["study_instance_uid"]
    deadline = time.monotonic() + 15
    while watch.distinct(study, topics.EXAM_COMPLETED) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    # Let a wrongly doubled event arrive before counting.
    time.sleep(1.0)
    assert watch.distinct(study, topics.EXAM_COMPLETED) == 1
