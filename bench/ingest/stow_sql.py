"""CPU per instance of the single node's STOW-RS statements alone: group commit down to SQLite.

Runs, in this process, the database part of storing one small instance (no HTTP, no parse, no
object): the study's owners and exam, the InstanceStored event and audit record, the row's
claim, the group commit and its WAL fsync, on a fresh SQLite file with ingest's schema, from
`--clients` threads, with the 38.8 KB DICOM JSON of pydicom's US example. Prints process CPU
(user/sys) per instance, and with `--profile` the top functions. Figures, never pass/fail:

    uv run python bench/ingest/stow_sql.py [--instances 2000] [--clients 1]
        [--profile [--sort cumulative]]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "ingest"))
sys.path.insert(0, str(REPO / "tests"))

from bench_vs_orthanc import SMALL_FILE  # noqa: E402
from ingest.ingest_support import instance_row  # noqa: E402

from sonobridge.common.audit import audit_record  # noqa: E402
from sonobridge.common.auth import Principal  # noqa: E402
from sonobridge.common.db import create_db_engine, session_factory  # noqa: E402
from sonobridge.common.delivery import Outbox  # noqa: E402
from sonobridge.ingest.adapters.dicomfile import read_instance  # noqa: E402
from sonobridge.ingest.adapters.group_commit import GroupCommit  # noqa: E402
from sonobridge.ingest.adapters.orm import metadata, outbox  # noqa: E402
from sonobridge.ingest.domain.events import InstanceStored  # noqa: E402
from sonobridge.ingest.domain.model import Channel  # noqa: E402
from sonobridge.ingest.domain.records import Instance  # noqa: E402
from sonobridge.ingest.ports import Work  # noqa: E402


def _instance(metadata_json: str) -> Instance:
    now = datetime.now(UTC)
    row = instance_row(0, generate_uid(), ("inst-a", "cons-a"), claimed_at=now)
    given = {
        "stored_at": now,
        "series_number": 1,
        "instance_number": 1,
        "metadata_json": metadata_json,
    }
    return Instance(**(row | given))  # type: ignore[arg-type]


def main() -> None:
    """Store `--instances` rows from `--clients` threads; print CPU per instance."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="the profile's order (pstats key)")
    args = parser.parse_args()
    path = get_testdata_file(SMALL_FILE)
    assert path is not None
    text = json.dumps(read_instance(Path(path))[2])
    principal = Principal("bench", frozenset({"uploader"}), "inst-a", "cons-a")
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(f"sqlite:///{tmp}/ingest.db")
        metadata.create_all(engine)
        together = GroupCommit(session_factory(engine), Outbox(outbox))
        template = _instance(text)

        def step(work: Work) -> None:
            now = datetime.now(UTC)
            stored = replace(
                template, sop_instance_uid=generate_uid(), claimed_at=now, stored_at=now
            )
            work.instances.owners_and_exam_of_study(stored.study_instance_uid)
            work.emit(InstanceStored(stored, None, Channel.STOW, False, now))
            work.audit.append(
                audit_record(
                    at=now,
                    actor=principal,
                    action="store_instance",
                    institution_id="inst-a",
                    resource_type="instance",
                    resource_id=stored.sop_instance_uid,
                    channel="stow",
                )
            )
            assert work.try_claim_announced(stored)

        for _ in range(50):
            together(step)
        each = args.instances // args.clients

        def client() -> None:
            for _ in range(each):
                together(step)

        profile = cProfile.Profile() if args.profile else None
        before, start = os.times(), time.perf_counter()
        if profile:
            profile.enable()
        threads = [threading.Thread(target=client) for _ in range(args.clients - 1)]
        for t in threads:
            t.start()
        client()  # one client on this thread, so the profile sees it
        for t in threads:
            t.join()
        if profile:
            profile.disable()
        after, wall = os.times(), time.perf_counter() - start
        n = each * args.clients
        user = (after.user - before.user) / n * 1e3
        system = (after.system - before.system) / n * 1e3
        print(
            f"{n} instances, {args.clients} client(s): CPU {user + system:.3f} ms/inst "
            f"(user {user:.3f} sys {system:.3f}), {n / wall:.0f} inst/s, "
            f"load {os.getloadavg()[0]:.2f}"
        )
        if profile:
            pstats.Stats(profile).sort_stats(args.sort).print_stats(40)
        engine.dispose()


if __name__ == "__main__":
    main()
