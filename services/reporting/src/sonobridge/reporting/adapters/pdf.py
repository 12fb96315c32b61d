"""Render a report version to PDF with a CJK font, so Chinese text prints correctly."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

from sonobridge.reporting.domain.templates import section_heads

# STSong-Light is one of the Adobe CID fonts PDF viewers provide; it needs no font file but the
# viewer must have a CJK font, so an embeddable TrueType CJK font is preferred when installed.
CID_FONT = "STSong-Light"
EMBEDDED_FONT = "SonoBridgeCJK"
TRUETYPE_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
)

_LABELS = {
    "zh": {
        "exam": "检查",
        "institution": "机构",
        "patient": "患者编号",
        "signed": "签署医师",
        "at": "签署时间",
        "version": "版本",
        "amended": "更正自版本",
        "reason": "更正原因",
    },
    "en": {
        "exam": "Exam",
        "institution": "Institution",
        "patient": "Patient ref",
        "signed": "Signed by",
        "at": "Signed at",
        "version": "Version",
        "amended": "Amends version",
        "reason": "Amendment reason",
    },
}


def _style(
    font: str, name: str, size: float, leading: float, space_after: float = 2
) -> ParagraphStyle:
    # CJK wrapping breaks between any two characters, which Chinese needs and English tolerates.
    return ParagraphStyle(
        name,
        fontName=font,
        fontSize=size,
        leading=leading,
        spaceAfter=space_after,
        wordWrap="CJK",
    )


def register_font(font_path: Path | None = None) -> str:
    """Register the CJK font and return its name: a TrueType file (embedded) or the CID font."""
    candidates = [font_path] if font_path else list(TRUETYPE_CANDIDATES)
    for path in candidates:
        if path is not None and path.exists():
            if EMBEDDED_FONT not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont(EMBEDDED_FONT, str(path), subfontIndex=0))
            return EMBEDDED_FONT
    if font_path is not None:
        raise FileNotFoundError(f"PDF font {font_path} does not exist")
    if CID_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CID_FONT))
    return CID_FONT


def _para(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


class ReportPdfRenderer:
    """Renders report versions with one CJK font chosen at start-up."""

    def __init__(self, font_path: Path | None = None) -> None:
        self.font = register_font(font_path)
        self.title = _style(self.font, "title", 16, 22, 8)
        self.head = _style(self.font, "head", 12, 16, 4)
        self.body = _style(self.font, "body", 10.5, 15)

    def __call__(self, document: dict[str, Any]) -> bytes:
        """Return the PDF bytes of one report version (the document written as its .json)."""
        return _render(document, self.title, self.head, self.body)


def _render(
    document: dict[str, Any],
    title_style: ParagraphStyle,
    head_style: ParagraphStyle,
    body_style: ParagraphStyle,
) -> bytes:
    language = document.get("language", "zh")
    labels = _LABELS.get(language, _LABELS["en"])
    findings_head, impression_head = section_heads(language)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=document["title"],
        author="SonoBridge",
    )
    exam = document["exam"]
    story: list[Any] = [_para(document["title"], title_style)]
    meta = [
        f"{labels['exam']}: {exam['exam_type']}  ({exam['study_instance_uid']})",
        f"{labels['institution']}: {exam['institution_id']}",
        f"{labels['patient']}: {exam['patient_ref']}",
        f"{labels['version']}: {document['version']}",
    ]
    if document.get("amended_from_version"):
        meta.append(f"{labels['amended']}: {document['amended_from_version']}")
        meta.append(f"{labels['reason']}: {document.get('amend_reason', '')}")
    story.extend(_para(line, body_style) for line in meta)
    story.append(Spacer(1, 6 * mm))
    story.append(_para(findings_head, head_style))
    story.append(_para(document["findings_text"], body_style))
    story.append(Spacer(1, 4 * mm))
    story.append(_para(impression_head, head_style))
    story.append(_para(document["conclusion"], body_style))
    story.append(Spacer(1, 8 * mm))
    story.append(_para(f"{labels['signed']}: {document['signed_by']}", body_style))
    story.append(_para(f"{labels['at']}: {document['signed_at']}", body_style))
    doc.build(story)
    return buf.getvalue()
