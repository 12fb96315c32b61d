"""The chaos runner: prefecture load on a private cluster while processes and servers fail.

    uv run python tests/chaos/chaos_run.py [--exams 500] [--rate 1.0] [--long]

Starts its own Kafka, MinIO and PostgreSQL (deploy/local, free ports, a temp run dir), the
cluster edition with two replicas of ingest and inference, sends the exams, injects the faults,
lets the rostered experts sign, then audits every exam and prints the must-show table.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Run as a script (make chaos) or imported by pytest as chaos.chaos_run: tests/ is the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaos.chaos_audit import AUDITED_TOPICS, Audit, Auditor, AuditWatch, dead_letters
from chaos.chaos_cluster import LagProbe, PrivateServers, ReplicatedCluster, wait_until
from chaos.chaos_load import (
    CLIENT_TIMEOUT_S,
    PREFECTURE_EXAMS_PER_DAY,
    LoadGenerator,
    LoadPlan,
    prefecture_exams,
)
from chaos.chaos_oracle import CalmRead, expect_calm_outcomes

from sonobridge.common.bus.kafka import KafkaEventBus
from sonobridge.node.consortium import demo_consortium, seed
from sonobridge.node.flow import FlowTracker, Trail
from sonobridge.node.issuer import issuer_for
from sonobridge.node.township import UploadedExam

# The pause outlasts every client timeout, so clients must give up on the paused process.
PAUSE_S = 2.5 * CLIENT_TIMEOUT_S
RECOVERY_CAP_S = 180.0


@dataclass
class Fault:
    """One injected fault and how long the cluster took to get over it."""

    kind: str  # kill | restart | pause
    target: str
    injected: float = 0.0
    restored: float = 0.0
    recovered: float | None = None
    in_flight: int = 0
    delivered: int = 0

    @property
    def recovery_s(self) -> float | None:
        """Seconds from injection until every replica was ready and consumer lag was zero."""
        return None if self.recovered is None else self.recovered - self.injected


def bounded_faults(rng: random.Random, replicas: list[str]) -> list[Fault]:
    """One of each kind: a SIGKILL, a restart of each server, a pause."""
    return [
        Fault("pause", rng.choice([r for r in replicas if r.startswith("ingest")])),
        Fault("restart", "minio"),
        Fault("restart", "postgres"),
        Fault("kill", rng.choice(replicas)),
        Fault("restart", "kafka"),
    ]


def long_faults(rng: random.Random, replicas: list[str]) -> list[Fault]:
    """Each server restarted twice, six SIGKILLs of random replicas, two pauses, shuffled."""
    faults = [Fault("restart", s) for s in ("kafka", "minio", "postgres") * 2]
    faults += [Fault("kill", rng.choice(replicas)) for _ in range(6)]
    faults += [Fault("pause", "ingest-1"), Fault("pause", "postgres")]
    rng.shuffle(faults)
    return faults


@dataclass
class ChaosReport:
    """Everything the must-show table prints."""

    exams: int
    faults: list[Fault]
    audit: Audit
    load_seconds: float
    drain_seconds: float
    retries: dict[str, int]
    restarts: int
    expected_signed: int
    saturation: dict[str, float] = field(default_factory=dict)


class ChaosRun:
    """One chaos run on a fresh private cluster."""

    def __init__(self, root: Path, *, seed_: int) -> None:
        self.root = root
        self.rng = random.Random(seed_)
        self.servers = PrivateServers(root / "servers")
        self.consortium = demo_consortium()
        self.cluster: ReplicatedCluster | None = None
        self.trails: list[Trail] = []
        self._trails_lock = threading.Lock()

    def __enter__(self) -> ChaosRun:
        self.servers.up()
        self.cluster = ReplicatedCluster(self.root / "cluster", self.servers, self.consortium)
        self.cluster.start()
        self.issuer = issuer_for(self.root / "cluster")
        admin = self.consortium.with_role("admin")[0].user
        seed(self.consortium, self.cluster.urls(), self.consortium.token(self.issuer, admin))
        return self

    def __exit__(self, *_: object) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        self.servers.down()

    # -- faults ---------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Inject one fault and undo it (restart, resume); the watchdog restarts killed ones."""
        assert self.cluster is not None
        fault.injected = time.time()
        if fault.kind == "kill":
            self.cluster.kill(fault.target)
        elif fault.kind == "restart":
            self.servers.restart(fault.target)
        elif fault.target in self.cluster.replicas:
            self.cluster.signal(fault.target, signal.SIGSTOP)
            try:
                time.sleep(PAUSE_S)
            finally:
                self.cluster.signal(fault.target, signal.SIGCONT)
        else:
            pid = self.servers.pid(fault.target)
            assert pid is not None, f"no pid for {fault.target}"
            # The server and its workers (PostgreSQL's backends serve the open connections).
            family = [pid, *_children(pid)]
            for p in family:
                os.kill(p, signal.SIGSTOP)
            try:
                time.sleep(PAUSE_S)
            finally:
                for p in family:
                    os.kill(p, signal.SIGCONT)
        fault.restored = time.time()

    def recover(self, fault: Fault, lag: LagProbe) -> None:
        """Wait until every replica is ready and the consumer groups have no lag."""
        assert self.cluster is not None
        cluster = self.cluster
        # A killed replica is only replaced after the watchdog's back-off; let it notice first.
        time.sleep(1.5)
        last: list[object] = []

        def healed() -> bool:
            last[:] = [cluster.not_ready(), lag.total()]
            return last == [[], 0]

        if wait_until(healed, RECOVERY_CAP_S):
            fault.recovered = time.time()
        else:
            print(f"  not recovered: not ready {last[0]}, lag {last[1]}", flush=True)

    def run_faults(
        self, faults: list[Fault], gap: float, lag: LagProbe, load: LoadGenerator
    ) -> None:
        """Inject the faults one after another, `gap` seconds apart, measuring each recovery."""
        for fault in faults:
            time.sleep(gap)
            fault.in_flight, fault.delivered = load.in_flight, len(load.result.delivered)
            print(f"  fault: {fault.kind} {fault.target}", flush=True)
            self.inject(fault)
            self.recover(fault, lag)
            took = "not within cap" if fault.recovery_s is None else f"{fault.recovery_s:.1f}s"
            print(f"  recovered from {fault.kind} {fault.target}: {took}", flush=True)

    # -- load, experts, audit -------------------------------------------------------------

    def _delivered(self, uploaded: UploadedExam) -> None:
        with self._trails_lock:
            self.trails.append(Trail(uploaded))

    def _follow(self, tracker: FlowTracker, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._trails_lock:
                trails = list(self.trails)
            try:
                tracker.step(trails)
            except httpx.HTTPError:
                pass  # a restarting service answers nothing for a moment; try again
            except (KeyError, ValueError) as exc:
                # A half-answered request (a server going down mid-reply); said, then retried.
                print(f"  expert step failed: {exc!r}", flush=True)
            stop.wait(0.5)

    def run(
        self,
        loads: list[LoadPlan],
        faults: list[Fault],
        rate: float,
        drain: float,
        gap: float,
        calm: Mapping[str, CalmRead] | None = None,
    ) -> ChaosReport:
        """Send the load with the faults; wait for every exam to settle; audit against `calm`."""
        assert self.cluster is not None
        cluster = self.cluster
        infra = self.servers.infra()
        bus = KafkaEventBus(infra.kafka)
        watch = AuditWatch(bus, AUDITED_TOPICS)
        tracker = FlowTracker(self.consortium, self.issuer, cluster.urls(), watch=watch)
        lag = LagProbe(infra.kafka, cluster.groups())
        dimse = [
            ("127.0.0.1", int(r.env["INGEST__DIMSE_PORT"]))
            for r in cluster.replicas.values()
            if r.service == "ingest"
        ]
        load = LoadGenerator(
            loads,
            self.consortium,
            self.issuer,
            cluster.ingest_urls(),
            dimse,
            rate=rate,
            on_delivered=self._delivered,
        )
        stop = threading.Event()
        follower = threading.Thread(target=self._follow, args=(tracker, stop), daemon=True)
        try:
            follower.start()
            load.start()
            self.run_faults(faults, gap, lag, load)
            result = load.join()
            started = time.monotonic()
            print(f"  load done in {result.seconds:.0f}s; waiting for every exam", flush=True)
            wait_until(lambda: all(t.done() for t in list(self.trails)), drain, 1.0)
            wait_until(lambda: lag.total() == 0, 60)
            drained = time.monotonic() - started
            for t in self.trails:
                if not t.done():
                    print(
                        f"  not settled: {t.uploaded.plan.label} read={t.read and t.read['state']}"
                        f" alert={t.alert is not None} ticket={t.ticket is not None}",
                        flush=True,
                    )
            stop.set()
            follower.join(timeout=30)
            try:
                audit = Auditor(tracker, watch, calm).audit(
                    [lp.plan for lp in loads],
                    self.trails,
                    [(lp.plan, why) for lp, why in result.undelivered],
                    dead_letters(infra.kafka),
                )
            # A crashed audit must still print the run's figures, and never read as clean.
            except Exception as exc:
                traceback.print_exc()
                audit = Audit(exams=len(loads), lost=[f"the audit itself failed: {exc!r}"])
        finally:
            stop.set()
            tracker.close()
            watch.close()
            bus.close()
        return ChaosReport(
            exams=len(loads),
            faults=faults,
            audit=audit,
            load_seconds=result.seconds,
            drain_seconds=drained,
            retries=dict(load.tally.retries),
            restarts=len(cluster.restarts),
            expected_signed=sum(1 for lp in loads if not lp.plan.expect.rescan),
        )

    def saturate(self, count: int, seed_: int) -> dict[str, float]:
        """Send `count` exams as fast as 12 apps can, no faults; measure exams/hour per stage."""
        assert self.cluster is not None
        cluster = self.cluster
        loads = prefecture_exams(count, seed=seed_)
        start_mark = len(self.trails)
        tracker = FlowTracker(self.consortium, self.issuer, cluster.urls(), sign=False)
        load = LoadGenerator(
            loads,
            self.consortium,
            self.issuer,
            cluster.ingest_urls(),
            [],
            rate=1000.0,
            apps=12,
            on_delivered=self._delivered,
        )
        for lp in loads:
            lp.channel = "tus" if lp.channel == "cstore" else lp.channel
        started = time.time()
        load.start()
        result = load.join()
        ingested = time.time()
        mine = self.trails[start_mark:]
        wait_until(lambda: _routed(tracker, mine), 600, 1.0)
        routed = time.time()
        tracker.close()
        n = len(result.delivered)
        return {
            "exams": float(n),
            "ingest_per_hour": n / (ingested - started) * 3600,
            "pipeline_per_hour": n / (routed - started) * 3600,
        }


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _routed(tracker: FlowTracker, trails: list[Trail]) -> bool:
    try:
        reads = tracker.reads_by_study()
    except httpx.HTTPError:
        return False
    return all(any(r["kind"] == "primary" for r in reads.get(t.study, [])) for t in trails)


def print_table(report: ChaosReport, rate: float) -> None:
    """The must-show table."""
    a = report.audit
    mean_rate = PREFECTURE_EXAMS_PER_DAY / 86_400
    print("\n=== chaos run: must-show ===")
    print(
        f"exams {report.exams} offered at {rate:.2f}/s ({rate / mean_rate:.1f}x a prefecture's "
        f"mean {mean_rate:.2f}/s); load {report.load_seconds:.0f}s, "
        f"drain {report.drain_seconds:.0f}s"
    )
    print(
        f"lost {len(a.lost)}  doubled {len(a.doubled)}  wrong final state {len(a.wrong_state)}  "
        f"dead letters {len(a.dead_letters)}"
    )
    for what, n in sorted(a.checked.items()):
        print(f"  audited {what}: {n}")
    for line in a.problems():
        print(f"  ! {line}")
    print(f"service processes replaced after death: {report.restarts}")
    print("client retries: " + ", ".join(f"{k} {v}" for k, v in sorted(report.retries.items())))
    print(f"{'fault':<24}{'exams sent/in flight':>22}{'fault lasted':>14}{'to lag 0 + ready':>18}")
    for f in report.faults:
        took = "> cap" if f.recovery_s is None else f"{f.recovery_s:.1f}s"
        print(
            f"{f.kind + ' ' + f.target:<24}{f'{f.delivered}/{f.in_flight}':>22}"
            f"{f.restored - f.injected:>13.1f}s"
            f"{took:>18}"
        )
    print_saturation(report.saturation)


def print_saturation(s: dict[str, float]) -> None:
    """The saturation figures and the replica count a prefecture needs."""
    if s:
        need = 10 * PREFECTURE_EXAMS_PER_DAY / 24
        per_replica_ingest = s["ingest_per_hour"] / 2
        per_replica_pipeline = s["pipeline_per_hour"] / 2
        print(
            f"saturation ({s['exams']:.0f} exams, 2 ingest + 2 inference replicas on this "
            f"machine): ingest {s['ingest_per_hour']:.0f} exams/h, upload->routed "
            f"{s['pipeline_per_hour']:.0f} exams/h"
        )
        print(
            f"per replica: ingest {per_replica_ingest:.0f} exams/h, inference path "
            f"{per_replica_pipeline:.0f} exams/h; a prefecture's 10x burst ({need:.0f} exams/h) "
            f"needs {math.ceil(need / per_replica_ingest)} ingest and "
            f"{math.ceil(need / per_replica_pipeline)} inference replicas of this size"
        )


def main() -> None:
    """Parse arguments, run the chaos and print the table; exit 1 if the audit is not clean."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1.0, help="exams per second offered")
    parser.add_argument("--long", action="store_true", help="each server restarted twice")
    parser.add_argument("--saturate", type=int, default=0, help="exams for the saturation phase")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--drain", type=float, default=600.0)
    parser.add_argument("--gap", type=float, default=20.0, help="seconds between faults")
    parser.add_argument("--cap", type=float, default=180.0, help="longest recovery wait (s)")
    args = parser.parse_args()
    # Run in the background SIGINT is ignored; both signals must still tear the servers down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    global RECOVERY_CAP_S
    RECOVERY_CAP_S = args.cap
    print(f"preparing {args.exams} exams (seed {args.seed})...", flush=True)
    loads = prefecture_exams(args.exams, seed=args.seed % 100_000)
    calm = expect_calm_outcomes([lp.plan for lp in loads])
    print(f"calm-run oracle: {len(calm.departures)} exams end elsewhere than designed", flush=True)
    for line in calm.departures:
        print(f"  oracle: {line}")
    with (
        tempfile.TemporaryDirectory(prefix="sb-chaos-") as tmp,
        ChaosRun(Path(tmp), seed_=args.seed) as run,
    ):
        assert run.cluster is not None
        replicas = sorted(run.cluster.replicas)
        faults = (long_faults if args.long else bounded_faults)(run.rng, replicas)
        print(f"cluster up: {', '.join(replicas)}; {len(faults)} faults", flush=True)
        report = run.run(loads, faults, args.rate, args.drain, args.gap, calm.reads)
        # Printed before the saturation phase, so a failure there cannot lose the audit.
        print_table(report, args.rate)
        sys.stdout.flush()
        if args.saturate:
            print(f"saturation phase: {args.saturate} exams...", flush=True)
            report.saturation = run.saturate(args.saturate, args.seed % 100_000 + 50_000)
            print_saturation(report.saturation)
    sys.exit(0 if report.audit.clean else 1)


if __name__ == "__main__":
    main()
