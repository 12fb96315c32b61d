"""A county expert's journey in Chromium: log in, worklist, OHIF, verdicts, labels, sign, PDF."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pydicom
import pytest
from e2e.ohif_support import CHROMIUM, CHROMIUM_ARGS, REPO, ohif_dist, screenshot_dir
from e2e.test_ohif_viewer import MIN_CORRELATION, _rendered_score
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from sonobridge.node.cli import wait_ready
from sonobridge.node.consortium import DEMO_PASSWORD, Consortium, demo_consortium, seed
from sonobridge.node.demo import node_settings_for
from sonobridge.node.edition import NodePorts, SingleNode
from sonobridge.node.identity.accounts import with_passwords
from sonobridge.node.scenario import PlannedExam, demo_exams
from sonobridge.node.township import TownshipApp

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(600)]

WAIT_MS = 60_000
EXPERT = "dr-wang"  # thyroid expert at the county hospital
OPERATOR = "nurse-east"  # township-east's operator; the thyroid exam is township-river's
THYROID, CAROTID = "thyroid with a nodule", "carotid with intima-media thickening"
# What a laptop screen gives the page.
LAPTOP = {"width": 1366, "height": 768}


@dataclass
class Journey:
    """A running edition, its station and viewer, the demo exams sent, and the browser."""

    edition: str
    station_url: str
    viewer_origin: str
    reporting_url: str
    exams: dict[str, PlannedExam]
    admin_token: Callable[[], str]
    browser: Browser
    shots: Path

    def shot(self, page: Page, name: str) -> None:
        """Save a screenshot of one step as a test artifact."""
        page.screenshot(path=str(self.shots / f"{self.edition}-{name}.png"), full_page=True)


def _wait_routed(reporting: str, token: str, studies: set[str], timeout: float = 300) -> None:
    """Poll the reads API until every study has a read (AI done and routed)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    with httpx.Client(base_url=reporting, timeout=10) as client:
        while time.monotonic() < deadline:
            reads = client.get(
                "/v1/reads",
                params={"state": ["queued", "claimed", "escalated"], "limit": 100},
                headers={"Authorization": f"Bearer {token}"},
            ).json()["reads"]
            seen = {r["study_instance_uid"] for r in reads}
            if studies <= seen:
                return
            time.sleep(1)
    raise AssertionError(f"not routed in {timeout}s: {studies - seen}")


@contextmanager
def _single(
    tmp: Path, consortium: Consortium, exams: list[PlannedExam]
) -> Iterator[dict[str, str]]:
    """The single node with OHIF at /viewer and its own login, the exams sent by the app."""
    (tmp / "consortium.json").write_text(consortium.to_json(), encoding="utf-8")
    node = SingleNode(
        tmp,
        ports=NodePorts.ephemeral(),
        extra_settings=node_settings_for(consortium, tmp),
        viewer_dist=ohif_dist(),
    )
    node.start()
    try:
        wait_ready(node)
        admin = consortium.token(node.issuer, consortium.with_role("admin")[0].user)
        seed(consortium, node.urls(), admin)
        for plan in exams:
            with TownshipApp(
                node.urls()["ingest"], consortium.token(node.issuer, plan.operator)
            ) as app:
                app.send(plan)
        assert node.viewer is not None and node.station_url() is not None
        yield {
            "station": node.station_url() or "",
            "viewer": node.viewer.origin,
            "reporting": node.urls()["reporting"],
            "admin": lambda: admin,
        }
    finally:
        node.stop()


def _realm_token(realm: Any, user: str, client_id: str) -> str:
    """Log a person in through Keycloak's real form (code + PKCE) and return the access token."""
    from oidc_login import log_in_with_pkce

    with httpx.Client(timeout=60) as client:
        tokens = log_in_with_pkce(
            client,
            realm.discovery(),
            client_id=client_id,
            redirect_uri="http://127.0.0.1:9/callback",
            user=user,
            password=DEMO_PASSWORD,
        )
    return str(tokens["access_token"])


@contextmanager
def _viewer_origin_allowed(realm: Any, origin: str) -> Iterator[None]:
    """Add OHIF's origin to the realm's `ohif` client (as county IT does), then take it away.

    OHIF redeems its code from the browser, so Keycloak must answer the viewer's origin with
    CORS; the realm export lists origins per deployment, and this viewer's port is a free one.
    """
    lib = (REPO / "deploy" / "local" / "lib.sh").read_text()
    user = re.search(r'^KEYCLOAK_ADMIN_USER="([^"]+)"', lib, re.M)
    password = re.search(r'^KEYCLOAK_ADMIN_PASSWORD_VALUE="([^"]+)"', lib, re.M)
    assert user and password, "deploy/local/lib.sh names the local Keycloak's admin"
    base = realm.issuer.rsplit("/realms/", 1)[0]
    with httpx.Client(base_url=base, timeout=60) as admin:
        token = admin.post(
            "/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": user.group(1),
                "password": password.group(1),
            },
        ).json()["access_token"]
        admin.headers["Authorization"] = f"Bearer {token}"
        clients = f"/admin/realms/{realm.realm}/clients"
        [client] = admin.get(clients, params={"clientId": "ohif"}).json()
        before = list(client.get("webOrigins", []))
        changed = admin.put(
            f"{clients}/{client['id']}", json={**client, "webOrigins": [*before, origin]}
        )
        assert changed.status_code == 204, changed.text
        try:
            yield
        finally:
            admin.put(f"{clients}/{client['id']}", json={**client, "webOrigins": before})


@contextmanager
def _cluster(
    tmp: Path, consortium: Consortium, exams: list[PlannedExam], request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """The cluster edition's processes and OHIF, trusting the Keycloak realm people log in at."""

    from sonobridge.node.cluster import ClusterEdition, Infra
    from sonobridge.node.viewer import ViewerLogin, ViewerServer

    try:
        realm = request.getfixturevalue("keycloak")
    except pytest.FixtureLookupError:
        pytest.skip("pending: branch identity's session-scoped `keycloak` fixture")
    minio = request.getfixturevalue("minio_endpoint")
    pg_url = request.getfixturevalue("postgres_url")
    infra = Infra(
        request.getfixturevalue("kafka_bootstrap"),
        minio.endpoint,
        minio.access_key,
        minio.secret_key,
        pg_url,
    )
    viewer = ViewerServer(ohif_dist())
    viewer.login = ViewerLogin(realm.issuer)
    edition = ClusterEdition.ephemeral(tmp, infra, consortium, deployment=f"st{os.getpid()}")
    edition.extra_env.update(
        {
            "AUTH__JWKS_URL": realm.jwks_url,
            "AUTH__ISSUER": realm.issuer,
            "HTTP__CORS_ORIGINS": json.dumps([viewer.origin]),
            "REPORTING__READING__ISSUER_URL": realm.issuer,
            "REPORTING__READING__VIEWER_URL": viewer.origin,
        }
    )
    edition.prepare(fresh=True)
    try:
        with _viewer_origin_allowed(realm, viewer.origin):
            edition.start()
            urls = edition.urls()
            viewer.dicomweb_root = f"{urls['ingest']}/dicomweb"
            viewer.start()
            admin = consortium.with_role("admin")[0].user
            seed(consortium, urls, _realm_token(realm, admin, "reading-station"))
            for plan in exams:
                token = _realm_token(realm, plan.operator, "township-app")
                with TownshipApp(urls["ingest"], token) as app:
                    app.send(plan)
            yield {
                "station": f"{urls['reporting']}/reading/",
                "viewer": viewer.origin,
                "reporting": urls["reporting"],
                "admin": lambda: _realm_token(realm, admin, "reading-station"),
            }
    finally:
        viewer.stop()
        edition.stop()
        edition.drop_databases()


@pytest.fixture(
    scope="module",
    params=["single", pytest.param("cluster", marks=pytest.mark.infra)],
)
def journey(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Journey]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh --infra installs Debian's chromium")
    # Not under pytest's basetemp, which later runs on the same machine rotate away.
    shots = screenshot_dir("station-screenshots")
    print(f"\nreading station screenshots in {shots}")
    consortium = with_passwords(demo_consortium(), DEMO_PASSWORD)
    exams = {e.label: e for e in demo_exams() if e.label in (THYROID, CAROTID)}
    tmp = tmp_path_factory.mktemp(f"station-{request.param}")
    running = (
        _single(tmp, consortium, list(exams.values()))
        if request.param == "single"
        else _cluster(tmp, consortium, list(exams.values()), request)
    )
    with running as urls, sync_playwright() as playwright:
        _wait_routed(
            urls["reporting"], urls["admin"](), {e.study_instance_uid for e in exams.values()}
        )
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield Journey(
                request.param,
                urls["station"],
                urls["viewer"],
                urls["reporting"],
                exams,
                urls["admin"],
                browser,
                shots,
            )
        finally:
            browser.close()


def _log_in(page: Page, user: str) -> None:
    """Fill the identity provider's login form (ours or Keycloak's) and submit it."""
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(DEMO_PASSWORD)
    page.locator("input[name=password]").press("Enter")


def _open_in_ohif(journey: Journey, page: Page, link: str, user: str) -> None:
    """Open an OHIF link; log in at the provider if it asks (it remembers the station's login)."""
    page.goto(link)
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        if page.locator("input[name=password]").count():
            _log_in(page, user)
        if page.url.startswith(journey.viewer_origin) and "/callback" not in page.url:
            if page.get_by_text("Skip all").count():
                page.get_by_text("Skip all").click()
            if page.locator("canvas.cornerstone-canvas, tbody").count():
                return
        time.sleep(0.5)
    journey.shot(page, "ohif-did-not-open")
    raise AssertionError(f"OHIF did not open: {page.url}")


def test_an_expert_logs_in_reads_in_ohif_judges_signs_and_downloads_the_pdf(
    journey: Journey,
) -> None:
    context = journey.browser.new_context(viewport=LAPTOP, locale="en-US", accept_downloads=True)
    page = context.new_page()
    thyroid = journey.exams[THYROID]
    started = time.monotonic()

    page.goto(journey.station_url)
    page.locator("input[name=password]").wait_for(timeout=WAIT_MS)
    assert not page.url.startswith(journey.station_url), "the station sends people to log in"
    journey.shot(page, "1-login-page")
    _log_in(page, EXPERT)
    page.locator('[data-testid="worklist"]').wait_for(timeout=WAIT_MS)
    journey.shot(page, "2-worklist")
    row = page.locator(f'tr[data-study="{thyroid.study_instance_uid}"]')
    assert row.count() == 1, page.content()[:2000]
    assert "thyroid" in row.inner_text()
    logged_in_at = time.monotonic() - started

    # The skip link comes first in the keyboard order and lands on the main content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"

    row.locator("a").first.click()
    page.locator("#findings-h").wait_for(timeout=WAIT_MS)
    if page.locator('[data-testid="claim"]').count():
        page.locator('[data-testid="claim"]').click()
        page.locator("#findings-h").wait_for(timeout=WAIT_MS)
    assert EXPERT in page.locator('[data-testid="read-state"]').inner_text()
    journey.shot(page, "3-exam-claimed")

    link = page.locator('[data-testid="open-ohif"]').get_attribute("href")
    assert link and link.startswith(f"{journey.viewer_origin}/viewer?StudyInstanceUIDs=")
    assert thyroid.study_instance_uid in link
    viewer = context.new_page()
    viewer.on("console", lambda m: print(f"OHIF console {m.type}: {m.text[:300]}"))
    _open_in_ohif(journey, viewer, link, EXPERT)
    reference = pydicom.dcmread(io.BytesIO(thyroid.instances[0]))
    score = _rendered_score(SimpleNamespace(page=viewer), reference, timeout=WAIT_MS / 1000)
    journey.shot(viewer, "4-ohif-rendered")
    print(f"OHIF after the station's login: r={score:.4f} against pydicom's decode")
    assert score >= MIN_CORRELATION, score
    viewer.close()

    for radio in page.locator('[data-testid="verdict-agree"]').all():
        radio.check()
    page.locator('[data-testid="save-verdicts"]').click()
    page.locator(".flash").wait_for(timeout=WAIT_MS)
    for select in page.locator('[data-testid="quality-label"]').all():
        select.select_option("acceptable")
    page.locator('[data-testid="save-labels"]').click()
    page.locator(".flash").wait_for(timeout=WAIT_MS)
    page.locator('[data-testid="new-draft"]').click()
    conclusion = page.locator('[data-testid="conclusion"]')
    conclusion.fill("Solid hypoechoic nodule, right lobe; follow-up ultrasound in 6 months.")
    page.locator('[data-testid="save-draft"]').click()
    page.locator(".flash").wait_for(timeout=WAIT_MS)
    journey.shot(page, "5-verdicts-labels-draft")
    page.locator('[data-testid="sign"]').click()
    page.locator('[data-testid="pdf-v1"]').wait_for(timeout=WAIT_MS)
    journey.shot(page, "6-signed")

    with page.expect_download() as download:
        page.locator('[data-testid="pdf-v1"]').click()
    pdf = Path(download.value.path())
    assert pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "6 months" in text and thyroid.study_instance_uid[:20] in text.replace("\n", ""), text

    checked = httpx.get(
        f"{journey.reporting_url}/v1/reads",
        params={"state": "signed"},
        headers={"Authorization": f"Bearer {journey.admin_token()}"},
    ).json()["reads"]
    [signed] = [r for r in checked if r["study_instance_uid"] == thyroid.study_instance_uid]
    assert signed["assigned_to"] == EXPERT

    page.locator("form.who button").click()
    page.locator("input[name=password]").wait_for(timeout=WAIT_MS)
    # Back at the provider's form, not the worklist: its session ended with the station's.
    page.goto(journey.station_url)
    page.locator("input[name=password]").wait_for(timeout=WAIT_MS)
    assert page.locator('[data-testid="worklist"]').count() == 0
    journey.shot(page, "7-logged-out")
    print(f"login to worklist {logged_in_at:.1f}s; journey {time.monotonic() - started:.1f}s")
    context.close()


def test_a_township_operator_sees_no_worklist_and_no_other_institutions_images(
    journey: Journey,
) -> None:
    context = journey.browser.new_context(viewport=LAPTOP, locale="zh-CN")
    page = context.new_page()
    page.goto(journey.station_url)
    _log_in(page, OPERATOR)
    page.locator('[data-testid="error-heading"]').wait_for(timeout=WAIT_MS)
    journey.shot(page, "8-operator-403")
    assert page.locator('[data-testid="worklist"]').count() == 0
    body = page.content()
    for exam in journey.exams.values():
        assert exam.study_instance_uid not in body and exam.exam_type not in body.lower()

    # OHIF's study list as the operator: their own carotid exam, not township-river's thyroid.
    viewer = context.new_page()
    _open_in_ohif(journey, viewer, f"{journey.viewer_origin}/", OPERATOR)
    listed = viewer.locator("tbody").last
    listed.wait_for(timeout=WAIT_MS)
    own = pydicom.dcmread(io.BytesIO(journey.exams[CAROTID].instances[0]), stop_before_pixels=True)
    other = pydicom.dcmread(
        io.BytesIO(journey.exams[THYROID].instances[0]), stop_before_pixels=True
    )
    viewer.get_by_text(str(own.StudyDescription)).first.wait_for(timeout=WAIT_MS)
    journey.shot(viewer, "9-operator-ohif-list")
    assert str(other.StudyDescription) not in listed.inner_text()
    assert str(other.PatientName).split("^")[0] not in viewer.content()
    context.close()


def test_ohif_lists_the_ai_report_and_overlays_in_the_exams_study(journey: Journey) -> None:
    context = journey.browser.new_context(viewport=LAPTOP, locale="en-US")
    viewer = context.new_page()
    thyroid = journey.exams[THYROID]
    link = f"{journey.viewer_origin}/viewer?StudyInstanceUIDs={thyroid.study_instance_uid}"
    _open_in_ohif(journey, viewer, link, EXPERT)
    # Branch sr's TID 1500 report (no pixels: a thumbnail without an image) and its overlay
    # capture are series of the exam's study, beside the scan.
    report = viewer.locator(
        '[data-cy="study-browser-thumbnail-no-image"]', has_text="AI measurements"
    )
    report.wait_for(timeout=WAIT_MS)
    assert "SR" in report.inner_text()
    labels = viewer.locator('[data-cy="series-modality-label"]').all_inner_texts()
    journey.shot(viewer, "10-ohif-ai-series")
    assert {"US", "OT"} <= {label.strip() for label in labels}, labels
    overlays = viewer.locator('[data-cy^="study-browser-thumbnail"]', has_text="AI overlays")
    assert overlays.count() >= 1
    context.close()


def test_the_sr_measurements_show_in_ohifs_measurement_panel(journey: Journey) -> None:
    context = journey.browser.new_context(viewport=LAPTOP, locale="en-US")
    viewer = context.new_page()
    viewer.on("console", lambda m: print(f"OHIF console {m.type}: {m.text[:300]}"))
    viewer.on("pageerror", lambda e: print(f"OHIF page error: {e}"))
    thyroid = journey.exams[THYROID]
    link = f"{journey.viewer_origin}/viewer?StudyInstanceUIDs={thyroid.study_instance_uid}"
    _open_in_ohif(journey, viewer, link, EXPERT)
    report = viewer.locator(
        '[data-cy="study-browser-thumbnail-no-image"]', has_text="AI measurements"
    )
    # OHIF's first-visit tour can open after the viewport; it covers the study browser.
    tour = viewer.get_by_text("Skip all")
    with contextlib.suppress(PlaywrightTimeout):
        tour.wait_for(timeout=5_000)
        tour.click()
    report.dblclick(timeout=WAIT_MS)
    # The report loads onto the cine (it stayed blank while a group without a SCOORD stopped
    # OHIF loading the report): its frame is drawn and OHIF offers to track its measurements.
    viewport = viewer.locator('[data-cy="viewport-pane"]')
    viewer.locator('[data-cy="yes-hydrate-btn"]').wait_for(timeout=WAIT_MS)
    viewport.get_by_text(re.compile(r"\(\d/4\)")).first.wait_for(timeout=WAIT_MS)
    # The nodule was measured on the cine's second frame: scroll there (the wheel, as a click
    # would put OHIF's tracking question away); its value and unit show.
    box = viewport.first.bounding_box()
    assert box is not None
    viewer.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    nodule = viewport.get_by_text("9.60 mm").first
    for _ in range(4):
        if nodule.is_visible():
            break
        viewer.mouse.wheel(0, 120)
        time.sleep(1)
    nodule.wait_for(timeout=WAIT_MS)
    journey.shot(viewer, "11-ohif-sr-viewport")
    print(f"OHIF SR viewport: {viewport.first.inner_text()[:200]!r}")
    # Tracking hydrates the outlined nodule into OHIF's freehand tool and its panel.
    viewer.locator('[data-cy="yes-hydrate-btn"]').click(timeout=WAIT_MS)
    viewer.locator('[data-cy="trackedMeasurements-btn"]').click()
    viewer.get_by_text("Measurements (1)").first.wait_for(timeout=WAIT_MS)
    panel = viewer.locator("body").inner_text()
    journey.shot(viewer, "12-ohif-measurement-panel")
    print(f"OHIF measurement panel: {panel[panel.find('Measurements (') :][:300]!r}")
    listed = panel[panel.find("Measurements (") :]
    # The report's nodule, its finding site, on the frame the report names (OHIF's freehand
    # tool shows its own area statistics there, not the report's diameter).
    assert "Measurements (1)" in listed and "Thyroid nodule" in listed, listed
    assert "\nThyroid\n" in listed and "F: 2" in listed, listed
    context.close()
