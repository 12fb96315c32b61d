"""Tensor messages decode to arrays over the message's bytes, and bad ones say why."""

from __future__ import annotations

import numpy as np
import pytest

from sonobridge.api.inference.v1 import inference_pb2
from sonobridge.common.problems import InvalidInput
from sonobridge.inference.entrypoints.grpc_server import array_to_tensor, tensor_to_array


def _parsed(tensor: inference_pb2.Tensor) -> inference_pb2.Tensor:
    # Through the wire format, as the server receives it.
    return inference_pb2.Tensor.FromString(tensor.SerializeToString())


def test_a_frame_round_trips_through_a_tensor_message() -> None:
    x = np.arange(2 * 1 * 4 * 3, dtype=np.float32).reshape(2, 1, 4, 3)
    got = tensor_to_array(_parsed(array_to_tensor("image", x)))
    assert got.dtype == np.float32
    assert got.shape == (2, 1, 4, 3)
    np.testing.assert_array_equal(got, x)


def test_a_short_payload_names_the_bytes_it_needs() -> None:
    tensor = array_to_tensor("image", np.zeros((1, 1, 4, 4), dtype=np.float32))
    tensor.data = tensor.data[:-4]
    with pytest.raises(InvalidInput, match="needs 64 bytes, got 60"):
        tensor_to_array(_parsed(tensor))


def test_a_tensor_without_dtype_is_refused() -> None:
    tensor = inference_pb2.Tensor(name="image", shape=[1], data=b"\0\0\0\0")
    with pytest.raises(InvalidInput, match="dtype must be set"):
        tensor_to_array(_parsed(tensor))


@pytest.mark.parametrize("dims", [33, 65, 200])
def test_a_tensor_of_more_dimensions_than_numpy_holds_is_refused(dims: int) -> None:
    tensor = inference_pb2.Tensor(name="image", shape=[1] * dims, dtype=1, data=b"\0\0\0\0")
    with pytest.raises(InvalidInput, match="at most 32 are taken"):
        tensor_to_array(_parsed(tensor))


def test_thirty_two_dimensions_decode() -> None:
    tensor = inference_pb2.Tensor(name="image", shape=[1] * 32, dtype=1, data=b"\0\0\0\0")
    assert tensor_to_array(_parsed(tensor)).ndim == 32


@pytest.mark.parametrize(
    ("shape", "refused"),
    [([0, 2**61], True), ([0, 2**31, 2**30], True), ([0, 2**61 - 1], False), ([0, 7], False)],
)
def test_an_empty_tensor_whose_other_dimensions_overflow_is_refused(
    shape: list[int], refused: bool
) -> None:
    tensor = _parsed(inference_pb2.Tensor(name="image", shape=shape, dtype=1))
    if refused:
        with pytest.raises(InvalidInput, match="is too large"):
            tensor_to_array(tensor)
    else:
        assert tensor_to_array(tensor).size == 0
