"""C-STORE and C-ECHO SCP exercised with dcmtk's storescu/echoscu (stock DIMSE clients)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pydicom
import pytest
from descriptors import descriptors_past
from ingest.ingest_support import PYDICOM_US_FILES, pydicom_file, running_ingest, uids
from pydicom.data import get_testdata_file

# dcmtk's binaries, not pynetdicom's same-named apps that the virtual environment puts first.
DCMTK_BIN = Path("/usr/bin")
# Offer each file's own compressed syntax first, so it travels (and is stored) unchanged.
PROPOSE = {"examples_ybr_color.dcm": ["-xy"], "examples_jpeg2k.dcm": ["-xv"]}


def _dcmtk() -> None:
    if not (DCMTK_BIN / "storescu").exists():
        # dcmtk is a client for the test, installed on demand from the distribution.
        subprocess.run(["apt-get", "install", "-y", "-q", "dcmtk"], check=True, timeout=600)


@pytest.fixture
def scp(tmp_path: Path, issuer):
    _dcmtk()
    with running_ingest(tmp_path, issuer, consortium_id="county-1") as running:
        running.register_caller("PROBE1", "township-a")
        yield running


def _storescu(port: int, calling: str, path: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(DCMTK_BIN / "storescu"),
            "-R",
            *flags,
            "-aet",
            calling,
            "-aec",
            "SONOBRIDGE",
            "127.0.0.1",
            str(port),
            path,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_storescu_pushes_ultrasound_files_that_come_back_identical(scp) -> None:
    for name in PYDICOM_US_FILES:
        result = _storescu(
            scp.dimse_port, "PROBE1", get_testdata_file(name), *PROPOSE.get(name, [])
        )
        assert result.returncode == 0, result.stdout + result.stderr
    with scp.client(institution="township-a") as client:
        for name in PYDICOM_US_FILES:
            data = pydicom_file(name)
            study, series, sop = uids(data)
            found = client.get(f"/dicomweb/studies/{study}/series/{series}/instances")
            assert found.status_code == 200
            assert sop in [i["00080018"]["Value"][0] for i in found.json()]
            stored = scp.object_bytes(f"dicom/{study}/{series}/{sop}.dcm")
            # The file meta is written by the receiver; the dataset is exactly as sent.
            sent = pydicom.dcmread(io.BytesIO(data))
            got = pydicom.dcmread(io.BytesIO(stored))
            assert got.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
            assert got.PixelData == sent.PixelData


def test_echoscu_is_answered_and_unknown_callers_are_refused(scp) -> None:
    echo = subprocess.run(
        [
            str(DCMTK_BIN / "echoscu"),
            "-aet",
            "PROBE1",
            "-aec",
            "SONOBRIDGE",
            "127.0.0.1",
            str(scp.dimse_port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert echo.returncode == 0, echo.stderr
    refused = _storescu(scp.dimse_port, "STRANGER", get_testdata_file(PYDICOM_US_FILES[1]))
    assert refused.returncode != 0
    assert scp.count("instances") == 0


def test_a_server_holding_over_1024_descriptors_still_serves_storescu(
    tmp_path: Path, issuer
) -> None:
    # Its listening and accepted sockets are then numbered past 1024, which select() refuses:
    # the listener died, and pynetdicom took every association's socket for closed.
    _dcmtk()
    with descriptors_past(1100), running_ingest(tmp_path, issuer, consortium_id="county-1") as scp:
        scp.register_caller("PROBE1", "township-a")
        name = PYDICOM_US_FILES[1]
        result = _storescu(scp.dimse_port, "PROBE1", get_testdata_file(name))
        assert result.returncode == 0, result.stdout + result.stderr
        assert scp.count("instances") == 1
