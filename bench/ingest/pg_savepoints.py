"""Would group commit pay on PostgreSQL? Savepoints per request against a transaction each.

Group commit (ingest/adapters/group_commit.py) shares one transaction among concurrent requests
and gives each a savepoint, so one request's failure undoes only its own writes. On SQLite that
saves a WAL fsync per request. This measures what it would trade on the shared PostgreSQL: each
of `--requests` requests writes one small row, either
  alone      BEGIN, INSERT, COMMIT (a transaction each, as ingest runs today)
  grouped-N  one BEGIN and COMMIT per N requests, each request in SAVEPOINT ... RELEASE
through SQLAlchemy and psycopg as ingest runs them, sequentially on one connection. It prints
the round trips, the client's CPU and PostgreSQL's CPU (its process tree, from /proc) per
request, in interleaved turns. Figures, never a pass/fail:

    SONOBRIDGE_RUN_DIR=/work/main/var/local \\
    uv run python bench/ingest/pg_savepoints.py [--requests 2000] [--turns 3] [--groups 2,4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stow_floor
from profile_stow import _cluster_adapters

ROWS = Table("rows", MetaData(), Column("id", Integer, primary_key=True), Column("v", String(64)))


def _run(engine: Engine, requests: int, group: int) -> tuple[float, float, int]:
    """Write `requests` rows; return client and PostgreSQL CPU seconds and round trips."""
    postgres = stow_floor._postmaster(stow_floor._pg_conninfo(None))
    statement = insert(ROWS)
    trips = 0
    pg0, me0 = stow_floor._cpu_s([postgres]), time.process_time()
    with engine.connect() as conn:
        for start in range(0, requests, group):
            with conn.begin():
                trips += 2  # psycopg's BEGIN before the first statement, and the COMMIT
                for _ in range(min(group, requests - start)):
                    if group == 1:
                        conn.execute(statement, {"v": "x" * 64})
                        trips += 1
                    else:
                        with conn.begin_nested():
                            conn.execute(statement, {"v": "x" * 64})
                        trips += 3
    return time.process_time() - me0, stow_floor._cpu_s([postgres]) - pg0, trips


def main() -> None:
    """Run the variants in interleaved turns on a fresh database; print medians per request."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--groups", default="2,4")
    args = parser.parse_args()
    variants = {"alone": 1} | {f"grouped-{n}": int(n) for n in args.groups.split(",")}
    # A fresh database (and bucket, unused) on the shared servers, dropped afterwards.
    with _cluster_adapters() as chosen:
        engine = chosen["engine"]
        ROWS.metadata.create_all(engine)
        seen: dict[str, list[tuple[float, float, int]]] = {v: [] for v in variants}
        _run(engine, 200, 1)  # warm: connection, prepared statements
        for _ in range(args.turns):
            for variant, group in variants.items():
                seen[variant].append(_run(engine, args.requests, group))
    n = args.requests
    load = os.getloadavg()[0]
    print(f"per request, median of {args.turns} turns of {n} (load {load:.2f}):")
    print(f"{'variant':<12}{'round trips':>12}{'client cpu ms':>15}{'postgres cpu ms':>17}")
    for variant, runs in seen.items():
        client = statistics.median(r[0] for r in runs) * 1000 / n
        server = statistics.median(r[1] for r in runs) * 1000 / n
        print(f"{variant:<12}{runs[0][2] / n:>12.2f}{client:>15.3f}{server:>17.3f}")


if __name__ == "__main__":
    main()
