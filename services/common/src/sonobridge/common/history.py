"""An entry of an append-only history: who made which kind of change to a subject, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """One change in a subject's history; each service's entry adds its own details.

    Keyword-only, as its subclasses are: three strings in a row are easily passed out of order.
    """

    at: datetime
    actor: str
    kind: str
