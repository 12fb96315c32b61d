"""Report templates per exam type in Chinese and English, filled from the AI findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sonobridge.common.problems import InvalidInput
from sonobridge.reporting.domain.policy import AiFinding

LANGUAGES = ("zh", "en")

_TITLES = {
    "carotid": ("颈动脉超声检查报告", "Carotid ultrasound report"),
    "thyroid": ("甲状腺超声检查报告", "Thyroid ultrasound report"),
    "abdomen": ("腹部超声检查报告", "Abdominal ultrasound report"),
    "kidney": ("肾脏超声检查报告", "Renal ultrasound report"),
    "obstetric": ("产科超声检查报告", "Obstetric ultrasound report"),
    "cardiac": ("心脏超声检查报告", "Echocardiography report"),
    "liver": ("肝脏超声检查报告", "Liver ultrasound report"),
    "other": ("超声检查报告", "Ultrasound report"),
}

_NORMAL = {
    "carotid": (
        "双侧颈动脉内中膜未见增厚，管腔内未见明显斑块，血流通畅。",
        "Intima-media thickness normal on both sides; no plaque; patent flow.",
    ),
    "thyroid": (
        "甲状腺大小形态正常，实质回声均匀。",
        "Thyroid of normal size and shape with homogeneous parenchyma.",
    ),
    "abdomen": (
        "肝、胆、胰、脾、双肾声像图未见明显异常。",
        "Liver, gallbladder, pancreas, spleen and kidneys unremarkable.",
    ),
    "kidney": (
        "双肾大小形态正常，集合系统未见分离。",
        "Both kidneys of normal size and shape; no collecting-system dilatation.",
    ),
    "obstetric": (
        "宫内单活胎，胎心搏动规律。",
        "Single live intrauterine pregnancy with regular fetal heart activity.",
    ),
    "cardiac": (
        "各房室腔大小正常，室壁运动协调，心包腔未见积液。",
        "Chamber sizes normal, wall motion coordinated, no pericardial effusion.",
    ),
    "liver": (
        "肝脏大小形态正常，实质回声均匀。",
        "Liver of normal size and shape with homogeneous echotexture.",
    ),
    "other": ("所检部位未见明显异常。", "No significant abnormality in the examined region."),
}

_HEAD = {
    "zh": ("检查所见", "超声提示", "AI 预读结果（需医师确认）", "置信度", "异常", "正常"),
    "en": (
        "Findings",
        "Impression",
        "AI preliminary findings (physician to confirm)",
        "confidence",
        "abnormal",
        "normal",
    ),
}


@dataclass(frozen=True)
class Draft:
    """A report draft: title, findings text and conclusion in one language."""

    language: str
    title: str
    findings_text: str
    conclusion: str


def draft_for(exam_type: str, language: str, findings: Sequence[AiFinding]) -> Draft:
    """Build a draft from the exam type's template and the AI findings."""
    if language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    kind = exam_type if exam_type in _TITLES else "other"
    index = LANGUAGES.index(language)
    _, _, ai_head, conf_word, abnormal_word, normal_word = _HEAD[language]
    lines = [_NORMAL[kind][index]]
    if findings:
        lines.append(f"{ai_head}:")
        for f in findings:
            flag = abnormal_word if f.abnormal else normal_word
            lines.append(f"- {f.display or f.code} ({flag}, {conf_word} {f.confidence:.2f})")
    abnormal = [f.display or f.code for f in findings if f.abnormal]
    if abnormal:
        conclusion = "、".join(abnormal) if language == "zh" else ", ".join(abnormal)
    else:
        conclusion = "未见明显异常。" if language == "zh" else "No significant abnormality."
    return Draft(language, _TITLES[kind][index], "\n".join(lines), conclusion)


def section_heads(language: str) -> tuple[str, str]:
    """Return the findings and impression headings of a language."""
    heads = _HEAD.get(language, _HEAD["en"])
    return heads[0], heads[1]
