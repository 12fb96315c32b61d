"""The model registry as clients see it, and the admin-only load, unload and pin."""

from __future__ import annotations

import pytest
from inference.unit.handlers.fakes import card, world

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput
from sonobridge.inference.domain.errors import ModelNotFound
from sonobridge.inference.handlers import models

ADMIN = Principal("admin-1", frozenset({"admin"}))
NURSE = Principal("nurse-1", frozenset({"operator"}))
KIDNEY = [
    card("kidney", "1.0.0", exam_types=("kidney",), kind="segmentation"),
    card("kidney", "1.10.0", exam_types=("kidney",), kind="segmentation"),
    card("kidney", "1.9.0", exam_types=("kidney",), kind="segmentation"),
]


def test_models_are_listed_by_name_then_numeric_version_with_their_state():
    w = world(cards=KIDNEY)
    found = models.list_models(w.deps)
    names = [(m.card.name, m.card.version) for m in found]
    assert names == [
        ("image-quality", "1.0.0"),
        ("kidney", "1.0.0"),
        ("kidney", "1.9.0"),
        ("kidney", "1.10.0"),
        ("probe-health", "1.0.0"),
    ]
    assert found[0].loaded and found[0].pinned and not found[1].loaded


def test_models_are_filtered_by_exam_type_and_task():
    w = world(cards=KIDNEY)
    assert {m.card.name for m in models.list_models(w.deps, exam_type="kidney")} == {"kidney"}
    assert [m.card.name for m in models.list_models(w.deps, task="quality")] == ["image-quality"]
    assert [m.card.name for m in models.list_models(w.deps, task="probe_health")] == [
        "probe-health"
    ]
    assert len(models.list_models(w.deps, task="segmentation")) == 3
    assert models.list_models(w.deps, task="unknown-99") == []


def test_a_model_without_a_version_resolves_to_the_pinned_else_the_latest():
    w = world(cards=KIDNEY)
    assert models.get_model(w.deps, "kidney").card.version == "1.9.0"
    w.catalog.loaded.add(("kidney", "1.0.0"))
    w.catalog.pins["kidney"] = "1.0.0"
    found = models.get_model(w.deps, "kidney", "")
    assert found.card.version == "1.0.0" and found.pinned and found.loaded


def test_an_unknown_or_unnamed_model_is_refused():
    w = world()
    with pytest.raises(ModelNotFound, match="no model named 'liver'"):
        models.get_model(w.deps, "liver")
    with pytest.raises(InvalidInput):
        models.get_model(w.deps, "")


def test_only_an_admin_loads_a_model_and_then_it_is_loaded():
    w = world(cards=KIDNEY)
    with pytest.raises(Forbidden):
        models.load_model(w.deps, NURSE, "kidney", "1.0.0")
    found = models.load_model(w.deps, ADMIN, "kidney", "1.0.0")
    assert found.loaded and not found.pinned


def test_loading_a_version_that_is_not_stored_fails_before_any_work():
    w = world(cards=KIDNEY)
    with pytest.raises(ModelNotFound):
        models.load_model(w.deps, ADMIN, "kidney", "9.9.9")
    assert ("kidney", "9.9.9") not in w.catalog.loaded


def test_unloading_or_pinning_a_version_that_is_not_loaded_is_a_conflict():
    w = world(cards=KIDNEY)
    with pytest.raises(Conflict, match="not loaded"):
        models.unload_model(w.deps, ADMIN, "kidney", "1.0.0")
    with pytest.raises(Conflict, match="before pinning"):
        models.pin_model(w.deps, ADMIN, "kidney", "1.0.0")


def test_a_loaded_version_is_pinned_then_unloaded():
    w = world(cards=KIDNEY)
    models.load_model(w.deps, ADMIN, "kidney", "1.0.0")
    assert models.pin_model(w.deps, ADMIN, "kidney", "1.0.0").pinned
    assert not models.unload_model(w.deps, ADMIN, "kidney", "1.0.0").loaded


def test_the_card_and_the_model_file_are_returned_as_stored():
    w = world(cards=KIDNEY)
    found = models.get_model(w.deps, "kidney", "1.0.0")
    assert models.card_json(w.deps, found.card) == '{"name": "kidney"}'
    stored, data = models.model_artifact(w.deps, "kidney", "1.0.0")
    assert stored.version == "1.0.0" and data == b"onnx:kidney"
