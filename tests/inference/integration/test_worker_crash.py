"""A killed inference worker mid-exam: after restart the exam gets exactly one result.

The service runs as `python -m sonobridge.inference serve` in a subprocess on the single-node
adapters (SQLite, local directory, embedded event log) and is SIGKILLed while it is between
instances of an exam (a per-instance delay setting holds it there)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from inference.inference_support import store_exam, wait_for
from sqlalchemy import create_engine, func, select

from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.ports import publish
from sonobridge.common.envelope import unpack, wrap
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.inference.adapters import orm

STARTED = "inferring over"


class ServiceProcess:
    """The inference service in its own process, with its log lines collected."""

    def __init__(self, data_dir: Path, delay_s: float) -> None:
        env = {
            **os.environ,
            "EDITION": "single",
            "DATA_DIR": str(data_dir),
            "HTTP__PORT": "0",
            "GRPC__PORT": "0",
            "LOG__JSON_FORMAT": "false",
            "INFERENCE__PROVIDERS": "CPUExecutionProvider",
            "INFERENCE__INSTANCE_DELAY_SECONDS": str(delay_s),
            "DELIVERY__RELAY_INTERVAL_SECONDS": "0.1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sonobridge.inference", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def _events_for(bus: EmbeddedEventBus, group: str, study: str) -> list:
    sub = bus.subscribe(group, [INFERENCE_COMPLETED])
    try:
        found, batch = [], sub.poll(0.5)
        while batch:
            for record in batch:
                message = unpack(record.cloud_event())
                if message.context.study_instance_uid == study:
                    found.append(message)
            batch = sub.poll(0.5)
        return found
    finally:
        sub.close()


def _result_rows(data_dir: Path, study: str) -> int:
    engine = create_engine(f"sqlite:///{data_dir / 'inference.sqlite3'}")
    try:
        with engine.connect() as conn:
            t = orm.inference_results
            return conn.execute(
                select(func.count()).select_from(t).where(t.c.study_instance_uid == study)
            ).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.slow
def test_killed_worker_mid_exam_gives_exactly_one_result_after_restart(tmp_path):
    store = LocalDirObjectStore(tmp_path / "objects")
    bus = EmbeddedEventBus(tmp_path / "events.sqlite3")
    exam = store_exam(store, instances=4, frames=3, seed=31)
    study = exam.context.study_instance_uid
    publish(bus, EXAM_COMPLETED, wrap(exam, source="ingest", key=study))

    first = ServiceProcess(tmp_path, delay_s=1.5)
    try:
        wait_for(lambda: first.saw(STARTED) or first.proc.poll() is not None, timeout=120)
        assert first.proc.poll() is None, "".join(first.lines)
        time.sleep(2.0)  # past the first instance, well before the fourth
        first.kill()
    finally:
        first.stop()
    assert _events_for(bus, "check-after-kill", study) == []
    assert _result_rows(tmp_path, study) == 0

    second = ServiceProcess(tmp_path, delay_s=0.0)
    try:
        events = wait_for(lambda: _events_for(bus, f"check-{time.monotonic()}", study), 180)
        # A later exam is consumed after any redelivery of the first, so once its result is
        # out, a duplicate would have been too.
        marker = store_exam(store, instances=1, seed=32)
        publish(bus, EXAM_COMPLETED, wrap(marker, source="ingest", key="marker"))
        wait_for(
            lambda: _events_for(bus, f"m-{time.monotonic()}", marker.context.study_instance_uid),
            180,
        )
        events = _events_for(bus, "check-final", study)
    finally:
        second.stop()
    assert len(events) == 1, "".join(second.lines[-40:])
    assert len(events[0].instance_quality) == 4
    assert _result_rows(tmp_path, study) == 1
    assert second.saw(STARTED)
    bus.close()
