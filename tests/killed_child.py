"""Run a script in a child process until it marks a point, then SIGKILL it there."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_at_marker(script: str, *args: str, marker: Path, seconds: float = 60) -> str:
    """Run `script` with `args` until it writes `marker`; kill it as a power cut would."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + seconds
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), child.communicate()[1].decode()
        return marker.read_text()
    finally:
        child.send_signal(signal.SIGKILL)  # as the OOM killer or a power cut would
        child.wait(30)
