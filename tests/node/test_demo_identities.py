"""The demo exams reach a study list as distinct patients, accessions and descriptions."""

from __future__ import annotations

from pathlib import Path

import httpx

from sonobridge.lab import hc18
from sonobridge.node.cli import wait_ready
from sonobridge.node.consortium import demo_consortium
from sonobridge.node.edition import NodePorts, SingleNode
from sonobridge.node.scenario import demo_exams
from sonobridge.node.township import TownshipApp

SHOWN = {
    "00100020": "PatientID",
    "00100010": "PatientName",
    "00080050": "AccessionNumber",
    "00081030": "StudyDescription",
}


def _value(study: dict, tag: str) -> str:
    [value] = study[tag]["Value"]
    return str(value["Alphabetic"] if isinstance(value, dict) else value)


def test_demo_studies_are_told_apart_in_qido(tmp_path: Path) -> None:
    exams = demo_exams()
    consortium = demo_consortium()
    node = SingleNode(tmp_path, ports=NodePorts.ephemeral(), services=("ingest",))
    node.start()
    try:
        wait_ready(node)
        url = node.urls()["ingest"]
        for plan in exams:
            with TownshipApp(url, consortium.token(node.issuer, plan.operator)) as app:
                app.send(plan)
        admin = consortium.token(node.issuer, consortium.with_role("admin")[0].user)
        studies = httpx.get(
            f"{url}/dicomweb/studies",
            params={"includefield": list(SHOWN)},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        ).json()
    finally:
        node.stop()
    # Nine synthetic and example exams, and the real HC18 head when ../shared/datasets has it.
    assert len(studies) == len(exams) == 9 + (hc18.DEFAULT_ROOT / "hc18.csv").exists()
    for tag, keyword in SHOWN.items():
        values = [_value(study, tag) for study in studies]
        assert all(values), (keyword, values)
        assert len(set(values)) == len(values), f"{keyword} repeats in the study list: {values}"
    names = [_value(study, "00100010") for study in studies]
    assert all(name.endswith("^Synthetic Demo") for name in names), names
    # A study list shows the family name first (and truncates the rest): it alone must differ.
    assert len({name.split("^")[0] for name in names}) == len(names), names
