"""Library warnings, exceptions and dying threads reach stderr as JSON, patient values redacted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sonobridge.common.logging import redact

# Run in a fresh interpreter: pytest records warnings itself, so only a real process shows what
# reaches stderr. The value is what pydicom reads when one wrong length byte makes StudyDate
# swallow the patient's name, ID and birth date; pydicom echoes it in its warning.
SCRIPT = r"""
import logging, threading
from pydicom import config
from pydicom.valuerep import validate_value
from sonobridge.common.logging import configure_logging

configure_logging("probe", "INFO")
swallowed = "20260301\x08\x000\x00PN\x14\x00QUIXOTRIX^ZEBULONIA \x10\x00 \x00LO\x0e\x00"
swallowed += "CANARY-ID-7731\x10\x000\x00DA\x08\x0019010203"
validate_value("DA", swallowed, config.WARN)
log = logging.getLogger("sonobridge.probe")
try:
    raise ValueError(f"UNIQUE constraint failed [parameters: ('QUIXOTRIX^ZEBULONIA', 3)]")
except ValueError:
    log.exception("insert failed")
log.warning("dataset: (0010,0010) Patient's Name PN: QUIXOTRIX^ZEBULONIA, PatientID=CANARY-ID-7731")
thread = threading.Thread(target=lambda: int("CANARY-ID-7731 19010203"), name="association")
thread.start(); thread.join()
"""
NEEDLES = ("QUIXOTRIX", "ZEBULONIA", "CANARY-ID-7731", "19010203")


def test_warnings_exceptions_and_thread_deaths_are_json_without_patient_values() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    lines = done.stderr.splitlines()
    entries = [json.loads(line) for line in lines]  # every line is JSON, or this raises
    loggers = {e["logger"] for e in entries}
    assert {"pydicom", "py.warnings", "sonobridge.probe", "sonobridge.uncaught"} <= loggers, lines
    assert any("Invalid value for VR DA: '<redacted" in e["message"] for e in entries), lines
    assert not [line for line in lines if any(n in line for n in NEEDLES)], lines


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("The value length (80) exceeds the maximum length of 16 allowed for VR SH.", True),
        ("VR lookup failed for the raw element with tag (2E32,3238) - setting VR to 'UN'", True),
        ("exam 1.2.826.0.1.3680043.8.498.12345678901234567890123456789012345678901234: ok", True),
        ('  File "/srv/.venv/lib/python3.11/site-packages/pydicom/filereader.py", line 3', True),
        ("Invalid value for VR PN: 'DOE^JOHN'", False),
        ("PatientBirthDate: 19010203", False),
    ],
)
def test_redaction_keeps_uids_paths_and_vr_names(text: str, kept: bool) -> None:
    assert (redact(text) == text) is kept
