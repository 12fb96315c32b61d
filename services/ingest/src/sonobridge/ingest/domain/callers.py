"""DIMSE callers: the calling AE titles county IT registers, each belonging to one institution."""

from __future__ import annotations

from dataclasses import dataclass

from sonobridge.common.problems import InvalidInput

AE_TITLE_MAX = 16


def parse_ae_title(value: str) -> str:
    """Return the significant form of an AE title (PS3.5 AE), or raise InvalidInput.

    An AE is 1-16 characters of the default repertoire without backslash or control
    characters; leading and trailing spaces are not significant, so all-space titles are empty.
    """
    if not isinstance(value, str) or len(value) > AE_TITLE_MAX:
        raise InvalidInput(
            f"an AE title has at most {AE_TITLE_MAX} characters", reason="bad_ae_title"
        )
    if any(not (" " <= c <= "~") or c == "\\" for c in value):
        raise InvalidInput(
            "an AE title holds printable ASCII characters other than backslash only",
            reason="bad_ae_title",
        )
    title = value.strip(" ")
    if not title:
        raise InvalidInput("an AE title must not be empty or all spaces", reason="bad_ae_title")
    return title


@dataclass(frozen=True)
class DimseCaller:
    """A registered calling AE title and the institution whose data it sends."""

    ae_title: str
    institution_id: str
    description: str = ""

    def __post_init__(self) -> None:
        if self.ae_title != parse_ae_title(self.ae_title):
            raise InvalidInput(
                f"AE title {self.ae_title!r} is not canonical", reason="bad_ae_title"
            )
        if not self.institution_id.strip() or len(self.institution_id) > 128:
            raise InvalidInput("institution_id must be 1-128 characters", reason="bad_institution")
