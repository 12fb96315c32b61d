"""OHIF 3.13 loads the AI's TID 1500 report from our DICOMweb and lists its measurements."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from e2e.ohif_support import CHROMIUM, CHROMIUM_ARGS, OhifServer, ohif_dist, screenshot_dir
from ingest.ingest_support import synthetic_instance
from playwright.sync_api import Page, sync_playwright

from sonobridge.ingest.adapters.ai_dicom import HighdicomAiRenderer
from sonobridge.ingest.adapters.codec import PydicomCodec
from sonobridge.ingest.domain.ai_results import AiMeasurement, AiResult, Outline
from sonobridge.node.cli import wait_ready
from sonobridge.node.consortium import demo_consortium
from sonobridge.node.edition import NodePorts, SingleNode

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(240)]
WAIT_MS = 60_000


def _report(image: bytes, tmp: Path) -> bytes:
    """The measurement report ingest renders for a run with a kidney length and an HC ellipse."""
    source = tmp / "source.dcm"
    source.write_bytes(image)
    _description, _pixels, header = PydicomCodec().read_instance(source)
    uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
    measurements = (
        AiMeasurement(
            "410668003",
            "http://snomed.info/sct",
            "Kidney length",
            42.0,
            "mm",
            0.9,
            False,
            False,
            "kidney",
            "2.0.0",
            uid,
            0,
            Outline("POLYLINE", ((40.5, 60.5), (200.5, 150.5))),
            ("64033007", "SCT", "Kidney"),
            "kidney-length",
        ),
        AiMeasurement(
            "11984-2",
            "http://loinc.org",
            "Head Circumference",
            180.0,
            "mm",
            0.9,
            False,
            False,
            "fetal-biometry",
            "1.0.0",
            uid,
            0,
            Outline("ELLIPSE", ((100.5, 120.5), (260.5, 120.5), (180.5, 80.5), (180.5, 160.5))),
            None,
            "fetal-head-circumference",
        ),
    )
    study = pydicom.dcmread(source, stop_before_pixels=True).StudyInstanceUID
    result = AiResult("ohif-check", study, datetime(2026, 3, 1, 10, 0, tzinfo=UTC), measurements)
    return HighdicomAiRenderer().measurement_report(result, {uid: header})


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Page, Path, str]]:
    """An ingest-only single node holding an image and its AI report, and OHIF on its origin."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh --infra installs Debian's chromium")
    tmp = tmp_path_factory.mktemp("ohif-sr")
    shots = screenshot_dir("ohif-sr-screenshots")
    print(f"\nOHIF SR screenshots in {shots}")
    image = synthetic_instance(rows=240, columns=320, seed=3)
    report = _report(image, tmp)
    with OhifServer(ohif_dist()) as ohif:
        node = SingleNode(
            tmp / "node",
            ports=NodePorts.ephemeral(),
            services=("ingest",),
            extra_settings={"common": {"http": {"cors_origins": [ohif.origin]}}},
        )
        node.start()
        try:
            wait_ready(node)
            consortium = demo_consortium()
            token = consortium.token(node.issuer, consortium.with_role("admin")[0].user)
            url = node.urls()["ingest"]
            DICOMwebClient(
                url=f"{url}/dicomweb", headers={"Authorization": f"Bearer {token}"}
            ).store_instances([pydicom.dcmread(io.BytesIO(d)) for d in (image, report)])
            ohif.dicomweb_root = f"{url}/dicomweb"
            study = pydicom.dcmread(io.BytesIO(report)).StudyInstanceUID
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{ohif.origin}/viewer?StudyInstanceUIDs={study}&token={token}")
                page.get_by_text("Skip all").click(timeout=WAIT_MS)
                try:
                    yield page, shots, study
                finally:
                    browser.close()
        finally:
            node.stop()


def test_ohif_shows_the_sr_and_lists_its_measurements_once_tracked(
    opened: tuple[Page, Path, str],
) -> None:
    page, shots, _study = opened
    started = time.monotonic()
    sr = page.locator('[data-cy="study-browser-thumbnail-no-image"]', has_text="AI measurements")
    sr.dblclick(timeout=WAIT_MS)
    # The SR viewport draws each measurement with its value from the report.
    viewport = page.locator('[data-cy="viewport-pane"]')
    viewport.get_by_text("Head Circumference: 180.00 mm").wait_for(timeout=WAIT_MS)
    assert "42.00 mm" in viewport.inner_text()
    page.screenshot(path=str(shots / "1-sr-viewport.png"))
    # Tracking hydrates the report into OHIF's own tools and its measurement panel.
    page.locator('[data-cy="yes-hydrate-btn"]').click(timeout=WAIT_MS)
    page.locator('[data-cy="trackedMeasurements-btn"]').click()
    panel = page.get_by_text("Measurements (2)")
    panel.wait_for(timeout=WAIT_MS)
    listed = page.locator("body").inner_text()
    page.screenshot(path=str(shots / "2-measurement-panel.png"))
    print(f"SR shown and hydrated in {time.monotonic() - started:.1f} s")
    for expected in ("Kidney length", "Kidney", "Head Circumference"):
        assert expected in listed, (expected, listed[-600:])
