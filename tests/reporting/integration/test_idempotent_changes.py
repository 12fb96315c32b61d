"""Idempotency-Key on every change: a retry replays the first answer and acts once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import event, func, select

from sonobridge.reporting.adapters import orm

from ..conftest import Node, prepare_to_sign, route_nodule_exam, wait_until

STUDY = "1.2.826.0.1.3680043.10.11.1"


def _count(node: Node, table, *where) -> int:
    with node.sessions.begin() as s:
        return int(s.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _twice(client: httpx.Client, url: str, key: str, **kwargs) -> tuple[httpx.Response, ...]:
    headers = {"Idempotency-Key": key}
    first = client.post(url, headers=headers, **kwargs)
    again = client.post(url, headers=headers, **kwargs)
    assert "Idempotent-Replayed" not in first.headers, first.text
    assert again.headers.get("Idempotent-Replayed") == "true", again.text
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    return first, again


def test_retried_changes_replay_the_first_answer_and_act_once(start_node):
    node = start_node()
    expert, read_id = route_nodule_exam(node, STUDY)
    history = orm.read_history.c

    claimed, _ = _twice(expert, f"/v1/reads/{read_id}/claim", "claim-1")
    assert claimed.status_code == 200 and claimed.json()["state"] == "claimed"
    assert (
        _count(node, orm.read_history, history.read_id == read_id, history.kind == "claimed") == 1
    )

    draft, _ = _twice(expert, f"/v1/reads/{read_id}/draft", "draft-1", json={"language": "zh"})
    assert draft.status_code == 201 and draft.json()["revision"] == 1
    # Without the key a second POST would start revision 2.
    assert expert.get(f"/v1/reads/{read_id}").json()["draft"]["revision"] == 1

    expert.put(
        f"/v1/reads/{read_id}/verdicts",
        json={"verdicts": [{"finding_code": "237495005", "verdict": "agree"}]},
    ).raise_for_status()
    signed, _ = _twice(expert, f"/v1/reads/{read_id}/sign", "sign-1")
    assert signed.status_code == 201
    report_id = signed.json()["report_id"]
    versions = orm.report_versions.c
    assert _count(node, orm.report_versions, versions.report_id == report_id) == 1

    body = {"reason": "size corrected", "conclusion": "甲状腺右叶结节 9 mm。"}
    amended, _ = _twice(expert, f"/v1/reports/{report_id}/amend", "amend-1", json=body)
    assert amended.json()["version"] == 2
    assert expert.get(f"/v1/reports/{report_id}").json()["versions"] == [1, 2]
    assert _count(node, orm.outbox, orm.outbox.c.type.like("%ReportSigned")) == 2

    coordinator = node.client("nurse-chen", ["coordinator"], "township-a")
    alert = wait_until(lambda: coordinator.get("/v1/alerts").json()["alerts"], what="alert")[0]
    url = f"/v1/alerts/{alert['alert_id']}"
    acked, _ = _twice(coordinator, f"{url}/acknowledge", "ack-1", json={"note": "called"})
    assert acked.json()["state"] == "acknowledged"
    closed, _ = _twice(coordinator, f"{url}/close", "close-1")
    assert closed.json()["state"] == "closed"
    # Without a key the same action is refused: the replays above did not act again.
    assert coordinator.post(f"{url}/close").status_code == 409


def test_a_key_reused_for_a_different_request_is_refused_with_a_problem(start_node):
    node = start_node()
    expert, read_id = route_nodule_exam(node, STUDY)
    prepare_to_sign(expert, read_id)
    report_id = expert.post(f"/v1/reads/{read_id}/sign").json()["report_id"]
    key = {"Idempotency-Key": "amend-size"}
    first = expert.post(
        f"/v1/reports/{report_id}/amend", json={"reason": "size", "conclusion": "9 mm"}, headers=key
    )
    assert first.status_code == 201, first.text

    for method_url, body in (
        (f"/v1/reports/{report_id}/amend", {"reason": "size", "conclusion": "11 mm"}),
        (f"/v1/reads/{read_id}/draft", {"language": "zh"}),
    ):
        reused = expert.post(method_url, json=body, headers=key)
        assert reused.status_code == 422, reused.text
        assert reused.headers["content-type"] == "application/problem+json"
        problem = reused.json()
        assert "different request" in problem["detail"]
        assert problem["idempotency_key"] == "amend-size"
    assert expert.get(f"/v1/reports/{report_id}").json()["versions"] == [1, 2]

    # Keys belong to the caller: another expert's identical key is a fresh request.
    colleague = node.client("dr-li", ["expert"], "county-hospital")
    theirs = colleague.post(
        f"/v1/reports/{report_id}/amend", json={"reason": "size", "conclusion": "9 mm"}, headers=key
    )
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["version"] == 3

    blank = expert.post(f"/v1/reads/{read_id}/claim", headers={"Idempotency-Key": "x" * 256})
    assert blank.status_code == 422


@contextmanager
def _crash_on_key_save(node: Node) -> Iterator[list[str]]:
    """Fail the write that saves a 201 answer under its key, after the change itself ran."""
    engine = node.sessions.kw["bind"]
    hits: list[str] = []

    def crash(conn, cursor, statement, parameters, context, executemany) -> None:
        values = parameters.values() if isinstance(parameters, dict) else parameters
        if "idempotency_keys" in statement and 201 in list(values):
            hits.append(statement)
            raise RuntimeError("process died between the change and saving its key")

    event.listen(engine, "before_cursor_execute", crash)
    try:
        yield hits
    finally:
        event.remove(engine, "before_cursor_execute", crash)


def test_a_crash_before_the_key_is_saved_leaves_no_report_and_a_retry_signs_once(start_node):
    node = start_node()
    expert, read_id = route_nodule_exam(node, STUDY)
    prepare_to_sign(expert, read_id)
    key = {"Idempotency-Key": "sign-crash"}
    signed_events = orm.outbox.c.type.like("%ReportSigned")

    # A client of its own: the server drops the connection after an unhandled error.
    doomed = httpx.Client(base_url=node.base_url, headers=dict(expert.headers), timeout=30)
    with doomed, _crash_on_key_save(node) as hits:
        crashed = doomed.post(f"/v1/reads/{read_id}/sign", headers=key)
    assert hits and crashed.status_code == 500
    # The report, its event, alert and the key rolled back with the failed key save.
    assert _count(node, orm.report_versions) == 0
    assert _count(node, orm.outbox, signed_events) == 0
    assert _count(node, orm.alerts) == 0
    assert _count(node, orm.idempotency_keys) == 0
    view = expert.get(f"/v1/reads/{read_id}").json()
    assert view["state"] == "claimed" and view["draft"] is not None

    retried = expert.post(f"/v1/reads/{read_id}/sign", headers=key)
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    replayed = expert.post(f"/v1/reads/{read_id}/sign", headers=key)
    assert replayed.json() == retried.json()
    assert _count(node, orm.report_versions) == 1
    assert _count(node, orm.outbox, signed_events) == 1
    assert _count(node, orm.alerts) == 1


def amend_concurrently(node: Node, expert: httpx.Client, report_id: str, n: int) -> list:
    """POST the same amendment with one key from `n` threads at once; return the responses."""
    body = {"reason": "size corrected", "conclusion": "结节 9 mm。"}
    start = threading.Barrier(n)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def post() -> None:
        client = httpx.Client(base_url=node.base_url, headers=dict(expert.headers), timeout=60)
        with client:
            start.wait()
            r = client.post(
                f"/v1/reports/{report_id}/amend", json=body, headers={"Idempotency-Key": "race"}
            )
        with lock:
            responses.append(r)

    threads = [threading.Thread(target=post) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


def test_concurrent_retries_with_one_key_add_one_version(start_node):
    node = start_node()
    expert, read_id = route_nodule_exam(node, STUDY)
    prepare_to_sign(expert, read_id)
    report_id = expert.post(f"/v1/reads/{read_id}/sign").json()["report_id"]

    responses = amend_concurrently(node, expert, report_id, 8)
    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert expert.get(f"/v1/reports/{report_id}").json()["versions"] == [1, 2]
