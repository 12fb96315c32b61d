"""The reading station's words in Chinese and English, and which language a browser gets."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("zh", "en")

_WORDS: dict[str, tuple[str, str]] = {
    "app": ("SonoBridge 阅片工作站", "SonoBridge reading station"),
    "skip": ("跳到主要内容", "Skip to main content"),
    "language": ("语言", "Language"),
    "switch": ("English", "中文"),
    "login": ("登录", "Log in"),
    "logout": ("退出登录", "Log out"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "worklist": ("工作列表", "Worklist"),
    "alerts": ("随访提醒", "Follow-up alerts"),
    "no_reads": ("没有待读的检查。", "No exams waiting."),
    "priority": ("优先级", "Priority"),
    "exam": ("检查", "Exam"),
    "exam_type": ("检查类型", "Exam type"),
    "institution": ("机构", "Institution"),
    "worklist_name": ("工作列表", "Worklist"),
    "state": ("状态", "State"),
    "assigned": ("认领人", "Claimed by"),
    "due": ("截止时间", "Due"),
    "clock": ("剩余时间", "Time left"),
    "overdue": ("已超时", "overdue"),
    "ai": ("AI 提示", "AI flags"),
    "confidence": ("置信度", "Confidence"),
    "low_confidence": ("低置信度", "low confidence"),
    "probe": ("探头警告", "Probe warnings"),
    "open": ("打开", "Open"),
    "claim": ("认领", "Claim"),
    "open_ohif": ("在 OHIF 中查看影像", "Open images in OHIF"),
    "findings": ("AI 发现", "AI findings"),
    "finding": ("发现", "Finding"),
    "value": ("测量值", "Value"),
    "image": ("图像", "Image"),
    "overlay": ("叠加图", "Overlay"),
    "verdict": ("判定", "Verdict"),
    "agree": ("同意", "Agree"),
    "modify": ("修改", "Modify"),
    "reject": ("否决", "Reject"),
    "comment": ("备注", "Comment"),
    "save_verdicts": ("保存判定", "Save verdicts"),
    "quality": ("图像质量", "Image quality"),
    "acceptable": ("合格", "Acceptable"),
    "rescan": ("需重扫", "Rescan"),
    "reason": ("原因", "Reason"),
    "save_labels": ("保存质量标注", "Save quality labels"),
    "draft": ("报告草稿", "Report draft"),
    "new_draft": ("从模板生成草稿", "Draft from template"),
    "title": ("标题", "Title"),
    "findings_text": ("所见", "Findings"),
    "conclusion": ("结论", "Conclusion"),
    "save_draft": ("保存草稿", "Save draft"),
    "sign": ("签发报告", "Sign report"),
    "signed": ("已签发", "Signed"),
    "report": ("报告", "Report"),
    "download_pdf": ("下载签名 PDF", "Download signed PDF"),
    "amend": ("修订报告", "Amend report"),
    "amend_reason": ("修订原因", "Reason for the amendment"),
    "history": ("经过", "History"),
    "acknowledge": ("确认", "Acknowledge"),
    "close": ("关闭", "Close"),
    "matched": ("匹配词", "Matched terms"),
    "raised": ("提出时间", "Raised"),
    "no_alerts": ("没有随访提醒。", "No follow-up alerts."),
    "forbidden": ("无权访问", "Access denied"),
    "forbidden_text": (
        "您的账号没有阅片权限，这里不显示任何数据。",
        "Your account may not use the reading station; nothing is shown here.",
    ),
    "not_found": ("未找到", "Not found"),
    "error": ("无法完成操作", "That did not work"),
    "back": ("返回工作列表", "Back to the worklist"),
    "no_images": ("没有可显示的图像。", "No images to show."),
    "saved": ("已保存。", "Saved."),
    "login_off": (
        "本站尚未配置身份提供方（REPORTING__READING__ISSUER_URL）。",
        "No identity provider is configured (REPORTING__READING__ISSUER_URL).",
    ),
    "not_for_clinical": (
        "AI 结果来自参考模型，不用于临床诊断。",
        "AI results come from reference models, not for clinical use.",
    ),
}

Translate = Callable[[str], str]


def translator(language: str) -> Translate:
    """Return the lookup for one language; an unknown key shows itself (a visible slip)."""
    index = LANGUAGES.index(language) if language in LANGUAGES else 0
    return lambda key: _WORDS[key][index] if key in _WORDS else key


def pick_language(chosen: str | None, accept_language: str | None) -> str:
    """Return the chosen language, else the first of ours the browser accepts, else Chinese."""
    if chosen in LANGUAGES:
        return str(chosen)
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        primary = tag.split("-")[0].lower()
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight, n, primary))
    return sorted(ranked)[0][2] if ranked else "zh"
