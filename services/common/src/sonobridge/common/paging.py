"""Keyset pages read one row ahead: the extra row says whether another page follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

_T = TypeVar("_T")


def split_page(rows: Sequence[_T], limit: int) -> tuple[list[_T], _T | None]:
    """Split rows read with `limit + 1` into the page and, when more follow, the page's last row."""
    page = list(rows[:limit])
    # The next page starts after the last row shown, not after the extra one read ahead.
    return page, (page[-1] if len(rows) > limit else None)
