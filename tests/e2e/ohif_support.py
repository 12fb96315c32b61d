"""Serve the pinned OHIF viewer's prebuilt dist on its own origin, pointed at a DICOMweb root."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from sonobridge.node.viewer import ViewerServer

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("SONOBRIDGE_CHROMIUM", "/usr/bin/chromium"))
# LOCAL_INFRA: SwiftShader WebGL, no sandbox (root in CI), no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
]


def screenshot_dir(prefix: str) -> Path:
    """A fresh folder for a browser test's screenshots, kept after the run as its artifacts.

    Under SONOBRIDGE_TEST_ARTIFACTS when set (a CI's artifact folder), else the clone's var/.
    """
    root = Path(os.environ.get("SONOBRIDGE_TEST_ARTIFACTS", REPO / "var" / "test-artifacts"))
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=root))


def ohif_dist() -> Path:
    """The cached OHIF dist, fetched by scripts/ohif.sh on first use (setup.sh --infra does it)."""
    out = subprocess.run(
        [str(REPO / "scripts" / "ohif.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    return Path(out.strip().splitlines()[-1])


class OhifServer(ViewerServer):
    """The product's viewer server (the single node's /viewer) as a context manager for tests."""

    def __init__(self, dist: Path, host: str = "127.0.0.1") -> None:
        super().__init__(dist, host)

    def __enter__(self) -> OhifServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
