"""Restart safety of the single node: SIGKILL `sonobridge serve` mid-flow, start it again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from sonobridge.api.events.v1 import topics
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.node.consortium import demo_consortium, seed
from sonobridge.node.flow import EventWatch, FlowTracker, Trail
from sonobridge.node.issuer import issuer_for
from sonobridge.node.scenario import routine_exams
from sonobridge.node.township import TownshipApp, UploadedExam

pytestmark = pytest.mark.e2e

URL = re.compile(r"^\s+(ingest|inference|reporting|maintenance)\s+REST (http://\S+)/v1")


class Serve:
    """`sonobridge serve` as a child process; its URLs are read from what it prints."""

    def __init__(self, data_dir: Path) -> None:
        env = {**os.environ, "INFERENCE__INSTANCE_DELAY_SECONDS": "1.0"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sonobridge.node",
                "--data-dir",
                str(data_dir),
                "serve",
                "--ephemeral-ports",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.urls: dict[str, str] = {}
        self.output: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                match = URL.match(line)
                if match:
                    self.urls[match.group(1)] = match.group(2)
                    if len(self.urls) == 4:
                        ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(240):
            self.kill()
            pytest.fail("sonobridge serve did not start:\n" + "".join(self.output[-40:]))

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def _routed_studies(urls: dict[str, str], token: str) -> set[str]:
    reads = httpx.get(
        f"{urls['reporting']}/v1/reads",
        params={"state": ["queued", "claimed", "signed", "rescan_requested"], "limit": 500},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["reads"]
    return {r["study_instance_uid"] for r in reads}


def test_a_killed_single_node_finishes_every_accepted_exam_exactly_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    consortium = demo_consortium()
    (data_dir / "consortium.json").write_text(consortium.to_json())
    issuer = issuer_for(data_dir)
    exams = routine_exams(8, seed=500)
    accepted: list[UploadedExam] = []

    first = Serve(data_dir)
    try:
        seed(consortium, first.urls, consortium.token(issuer, "county-admin"))
        for plan in exams[:6]:
            with TownshipApp(first.urls["ingest"], consortium.token(issuer, plan.operator)) as app:
                accepted.append(app.send(plan))
        # Inference takes 1 s per instance here, so some exams are still in flight at the kill.
        routed = _routed_studies(first.urls, consortium.token(issuer, "county-admin"))
        in_flight = [u for u in accepted if u.study_instance_uid not in routed]
    finally:
        first.kill()
    assert in_flight, "every exam was routed before the kill; the test proves nothing"

    second = Serve(data_dir)
    try:
        for plan in exams[6:]:
            with TownshipApp(second.urls["ingest"], consortium.token(issuer, plan.operator)) as app:
                accepted.append(app.send(plan))
        assert all(u.state == "completed" for u in accepted)
        trails = [Trail(u) for u in accepted]
        tracker = FlowTracker(consortium, issuer, second.urls, sign=True)
        try:
            finished = tracker.follow(trails, timeout=150)
        finally:
            tracker.close()
        assert finished, [(t.uploaded.plan.label, t.read and t.read["state"]) for t in trails]

        reads = httpx.get(
            f"{second.urls['reporting']}/v1/reads",
            params={
                "state": ["queued", "claimed", "signed", "rescan_requested", "escalated"],
                "limit": 500,
            },
            headers={"Authorization": f"Bearer {consortium.token(issuer, 'county-admin')}"},
        ).json()["reads"]
        per_study: dict[str, int] = {}
        for r in reads:
            if r["kind"] == "primary":
                per_study[r["study_instance_uid"]] = per_study.get(r["study_instance_uid"], 0) + 1
        assert per_study == {t.study: 1 for t in trails}

        bus = EmbeddedEventBus(data_dir / "events.sqlite3")
        watch = EventWatch(bus, f"restart-check-{os.getpid()}")
        try:
            time.sleep(3)
            for t in trails:
                for topic in (
                    topics.EXAM_COMPLETED,
                    topics.INFERENCE_COMPLETED,
                    topics.REPORT_ROUTED,
                ):
                    assert watch.distinct(t.study, topic) == 1, (t.uploaded.plan.label, topic)
        finally:
            watch.close()
            bus.close()
    finally:
        second.stop()
