"""Reporting on the real stack: Kafka, MinIO and PostgreSQL started by deploy/local/."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from sonobridge.api.events.v1.topics import INFERENCE_COMPLETED, REPORT_ROUTED, REPORT_SIGNED
from sonobridge.common.bus.kafka import KafkaEventBus
from sonobridge.common.bus.ports import publish
from sonobridge.common.db import create_db_engine
from sonobridge.common.envelope import unpack, wrap
from sonobridge.common.objects.minio import MinioObjectStore
from sonobridge.common.objects.ports import read_all
from sonobridge.reporting.adapters import orm
from sonobridge.reporting.bootstrap import build
from sonobridge.reporting.settings import Settings

from ..conftest import (
    DAY0,
    FakeClock,
    Node,
    exam_completed,
    finding,
    inference_completed,
    prepare_to_sign,
    route_nodule_exam,
    send,
    wait_until,
    write_institutions,
)
from .test_idempotent_changes import amend_concurrently

pytestmark = pytest.mark.infra


@pytest.fixture
def start_cluster_node(
    kafka_bootstrap, minio_endpoint, pg_database, unique_bucket, issuer, tmp_path
) -> Iterator[Callable[..., Node]]:
    """Start reporting on Kafka, MinIO and a fresh PostgreSQL database (restartable)."""
    group = f"sonobridge-reporting-{uuid.uuid4().hex[:8]}"
    nodes: list[Node] = []

    def start(clock: FakeClock) -> Node:
        settings = Settings(
            data_dir=tmp_path,
            access={"institutions_file": write_institutions(tmp_path)},
            http={"host": "127.0.0.1", "port": 0},
            grpc={"host": "127.0.0.1", "port": 0},
            delivery={"relay_interval_seconds": 0.05, "retry_backoff_seconds": 0.01},
            reporting={"timer_interval_seconds": 0.05, "consumer_group": group},
        )
        bus = KafkaEventBus(kafka_bootstrap)
        store = MinioObjectStore(
            minio_endpoint.endpoint,
            minio_endpoint.access_key,
            minio_endpoint.secret_key,
            unique_bucket,
        )
        store.ensure_bucket()
        engine = create_db_engine(pg_database)
        host = build(
            settings, bus=bus, store=store, engine=engine, verifier=issuer.verifier(), clock=clock
        )
        host.start()
        node = Node(host, bus, store, clock, issuer, pg_database, engine)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


def _mine(bus: KafkaEventBus, topic: str, studies: set[str]) -> list[Any]:
    sub = bus.subscribe(f"t-{uuid.uuid4().hex[:8]}", [topic])
    found = []
    try:
        for _ in range(10):
            batch = sub.poll(2.0, max_records=1000)
            found.extend(
                m
                for m in (unpack(r.cloud_event()) for r in batch)
                if m.context.study_instance_uid in studies
            )
            if not batch and found:
                break
    finally:
        sub.close()
    return found


def test_routing_escalation_and_signing_survive_a_restart_on_kafka_minio_and_postgres(
    start_cluster_node, kafka_bootstrap
):
    clock = FakeClock(DAY0)
    node = start_cluster_node(clock)
    admin = node.client("admin-1", ["admin"], "county-hospital")
    admin.put(
        "/v1/rosters/county-thyroid",
        json={
            "shifts": [
                {
                    "user": u,
                    "role": r,
                    "starts_at": DAY0.isoformat(),
                    "ends_at": (DAY0 + timedelta(days=1)).isoformat(),
                }
                for u, r in (("dr-wang", "primary"), ("dr-zhao", "backup"))
            ]
        },
    ).raise_for_status()
    run = uuid.uuid4().int % 10**8
    signed_study = f"1.2.826.0.1.3680043.10.9.{run}.1"
    idle_study = f"1.2.826.0.1.3680043.10.9.{run}.2"
    producer = KafkaEventBus(kafka_bootstrap)
    try:
        nodule = [finding("237495005", "thyroid nodule", 0.91, abnormal=True)]
        for study in (signed_study, idle_study):
            send(producer, exam_completed(study), source="ingest")
        first = inference_completed(signed_study, findings=nodule)
        event = wrap(first, source="inference", key=signed_study)
        publish(producer, INFERENCE_COMPLETED, event)
        send(producer, inference_completed(idle_study, findings=nodule))

        def read_of(study: str) -> dict | None:
            with node.sessions.begin() as s:
                row = s.execute(select(orm.reads).where(orm.reads.c.study_uid == study)).first()
            return dict(row._mapping) if row else None

        wait_until(
            lambda: read_of(signed_study) and read_of(idle_study),
            timeout=90,
            what="both exams routed",
        )
        idle = read_of(idle_study)
        assert idle["assigned_to"] == "dr-wang" and idle["worklist"] == "county-thyroid"

        # Restart: a new instance on the same database, group and topics.
        node.stop()
        node.bus.close()
        node = start_cluster_node(clock)
        # The same event delivered again, and a re-published copy, add no reads.
        publish(producer, INFERENCE_COMPLETED, event)
        again = send(producer, inference_completed(signed_study, findings=nodule))

        expert = node.client("dr-wang", ["expert"], "county-hospital")
        read_id = read_of(signed_study)["read_id"]
        expert.post(f"/v1/reads/{read_id}/claim").raise_for_status()
        expert.post(f"/v1/reads/{read_id}/draft", json={"language": "zh"}).raise_for_status()
        expert.put(
            f"/v1/reads/{read_id}/verdicts",
            json={"verdicts": [{"finding_code": "237495005", "verdict": "agree"}]},
        ).raise_for_status()
        signed = expert.post(f"/v1/reads/{read_id}/sign")
        assert signed.status_code == 201, signed.text
        report = signed.json()
        assert read_all(node.store, report["pdf_object_key"]).startswith(b"%PDF")

        # The idle read's 30-minute target passes: backup at +30, provincial at +45.
        clock.advance(timedelta(minutes=50))

        def escalations() -> list[tuple[str, Any]]:
            with node.sessions.begin() as s:
                rows = s.execute(
                    select(orm.read_history.c.kind, orm.read_history.c.at).where(
                        orm.read_history.c.read_id == idle["read_id"],
                        orm.read_history.c.kind.like("escalat%"),
                    )
                ).all()
            return sorted((k, a) for k, a in rows)

        routed_at = idle["created_at"]
        expected = [
            ("escalated_backup", routed_at + timedelta(minutes=30)),
            ("escalated_tier", routed_at + timedelta(minutes=45)),
        ]
        wait_until(lambda: escalations() == expected, timeout=60, what="escalations")
        wait_until(
            lambda: {event.id, again} <= _inbox_ids(node),
            timeout=90,
            what="redelivered and re-published events consumed",
        )
        with node.sessions.begin() as s:
            reads = s.execute(
                select(orm.reads.c.study_uid).where(
                    orm.reads.c.study_uid.in_([signed_study, idle_study])
                )
            ).all()
        assert sorted(r[0] for r in reads) == sorted([signed_study, idle_study])

        routed = wait_until(
            lambda: (
                (m := _mine(producer, REPORT_ROUTED, {signed_study, idle_study}))
                and len(m) >= 3
                and m
            ),
            timeout=60,
            what="ReportRouted on Kafka",
        )
        assert sorted((m.context.study_instance_uid, m.worklist) for m in routed) == sorted(
            [
                (signed_study, "county-thyroid"),
                (idle_study, "county-thyroid"),
                (idle_study, "provincial"),
            ]
        )
        signed_events = wait_until(
            lambda: _mine(producer, REPORT_SIGNED, {signed_study}),
            timeout=60,
            what="ReportSigned on Kafka",
        )
        assert [m.report_id for m in signed_events] == [report["report_id"]]
    finally:
        producer.close()


def _inbox_ids(node: Node) -> set[str]:
    with node.sessions.begin() as s:
        return {r[0] for r in s.execute(select(orm.inbox.c.event_id)).all()}


def test_concurrent_amendments_with_one_key_add_one_version_on_postgres(start_cluster_node):
    node = start_cluster_node(FakeClock(DAY0))
    study = f"1.2.826.0.1.3680043.10.12.{uuid.uuid4().int % 10**8}"
    expert, read_id = route_nodule_exam(node, study, timeout=90)
    prepare_to_sign(expert, read_id)
    report_id = expert.post(f"/v1/reads/{read_id}/sign").json()["report_id"]

    # PostgreSQL lets the racers run side by side: the losers wait on the key's row, fail on
    # its primary key, roll back whole and replay the winner's answer.
    responses = amend_concurrently(node, expert, report_id, 8)
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.text for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert expert.get(f"/v1/reports/{report_id}").json()["versions"] == [1, 2]
