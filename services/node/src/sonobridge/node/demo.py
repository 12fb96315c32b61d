"""The main job: a demo consortium on the single node, township uploads, the printed trail."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sonobridge.common.auth import LocalIssuer
from sonobridge.lab.exams import HC18_ROOT
from sonobridge.node.consortium import (
    DEMO_PASSWORD,
    Consortium,
    demo_consortium,
    node_settings_for,
    seed,
)
from sonobridge.node.flow import EventWatch, FlowTracker, Trail
from sonobridge.node.identity.accounts import with_passwords
from sonobridge.node.scenario import PlannedExam, demo_exams
from sonobridge.node.township import TownshipApp
from sonobridge.node.validation_demo import show_device_validation

Printer = Callable[[str], None]


def reset_data_dir(data_dir: Path) -> None:
    """Empty the demo's data directory (refusing anything that does not look like one)."""
    data_dir = data_dir.resolve()
    if data_dir.exists():
        unexpected = [
            p.name
            for p in data_dir.iterdir()
            if not (p.name.endswith((".sqlite3", ".sqlite3-wal", ".sqlite3-shm", ".pem", ".json")))
            and p.name not in ("objects", "ingest-spool")
        ]
        if unexpected:
            raise SystemExit(
                f"refusing to reset {data_dir}: it holds {unexpected[:5]}, not demo state"
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)


@dataclass
class ScenarioRun:
    """The outcome of uploading the scenario and following it."""

    trails: list[Trail]
    finished: bool
    problems: list[str]
    seconds: float


def check_trails(trails: list[Trail]) -> list[str]:
    """Compare each exam's trail with what its scenario expects; return the differences."""
    problems = []
    for t in trails:
        plan, expect, read = t.uploaded.plan, t.uploaded.plan.expect, t.read
        if read is None:
            problems.append(f"{plan.label}: never routed")
            continue
        if expect.rescan and read["route"] != "rescan":
            problems.append(f"{plan.label}: expected a rescan, routed {read['route']}")
        if not expect.rescan and expect.worklist and read["worklist"] != expect.worklist:
            problems.append(f"{plan.label}: expected {expect.worklist}, got {read['worklist']}")
        if read["route"] != "rescan" and read["state"] != "signed":
            problems.append(f"{plan.label}: read is {read['state']}, not signed")
        if expect.followup and t.alert is None:
            problems.append(f"{plan.label}: no follow-up alert")
        if expect.ticket_device and t.ticket is None:
            problems.append(f"{plan.label}: no maintenance ticket on {expect.ticket_device}")
    return problems


def run_scenario(
    exams: list[PlannedExam],
    consortium: Consortium,
    issuer: LocalIssuer,
    urls: dict[str, str],
    *,
    watch: EventWatch | None,
    printer: Printer,
    timeout: float = 300.0,
) -> ScenarioRun:
    """Upload every exam as its operator's app would, then follow and sign until all are done."""
    started = time.monotonic()
    trails: list[Trail] = []
    tracker = FlowTracker(consortium, issuer, urls, watch=watch, printer=printer)
    try:
        apps: dict[str, TownshipApp] = {}
        for plan in exams:
            if plan.operator not in apps:
                apps[plan.operator] = TownshipApp(
                    urls["ingest"], consortium.token(issuer, plan.operator)
                )
            uploaded = apps[plan.operator].send(plan)
            printer(
                f"  [{plan.label}] uploaded {uploaded.bytes_sent / 1024:.0f} KiB by "
                f"{plan.operator} at {plan.institution} on {plan.device_serial} "
                f"in {uploaded.upload_completed - uploaded.upload_started:.2f}s "
                f"(exam {uploaded.exam_id[:8]}, {uploaded.state}; truth: {plan.truth})"
            )
            trails.append(Trail(uploaded))
            tracker.step(trails)
        for app in apps.values():
            app.close()
        finished = tracker.follow(trails, timeout=timeout)
    finally:
        tracker.close()
    return ScenarioRun(trails, finished, check_trails(trails), time.monotonic() - started)


def _quantiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered):.2f}s  p90 {p90:.2f}s  max {ordered[-1]:.2f}s "
        f"(n={len(ordered)})"
    )


def print_summary(run: ScenarioRun, printer: Printer) -> None:
    """Print the latency figures and the verdict on the trail."""
    ai = [t.ai_at - t.uploaded.upload_completed for t in run.trails if t.ai_at]
    routed = [t.routed_at - t.uploaded.upload_completed for t in run.trails if t.routed_at]
    printer("\nTimings from upload complete:")
    printer(f"  -> AI result    {_quantiles(ai)}")
    printer(f"  -> routed read  {_quantiles(routed)}")
    if run.problems:
        printer(f"\nTrail differs from the scenario ({len(run.problems)}):")
        for p in run.problems:
            printer(f"  - {p}")
    else:
        printer(f"\nAll {len(run.trails)} exams followed end to end in {run.seconds:.1f}s.")


def run_demo(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    ephemeral_ports: bool = False,
    exit_after: bool = False,
    timeout: float = 300.0,
    printer: Printer = print,
    wait_forever: Callable[[], None] | None = None,
    viewer_dist: Path | None = None,
) -> int:
    """Reset the data dir, start the single node, seed, run the scenario; 0 when the trail holds."""
    from sonobridge.node.cli import print_endpoints, wait_ready
    from sonobridge.node.edition import NodePorts, SingleNode

    reset_data_dir(data_dir)
    consortium = with_passwords(demo_consortium(), DEMO_PASSWORD)
    (data_dir / "consortium.json").write_text(consortium.to_json(), encoding="utf-8")
    printer(f"SonoBridge demo: fresh single-node edition in {data_dir}")
    t0 = time.monotonic()
    node = SingleNode(
        data_dir,
        host=host,
        ports=NodePorts.ephemeral() if ephemeral_ports else None,
        extra_settings=node_settings_for(consortium, data_dir),
        viewer_dist=viewer_dist,
    )
    node.start()
    watch = None
    try:
        wait_ready(node)
        printer(f"  four services ready in {time.monotonic() - t0:.1f}s")
        admin = consortium.with_role("admin")[0].user
        seeded = seed(consortium, node.urls(), consortium.token(node.issuer, admin))
        printer(
            f"  consortium {consortium.id}: {len(consortium.institutions)} institutions, "
            f"{len(consortium.people)} people, {len(seeded.devices_created)} probes registered, "
            f"rosters on {', '.join(seeded.rosters)}"
        )
        watch = EventWatch(node.bus, "sonobridge-demo-trail")
        printer("  preparing exams (pydicom examples and synthetic scans)...")
        exams = demo_exams()
        if not any(plan.exam_type == "obstetric" for plan in exams):
            printer(
                f"  obstetric exam skipped: no HC18 images at {HC18_ROOT} (../shared/datasets/hc18)"
            )
        printer(f"\nA township app uploads {len(exams)} exams over HTTP (tus + manifest):")
        run = run_scenario(
            exams,
            consortium,
            node.issuer,
            node.urls(),
            watch=watch,
            printer=printer,
            timeout=timeout,
        )
        print_summary(run, printer)
        validated = show_device_validation(
            node.urls()["inference"],
            consortium.token(node.issuer, admin),
            data_dir / "validation",
            printer,
        )
        print_endpoints(node, printer)
        print_demo_accounts(consortium, node.login.issuer_url, printer)
        if not exit_after:
            (wait_forever or _block)()
        return 0 if run.finished and not run.problems and validated else 1
    finally:
        if watch is not None:
            watch.close()
        node.stop()


def print_demo_accounts(consortium: Consortium, issuer_url: str, printer: Printer) -> None:
    """Print the demo's accounts, their shared demo password and where they log in."""
    printer(f"Demo accounts (password {DEMO_PASSWORD!r}, demo only) log in at {issuer_url}:")
    for person in consortium.people:
        roles = ", ".join(person.roles)
        printer(f"  {person.user:<14} {roles:<12} {person.institution:<16} {person.name}")


def _block() -> None:
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
