"""Count the SQL statements and transactions one small STOW-RS instance costs, request and relay.

Starts ingest in this process on the single node's adapters (SQLite, a directory, the embedded
log) or the cluster edition's (a fresh PostgreSQL database and MinIO bucket, Kafka; started on
demand as the tests do), stores pydicom's 0.22 MB US example with fresh UIDs (one study, no
exam: a plain STOW-RS) from `--clients` threads, waits for the outbox relay to ship every event,
and prints what a SQLAlchemy `before_cursor_execute` listener and the engine's transaction events
saw, per instance, with the CPU the servers (and this process) used meanwhile: in the
request threads, in the relay's thread and in other workers (the
ai-results consumer: shared Kafka topics can feed it other runs' events), by statement kind. On
PostgreSQL each statement is a round trip and so are BEGIN (psycopg sends it before a
transaction's first statement) and COMMIT; "round trips" adds them. Counts, never a pass/fail:

    SONOBRIDGE_RUN_DIR=/work/main/var/local \\
    uv run python bench/ingest/stow_statements.py [--edition single|cluster] [--instances 100]
        [--clients 1] [--show 0]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "ingest"))
sys.path.insert(0, str(REPO / "tests"))

import stow_floor  # noqa: E402
from bench_vs_orthanc import _send, _small_instances  # noqa: E402
from ingest.ingest_support import running_ingest  # noqa: E402
from profile_stow import _cluster_adapters  # noqa: E402

from sonobridge.common.auth import LocalIssuer  # noqa: E402

RELAY_THREAD = "outbox-relay"
CONSUMER_THREAD = "ai-results"


class Tally:
    """Statements and transaction events seen on one engine, by thread role."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.examples: dict[tuple[str, str], str] = {}
        self.on = False

    def see(self, what: str, text: str = "") -> None:
        """Count `what` for the current thread's role while counting is on."""
        if not self.on:
            return
        name = threading.current_thread().name
        role = "relay" if name.endswith(RELAY_THREAD) else "request"
        if name.endswith(CONSUMER_THREAD):
            role = "other"
        with self.lock:
            self.counts[(role, what)] += 1
            self.examples.setdefault((role, what), " ".join(text.split())[:160])

    def attach(self, engine: Any) -> None:
        """Listen on `engine`'s statements, transactions and savepoints."""

        def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
            self.see(sql.lstrip().split(None, 1)[0].upper(), sql)

        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "begin", lambda _conn: self.see("(begin)"))
        event.listen(engine, "commit", lambda _conn: self.see("(commit)"))
        event.listen(engine, "rollback", lambda _conn: self.see("(rollback)"))


def _drained(engine: Any) -> bool:
    from sqlalchemy import text

    with engine.connect() as conn:
        return not conn.execute(
            text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        ).scalar_one()


def _wait_drained(engine: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not _drained(engine):
        if time.monotonic() > deadline:
            raise SystemExit("the relay did not ship every event")
        time.sleep(0.2)
    time.sleep(0.3)  # the relay's last pass (and its empty follow-up) ends


def _servers(edition: str) -> dict[str, int]:
    """The process trees whose CPU the run reads: the cluster edition's servers."""
    if edition != "cluster":
        return {}
    postgres = stow_floor._postmaster(stow_floor._pg_conninfo(None))
    return {
        "postgresql": postgres,
        "minio": stow_floor._pidfile("minio"),
        "kafka": stow_floor._pidfile("kafka"),
    }


def run(args: argparse.Namespace) -> None:
    """Store the instances on one fresh ingest and print the counts per instance."""
    issuer = LocalIssuer("bench", audience="sonobridge")
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="stow-statements-") as tmp:
        adapters = _cluster_adapters() if args.edition == "cluster" else nullcontext({})
        with adapters as chosen:
            if args.edition == "single":
                from sonobridge.common.db import create_db_engine

                chosen = {"engine": create_db_engine(f"sqlite:///{Path(tmp) / 'ingest.sqlite3'}")}
            tally.attach(chosen["engine"])
            with running_ingest(Path(tmp), issuer, dimse_enabled=False, **chosen) as ingest:
                url = f"{ingest.base_url}/dicomweb/studies"
                headers = {"Authorization": f"Bearer {ingest.token(roles=('service',))}"}
                bodies = _small_instances(8 + args.instances)
                # The study's first instances and a warm-up, before counting: the rest join it.
                _send(url, headers, bodies[:8], 1, lambda body: body)
                _wait_drained(chosen["engine"])
                servers = _servers(args.edition)
                before = {name: stow_floor._cpu_s([pid]) for name, pid in servers.items()}
                mine = time.process_time()
                tally.on = True
                _send(url, headers, bodies[8:], args.clients, lambda body: body)
                _wait_drained(chosen["engine"])
                tally.on = False
                cpu = {n: stow_floor._cpu_s([pid]) - before[n] for n, pid in servers.items()}
                cpu["this process (ingest + client)"] = time.process_time() - mine
            if args.edition == "single":
                chosen["engine"].dispose()
    _print(tally, args)
    print("  CPU ms per instance (shared servers: other users' work counts too):")
    for name, seconds in cpu.items():
        print(f"      {name:<32} {1000 * seconds / args.instances:6.2f}")


def _print(tally: Tally, args: argparse.Namespace) -> None:
    n = args.instances
    print(f"== {args.edition}: {n} instances, {args.clients} client(s); per instance:")
    for role in ("request", "relay", "other"):
        seen = {what: c for (r, what), c in tally.counts.items() if r == role}
        if not seen:
            continue
        statements = sum(c for what, c in seen.items() if not what.startswith("("))
        trips = statements + seen.get("(begin)", 0) + seen.get("(commit)", 0)
        trips += seen.get("(rollback)", 0)
        print(
            f"  {role:<8} statements {statements / n:5.2f}  transactions "
            f"{seen.get('(begin)', 0) / n:5.2f}  round trips (PostgreSQL) {trips / n:5.2f}"
        )
        for what, count in sorted(seen.items()):
            print(f"      {what:<14} {count / n:6.2f}   {count:>6}")
            if args.show and not what.startswith("("):
                print(f"          {tally.examples[(role, what)][: args.show]}")


def main() -> None:
    """Parse the options and count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edition", choices=("single", "cluster"), default="single")
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--show", type=int, default=0, help="print each kind's first statement")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
