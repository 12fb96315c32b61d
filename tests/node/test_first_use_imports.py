"""`sonobridge serve` leaves the DICOM reader and the HTTP client for their first use, and that
first use still answers: a DICOM quality check sent right after the ready line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from sonobridge.lab.synthetic import AcquisitionSpec, Fault, generate_frame
from sonobridge.lab.synthetic.dicom import ultrasound_dicom_bytes
from sonobridge.node.issuer import issuer_for

READY_LINE = "single-node edition is serving"
# Loaded only by the first DICOM decode, webhook, login or seed (httpx), reading-station page
# (jinja2) or PostgreSQL / S3 client (the node has neither); never to become ready.
FIRST_USE = ("pydicom", "httpx", "jinja2", "sqlalchemy.dialects.postgresql", "urllib3")


def test_a_restarted_node_once_ready_has_imported_none_of_them(tmp_path: Path) -> None:
    """Restarted, built and ready (every /readyz 200), the node has loaded none of FIRST_USE."""
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sonobridge.node.cli import wait_ready\n"
        "from sonobridge.node.edition import NodePorts, SingleNode\n"
        f"node = SingleNode(Path({str(tmp_path / 'node')!r}), ports=NodePorts.ephemeral())\n"
        "node.start()\n"
        "try:\n"
        "    wait_ready(node)\n"
        f"    print(' '.join(m for m in {FIRST_USE!r} if m in sys.modules))\n"
        "finally:\n"
        "    node.stop()\n"
    )
    # Each in a fresh interpreter (this one has loaded them all for the tests themselves). The
    # first start migrates the databases, and alembic loads every dialect; a restart does not.
    loaded = [
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=180, check=True
        ).stdout.split()
        for _start in ("first", "restart")
    ]
    assert loaded[1] == []


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real `serve` command on a fresh data directory; yields inference's URL once ready."""
    data_dir = tmp_path_factory.mktemp("first-use") / "node"
    command = [sys.executable, "-m", "sonobridge.node", "--data-dir", str(data_dir), "serve"]
    proc = subprocess.Popen(
        [*command, "--ephemeral-ports", "--login-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "inference    REST" in line:
                break
        assert any(READY_LINE in line for line in lines), "".join(lines)
        found = re.search(r"REST (http://\S+)/v1", lines[-1])
        assert found, lines[-1]
        yield found.group(1), data_dir
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_first_dicom_decode_after_ready_answers(served: tuple[str, Path]) -> None:
    """The first request that needs pydicom loads it and answers, within a client's timeout."""
    url, data_dir = served
    token = issuer_for(data_dir).issue("nurse-1", ["operator"], "township-a")
    frames = [
        generate_frame(seed, AcquisitionSpec(faults=faults)).image
        for seed, faults in ((90, frozenset()), (91, frozenset({Fault.LOW_GAIN})))
    ]
    dicom = ultrasound_dicom_bytes(np.stack(frames), (0.2, 0.2))
    with httpx.Client(base_url=url, timeout=30) as client:
        answer = client.post(
            "/v1/quality-checks?frame_index=1",
            content=dicom,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/dicom"},
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["acceptable"] is False and body["reasons"] == ["low_gain"]
