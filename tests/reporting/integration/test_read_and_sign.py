"""Read, sign, amend and alert through real HTTP on single-node adapters."""

from __future__ import annotations

from datetime import timedelta

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import FOLLOWUP_ALERTED, REPORT_ROUTED, REPORT_SIGNED
from sonobridge.common.envelope import unpack
from sonobridge.common.objects.ports import read_all

from ..conftest import DAY0, exam_completed, finding, inference_completed, send, wait_until


def _roster(admin, worklist: str, *shifts: tuple[str, str]) -> None:
    body = {
        "shifts": [
            {
                "user": user,
                "role": role,
                "starts_at": DAY0.isoformat(),
                "ends_at": (DAY0 + timedelta(days=2)).isoformat(),
            }
            for user, role in shifts
        ]
    }
    response = admin.put(f"/v1/rosters/{worklist}", json=body)
    assert response.status_code == 200, response.text


def _events(bus, topic: str, group: str) -> list:
    sub = bus.subscribe(group, [topic])
    try:
        return [unpack(r.cloud_event()) for r in sub.poll(0.5, max_records=1000)]
    finally:
        sub.close()


def test_expert_reads_signs_and_amends_a_nodule_report_that_alerts_the_coordinator(start_node):
    node = start_node()
    admin = node.client("admin-1", ["admin"], "county-hospital")
    _roster(admin, "county-thyroid", ("dr-wang", "primary"), ("dr-zhao", "backup"))
    study = "1.2.826.0.1.3680043.10.1.1001"
    send(node.bus, exam_completed(study), source="ingest")
    send(
        node.bus,
        inference_completed(
            study, findings=[finding("237495005", "thyroid nodule", 0.91, abnormal=True)]
        ),
    )

    expert = node.client("dr-wang", ["expert"], "county-hospital")
    reads = wait_until(
        lambda: expert.get("/v1/reads", params={"worklist": "county-thyroid"}).json()["reads"],
        what="routed read",
    )
    assert len(reads) == 1
    read = reads[0]
    assert read["route"] == "expert" and read["priority"] == "priority"
    assert read["assigned_to"] == "dr-wang"
    assert read["due_at"] == (DAY0 + timedelta(minutes=30)).isoformat()
    assert "thyroid nodule" in read["reason"]

    view = expert.get(f"/v1/reads/{read['read_id']}").json()
    assert view["ai_findings"][0]["model_version"] == "1.2.0"
    assert view["frames"][0]["rendered"].endswith(
        f"/studies/{study}/series/{study}.1/instances/{study}.1.1/rendered"
    )

    # Signing needs a claim, a draft and a verdict on every AI finding.
    assert expert.post(f"/v1/reads/{read['read_id']}/sign").status_code == 409
    assert expert.post(f"/v1/reads/{read['read_id']}/claim").status_code == 200
    draft = expert.post(f"/v1/reads/{read['read_id']}/draft", json={"language": "zh"}).json()
    assert draft["title"] == "甲状腺超声检查报告"
    unsigned = expert.post(f"/v1/reads/{read['read_id']}/sign")
    assert unsigned.status_code == 422 and "237495005" in unsigned.json()["detail"]
    edited = expert.patch(
        f"/v1/reads/{read['read_id']}/draft",
        json={
            "conclusion": "甲状腺右叶结节（TI-RADS 3类），建议6个月后复查。",
            "revision": draft["revision"],
        },
    )
    assert edited.status_code == 200, edited.text
    verdicts = expert.put(
        f"/v1/reads/{read['read_id']}/verdicts",
        json={"verdicts": [{"finding_code": "237495005", "verdict": "agree"}]},
    )
    assert verdicts.json()["verdicts"][0]["model_version"] == "1.2.0"

    # A physician of another institution may neither see nor sign the read.
    outsider = node.client("dr-other", ["physician"], "township-b")
    assert outsider.get(f"/v1/reads/{read['read_id']}").status_code == 404

    signed = expert.post(f"/v1/reads/{read['read_id']}/sign")
    assert signed.status_code == 201, signed.text
    report = signed.json()
    assert report["version"] == 1
    assert report["pdf_object_key"] == f"reports/{report['report_id']}/v1.pdf"
    assert read_all(node.store, report["pdf_object_key"]).startswith(b"%PDF")
    assert expert.post(f"/v1/reads/{read['read_id']}/sign").status_code == 409

    amend_body = {"reason": "size corrected", "conclusion": "甲状腺右叶结节 9 mm，建议随访。"}
    key = {"Idempotency-Key": "amend-1"}
    amended = expert.post(f"/v1/reports/{report['report_id']}/amend", json=amend_body, headers=key)
    assert amended.status_code == 201, amended.text
    # A retry with the same key (say, after a dropped response) adds no third version.
    retried = expert.post(f"/v1/reports/{report['report_id']}/amend", json=amend_body, headers=key)
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json() == amended.json()
    assert expert.get(f"/v1/reports/{report['report_id']}").json()["versions"] == [1, 2]
    reused = expert.post(f"/v1/reads/{read['read_id']}/draft", json={"language": "en"}, headers=key)
    assert reused.status_code == 422
    assert amended.json()["version"] == 2 and amended.json()["amended_from_version"] == 1
    old = expert.get(f"/v1/reports/{report['report_id']}", params={"version": 1}).json()
    assert old["superseded"] and old["conclusion"].startswith("甲状腺右叶结节（TI-RADS 3类）")
    assert read_all(node.store, f"reports/{report['report_id']}/v2.json")

    coordinator = node.client("nurse-chen", ["coordinator"], "township-a")
    alerts = wait_until(lambda: coordinator.get("/v1/alerts").json()["alerts"], what="alert")
    assert len(alerts) == 1 and alerts[0]["matched_terms"] == ["nodule"]
    other_coordinator = node.client("nurse-x", ["coordinator"], "township-b")
    assert other_coordinator.get("/v1/alerts").json()["alerts"] == []
    ack = coordinator.post(
        f"/v1/alerts/{alerts[0]['alert_id']}/acknowledge", json={"note": "called patient"}
    )
    assert ack.json()["state"] == "acknowledged"
    assert coordinator.post(f"/v1/alerts/{alerts[0]['alert_id']}/close").json()["state"] == (
        "closed"
    )

    feed = coordinator.get("/v1/notifications").json()["notifications"]
    assert [n["kind"] for n in feed] == ["followup_alert"]

    routed = wait_until(lambda: _events(node.bus, REPORT_ROUTED, "t-routed"), what="routed")
    assert [m.read_id for m in routed] == [read["read_id"]]
    signed_events = wait_until(
        lambda: (e := _events(node.bus, REPORT_SIGNED, "t-signed")) and len(e) == 2 and e,
        what="signed events",
    )
    assert [m.version for m in signed_events] == [1, 2]
    assert signed_events[0].ai_agreement[0].verdict == events_pb2.AI_VERDICT_AGREE
    alerted = wait_until(lambda: _events(node.bus, FOLLOWUP_ALERTED, "t-alerted"), what="alert")
    assert list(alerted[0].matched_terms) == ["nodule"]

    audit = admin.get("/v1/audit", params={"read_id": read["read_id"]}).json()["records"]
    actions = [r["action"] for r in audit]
    for expected in (
        "view_read",
        "claimed",
        "draft_created",
        "verdicts_recorded",
        "signed",
        "amended",
        "view_report",
    ):
        assert expected in actions

    metrics = node.client("ops", ["admin"], None).get("/metrics").text
    assert (
        'sonobridge_reporting_ai_verdicts_total{model="thyroid-nodule",model_version="1.2.0",'
        'verdict="agree"} 1.0' in metrics
    )
    assert 'sonobridge_reporting_reads_routed_total{route="expert"} 1.0' in metrics
    assert "sonobridge_reporting_turnaround_seconds_count" in metrics
