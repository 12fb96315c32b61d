"""Pages read one row ahead: the page holds `limit` rows and names its last when more follow."""

from __future__ import annotations

from sonobridge.common.paging import split_page


def test_a_row_beyond_the_limit_names_the_pages_last_row_as_the_cursor() -> None:
    assert split_page(["a", "b", "c"], 2) == (["a", "b"], "b")


def test_a_page_without_a_row_beyond_it_is_the_last() -> None:
    assert split_page(["a", "b"], 2) == (["a", "b"], None)
    assert split_page([], 2) == ([], None)
