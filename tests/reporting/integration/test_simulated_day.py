"""A simulated day on an injected clock: routing, rosters, escalations, a restart mid-day."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import INFERENCE_COMPLETED, REPORT_ROUTED
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.ports import publish
from sonobridge.common.envelope import unpack, wrap
from sonobridge.reporting.adapters import orm

from ..conftest import (
    DAY0,
    FakeClock,
    exam_completed,
    finding,
    inference_completed,
    send,
    wait_until,
)

STEP = timedelta(minutes=5)
TARGET = {"urgent": 15, "priority": 30, "routine": 120}
BACKUP = {"urgent": 10, "priority": 15, "routine": 30}
RESTART_AT = DAY0 + timedelta(hours=12)
BACK_AT = RESTART_AT + timedelta(minutes=30)
END = DAY0 + timedelta(hours=30)


def _kind(i: int) -> tuple[int, list, bool, str]:
    """Exam type, findings, acceptable quality and expected worklist of exam i."""
    match i % 5:
        case 0:
            return (
                events_pb2.EXAM_TYPE_THYROID,
                [finding("237495005", "thyroid nodule", 0.91, abnormal=True)],
                True,
                "county-thyroid",
            )
        case 1:
            return (
                events_pb2.EXAM_TYPE_THYROID,
                [finding("1234", "thyroid cyst", 0.6)],
                True,
                "county-thyroid",
            )
        case 2:
            return (
                events_pb2.EXAM_TYPE_LIVER,
                [finding("300331000", "normal liver", 0.95, model="liver", version="2.0")],
                True,
                "county-abdominal",
            )
        case 3:
            return (
                events_pb2.EXAM_TYPE_OBSTETRIC,
                [
                    finding(
                        "34801009",
                        "ectopic pregnancy",
                        0.88,
                        abnormal=True,
                        model="ob",
                        version="0.9",
                    )
                ],
                True,
                "county-urgent",
            )
        case _:
            return events_pb2.EXAM_TYPE_THYROID, [], False, "rescan"


def _rosters(admin) -> None:
    def shifts(*rows: tuple[str, str, float, float]) -> dict:
        return {
            "shifts": [
                {
                    "user": u,
                    "role": r,
                    "starts_at": (DAY0 + timedelta(hours=a)).isoformat(),
                    "ends_at": (DAY0 + timedelta(hours=b)).isoformat(),
                }
                for u, r, a, b in rows
            ]
        }

    day_night = [
        ("dr-night", "primary", -4, 8),
        ("dr-a", "primary", 8, 20),
        ("dr-b", "primary", 8, 20),
        ("dr-night", "primary", 20, 32),
        ("dr-m", "backup", -4, 8),
        ("dr-c", "backup", 8, 20),
        ("dr-m", "backup", 20, 32),
    ]
    for worklist, rows in {
        "county-thyroid": day_night,
        "county-abdominal": [("dr-d", "primary", -4, 32), ("dr-e", "backup", -4, 32)],
        "county-urgent": [("dr-u", "primary", -4, 32), ("dr-a", "backup", 8, 20)],
        "provincial": [("prof-p", "primary", -4, 48)],
    }.items():
        response = admin.put(f"/v1/rosters/{worklist}", json=shifts(*rows))
        assert response.status_code == 200, response.text


def _count(node, query) -> int:
    with node.sessions.begin() as s:
        return int(s.execute(query).scalar_one())


def _settle(node, consumed: int) -> None:
    """Wait until the consumer has handled every event sent and no due timer is left unfired."""
    t = orm.timers
    now = node.clock()
    wait_until(
        lambda: _count(node, select(func.count()).select_from(orm.inbox)) >= consumed,
        timeout=60,
        what=f"{consumed} events consumed",
    )
    wait_until(
        lambda: (
            _count(
                node,
                select(func.count())
                .select_from(t)
                .where(t.c.fired_at.is_(None), t.c.fire_at <= now),
            )
            == 0
        ),
        what="due timers",
    )


def _ladder(routed: datetime, priority: str) -> list[tuple[str, datetime]]:
    """Escalations a never-signed read must see, with their exact instants."""
    t, b = timedelta(minutes=TARGET[priority]), timedelta(minutes=BACKUP[priority])
    return [
        ("sla_breached", routed + t),
        ("escalated_backup", routed + t),
        ("escalated_tier", routed + t + b),
        ("escalated_backup", routed + 2 * t + b),
        ("escalation_exhausted", routed + 2 * t + 2 * b),
    ]


@pytest.mark.slow
def test_a_simulated_day_routes_every_exam_once_and_escalates_exactly_on_time_across_a_restart(
    start_node,
):
    clock = FakeClock(DAY0)
    node = start_node(clock)
    admin = node.client("admin-1", ["admin"], "county-hospital")
    _rosters(admin)
    # Producers (ingest, inference) write the same log from their own connections.
    producer = EmbeddedEventBus(node.bus.path)

    count = 40
    arrivals = {DAY0 + timedelta(minutes=10 + 35 * i): i for i in range(count)}
    studies = {i: f"1.2.826.0.1.3680043.10.2.{1000 + i}" for i in range(count)}
    no_ai_study = "1.2.826.0.1.3680043.10.2.9999"
    no_ai_at = DAY0 + timedelta(hours=9)
    plan: dict[datetime, list[tuple[str, int]]] = {}
    for at, i in arrivals.items():
        behaviour = (i // 5) % 3
        if i % 5 != 4 and behaviour in (1, 2):
            plan.setdefault(at + timedelta(minutes=5), []).append(("claim", i))
        if i % 5 != 4 and behaviour == 1:
            plan.setdefault(at + timedelta(minutes=10), []).append(("sign", i))
    published = 0
    signed_at: dict[int, datetime] = {}
    claimed: set[int] = set()
    deferred: list[tuple[str, int]] = []
    read_ids: dict[int, str] = {}

    def expert_act(action: str, i: int) -> None:
        if i not in read_ids:
            read = _read_for(node, studies[i])
            read_ids[i] = read["read_id"]
        read_id = read_ids[i]
        view = admin.get(f"/v1/reads/{read_id}").json()
        user = view["assigned_to"] or "dr-u"
        expert = node.client(user, ["expert"], "county-hospital")
        if action == "claim":
            response = expert.post(f"/v1/reads/{read_id}/claim")
            assert response.status_code == 200, response.text
            claimed.add(i)
            return
        assert expert.post(f"/v1/reads/{read_id}/draft", json={"language": "en"}).status_code == 201
        verdicts = [{"finding_code": f["code"], "verdict": "agree"} for f in view["ai_findings"]]
        if verdicts:
            assert (
                expert.put(f"/v1/reads/{read_id}/verdicts", json={"verdicts": verdicts}).status_code
                == 200
            )
        response = expert.post(f"/v1/reads/{read_id}/sign")
        assert response.status_code == 201, response.text
        signed_at[i] = node.clock()

    down = False
    while clock() <= END:
        now = clock()
        if now in arrivals:
            i = arrivals[now]
            exam_type, findings, ok, _ = _kind(i)
            send(producer, exam_completed(studies[i], exam_type=exam_type), source="ingest")
            send(
                producer,
                inference_completed(
                    studies[i], findings=findings, acceptable=ok, exam_type=exam_type
                ),
            )
            published += 2
        if now == no_ai_at:
            send(producer, exam_completed(no_ai_study), source="ingest")
            published += 1
        actions = plan.get(now, [])
        if down:
            deferred.extend(actions)
        else:
            for action, i in [*deferred, *actions]:
                expert_act(action, i)
            deferred.clear()
            _settle(node, published)
        if now == RESTART_AT:
            # Stop mid-day; events and deadlines that fall while it is down must neither be
            # lost nor fire twice once a new instance runs on the same database and log.
            node.stop()
            node.bus.close()
            down = True
        if now == BACK_AT:
            node = start_node(clock)
            admin = node.client("admin-1", ["admin"], "county-hospital")
            down = False
            # Experts act on reads the new instance has made from what arrived while it was down.
            _settle(node, published)
            for action, i in deferred:
                expert_act(action, i)
            deferred.clear()
            _settle(node, published)
        clock.advance(STEP)

    # Redelivered and re-published AI results create no second read.
    sub = node.bus.subscribe("test-replay", [INFERENCE_COMPLETED])
    replay = sub.poll(1.0, max_records=5)
    sub.close()
    for record in replay:
        node.bus.send(record.topic, record.key, record.value, record.headers)
    again = inference_completed(studies[0], findings=_kind(0)[1])
    publish(node.bus, INFERENCE_COMPLETED, wrap(again, source="inference", key=studies[0]))
    wait_until(
        lambda: "duplicate" in node.client("ops", ["admin"], None).get("/metrics").text,
        what="duplicates consumed",
    )
    wait_until(lambda: _consumer_idle(node), what="consumer idle")

    with node.sessions.begin() as s:
        reads = [dict(r._mapping) for r in s.execute(select(orm.reads))]
        history = [dict(r._mapping) for r in s.execute(select(orm.read_history))]
        timers = [dict(r._mapping) for r in s.execute(select(orm.timers))]

    primary = [r for r in reads if r["kind"] == "primary"]
    assert Counter(r["study_uid"] for r in primary) == Counter([*studies.values(), no_ai_study])

    # Every exam is on exactly one worklist, as the REST API lists them.
    listed: Counter[str] = Counter()
    states = ["queued", "claimed", "escalated", "signed", "rescan_requested"]
    for wl in admin.get("/v1/worklists").json()["worklists"]:
        cursor = None
        while True:
            page = admin.get(
                "/v1/reads",
                params={"worklist": wl["name"], "state": states, "limit": 100, "cursor": cursor},
            ).json()
            listed.update(r["study_instance_uid"] for r in page["reads"] if r["kind"] == "primary")
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert listed == Counter([*studies.values(), no_ai_study])

    by_study = {r["study_uid"]: r for r in primary}
    assert by_study[no_ai_study]["inference_status"] == "missing"
    assert by_study[no_ai_study]["created_at"] == no_ai_at + timedelta(minutes=10)

    escalations = ("sla_breached", "escalated_backup", "escalated_tier", "escalation_exhausted")
    seen = Counter((h["read_id"], h["kind"], h["at"]) for h in history)
    assert max(seen.values()) == 1, "an escalation fired twice"
    never_signed_checked = 0
    for i, study in studies.items():
        read = by_study[study]
        _, _, _, worklist = _kind(i)
        events = sorted(
            (h["kind"], h["at"])
            for h in history
            if h["read_id"] == read["read_id"] and h["kind"] in escalations
        )
        routed_at = read["created_at"]
        if worklist == "rescan":
            assert read["state"] == "rescan_requested" and events == []
            continue
        assert read["policy_version"] == "2026.11-default-1"
        expected = [
            (k, t)
            for k, t in _ladder(routed_at, read["priority"])
            if t <= END and (i not in signed_at or t < signed_at[i])
        ]
        assert events == sorted(expected), f"exam {i} ({worklist})"
        if i in signed_at:
            assert read["state"] == "signed" and events == []
        else:
            never_signed_checked += 1
            assert read["worklist"] == "provincial" and read["route"] == "provincial"
    assert never_signed_checked >= 15

    # Timers fire exactly once, never early; only those due while the service was down late.
    for t in timers:
        if t["fired_at"] is None:
            assert t["fire_at"] > END
            continue
        fire_at, fired_at = t["fire_at"], t["fired_at"]
        assert fired_at >= fire_at
        if not RESTART_AT < fire_at <= BACK_AT:
            assert fired_at == fire_at

    # ReportRouted: one initial routing per exam and one per tier move, none doubled.
    sub = node.bus.subscribe("test-routed", [REPORT_ROUTED])
    messages = []
    while batch := sub.poll(0.5, max_records=1000):
        messages.extend(unpack(r.cloud_event()) for r in batch)
    sub.close()
    pairs = Counter((m.read_id, m.worklist) for m in messages)
    assert max(pairs.values()) == 1
    first = Counter(m.context.study_instance_uid for m in messages if m.worklist != "provincial")
    assert set(first.values()) == {1} and len(first) == count + 1
    tier_moves = sum(1 for h in history if h["kind"] == "escalated_tier")
    assert sum(1 for m in messages if m.worklist == "provincial") == tier_moves


def _read_for(node, study: str) -> dict:
    with node.sessions.begin() as s:
        row = s.execute(
            select(orm.reads).where(orm.reads.c.study_uid == study, orm.reads.c.kind == "primary")
        ).first()
    assert row is not None, f"no read for {study}"
    return dict(row._mapping)


def _consumer_idle(node) -> bool:
    text = node.client("ops", ["admin"], None).get("/metrics").text
    lines = [
        ln
        for ln in text.splitlines()
        if ln.startswith("sonobridge_reporting_consumer_lag_messages{")
    ]
    return bool(lines) and all(ln.endswith(" 0.0") for ln in lines)
