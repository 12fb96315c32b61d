"""Read listing: scoped in the query, paged by keyset cursors across institutions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.reporting.v1 import reporting_pb2, reporting_pb2_grpc

from ..conftest import Node, finding, inference_completed, send, wait_until

PRIORITY_RANK = {"urgent": 0, "priority": 1, "routine": 2}
NEVER = datetime.max.replace(tzinfo=UTC)


def _study(n: int) -> str:
    return f"1.2.826.0.1.3680043.10.13.{n}"


def _route_many(node: Node) -> dict[str, list[str]]:
    """Route 15 exams over three townships, two batches a minute apart; return studies by kind."""
    nodule = [finding("237495005", "thyroid nodule", 0.91, abnormal=True)]
    batches = [
        # (institution, exam type, findings, acceptable image, how many)
        [
            ("township-a", events_pb2.EXAM_TYPE_THYROID, nodule, True, 3),
            ("township-b", events_pb2.EXAM_TYPE_THYROID, nodule, True, 2),
            ("township-a", events_pb2.EXAM_TYPE_KIDNEY, [], True, 2),
            ("township-c", events_pb2.EXAM_TYPE_THYROID, [], False, 2),
        ],
        [
            ("township-a", events_pb2.EXAM_TYPE_THYROID, nodule, True, 2),
            ("township-b", events_pb2.EXAM_TYPE_THYROID, nodule, True, 2),
            ("township-b", events_pb2.EXAM_TYPE_KIDNEY, [], True, 2),
        ],
    ]
    admin = node.client("admin-1", ["admin"], "county-hospital")
    n = 0
    studies: dict[str, list[str]] = {}
    for batch in batches:
        for institution, exam_type, findings, acceptable, count in batch:
            for _ in range(count):
                n += 1
                study = _study(n)
                studies.setdefault(institution, []).append(study)
                send(
                    node.bus,
                    inference_completed(
                        study,
                        findings=findings,
                        acceptable=acceptable,
                        institution=institution,
                        exam_type=exam_type,
                    ),
                )
        total = n
        wait_until(lambda total=total: _count_all(admin) == total, timeout=30, what="batch routed")
        # The second batch is due a minute later than the first: dates and ties both occur.
        node.clock.advance(timedelta(minutes=1))
    return studies


def _count_all(admin: httpx.Client) -> int:
    states = ["queued", "claimed", "escalated", "rescan_requested"]
    return len(admin.get("/v1/reads", params={"state": states, "limit": 500}).json()["reads"])


def _pages(client: httpx.Client, limit: int, **params) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        response = client.get("/v1/reads", params={**params, "limit": limit, "cursor": cursor})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["reads"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(body["reads"]) == limit


def _order(read: dict) -> tuple:
    due = datetime.fromisoformat(read["due_at"]) if read["due_at"] else NEVER
    return PRIORITY_RANK[read["priority"]], due, read["read_id"]


def _walk(client: httpx.Client, limit: int = 3, **params) -> list[dict]:
    """Page through and check each read comes once, in worklist order; return them all."""
    reads = [r for page in _pages(client, limit, **params) for r in page]
    ids = [r["read_id"] for r in reads]
    assert len(ids) == len(set(ids)), "a read came twice"
    assert reads == sorted(reads, key=_order)
    return reads


def test_paging_through_more_reads_than_a_page_shows_each_caller_exactly_their_scope(start_node):
    node = start_node()
    studies = _route_many(node)
    admin = node.client("admin-1", ["admin"], "county-hospital")
    expert = node.client("dr-wang", ["expert"], "county-hospital")
    town_a = node.client("dr-a", ["physician"], "township-a")
    town_b = node.client("dr-b", ["physician"], "township-b")
    town_c = node.client("dr-c", ["physician"], "township-c")
    nobody = node.client("op-x", ["operator"], None)

    def studies_of(reads: list[dict]) -> set[str]:
        return {r["study_instance_uid"] for r in reads}

    clocked = set(studies["township-a"]) | set(studies["township-b"])
    everyone = _walk(admin)
    assert studies_of(everyone) == clocked and len(everyone) == 13
    # Priority (nodules) before routine (kidneys); within each, the earlier batch first.
    assert [r["priority"] for r in everyone] == ["priority"] * 9 + ["routine"] * 4
    assert studies_of(_walk(expert)) == clocked
    assert studies_of(_walk(town_a, limit=2)) == set(studies["township-a"])
    assert studies_of(_walk(town_b, limit=4)) == set(studies["township-b"])
    assert _walk(town_c) == []
    assert _walk(nobody) == []

    # Rescans sit on the institution-scoped township worklist: only township-c sees them.
    rescans = {"state": "rescan_requested"}
    assert studies_of(_walk(town_c, limit=1, **rescans)) == set(studies["township-c"])
    assert _walk(expert, **rescans) == [] and _walk(town_a, **rescans) == []
    assert len(_walk(admin, limit=1, **rescans)) == 2

    thyroid = _walk(town_b, limit=2, worklist="county-thyroid")
    assert len(thyroid) == 4 and {r["institution_id"] for r in thyroid} == {"township-b"}

    depth = {w["name"]: w["depth"] for w in town_a.get("/v1/worklists").json()["worklists"]}
    assert depth["county-thyroid"] == 5 and depth["county-abdominal"] == 2

    invalid = admin.get("/v1/reads", params={"cursor": "eyJ4IjoxfQ=="})
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"


def test_a_read_leaving_the_list_between_pages_does_not_make_the_next_page_skip_one(start_node):
    node = start_node()
    _route_many(node)
    admin = node.client("admin-1", ["admin"], "county-hospital")
    expert = node.client("dr-wang", ["expert"], "county-hospital")
    queued = {"state": "queued", "limit": 4}
    expected = [r["read_id"] for r in _walk(admin, limit=500, state="queued")]

    first = admin.get("/v1/reads", params=queued).json()
    seen = [r["read_id"] for r in first["reads"]]
    # Two reads of the first page are claimed: they leave the queued list before page two.
    for read_id in seen[:2]:
        expert.post(f"/v1/reads/{read_id}/claim").raise_for_status()
    cursor = first["next_cursor"]
    while cursor:
        page = admin.get("/v1/reads", params={**queued, "cursor": cursor}).json()
        seen += [r["read_id"] for r in page["reads"]]
        cursor = page["next_cursor"]
    assert seen == expected


def test_grpc_list_worklist_pages_with_the_same_cursors(start_node):
    node = start_node()
    studies = _route_many(node)
    token = node.issuer.issue("dr-a", ["physician"], "township-a", ttl_seconds=3600)
    with grpc.insecure_channel(f"127.0.0.1:{node.host.app.state.grpc_port}") as channel:
        stub = reporting_pb2_grpc.ReportingServiceStub(channel)
        seen, token_ = [], ""
        while True:
            response = stub.ListWorklist(
                reporting_pb2.ListWorklistRequest(page_size=2, page_token=token_),
                metadata=[("authorization", f"Bearer {token}")],
            )
            seen += [r.context.study_instance_uid for r in response.reads]
            token_ = response.next_page_token
            if not token_:
                break
        with pytest.raises(grpc.RpcError) as too_large:
            stub.ListWorklist(
                reporting_pb2.ListWorklistRequest(page_size=501),
                metadata=[("authorization", f"Bearer {token}")],
            )
    assert too_large.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size must be at most 500" in too_large.value.details()
    assert len(seen) == len(set(seen)) == len(studies["township-a"])
    assert set(seen) == set(studies["township-a"])
