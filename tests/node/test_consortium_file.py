"""The consortium file carries DIMSE calling AE titles per institution and refuses bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sonobridge.node.consortium import demo_consortium, load
from sonobridge.node.demo import node_settings_for


def test_demo_consortium_registers_township_devices_and_round_trips(tmp_path: Path) -> None:
    consortium = demo_consortium()
    assert consortium.dimse_callers == {"EAST_US1": "township-east", "RIVER_US1": "township-river"}
    path = tmp_path / "consortium.json"
    path.write_text(consortium.to_json(), encoding="utf-8")
    assert load(path).dimse_callers == consortium.dimse_callers
    assert node_settings_for(consortium)["ingest"] == {"consortium_id": "qingshan-county"}


@pytest.mark.parametrize(
    ("callers", "message"),
    [
        ({"EAST_US1": "township-nowhere"}, "unknown institution"),
        ({"A" * 17: "township-east"}, "at most 16"),
        ({"BAD\\AE": "township-east"}, "backslash"),
        ({"   ": "township-east"}, "all spaces"),
        ({" EAST ": "township-east"}, "outer spaces"),
    ],
)
def test_a_consortium_file_with_a_bad_dimse_caller_is_refused(
    tmp_path: Path, callers: dict[str, str], message: str
) -> None:
    raw = json.loads(demo_consortium().to_json())
    raw["dimse_callers"] = callers
    path = tmp_path / "consortium.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load(path)
