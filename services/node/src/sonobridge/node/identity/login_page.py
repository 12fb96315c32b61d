"""The provider's server-rendered login and logged-out pages, in Chinese and English, no assets."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from urllib.parse import urlencode

LABELS = {
    "en": {
        "title": "Sign in to SonoBridge",
        "user": "User name",
        "password": "Password",
        "submit": "Sign in",
        "switch": "中文",
        "bad_password": "The user name or password is wrong.",
        "throttled": "Too many wrong passwords. Try again in {minutes} minute(s).",
        "expired": "The sign-in form expired. Please sign in again.",
        "logged_out": "You are signed out of SonoBridge.",
        "notice": "Reference software, not for clinical use.",
    },
    "zh": {
        "title": "登录 SonoBridge",
        "user": "用户名",
        "password": "密码",
        "submit": "登录",
        "switch": "English",
        "bad_password": "用户名或密码错误。",
        "throttled": "密码错误次数过多，请 {minutes} 分钟后再试。",
        "expired": "登录表单已过期，请重新登录。",
        "logged_out": "您已退出 SonoBridge。",
        "notice": "参考软件，不用于临床诊断。",
    },
}

_STYLE = """
body{font-family:system-ui,sans-serif;background:#f4f6f8;margin:0;display:flex;
justify-content:center;align-items:center;min-height:100vh}
main{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0003;
width:min(22rem,90vw)}
label{display:block;margin-top:1rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;margin-top:.25rem}
button{margin-top:1.5rem;width:100%;padding:.6rem;font-size:1rem;background:#1f5f8b;
color:#fff;border:0;border-radius:4px;cursor:pointer}
:focus-visible{outline:3px solid #f0a500;outline-offset:2px}
.error{color:#a40000;margin-top:1rem}
small{display:block;margin-top:1.5rem;color:#555}
"""


def language(requested: str | None, accept_language: str | None) -> str:
    """Pick `zh` or `en` from `ui_locales` / the form, else the browser's Accept-Language."""
    for source in (requested, accept_language):
        if source:
            first = source.replace(",", " ").split()[0].lower()
            return "zh" if first.startswith("zh") else "en"
    return "en"


def _page(lang: str, title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def login_page(
    *,
    action: str,
    request_params: Mapping[str, str],
    csrf: str,
    lang: str,
    user: str = "",
    error: str | None = None,
) -> str:
    """Render the login form; the authorization request rides along in hidden fields."""
    text = LABELS[lang]
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in request_params.items()
        if k != "ui_locales"
    )
    other = "en" if lang == "zh" else "zh"
    switch = f"{action}?{urlencode({**request_params, 'ui_locales': other})}"
    alert = f'<p class="error" role="alert" id="login-error">{escape(error)}</p>' if error else ""
    described = ' aria-describedby="login-error"' if error else ""
    body = (
        f"<h1>{escape(text['title'])}</h1>"
        f'<p><a href="{escape(switch)}" lang="{other}">{escape(text["switch"])}</a></p>'
        f'<form method="post" action="{escape(action)}">{hidden}'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<input type="hidden" name="ui_locales" value="{lang}">'
        f'<label for="username">{escape(text["user"])}</label>'
        f'<input id="username" name="username" autocomplete="username" required autofocus'
        f' value="{escape(user)}"{described}>'
        f'<label for="password">{escape(text["password"])}</label>'
        f'<input id="password" name="password" type="password" autocomplete="current-password"'
        f" required{described}>"
        f"{alert}"
        f'<button type="submit">{escape(text["submit"])}</button></form>'
        f"<small>{escape(text['notice'])}</small>"
    )
    return _page(lang, text["title"], body)


def logged_out_page(lang: str) -> str:
    """Render the page shown after logout when no client asked to be sent back."""
    text = LABELS[lang]
    return _page(lang, text["logged_out"], f"<h1>{escape(text['logged_out'])}</h1>")
