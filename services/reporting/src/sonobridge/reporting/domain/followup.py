"""Follow-up term matching in signed reports, in Chinese and English, with simple negation."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A cue before the term in the same clause negates it ("未见结节", "no nodule").
_NEGATION_CUES = (
    "未见",
    "未发现",
    "未探及",
    "无",
    "没有",
    "排除",
    "no ",
    "without",
    "negative for",
    "free of",
    "absence of",
    "not ",
)
# A contrast after the cue re-opens the clause ("未见肿大，但见结节" is split anyway; "no X but Y").
_CONTRAST = ("但", "但是", "however", " but ")
_CLAUSE_SPLIT = re.compile(r"[。；;，,.\n!?！？:：]")
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class TermSpec:
    """A follow-up concept with its words and finding codes."""

    term: str
    words: Sequence[str]
    codes: Sequence[str] = ()


def _word_hits(clause: str, word: str) -> list[int]:
    lowered = clause.lower()
    needle = word.lower()
    if _CJK.search(needle):
        return [m.start() for m in re.finditer(re.escape(needle), lowered)]
    return [m.start() for m in re.finditer(rf"\b{re.escape(needle)}\b", lowered)]


def _negated(clause: str, position: int) -> bool:
    before = clause[:position].lower()
    cue_at = max((before.rfind(cue) for cue in _NEGATION_CUES), default=-1)
    if cue_at < 0:
        return False
    return not any(c in before[cue_at:] for c in _CONTRAST)


def match_terms(
    texts: Iterable[str], finding_codes: Iterable[str], terms: Sequence[TermSpec]
) -> list[str]:
    """Return the follow-up terms a report mentions (affirmed words or coded findings), in order."""
    clauses = [c for text in texts for c in _CLAUSE_SPLIT.split(text or "") if c.strip()]
    codes = set(finding_codes)
    matched: list[str] = []
    for spec in terms:
        hit = any(code in codes for code in spec.codes) or any(
            not _negated(clause, pos)
            for clause in clauses
            for word in spec.words
            for pos in _word_hits(clause, word)
        )
        if hit:
            matched.append(spec.term)
    return matched
