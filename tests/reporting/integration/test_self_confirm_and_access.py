"""Self-confirmation with audit sampling, role and institution scoping, claim/release/reassign."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml

from sonobridge.api.events.v1.topics import REPORT_ROUTED
from sonobridge.common.envelope import unpack

from ..conftest import DAY0, finding, inference_completed, send, wait_until

POLICY = (
    Path(__file__).parents[3] / "services/reporting/src/sonobridge/reporting/policy/default.yaml"
)


def _policy(tmp_path: Path) -> Path:
    doc = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    doc["version"] = "test-self-confirm-1"
    doc["credentials"] = {"self-confirm": ["op-cert"]}
    doc["self_confirm_audit_rate"] = 1.0
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _shifts(*rows: tuple[str, str, str | None]) -> dict:
    return {
        "shifts": [
            {
                "user": u,
                "role": r,
                "institution": inst,
                "starts_at": DAY0.isoformat(),
                "ends_at": (DAY0 + timedelta(days=1)).isoformat(),
            }
            for u, r, inst in rows
        ]
    }


def test_a_confident_normal_exam_is_self_confirmed_locally_and_sampled_for_expert_audit(
    start_node, tmp_path
):
    node = start_node(policy_path=_policy(tmp_path))
    admin = node.client("admin-1", ["admin"], "county-hospital")
    admin.put(
        "/v1/rosters/self-confirm",
        json=_shifts(
            ("dr-town-a", "primary", "township-a"),
            ("dr-town-b", "primary", "township-b"),
        ),
    ).raise_for_status()
    admin.put(
        "/v1/rosters/county-audit", json=_shifts(("dr-audit", "primary", None))
    ).raise_for_status()
    study = "1.2.826.0.1.3680043.10.6.1"
    send(
        node.bus,
        inference_completed(
            study, operator="op-cert", findings=[finding("17621005", "normal thyroid", 0.97)]
        ),
    )

    physician = node.client("dr-town-a", ["physician"], "township-a")
    reads = wait_until(lambda: physician.get("/v1/reads").json()["reads"], what="read")
    read = reads[0]
    assert (read["route"], read["worklist"], read["assigned_to"]) == (
        "self_confirm",
        "self-confirm",
        "dr-town-a",
    )
    assert read["policy_version"] == "test-self-confirm-1"

    # Township scoping: the other township's physician sees nothing; an expert may not sign.
    other = node.client("dr-town-b", ["physician"], "township-b")
    assert other.get("/v1/reads").json()["reads"] == []
    assert other.post(f"/v1/reads/{read['read_id']}/claim").status_code == 404
    expert = node.client("dr-wang", ["expert"], "county-hospital")
    assert expert.get(f"/v1/reads/{read['read_id']}").status_code == 404
    operator = node.client("op-cert", ["operator"], "township-a")
    assert operator.get(f"/v1/reads/{read['read_id']}").status_code == 200
    assert operator.post(f"/v1/reads/{read['read_id']}/claim").status_code == 403

    assert physician.post(f"/v1/reads/{read['read_id']}/claim").status_code == 200
    physician.post(f"/v1/reads/{read['read_id']}/draft", json={"language": "zh"}).raise_for_status()
    physician.put(
        f"/v1/reads/{read['read_id']}/verdicts",
        json={"verdicts": [{"finding_code": "17621005", "verdict": "agree"}]},
    ).raise_for_status()
    assert physician.post(f"/v1/reads/{read['read_id']}/sign").status_code == 201

    auditor = node.client("dr-audit", ["expert"], "county-hospital")
    audits = wait_until(
        lambda: auditor.get("/v1/reads", params={"worklist": "county-audit"}).json()["reads"],
        what="audit read",
    )
    assert len(audits) == 1
    assert audits[0]["kind"] == "audit" and audits[0]["assigned_to"] == "dr-audit"
    assert audits[0]["study_instance_uid"] == study
    # No follow-up alert for a normal report.
    coordinator = node.client("nurse-chen", ["coordinator"], "township-a")
    assert coordinator.get("/v1/alerts").json()["alerts"] == []

    def routed() -> list:
        sub = node.bus.subscribe("t-routed-audit", [REPORT_ROUTED])
        try:
            return [unpack(r.cloud_event()) for r in sub.poll(0.5, max_records=100)]
        finally:
            sub.close()

    messages = wait_until(lambda: len(m := routed()) == 2 and m, what="two routings")
    assert sorted(m.worklist for m in messages) == ["county-audit", "self-confirm"]


def test_claim_release_and_reassign_are_checked_and_notify_the_new_reader(start_node):
    node = start_node()
    admin = node.client("admin-1", ["admin"], "county-hospital")
    admin.put(
        "/v1/rosters/county-thyroid",
        json=_shifts(
            ("dr-wang", "primary", None),
            ("dr-li", "primary", None),
            ("dr-zhao", "backup", None),
        ),
    ).raise_for_status()
    send(
        node.bus,
        inference_completed(
            "1.2.826.0.1.3680043.10.6.2", findings=[finding("1234", "thyroid cyst", 0.6)]
        ),
    )
    send(
        node.bus,
        inference_completed(
            "1.2.826.0.1.3680043.10.6.3", findings=[finding("1234", "thyroid cyst", 0.6)]
        ),
    )
    reads = wait_until(
        lambda: len(r := admin.get("/v1/reads").json()["reads"]) == 2 and r, what="two reads"
    )
    # Least-loaded assignment spreads the two reads over the two primaries.
    assert sorted(r["assigned_to"] for r in reads) == ["dr-li", "dr-wang"]
    read_id = reads[0]["read_id"]
    wang = node.client("dr-wang", ["expert"], "county-hospital")
    li = node.client("dr-li", ["expert"], "county-hospital")
    assert wang.post(f"/v1/reads/{read_id}/claim").status_code == 200
    taken = li.post(f"/v1/reads/{read_id}/claim")
    assert taken.status_code == 409
    assert taken.headers["content-type"] == "application/problem+json"
    assert li.post(f"/v1/reads/{read_id}/release").status_code == 403
    released = wang.post(f"/v1/reads/{read_id}/release").json()
    assert (released["state"], released["assigned_to"]) == ("queued", None)
    assert li.post(f"/v1/reads/{read_id}/reassign", json={"to_user": "dr-zhao"}).status_code == 403
    assert (
        admin.post(f"/v1/reads/{read_id}/reassign", json={"to_user": "dr-nobody"}).status_code
        == 422
    )
    moved = admin.post(f"/v1/reads/{read_id}/reassign", json={"to_user": "dr-zhao"})
    assert moved.json()["assigned_to"] == "dr-zhao"
    zhao = node.client("dr-zhao", ["expert"], "county-hospital")
    feed = zhao.get("/v1/notifications").json()["notifications"]
    assert [(n["kind"], n["data"]["read_id"]) for n in feed] == [("read_assigned", read_id)]
    assert (
        zhao.get("/v1/reads", params={"assigned_to": "dr-zhao"}).json()["reads"][0]["read_id"]
        == read_id
    )
    # Unauthenticated and malformed requests get problem+json.
    anonymous = node.client("x", [], None)
    anonymous.headers.pop("Authorization")
    assert anonymous.get("/v1/reads").status_code == 401
    assert admin.get("/v1/reads", params={"state": "bogus"}).status_code == 422
    assert admin.get("/v1/reads", params={"cursor": "!!"}).status_code == 422
    assert admin.put("/v1/rosters/no-such-list", json={"shifts": []}).status_code == 404


def test_every_reporting_metric_in_the_catalogue_is_exported(start_node):
    node = start_node()
    text = node.client("ops", ["admin"], None).get("/metrics").text
    for name in (
        "sonobridge_reporting_turnaround_seconds",
        "sonobridge_reporting_sla_breaches_total",
        "sonobridge_reporting_worklist_depth",
        "sonobridge_reporting_reads_routed_total",
        "sonobridge_reporting_ai_verdicts_total",
        "sonobridge_reporting_http_requests_total",
        "sonobridge_reporting_events_consumed_total",
        "sonobridge_reporting_outbox_pending_events",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert 'sonobridge_reporting_worklist_depth{worklist="county-urgent"} 0.0' in text
