"""ETags on the views clients poll: 304 while unchanged, a new tag once anything changes."""

from __future__ import annotations

from datetime import timedelta

import httpx

from ..conftest import prepare_to_sign, route_nodule_exam, wait_until

STUDY = "1.2.826.0.1.3680043.10.9.1"


def _route_nodule_exam(node) -> tuple[httpx.Client, str]:
    return route_nodule_exam(node, STUDY)


def _sign(expert: httpx.Client, read_id: str) -> str:
    prepare_to_sign(expert, read_id)
    signed = expert.post(f"/v1/reads/{read_id}/sign")
    assert signed.status_code == 201, signed.text
    return str(signed.json()["report_id"])


def _unchanged(client: httpx.Client, url: str, **params) -> str:
    """Fetch `url`, then poll it with its ETag and expect 304 without a body; return the tag."""
    first = client.get(url, params=params)
    assert first.status_code == 200, first.text
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get(url, params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304, again.text
    assert again.content == b""
    assert again.headers["ETag"] == etag
    assert client.get(url, params=params).headers["ETag"] == etag
    return etag


def _changed(client: httpx.Client, url: str, old: str, **params) -> httpx.Response:
    """Poll `url` with a stale ETag and expect the new representation under a new tag."""
    response = client.get(url, params=params, headers={"If-None-Match": old})
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] != old
    assert response.json()
    return response


def test_the_exam_view_and_worklist_answer_304_until_the_read_changes(start_node):
    node = start_node()
    expert, read_id = _route_nodule_exam(node)

    view_tag = _unchanged(expert, f"/v1/reads/{read_id}")
    list_tag = _unchanged(expert, "/v1/reads", worklist="county-thyroid")
    worklists_tag = _unchanged(expert, "/v1/worklists")

    expert.post(f"/v1/reads/{read_id}/claim").raise_for_status()
    view = _changed(expert, f"/v1/reads/{read_id}", view_tag).json()
    assert view["state"] == "claimed"
    listed = _changed(expert, "/v1/reads", list_tag, worklist="county-thyroid").json()
    assert listed["reads"][0]["state"] == "claimed"
    # Depth counts open reads, and a claimed read is still open: same content, same tag.
    assert _unchanged(expert, "/v1/worklists") == worklists_tag

    # A draft edit changes the exam view even though the read row itself did not change.
    claimed_tag = _unchanged(expert, f"/v1/reads/{read_id}")
    expert.post(f"/v1/reads/{read_id}/draft", json={"language": "en"}).raise_for_status()
    assert _changed(expert, f"/v1/reads/{read_id}", claimed_tag).json()["draft"]["revision"] == 1

    # Time alone changes the worklist once the read turns overdue.
    due_tag = _unchanged(expert, "/v1/reads")
    node.clock.advance(timedelta(minutes=31))
    overdue = _changed(expert, "/v1/reads", due_tag).json()["reads"][0]
    assert overdue["overdue"] is True


def test_if_none_match_accepts_weak_tags_lists_and_star(start_node):
    node = start_node()
    expert, read_id = _route_nodule_exam(node)
    url = f"/v1/reads/{read_id}"
    etag = _unchanged(expert, url)

    for header in (f"W/{etag}", f'"other", {etag}', "*"):
        response = expert.get(url, headers={"If-None-Match": header})
        assert response.status_code == 304, header
    assert expert.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_report_alerts_and_notifications_keep_their_tag_until_an_amendment_or_ack(start_node):
    node = start_node()
    expert, read_id = _route_nodule_exam(node)
    report_id = _sign(expert, read_id)
    coordinator = node.client("nurse-chen", ["coordinator"], "township-a")

    report_tag = _unchanged(expert, f"/v1/reports/{report_id}")
    v1_tag = _unchanged(expert, f"/v1/reports/{report_id}", version=1)
    alerts = wait_until(lambda: coordinator.get("/v1/alerts").json()["alerts"], what="alert")
    alerts_tag = _unchanged(coordinator, "/v1/alerts")
    feed_tag = _unchanged(coordinator, "/v1/notifications")
    operator = node.client("nurse-li", ["operator"], "township-a")
    operator_tag = _unchanged(operator, "/v1/notifications")

    amended = expert.post(
        f"/v1/reports/{report_id}/amend", json={"reason": "size", "conclusion": "结节 9 mm。"}
    )
    assert amended.status_code == 201, amended.text
    latest = _changed(expert, f"/v1/reports/{report_id}", report_tag).json()
    assert latest["version"] == 2
    # Version 1 is immutable: once superseded its content changed (flag), then it stays put.
    assert _changed(expert, f"/v1/reports/{report_id}", v1_tag, version=1).json()["superseded"]
    _unchanged(expert, f"/v1/reports/{report_id}", version=1)

    coordinator.post(f"/v1/alerts/{alerts[0]['alert_id']}/acknowledge").raise_for_status()
    acked = _changed(coordinator, "/v1/alerts", alerts_tag).json()["alerts"][0]
    assert acked["state"] == "acknowledged"

    # The amendment notifies the operator (a new item, a new tag), not the coordinator.
    kinds = [
        n["kind"]
        for n in _changed(operator, "/v1/notifications", operator_tag).json()["notifications"]
    ]
    assert kinds == ["report_signed", "report_signed"]
    assert _unchanged(coordinator, "/v1/notifications") == feed_tag
    cursor = coordinator.get("/v1/notifications").json()["next_cursor"]
    empty_tag = _unchanged(coordinator, "/v1/notifications", cursor=cursor)
    assert empty_tag != feed_tag
