"""End-to-end latency on CPU: upload complete -> AI result, -> routed read, on both editions.

    uv run python bench/e2e/bench_flow.py [--exams 50] [--editions single,cluster]
    uv run python bench/e2e/bench_flow.py --editions single-locked,single --pairs 2

"single-locked" is the single node as before #18, inference inside the consumer's write
transaction (kept here as the baseline); "--pairs" repeats the editions interleaved.

The cluster edition needs the local servers: `deploy/local/up.sh all` and
`eval "$(deploy/local/env.sh)"` first. Exams are uploaded one after another, as a township app
would; the figures are wall-clock seconds measured against the services' own event log.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sonobridge.common.delivery import ConsumerWorker
from sonobridge.node.consortium import demo_consortium, seed
from sonobridge.node.demo import node_settings_for
from sonobridge.node.flow import EventWatch, FlowTracker, Trail
from sonobridge.node.scenario import routine_exams
from sonobridge.node.township import TownshipApp


def _figures(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def _measure(urls: dict[str, str], issuer, bus, exams, timeout: float) -> dict[str, list[float]]:
    consortium = demo_consortium()
    seed(consortium, urls, consortium.token(issuer, "county-admin"))
    watch = EventWatch(bus, f"bench-{os.getpid()}-{time.time_ns()}")
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
            time.sleep(0.2)
    finally:
        tracker.close()
        watch.close()
    missing = [t.uploaded.plan.label for t in trails if not t.routed_at]
    if missing:
        print(f"  {len(missing)} exams not routed within {timeout:.0f}s: {missing[:5]}")
    return {
        "ai": [t.ai_at - t.uploaded.upload_completed for t in trails if t.ai_at],
        "routed": [t.routed_at - t.uploaded.upload_completed for t in trails if t.routed_at],
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


def bench_single(exams, timeout: float) -> dict[str, list[float]]:
    """Run the exams through a fresh single node."""
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
    from sonobridge.node.cluster import ClusterEdition, Infra
    from sonobridge.node.issuer import issuer_for

    infra = Infra.from_env()
    with tempfile.TemporaryDirectory(prefix="sb-bench-cluster-") as tmp:
        edition = ClusterEdition.ephemeral(
            Path(tmp), infra, demo_consortium(), deployment=f"bench{os.getpid()}"
        )
        edition.prepare(fresh=True)
        bus = KafkaEventBus(infra.kafka)
        try:
            edition.start()
            return _measure(edition.urls(), issuer_for(Path(tmp)), bus, exams, timeout)
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
            raw = (bench_single if name == "single" else bench_cluster)(exams, args.timeout)
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
    for pair in range(args.pairs):
        suffix = "" if args.pairs == 1 else f"#{pair + 1}"
        before, after = results.get(f"single-locked{suffix}"), results.get(f"single{suffix}")
        if before and after and before.get("ai") and after.get("ai"):
            b, a = before["ai"], after["ai"]
            print(
                f"\nupload complete -> AI result, single node{suffix}: "
                f"p50 {b['p50']:.2f}s -> {a['p50']:.2f}s (x{b['p50'] / a['p50']:.1f} faster), "
                f"p90 {b['p90']:.2f}s -> {a['p90']:.2f}s (x{b['p90'] / a['p90']:.1f} faster)"
            )
    if "single" in results and "cluster" in results:
        print("\nsingle/cluster ratio (p50, p90):")
        for stage in ("ai", "routed"):
            s, c = results["single"].get(stage), results["cluster"].get(stage)
            if s and c:
                print(f"  {stage:<7} {s['p50'] / c['p50']:.2f}  {s['p90'] / c['p90']:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
