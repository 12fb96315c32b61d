"""AE titles are checked as PS3.5 defines the AE value representation."""

from __future__ import annotations

import pytest

from sonobridge.common.problems import InvalidInput
from sonobridge.ingest.domain.callers import DimseCaller, parse_ae_title


@pytest.mark.parametrize(
    ("given", "significant"),
    [
        ("PROBE1", "PROBE1"),
        ("  PROBE1  ", "PROBE1"),
        ("A" * 16, "A" * 16),
        ("WEST US2", "WEST US2"),
    ],
)
def test_valid_titles_keep_their_significant_characters(given: str, significant: str) -> None:
    assert parse_ae_title(given) == significant


@pytest.mark.parametrize(
    "given", ["", "    ", "A" * 17, "BAD\\AE", "TAB\tAE", "NUL\x00", "ÉCHO", "DEL\x7f"]
)
def test_invalid_titles_are_refused_as_bad_input(given: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_ae_title(given)
    assert raised.value.extensions["reason"] == "bad_ae_title"


def test_a_registration_needs_a_canonical_title_and_an_institution() -> None:
    with pytest.raises(InvalidInput):
        DimseCaller(" PROBE1", "township-east")
    with pytest.raises(InvalidInput):
        DimseCaller("PROBE1", "  ")
