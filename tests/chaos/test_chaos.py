"""Bounded chaos: exams flow through kills, server restarts and a pause; none lost or doubled.

One SIGKILL of a random service replica, one restart each of Kafka, MinIO and PostgreSQL and one
pause of an ingest replica longer than the clients' timeout, on a private cluster (its own servers
on free ports; the shared ones are never touched). The long form is `make chaos`. Recovery times
are printed, not asserted.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos.chaos_load import prefecture_exams
from chaos.chaos_oracle import expect_calm_outcomes
from chaos.chaos_run import ChaosReport, ChaosRun, bounded_faults, print_table

pytestmark = [pytest.mark.infra, pytest.mark.slow, pytest.mark.timeout(900)]

EXAMS = int(os.environ.get("SONOBRIDGE_CHAOS_EXAMS", "40"))
# Slow enough that the five faults (about three minutes here) fall inside the load.
RATE = 0.25
SEED = int(os.environ.get("SONOBRIDGE_CHAOS_SEED", "20"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosReport]:
    """One bounded chaos run, printed as the must-show table."""
    root: Path = tmp_path_factory.mktemp("chaos")
    loads = prefecture_exams(EXAMS, seed=SEED)
    # Each exam must end where a calm run puts it: the product's models and rules decide that.
    calm = expect_calm_outcomes([lp.plan for lp in loads])
    for line in calm.departures:
        print(f"oracle: {line}")
    with ChaosRun(root, seed_=SEED) as run:
        assert run.cluster is not None
        faults = bounded_faults(random.Random(SEED), sorted(run.cluster.replicas))
        result = run.run(loads, faults, RATE, drain=240, gap=3.0, calm=calm.reads)
        print_table(result, RATE)
        yield result


def test_no_exam_is_lost_through_kills_restarts_and_a_pause(report: ChaosReport) -> None:
    assert report.audit.exams == EXAMS
    assert report.audit.lost == []
    assert report.audit.checked["exams completed in ingest"] == EXAMS


def test_no_event_read_report_or_ticket_is_doubled(report: ChaosReport) -> None:
    assert report.audit.doubled == []
    assert report.audit.checked["primary reads"] == EXAMS


def test_every_exam_ends_in_the_state_its_content_calls_for(report: ChaosReport) -> None:
    assert report.audit.wrong_state == []
    assert report.audit.checked["signed reports"] == report.expected_signed


def test_dead_letter_topics_are_empty(report: ChaosReport) -> None:
    assert report.audit.dead_letters == []


def test_every_fault_was_injected_and_the_cluster_healed(report: ChaosReport) -> None:
    kinds = sorted({(f.kind, f.target) for f in report.faults if f.kind == "restart"})
    assert kinds == [("restart", "kafka"), ("restart", "minio"), ("restart", "postgres")]
    assert {f.kind for f in report.faults} == {"kill", "restart", "pause"}
    assert [f for f in report.faults if f.recovered is None] == []
    assert report.restarts >= 1  # the killed replica was replaced
