"""Real exams (realus-dev, a few HC18 heads) through analyse_exam: right anatomy, bounded values."""

from __future__ import annotations

import time

import pytest

from sonobridge.lab.anatomy import HC18_ROOT, MAX_ISSUE, REALUS_ROOT, measure

pytestmark = pytest.mark.skipif(
    not (REALUS_ROOT / "manifest.csv").exists() or not (HC18_ROOT / "hc18.csv").exists(),
    reason="realus-dev or hc18 is not beside the project",
)


def test_wrong_anatomy_findings_stay_rare_and_no_measurement_is_impossible():
    started = time.perf_counter()
    report = measure()
    print(f"{report.summary()}; {time.perf_counter() - started:.1f} s")
    for group, wrong in sorted(report.wrong.items()):
        print(f"  {group} ({report.exams[group]}): {'; '.join(sorted(set(wrong)))}")
    assert len(report.exams) >= 30 and report.findings > 0
    assert {"lung", "breast", "carotid", "fetal-head"} <= set(report.exams.values())
    assert 100 * report.wrong_exam_rate <= MAX_ISSUE
    assert report.impossible == []
