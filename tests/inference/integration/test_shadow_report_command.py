"""`python -m sonobridge.inference shadow-report` reads a single node's database and registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inference.unit.handlers.fakes import quality_outputs
from inference.unit.handlers.test_shadow import acme_exam, expert_label, per_instance, with_shadows

from sonobridge.common.db import create_db_engine, migrate, session_factory
from sonobridge.common.delivery import Outbox
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.inference.__main__ import main
from sonobridge.inference.adapters import orm
from sonobridge.inference.adapters.model_store import publish_missing_models
from sonobridge.inference.adapters.repositories import SqlExamWork
from sonobridge.inference.adapters.validation import SqlDeviceValidations
from sonobridge.inference.bootstrap import MIGRATIONS
from sonobridge.inference.handlers import exams
from sonobridge.inference.runtime.registry import packaged_models


def test_the_command_prints_each_version_against_the_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A node's data directory: its registry holds the packaged versions, 1.2.0 in shadow.
    publish_missing_models(packaged_models(), LocalDirObjectStore(tmp_path / "objects"))
    url = f"sqlite:///{tmp_path / 'inference.sqlite3'}"
    migrate(url, MIGRATIONS)
    # Fakes stand in for the models; the verdicts they give are stored as the pipeline does.
    w = with_shadows(
        **{
            "image-quality": per_instance([0.9, 0.2, 0.2], quality_outputs),
            "image-quality@1.2.0": per_instance([0.9, 0.9, 0.2], quality_outputs),
        }
    )
    completed = acme_exam(w, 3)
    result = exams.analyse_exam(w.deps, completed, "event-1", lambda key: None)
    assert result is not None
    engine = create_db_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        SqlExamWork(session, Outbox(orm.outbox)).results.add(result)
    uids = [i.sop_instance_uid for i in completed.instances]
    SqlDeviceValidations(sessions).add_labels(
        [
            expert_label(uids[0], None),
            expert_label(uids[1], None),
            expert_label(uids[2], "low_gain"),
        ]
    )
    engine.dispose()
    monkeypatch.setenv("EDITION", "single")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))

    assert main(["shadow-report", "--model", "image-quality", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["serving_version"] == "1.0.0"
    (device,) = document["device_models"]
    figures = {
        v["version"]: (v["labelled_instances"], v["false_rescans"], v["faults_caught"])
        for v in device["versions"]
    }
    # Served flags instances 2 and 3 (one clean, one faulty); the shadow flags only 3.
    assert figures == {"1.0.0": (3, 1, 1), "1.2.0": (3, 0, 1)}
    assert device["agreement_with_serving"][0]["agreeing"] == 2
    assert "1.2.0 on acme medical / pocket two: promotion would not meet" in str(device)

    assert main(["shadow-report"]) == 0
    text = capsys.readouterr().out
    assert "agreement 1.2.0 vs 1.0.0: 2/3 (67%)" in text and uids[0] not in text
