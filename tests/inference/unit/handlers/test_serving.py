"""Running a named model on an uploaded image or on tensors, with fakes of the ports."""

from __future__ import annotations

import numpy as np
import pytest
from inference.unit.handlers.fakes import card, png, world

from sonobridge.common.problems import InvalidInput, UnsupportedMediaType
from sonobridge.inference.domain.errors import InvalidImage, ModelNotFound, ModelNotLoaded
from sonobridge.inference.handlers import serving

ERRORS = "sonobridge_inference_errors_total"


def test_an_image_is_preprocessed_to_the_card_input_and_its_labels_ranked():
    w = world(acceptable=0.2, fault="lost_contact")
    result = serving.infer_image(w.deps, "image-quality", None, png(), "image/png")
    assert w.models.calls == [("image-quality", (1, 1, 8, 8))]
    assert result.card.name == "image-quality"
    assert [label for label, _ in result.labels] == ["lost_contact", "acceptable", "low_gain"]
    assert result.labels[0][1] == pytest.approx(0.8) and result.latency_ms >= 0


def test_an_unsupported_media_type_is_refused_before_decoding():
    w = world()
    with pytest.raises(UnsupportedMediaType, match="text/plain"):
        serving.infer_image(w.deps, "image-quality", None, png(), "text/plain")
    assert w.models.calls == []


def test_undecodable_bytes_are_refused_and_counted_as_a_decode_error():
    w = world()
    with pytest.raises(InvalidImage):
        serving.infer_image(w.deps, "image-quality", None, b"not an image", "image/png")
    assert w.count(ERRORS, model="image-quality", kind="decode") == 1


def test_a_model_that_is_stored_but_not_loaded_is_unavailable():
    w = world(cards=[card("kidney")])
    with pytest.raises(ModelNotLoaded):
        serving.infer_image(w.deps, "kidney", None, png(), "image/png")


def test_a_model_that_is_not_stored_is_not_found():
    w = world()
    with pytest.raises(ModelNotFound):
        serving.infer_image(w.deps, "kidney", None, png(), "image/png")


def test_tensors_are_fed_as_they_are_under_the_input_name_the_card_gives():
    w = world()
    x = np.zeros((3, 1, 8, 8), np.float32)
    result = serving.infer_tensors(w.deps, "image-quality", "1.0.0", {"x": x})
    assert w.models.calls == [("image-quality", (3, 1, 8, 8))]
    # Three rows are not one image: no labels to rank.
    assert result.labels == [] and result.outputs["probabilities"].shape == (3, 3)


def test_tensors_under_another_name_are_refused():
    w = world()
    with pytest.raises(InvalidInput, match="one input named 'x'"):
        serving.infer_tensors(w.deps, "image-quality", None, {"input": np.zeros(1)})


def test_an_unexpected_model_failure_is_counted_and_raised():
    w = world()

    def broken(x: np.ndarray) -> dict[str, np.ndarray]:
        raise RuntimeError("session died")

    w.models.outputs["image-quality"] = broken
    with pytest.raises(RuntimeError, match="session died"):
        serving.infer_image(w.deps, "image-quality", None, png(), "")
    assert w.count(ERRORS, model="image-quality", kind="run") == 1
