"""Parsers for numbers clients send as text (headers, query strings, cursors); errors are 422."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

from sonobridge.common.problems import InvalidInput

# Bounds of the integer columns behind the APIs: PostgreSQL INTEGER and BIGINT, SQLite INTEGER.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# ASCII only: str.isdigit() accepts '²' and other digits int() refuses or reads differently.
_DECIMAL = re.compile(r"-?[0-9]{1,19}")

Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
"""An integer that fits a 32-bit database column (pydantic bodies and query parameters)."""

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""An integer that fits a 64-bit database column."""

NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A count or size that fits a 64-bit database column."""

# Far enough from datetime.min/max that converting to UTC or adding days cannot overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)


def _plausible(value: datetime) -> datetime:
    # Naive values are read as UTC by the services that accept them.
    if not EARLIEST <= (value if value.tzinfo else value.replace(tzinfo=UTC)) <= LATEST:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]
"""A time with a zone, between 1900 and 2999 (year 9999 at -05:00 overflows UTC)."""

PlausibleDatetime = Annotated[datetime, AfterValidator(_plausible)]
"""A time, naive or aware, between 1900 and 2999."""


def parse_int(
    raw: str | None,
    *,
    name: str,
    minimum: int = 0,
    maximum: int = INT64_MAX,
    reason: str | None = None,
) -> int:
    """Parse ASCII decimal text within [minimum, maximum], or raise InvalidInput naming `name`."""
    text = raw.strip() if isinstance(raw, str) else ""
    if _DECIMAL.fullmatch(text):
        value = int(text)
        if minimum <= value <= maximum:
            return value
    raise InvalidInput(
        f"{name} must be an integer from {minimum} to {maximum}",
        reason=reason or "bad_integer",
    )


def page_size(requested: int, *, default: int, maximum: int) -> int:
    """Return a list RPC's page size: `default` when unset (0), InvalidInput past `maximum`."""
    # Refused rather than clipped, as the REST `limit`/`page_size` queries are: a caller who asked
    # for more than a page holds would otherwise read a short page as the end of the list.
    if requested > maximum:
        raise InvalidInput(f"page_size must be at most {maximum}", reason="bad_page_size")
    return requested or default
