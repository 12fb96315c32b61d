"""Follow-up term matching and report templates."""

from __future__ import annotations

import pytest

from sonobridge.common.problems import InvalidInput
from sonobridge.reporting.domain.followup import TermSpec, match_terms
from sonobridge.reporting.domain.policy import AiFinding
from sonobridge.reporting.domain.templates import draft_for
from sonobridge.reporting.settings import DEFAULT_FOLLOWUP_TERMS

TERMS = [TermSpec(t.term, t.words, t.codes) for t in DEFAULT_FOLLOWUP_TERMS]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("甲状腺右叶可见一低回声结节，建议随访。", ["nodule"]),
        ("肝右叶占位，性质待定，不除外恶性肿瘤", ["tumour", "cancer"]),
        ("Hypoechoic nodule in the right lobe.", ["nodule"]),
        ("Findings suspicious for carcinoma.", ["cancer"]),
        ("甲状腺未见明显结节。", []),
        ("No nodule or mass seen.", []),
        ("无肿大，但见一结节", ["nodule"]),
        ("Nodular goitre without discrete lesion", []),
        ("", []),
    ],
)
def test_follow_up_terms_match_affirmed_mentions_in_chinese_and_english(text, expected):
    assert match_terms([text], [], TERMS) == expected


def test_a_coded_finding_triggers_follow_up_without_words():
    assert match_terms(["正常"], ["237495005"], TERMS) == ["nodule"]
    # Inference codes a solid liver or abdominal lesion as SNOMED CT 4147007 |Mass|.
    assert match_terms(["正常"], ["4147007"], TERMS) == ["tumour"]
    # A simple cyst (367643001) or a lesion count (246206008) alone asks for no follow-up.
    assert match_terms(["正常"], ["367643001", "246206008"], TERMS) == []


def test_drafts_come_from_the_exam_type_template_in_both_languages():
    findings = [AiFinding("237495005", "thyroid nodule", 0.91, False, True)]
    zh = draft_for("thyroid", "zh", findings)
    en = draft_for("thyroid", "en", findings)
    assert zh.title == "甲状腺超声检查报告" and "置信度 0.91" in zh.findings_text
    assert en.title == "Thyroid ultrasound report" and en.conclusion == "thyroid nodule"
    assert draft_for("brain", "en", []).conclusion == "No significant abnormality."
    with pytest.raises(InvalidInput):
        draft_for("thyroid", "fr", [])
