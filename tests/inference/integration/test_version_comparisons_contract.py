"""Stored verdicts joined to expert labels: the unit tests' fake, SQLite and PostgreSQL agree."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from inference.unit.handlers.fakes import FakeComparisons, World, quality_outputs
from inference.unit.handlers.test_shadow import (
    ACME,
    acme_exam,
    expert_label,
    per_instance,
    with_shadows,
)
from sqlalchemy import func, select

from sonobridge.common.db import create_db_engine, migrate, session_factory
from sonobridge.common.delivery import Outbox
from sonobridge.inference.adapters import orm
from sonobridge.inference.adapters.comparisons import SqlVersionComparisons
from sonobridge.inference.adapters.repositories import SqlExamWork
from sonobridge.inference.adapters.validation import SqlDeviceValidations
from sonobridge.inference.bootstrap import MIGRATIONS
from sonobridge.inference.domain.comparison import LabelledVerdict
from sonobridge.inference.domain.exams import InferenceResult
from sonobridge.inference.domain.validation import DeviceModel
from sonobridge.inference.handlers import exams
from sonobridge.inference.ports import DeviceValidations, VersionComparisons


@dataclass
class Stores:
    """Where results are recorded, labels kept and the two joined."""

    record: Any
    validations: DeviceValidations
    comparisons: VersionComparisons
    count_verdicts: Any


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "fake":
        w = with_shadows()
        fake = FakeComparisons(w.work.results, w.validations)
        yield Stores(
            w.work.results.add,
            w.validations,
            fake,
            lambda: len(
                {
                    (v.model_name, v.model_version, v.sop_instance_uid)
                    for r in w.work.results.added
                    for v in r.verdicts
                }
            ),
        )
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'inference.sqlite3'}"
    else:
        url = str(request.getfixturevalue("pg_database"))
    migrate(url, MIGRATIONS)
    engine = create_db_engine(url)
    sessions = session_factory(engine)

    def record(result: InferenceResult) -> None:
        with sessions.begin() as session:
            SqlExamWork(session, Outbox(orm.outbox)).results.add(result)

    def count() -> int:
        with sessions() as session:
            return int(session.scalar(select(func.count()).select_from(orm.quality_verdicts)))

    try:
        yield Stores(record, SqlDeviceValidations(sessions), SqlVersionComparisons(sessions), count)
    finally:
        engine.dispose()


def _results(n: int, sha256: str = "") -> tuple[World, InferenceResult]:
    w = with_shadows(**{"image-quality@1.2.0": per_instance([0.2] * n, quality_outputs)})
    completed = acme_exam(w, n)
    if sha256:
        # The same instances under another manifest: a re-sent exam gets a result of its own.
        resent = tuple(replace(i, sha256=sha256) for i in completed.instances)
        completed = replace(completed, instances=resent)
    result = exams.analyse_exam(w.deps, completed, "event-1", lambda key: None)
    assert result is not None
    return w, result


def _said(lv: LabelledVerdict) -> tuple[bool, str | None, bool]:
    return lv.verdict.flagged, lv.label.expert_fault, lv.label.device == ACME


def test_labelled_instances_are_joined_to_every_version_verdict(stores: Stores) -> None:
    _, result = _results(3)
    stores.record(result)
    uids = sorted({v.sop_instance_uid for v in result.verdicts})
    assert stores.count_verdicts() == 12  # 3 instances x (2 served + 2 shadow versions)
    stores.validations.add_labels([expert_label(uids[0], None), expert_label(uids[1], "low_gain")])
    # A relabel replaces the earlier label of the instance.
    stores.validations.add_labels([expert_label(uids[1], "motion_blur")])
    found = stores.comparisons.labelled("image-quality")
    got = sorted(
        (lv.verdict.sop_instance_uid, lv.verdict.model_version, lv.verdict.stage, *_said(lv))
        for lv in found
    )
    assert got == [
        (uids[0], "1.0.0", "serving", False, None, True),
        (uids[0], "1.2.0", "shadow", True, None, True),
        (uids[1], "1.0.0", "serving", False, "motion_blur", True),
        (uids[1], "1.2.0", "shadow", True, "motion_blur", True),
    ]
    assert {lv.label.model_name for lv in stores.comparisons.labelled("probe-health")} == {
        "probe-health"
    }
    other = DeviceModel.of("GE", "Vscan Air")
    assert stores.comparisons.labelled("image-quality", other) == []
    assert len(stores.comparisons.labelled("image-quality", ACME)) == 4


def test_a_later_exam_of_the_same_instance_replaces_its_verdicts(stores: Stores) -> None:
    _, first = _results(1)
    stores.record(first)
    _, again = _results(1, sha256="re-sent")
    # The same instance in a second result (a re-sent exam): one verdict per version stays.
    stores.record(again)
    assert stores.count_verdicts() == 4
