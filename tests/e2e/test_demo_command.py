"""The README's main job, `sonobridge demo`, as a command: exit 0 only when the trail holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sonobridge.lab import hc18

pytestmark = pytest.mark.e2e


def test_the_demo_command_prints_a_true_trail_and_returns(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sonobridge.node",
            "--data-dir",
            str(data_dir),
            "demo",
            "--exit-after",
            "--ephemeral-ports",
            "--timeout",
            "180",
        ],
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    # Nine synthetic and example exams, and the real HC18 head when ../shared/datasets has it.
    exams = 9 + (hc18.DEFAULT_ROOT / "hc18.csv").exists()
    assert f"All {exams} exams followed end to end" in out
    for fact in (
        "routed: rescan",
        "worklist county-vascular",
        "worklist county-thyroid",
        "signed by dr-zhang",
        "follow-up alert",
        "maintenance ticket",
        "-> AI result",
        "-> routed read",
        "/docs",
        "/metrics",
        # The main job says where people log in and read: the station, OHIF, the accounts.
        "reading station http://127.0.0.1:",
        "/reading/",
        "OHIF viewer  http://127.0.0.1:",
        "dr-wang",
        # Issue 16: one device model stays in shadow, another is promoted after its report.
        ": shadow, the app is told",
        "validation report for SonoBridge Synthetic / Handheld Synthetic Probe 2",
        ": shadow -> ",
    ):
        assert fact in out, fact
    assert "promotion refused" not in out
    assert (data_dir / "consortium.json").exists()
