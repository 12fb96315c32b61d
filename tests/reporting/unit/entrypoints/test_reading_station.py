"""The reading station's pages over fakes: worklist, exam, verdicts, labels, sign, PDF, access."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sonobridge.common.auth import LocalIssuer
from sonobridge.common.http import create_service_app
from sonobridge.reporting.domain.records import Alert, Exam, HistoryEntry
from sonobridge.reporting.entrypoints import reading
from sonobridge.reporting.entrypoints.reading.login import OidcClient
from sonobridge.reporting.entrypoints.reading.sessions import COOKIE, BrowserSession
from sonobridge.reporting.entrypoints.reading.web import Visit, visit
from sonobridge.reporting.entrypoints.reading.words import pick_language
from sonobridge.reporting.metrics import ReportingMetrics
from sonobridge.reporting.settings import ReadingSettings

from ..handlers.fakes import T0, finding, harness, person, routed
from .reading_fakes import ISSUER, FakeIdentityProvider

EXPERT = person("dr-a", "expert")
OPERATOR = person("op-1", "operator")
STUDY = "1.2.3"
CSRF = "csrf-token-1"


def _exam(h):
    h.tables.exams[STUDY] = Exam(
        study_uid=STUDY,
        exam_id="exam-1.2.3",
        institution="th-1",
        operator="op-1",
        device_serial="US-1",
        exam_type="thyroid",
        patient_ref="p-1",
        completed_at=None,
        received_at=T0,
        instances=[
            {
                "sop_instance_uid": "1.2.3.1",
                "series_instance_uid": "1.2.3.9",
                "number_of_frames": 1,
            },
            {"sop_instance_uid": "1.2.3.5", "series_instance_uid": "1.2.3.8"},
        ],
    )


def _station(h, principal, *, language="en", settings=None):
    app = create_service_app(service="reporting", metrics=ReportingMetrics())
    app.state.deps = h.deps
    reading.install(
        app, settings or ReadingSettings(viewer_url="http://viewer.test", issuer_url="")
    )
    session = BrowserSession("s-1", expires_at=1e12, csrf=CSRF, access_token="x")
    app.dependency_overrides[visit] = lambda: Visit(principal, session, language)
    return TestClient(app, follow_redirects=False, headers={"Accept-Language": language})


def _routed(h):
    measured = {**finding(confidence=0.62), "value": 11.5, "unit": "mm"}
    measured["evidence_object_keys"] = ["derived/1.2.3/thyroid-net/1.0/overlay.png"]
    read_id = routed(h, STUDY, findings=[measured])
    _exam(h)
    h.store.objects["derived/1.2.3/thyroid-net/1.0/overlay.png"] = b"\x89PNG overlay"
    return read_id


def test_the_worklist_shows_priority_clock_ai_flags_and_probe_warnings():
    h = harness()
    read_id = _routed(h)
    h.tables.history[read_id].append(
        HistoryEntry(
            at=T0,
            kind="probe_ticket",
            actor="system",
            worklist="county-thyroid",
            assigned_to=None,
            detail="ticket t-9: dead elements",
        )
    )
    page = _station(h, EXPERT).get("/reading/")
    assert page.status_code == 200, page.text
    body = page.text
    assert f'/reading/reads/{read_id}"' in body
    read = h.tables.reads[read_id]
    assert f'class="badge priority-{read.priority}"' in body
    assert read.due_at is not None
    minutes = int((read.due_at - T0).total_seconds() // 60)
    assert f"{minutes} min" in body
    assert "Thyroid nodule 62%" in body and "low confidence" in body
    assert "ticket t-9: dead elements" in body
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_an_operator_gets_a_403_page_that_shows_no_exam():
    h = harness()
    read_id = _routed(h)
    client = _station(h, OPERATOR)
    for path in ("/reading/", f"/reading/reads/{read_id}", "/reading/alerts"):
        page = client.get(path)
        assert page.status_code == 403, (path, page.text)
        assert "text/html" in page.headers["content-type"]
        assert "Access denied" in page.text
        # Nothing of the exam: no study, no exam id, no AI finding, no institution.
        for leaked in ("exam-1.2.3", "Thyroid nodule", "th-1", "county-thyroid"):
            assert leaked not in page.text, (path, leaked)


def test_the_page_language_follows_the_choice_then_accept_language():
    assert pick_language(None, "en-US,en;q=0.9,zh;q=0.5") == "en"
    assert pick_language(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert pick_language(None, "fr;q=1,en;q=0.3,zh;q=0.7") == "zh"
    assert pick_language(None, None) == "zh"
    assert pick_language("en", "zh-CN") == "en"
    h = harness()
    _routed(h)
    assert "工作列表" in _station(h, EXPERT, language="zh").get("/reading/").text
    switched = _station(h, EXPERT).get("/reading/language/zh?next=/reading/alerts")
    assert switched.status_code == 303 and switched.headers["location"] == "/reading/alerts"
    assert "sonobridge_lang=zh" in switched.headers["set-cookie"]
    away = _station(h, EXPERT).get("/reading/language/en?next=https://elsewhere.test/")
    assert away.headers["location"] == "/reading/"


def test_a_reader_claims_judges_labels_drafts_signs_downloads_and_amends():
    h = harness()
    read_id = _routed(h)
    client = _station(h, EXPERT)
    exam = f"/reading/reads/{read_id}"

    page = client.get(exam)
    assert page.status_code == 200
    assert f"http://viewer.test/viewer?StudyInstanceUIDs={STUDY}" in page.text
    assert "11.50 mm" in page.text and "low confidence" in page.text
    assert "1.2.3.5" not in page.text, "an instance without frames is no image to label"

    def post(path, **fields):
        answer = client.post(path, data={"csrf": CSRF, **fields})
        assert answer.status_code == 303, (path, answer.text)
        return answer

    post(f"{exam}/claim")
    assert h.tables.reads[read_id].state == "claimed"
    post(f"{exam}/draft", language="en")
    post(
        f"{exam}/verdicts",
        finding_code="237495005",
        model_name="thyroid-net",
        **{"verdict:237495005": "modify", "comment:237495005": "11 mm, not 12"},
    )
    [verdict] = h.tables.verdicts.values()
    assert (verdict.verdict, verdict.comment) == ("modify", "11 mm, not 12")
    post(
        f"{exam}/quality-labels",
        sop_instance_uid="1.2.3.1",
        **{"label:1.2.3.1": "rescan", "reason:1.2.3.1": "low_gain"},
    )
    [label] = h.tables.quality_labels.values()
    assert (label.label, label.reason) == ("rescan", "low_gain")
    draft = h.tables.drafts[read_id]
    post(
        f"{exam}/draft/edit",
        revision=str(draft.revision),
        title=draft.title,
        findings_text=draft.findings_text,
        conclusion="Nodule 11 mm; follow-up in 6 months.",
    )
    post(f"{exam}/sign")
    [version] = h.tables.versions
    assert (version.version, version.conclusion) == (1, "Nodule 11 mm; follow-up in 6 months.")

    page = client.get(exam)
    pdf_link = f"/reading/reports/{version.report_id}/versions/1/pdf"
    assert pdf_link in page.text and "Saved." not in page.text
    pdf = client.get(pdf_link)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"

    post(
        f"/reading/reports/{version.report_id}/amend",
        read_id=read_id,
        conclusion="Nodule 11 mm; follow-up in 3 months.",
        reason="interval corrected",
    )
    assert [v.version for v in h.tables.versions] == [1, 2]


def test_a_coordinator_acknowledges_then_closes_an_alert_from_the_station():
    h = harness()
    alert = Alert("a-1", "r-1", 1, "read-1", STUDY, "th-1", ["nodule"], "open", T0)
    h.tables.alerts[alert.alert_id] = alert
    client = _station(h, person("co-1", "coordinator"))
    for action, note, state in (("acknowledge", "called", "acknowledged"), ("close", "", "closed")):
        answer = client.post(f"/reading/alerts/a-1/{action}", data={"csrf": CSRF, "note": note})
        assert answer.status_code == 303 and answer.headers["location"] == "/reading/alerts"
        assert (h.tables.alerts["a-1"].state, h.tables.alerts["a-1"].note) == (state, "called")
    again = client.post("/reading/alerts/a-1/close", data={"csrf": CSRF})
    assert again.status_code == 409 and h.tables.alerts["a-1"].state == "closed"


def test_a_post_without_the_session_csrf_token_changes_nothing():
    h = harness()
    read_id = _routed(h)
    client = _station(h, EXPERT)
    for token in ("", "forged"):
        answer = client.post(f"/reading/reads/{read_id}/claim", data={"csrf": token})
        assert answer.status_code == 403
    assert h.tables.reads[read_id].state == "queued"


def test_a_refused_change_is_an_html_page_not_a_500():
    h = harness()
    read_id = _routed(h)
    answer = _station(h, EXPERT).post(f"/reading/reads/{read_id}/sign", data={"csrf": CSRF})
    assert answer.status_code == 409 and "text/html" in answer.headers["content-type"]
    missing = _station(h, EXPERT).get("/reading/reads/no-such-read")
    assert missing.status_code == 404 and "Not found" in missing.text


def test_overlays_are_served_only_when_a_finding_of_the_read_names_them():
    h = harness()
    read_id = _routed(h)
    client = _station(h, EXPERT)
    key = "derived/1.2.3/thyroid-net/1.0/overlay.png"
    shown = client.get(f"/reading/reads/{read_id}/evidence", params={"key": key})
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    h.store.objects["reports/other/v1.pdf"] = b"%PDF other"
    other = client.get(f"/reading/reads/{read_id}/evidence", params={"key": "reports/other/v1.pdf"})
    assert other.status_code == 404


def test_the_api_keeps_problem_json_beside_the_pages():
    h = harness()
    app = _station(h, EXPERT).app
    assert isinstance(app, FastAPI)
    answer = TestClient(app).get("/v1/nothing-here")
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.fixture
def idp():
    issuer = LocalIssuer(ISSUER)
    return issuer, FakeIdentityProvider(issuer, "dr-a", ["expert"], "th-1")


def _login_station(h, issuer, provider):
    import httpx

    app = create_service_app(
        service="reporting", metrics=ReportingMetrics(), verifier=issuer.verifier()
    )
    app.state.deps = h.deps
    client = OidcClient(
        ISSUER, "reading-station", http=httpx.Client(transport=provider.transport())
    )
    settings = ReadingSettings(issuer_url=ISSUER, public_url="http://station.test")
    reading.install(app, settings, client)
    return TestClient(app, base_url="http://station.test", follow_redirects=False)


def test_login_is_authorization_code_with_pkce_and_logout_ends_the_provider_session(idp):
    issuer, provider = idp
    h = harness()
    _routed(h)
    browser = _login_station(h, issuer, provider)

    first = browser.get("/reading/alerts")
    assert (
        first.status_code == 303
        and first.headers["location"] == "/reading/login?next=/reading/alerts"
    )
    to_idp = browser.get(first.headers["location"])
    assert to_idp.status_code == 303
    authorize = urlparse(to_idp.headers["location"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert authorize.path.endswith("/protocol/openid-connect/auth")
    assert query["client_id"] == "reading-station" and query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == "http://station.test/reading/callback"
    cookie = to_idp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/reading" in cookie
    anonymous = browser.cookies[COOKIE]

    provider.grant("code-1", query["code_challenge"], query["nonce"], query["redirect_uri"])
    forged = browser.get("/reading/callback", params={"code": "code-1", "state": "other"})
    assert forged.headers["location"] == "/reading/login" and not provider.token_requests
    back = browser.get("/reading/callback", params={"code": "code-1", "state": query["state"]})
    assert back.status_code == 303 and back.headers["location"] == "/reading/alerts"
    assert browser.cookies[COOKIE] != anonymous, "the session id changes at login"
    assert "code_verifier" in provider.token_requests[0]

    worklist = browser.get("/reading/")
    assert worklist.status_code == 200 and "Dr A" in worklist.text
    csrf = worklist.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    out = browser.post("/reading/logout", data={"csrf": csrf})
    assert out.status_code == 303
    logout = urlparse(out.headers["location"])
    params = parse_qs(logout.query)
    assert logout.path.endswith("/logout") and "id_token_hint" in params
    assert params["post_logout_redirect_uri"] == ["http://station.test/reading/"]
    assert browser.get("/reading/").status_code == 303


def test_an_expired_access_token_is_refreshed_and_a_refused_refresh_logs_out(idp):
    issuer, provider = idp
    h = harness()
    browser = _login_station(h, issuer, provider)
    station = browser.app.state.station
    session = station.sessions.create()
    session.access_token, session.refresh_token, session.token_expires_at = "old", "refresh-1", 0
    browser.cookies.set(COOKIE, session.id, domain="station.test", path="/reading")
    assert browser.get("/reading/").status_code == 200
    assert provider.token_requests[-1]["grant_type"] == "refresh_token"
    session.token_expires_at, session.refresh_token = 0, "revoked"
    assert browser.get("/reading/").status_code == 303
    assert station.sessions.get(session.id) is None


def test_without_an_issuer_the_login_page_says_what_to_configure():
    h = harness()
    app = create_service_app(service="reporting", metrics=ReportingMetrics())
    app.state.deps = h.deps
    reading.install(app, ReadingSettings())
    page = TestClient(app).get("/reading/login")
    assert page.status_code == 503 and "REPORTING__READING__ISSUER_URL" in page.text


def test_due_time_clock_counts_overdue_reads(monkeypatch):
    h = harness()
    read_id = _routed(h)
    due = h.tables.reads[read_id].due_at
    h.clock.now = due + timedelta(minutes=7)
    assert "overdue 7 min" in _station(h, EXPERT).get("/reading/").text
