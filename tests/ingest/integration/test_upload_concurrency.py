"""Identical concurrent tus PATCHes and /complete calls over HTTP: one wins, no byte is lost."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ingest.ingest_support import (
    EXAM_COMPLETED,
    RunningIngest,
    collect_events,
    new_exam,
    running_ingest,
    synthetic_instance,
    tus_create,
    tus_patch,
    uids,
)
from pydicom.uid import generate_uid

from sonobridge.common.db import create_db_engine
from sonobridge.common.objects.minio import MinioObjectStore

WRITERS = 8
# Uploads per test and chunks per upload; each chunk is sent by WRITERS threads at once.
ROUNDS = int(os.environ.get("SONOBRIDGE_CONCURRENCY_ROUNDS", "3"))
CHUNKS = 3


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.infra)])
def service(request: pytest.FixtureRequest, tmp_path: Path, issuer: Any) -> Iterator[RunningIngest]:
    """Ingest on the single node's adapters, or on MinIO and PostgreSQL."""
    if request.param == "single":
        with running_ingest(tmp_path, issuer) as running:
            yield running
        return
    minio = request.getfixturevalue("minio_endpoint")
    store = MinioObjectStore(
        minio.endpoint, minio.access_key, minio.secret_key, request.getfixturevalue("unique_bucket")
    )
    store.ensure_bucket()
    engine = create_db_engine(request.getfixturevalue("pg_database"))
    try:
        with running_ingest(tmp_path, issuer, store=store, engine=engine) as running:
            yield running
    finally:
        engine.dispose()


def _all_at_once(ingest: RunningIngest, call: Callable[[httpx.Client], httpx.Response]) -> list:
    """Run `call` on WRITERS threads released together, each with its own connection."""
    barrier = threading.Barrier(WRITERS)
    results: list[httpx.Response | BaseException] = [None] * WRITERS  # type: ignore[list-item]

    def run(i: int) -> None:
        with ingest.client() as client:
            client.get("/healthz")  # open the connection before the race starts
            barrier.wait()
            try:
                results[i] = call(client)
            except BaseException as exc:
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(isinstance(r, httpx.Response) for r in results), results
    return results


def test_identical_concurrent_patches_at_one_offset_keep_every_acknowledged_byte(
    service: RunningIngest,
) -> None:
    seen: Counter[int] = Counter()
    with service.client() as client:
        for round_no in range(ROUNDS):
            exam_id = new_exam(client)
            data = synthetic_instance(frames=4, rows=240, columns=320, seed=round_no)
            study, series, sop = uids(data)
            url = tus_create(client, exam_id, len(data))
            cuts = [len(data) * i // CHUNKS for i in range(CHUNKS + 1)]
            for start, end in itertools.pairwise(cuts):
                chunk = data[start:end]
                answers = _all_at_once(
                    service, lambda c, u=url, s=start, b=chunk: tus_patch(c, u, s, b)
                )
                codes = Counter(r.status_code for r in answers)
                seen.update(codes)
                assert codes == {204: 1, 409: WRITERS - 1}, [
                    (r.status_code, r.text) for r in answers
                ]
                for loser in (r for r in answers if r.status_code == 409):
                    assert loser.headers["content-type"] == "application/problem+json"
                head = client.head(url, headers={"Tus-Resumable": "1.0.0"})
                assert int(head.headers["Upload-Offset"]) == end
            stored = service.object_bytes(f"dicom/{study}/{series}/{sop}.dcm")
            assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    assert service.stored_keys("uploads/") == []
    print(f"\n{ROUNDS} uploads x {CHUNKS} chunks x {WRITERS} writers: {dict(seen)}")


def test_identical_concurrent_completions_answer_200_or_409_and_complete_once(
    service: RunningIngest,
) -> None:
    with service.client() as client:
        exam_id = new_exam(client)
        manifest = []
        study = generate_uid()
        for seed in range(2):
            data = synthetic_instance(study=study, seed=100 + seed)
            url = tus_create(client, exam_id, len(data))
            assert tus_patch(client, url, 0, data).status_code == 204
            manifest.append(
                {"sop_instance_uid": uids(data)[2], "sha256": hashlib.sha256(data).hexdigest()}
            )
    body = {"instances": manifest, "scan_seconds": 12.5}
    codes: Counter[int] = Counter()
    for _ in range(ROUNDS):
        answers = _all_at_once(
            service, lambda c: c.post(f"/v1/exams/{exam_id}/complete", json=body)
        )
        codes.update(r.status_code for r in answers)
        assert {r.status_code for r in answers} <= {200, 409}, [r.text for r in answers]
        assert all(r.json()["state"] == "completed" for r in answers if r.status_code == 200)
    # Up to two of this exam's events, so a second (duplicate) one would be seen.
    completed = collect_events(
        service.bus,
        EXAM_COMPLETED,
        count=2,
        timeout=5,
        where=lambda m: m.context.exam_id == exam_id,
    )
    assert len(completed) == 1
    print(f"\n{ROUNDS} rounds x {WRITERS} identical /complete: {dict(codes)}")
