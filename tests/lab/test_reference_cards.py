"""Retraining a reference model keeps its card's hand-kept validation section."""

from __future__ import annotations

import json
from pathlib import Path

from sonobridge.lab.training.train_reference_models import _write


def test_retraining_keeps_the_validation_section(tmp_path: Path):
    validation = {"validated_device_models": [{"manufacturer": "Acme", "state": "gating"}]}
    folder = tmp_path / "image-quality" / "1.0.0"
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(
        json.dumps({"name": "image-quality", "validation": validation})
    )
    _write("image-quality", "1.0.0", b"onnx", {"name": "image-quality"}, tmp_path)
    card = json.loads((folder / "card.json").read_text())
    assert card["validation"] == validation
    assert card["size_bytes"] == 4


def test_a_new_validation_section_wins_over_the_stored_one(tmp_path: Path):
    folder = tmp_path / "probe-health" / "1.0.0"
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({"validation": {"old": True}}))
    _write("probe-health", "1.0.0", b"x", {"validation": {"new": True}}, tmp_path)
    assert json.loads((folder / "card.json").read_text())["validation"] == {"new": True}
