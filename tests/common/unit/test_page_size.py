"""The page-size rule every list RPC shares: a default when unset, refused past the maximum."""

from __future__ import annotations

import pytest

from sonobridge.common.inputs import page_size
from sonobridge.common.problems import InvalidInput


def test_an_unset_page_size_takes_the_default() -> None:
    assert page_size(0, default=50, maximum=500) == 50


def test_a_page_size_up_to_the_maximum_is_kept() -> None:
    assert page_size(1, default=50, maximum=500) == 1
    assert page_size(500, default=50, maximum=500) == 500


def test_a_page_size_past_the_maximum_is_refused_not_clipped() -> None:
    with pytest.raises(InvalidInput, match="at most 500") as refused:
        page_size(501, default=50, maximum=500)
    assert refused.value.status == 422
    assert refused.value.extensions == {"reason": "bad_page_size"}
