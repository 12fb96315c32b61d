"""End-to-end latency on CPU: upload complete -> AI result, -> routed read, on both editions.

    uv run python bench/e2e/bench_flow.py [--exams 50] [--editions single,cluster]
    uv run python bench/e2e/bench_flow.py --editions single-locked,single --pairs 2

"single" is `sonobridge serve` in its own process, as deployed (the township apps and this
benchmark's tracker are other processes); "single-<n>lanes" is the same with n inference
consumer lanes (INFERENCE__CONSUMER_LANES; single-1lane: one exam at a time, as before);
"single-inproc" runs the node inside this process, as the benchmark did before; "single-locked"
is that in-process node as before #18, inference inside the consumer's write transaction.
"--pairs" repeats the editions interleaved. Each edition also prints where an exam's time went,
from the InferenceCompleted event's own timestamps: queued (upload complete -> inference
start), inferring, publishing (-> seen on the event log).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sonobridge.api.events.v1 import topics
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.delivery import ConsumerWorker
from sonobridge.node.consortium import demo_consortium, seed
from sonobridge.node.demo import node_settings_for
from sonobridge.node.flow import EventWatch, FlowTracker, Trail
from sonobridge.node.issuer import issuer_for
from sonobridge.node.scenario import routine_exams
from sonobridge.node.township import TownshipApp


def _figures(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def _stages(watch: EventWatch, trails: list[Trail]) -> dict[str, list[float]]:
    """Split each exam's wait by the InferenceCompleted event's own timestamps."""
    found: dict[str, list[float]] = {"queued": [], "inferring": [], "publishing": []}
    for t in trails:
        seen = watch.events(t.study, topics.INFERENCE_COMPLETED)
        if not seen:
            continue
        m = seen[0].message
        started, done = m.started_at.ToDatetime(UTC), m.completed_at.ToDatetime(UTC)
        found["queued"].append(started.timestamp() - t.uploaded.upload_completed)
        found["inferring"].append((done - started).total_seconds())
        found["publishing"].append(seen[0].seen_at - done.timestamp())
    return found


def _watch_group() -> str:
    return f"bench-{os.getpid()}-{time.time_ns()}"


def _measure(
    urls: dict[str, str], issuer, bus, exams, timeout: float, group: str | None = None
) -> dict[str, list[float]]:
    consortium = demo_consortium()
    seed(consortium, urls, consortium.token(issuer, "county-admin"))
    # Only the AI results are timed from the log; routing comes from the reads' own times.
    watch = EventWatch(bus, group or _watch_group(), (topics.INFERENCE_COMPLETED,))
    trails: list[Trail] = []
    tracker = FlowTracker(consortium, issuer, urls, watch=watch, sign=False)
    try:
        apps: dict[str, TownshipApp] = {}
        for plan in exams:
            if plan.operator not in apps:
                apps[plan.operator] = TownshipApp(
                    urls["ingest"], consortium.token(issuer, plan.operator)
                )
            trails.append(Trail(apps[plan.operator].send(plan)))
        for app in apps.values():
            app.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(t.routed_at for t in trails):
            tracker.step(trails)
            # The instants come from the event log and the reads' own times; stepping more
            # often would only load the services being measured.
            time.sleep(1.0)
        stages = _stages(watch, trails)
    finally:
        tracker.close()
        watch.close()
    missing = [t.uploaded.plan.label for t in trails if not t.routed_at]
    if missing:
        print(f"  {len(missing)} exams not routed within {timeout:.0f}s: {missing[:5]}")
    return {
        "ai": [t.ai_at - t.uploaded.upload_completed for t in trails if t.ai_at],
        "routed": [t.routed_at - t.uploaded.upload_completed for t in trails if t.routed_at],
        **stages,
    }


def _infer_inside_the_transaction() -> None:
    """Make the consumer run its stage inside the write transaction, as before #18."""
    from sqlalchemy import insert

    from sonobridge.common.delivery import ConsumerWorker

    def apply(self: ConsumerWorker, record, event) -> bool:
        with self.sessions.begin() as session:
            if self._seen(session, event.id):
                return False
            session.execute(
                insert(self.inbox).values(
                    consumer_group=self.group,
                    event_id=event.id,
                    topic=record.topic,
                    type=event.type,
                    processed_at=datetime.now(UTC),
                )
            )
            if self.stage is not None:
                self.stage(record, event)(session)
            else:
                self.handler(session, record, event)
        return True

    ConsumerWorker._apply = apply  # type: ignore[method-assign]


_URL = re.compile(r"^\s+(ingest|inference|reporting|maintenance)\s+REST (http://\S+)/v1")


def bench_serve(exams, timeout: float, env: dict[str, str] | None = None) -> dict[str, list[float]]:
    """Run the exams through a fresh `sonobridge serve` in its own process."""
    with tempfile.TemporaryDirectory(prefix="sb-bench-serve-") as tmp:
        data_dir = Path(tmp)
        (data_dir / "consortium.json").write_text(demo_consortium().to_json(), encoding="utf-8")
        command = [sys.executable, "-m", "sonobridge.node", "--data-dir", tmp, "serve"]
        proc = subprocess.Popen(
            [*command, "--ephemeral-ports", "--no-viewer"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        urls: dict[str, str] = {}
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                match = _URL.match(line)
                if match:
                    urls[match.group(1)] = match.group(2)
                    if len(urls) == 4:
                        ready.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            if not ready.wait(300):
                raise SystemExit("sonobridge serve did not start within 300s")
            bus = EmbeddedEventBus(data_dir / "events.sqlite3")
            try:
                return _measure(urls, issuer_for(data_dir), bus, exams, timeout)
            finally:
                bus.close()
        finally:
            proc.terminate()
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                print("  sonobridge serve did not stop within 120s of SIGTERM; killed", flush=True)
                proc.kill()
                proc.wait()


def bench_single(exams, timeout: float) -> dict[str, list[float]]:
    """Run the exams through a fresh single node inside this process."""
    from sonobridge.node.cli import wait_ready
    from sonobridge.node.edition import NodePorts, SingleNode

    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        node = SingleNode(
            Path(tmp),
            ports=NodePorts.ephemeral(),
            extra_settings=node_settings_for(demo_consortium()),
        )
        node.start()
        try:
            wait_ready(node)
            return _measure(node.urls(), node.issuer, node.bus, exams, timeout)
        finally:
            node.stop()


def bench_cluster(exams, timeout: float) -> dict[str, list[float]]:
    """Run the exams through a fresh cluster edition (its own databases, bucket and groups)."""
    from sonobridge.common.bus.kafka import KafkaEventBus
    from sonobridge.node.cluster import ClusterEdition, Infra, skip_history
    from sonobridge.node.issuer import issuer_for

    infra = Infra.from_env()
    with tempfile.TemporaryDirectory(prefix="sb-bench-cluster-") as tmp:
        edition = ClusterEdition.ephemeral(
            Path(tmp), infra, demo_consortium(), deployment=f"bench{os.getpid()}"
        )
        edition.prepare(fresh=True)
        bus = KafkaEventBus(infra.kafka)
        group = _watch_group()
        # The shared broker holds every earlier run's events: read from the log end, or the
        # watch would still be wading through history when this run's results arrive.
        bus.ensure_topics([topics.INFERENCE_COMPLETED])
        skip_history(infra.kafka, [group])
        try:
            edition.start()
            return _measure(edition.urls(), issuer_for(Path(tmp)), bus, exams, timeout, group)
        finally:
            edition.stop()
            bus.close()


def main() -> None:
    """Parse arguments, run each edition, print the distribution and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=50)
    parser.add_argument("--editions", default="single,cluster")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--pairs", type=int, default=1)
    args = parser.parse_args()
    print(f"preparing {args.exams} synthetic exams...", flush=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    runs = [(n, i) for i in range(args.pairs) for n in args.editions.split(",")]
    for name, pair in runs:
        exams = routine_exams(args.exams, seed=2000)  # fresh UIDs per edition
        started = time.monotonic()
        if name == "single-locked":
            original = ConsumerWorker._apply
            _infer_inside_the_transaction()
            try:
                raw = bench_single(exams, args.timeout)
            finally:
                ConsumerWorker._apply = original  # type: ignore[method-assign]
        else:
            lanes = re.fullmatch(r"single-(\d+)lanes?", name)
            if lanes:
                # single-1lane: the consumer as before several exams could run at once.
                env = {"INFERENCE__CONSUMER_LANES": lanes.group(1)}
                raw = bench_serve(exams, args.timeout, env)
            else:
                run = {"single": bench_serve, "single-inproc": bench_single}.get(
                    name, bench_cluster
                )
                raw = run(exams, args.timeout)
        label = name if args.pairs == 1 else f"{name}#{pair + 1}"
        results[label] = {k: _figures(v) for k, v in raw.items() if v}
        name = label
        print(f"\n{name} edition ({args.exams} exams, {time.monotonic() - started:.0f}s):")
        for stage, label in (
            ("ai", "upload complete -> AI result"),
            ("routed", "upload complete -> routed read"),
        ):
            f = results[name].get(stage)
            if f:
                print(
                    f"  {label:<32} p50 {f['p50']:6.2f}s  p90 {f['p90']:6.2f}s  "
                    f"max {f['max']:6.2f}s  (n={len(raw[stage])})",
                    flush=True,
                )
        waits = [results[name].get(s) for s in ("queued", "inferring", "publishing")]
        if all(waits):
            print(
                "  where the time went (p50/p90): "
                + ", ".join(
                    f"{s} {w['p50']:.2f}/{w['p90']:.2f}s"
                    for s, w in zip(("queued", "inferring", "publishing"), waits, strict=True)
                    if w
                ),
                flush=True,
            )
        print(f"  load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    for pair in range(args.pairs):
        suffix = "" if args.pairs == 1 else f"#{pair + 1}"
        before = results.get(f"single-locked{suffix}")
        after = results.get(f"single-inproc{suffix}")
        if before and after and before.get("ai") and after.get("ai"):
            b, a = before["ai"], after["ai"]
            print(
                f"\nupload complete -> AI result, single node{suffix}: "
                f"p50 {b['p50']:.2f}s -> {a['p50']:.2f}s (x{b['p50'] / a['p50']:.1f} faster), "
                f"p90 {b['p90']:.2f}s -> {a['p90']:.2f}s (x{b['p90'] / a['p90']:.1f} faster)"
            )
    for pair in range(args.pairs):
        suffix = "" if args.pairs == 1 else f"#{pair + 1}"
        cluster = results.get(f"cluster{suffix}")
        singles = [n for n in args.editions.split(",") if n.startswith("single")]
        for single in singles:
            if f"{single}{suffix}" not in results or not cluster:
                continue
            print(f"\n{single}{suffix}/cluster{suffix} ratio (p50, p90):")
            for stage in ("ai", "routed"):
                s, c = results[f"{single}{suffix}"].get(stage), cluster.get(stage)
                if s and c:
                    print(f"  {stage:<7} {s['p50'] / c['p50']:.2f}  {s['p90'] / c['p90']:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
