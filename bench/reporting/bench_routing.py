"""Benchmark: exams routed per second through the consumer path, against a bare inbox baseline.

Also times the per-signature work (PDF render, FHIR bundle build). Prints figures; never fails.
Run: uv run python bench/reporting/bench_routing.py [--exams 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.delivery import ConsumerWorker
from sonobridge.common.envelope import wrap
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.reporting.__main__ import SPEC
from sonobridge.reporting.adapters import orm
from sonobridge.reporting.adapters.fhir import build_bundle
from sonobridge.reporting.adapters.pdf import ReportPdfRenderer
from sonobridge.reporting.adapters.policy_file import read_policy
from sonobridge.reporting.bootstrap import (
    _immediate_sqlite_transactions,
    dependencies,
    event_handler,
)
from sonobridge.reporting.metrics import ReportingMetrics
from sonobridge.reporting.settings import Settings

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _records(n: int, run: str) -> list[ReceivedEvent]:
    out = []
    for i in range(n):
        study = f"1.2.826.0.1.3680043.10.8.{run}.{i}"
        msg = events_pb2.InferenceCompleted(
            context=events_pb2.ExamContext(
                exam_id=f"e{i}",
                study_instance_uid=study,
                institution_id=f"township-{i % 12}",
                operator_id=f"op-{i % 30}",
                exam_type=1 + i % 7,
                patient_ref=f"p{i}",
            ),
            exam_quality=events_pb2.QualityAssessment(acceptable=i % 10 != 0, score=0.8),
            findings=[
                events_pb2.Finding(
                    code="x",
                    display="finding",
                    confidence=0.5 + (i % 5) / 10,
                    low_confidence=i % 5 < 3,
                    abnormal=i % 4 == 0,
                    model_name="m",
                    model_version="1",
                )
            ],
            status=events_pb2.INFERENCE_STATUS_COMPLETED,
        )
        event = wrap(msg, source="inference", key=study)
        out.append(
            ReceivedEvent(
                "sonobridge.inference.inference-completed.v1",
                0,
                i,
                study.encode(),
                event.data,
                event.headers(),
            )
        )
    return out


class _NoBus:
    def subscribe(self, group, topics):
        return self

    def commit(self, record: ReceivedEvent) -> None:
        pass


def _rate(worker: ConsumerWorker, records: list[ReceivedEvent]) -> float:
    started = time.perf_counter()
    for record in records:
        worker.handle(record)
    return len(records) / (time.perf_counter() - started)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--exams", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        engine = create_db_engine(f"sqlite:///{tmp}/bench.sqlite3")
        _immediate_sqlite_transactions(engine)
        SPEC.migrate_database(settings, engine)
        sessions = session_factory(engine)
        metrics = ReportingMetrics()
        deps = dependencies(
            settings,
            sessions,
            policy=read_policy(),
            clock=lambda: NOW,
            store=LocalDirObjectStore(Path(tmp) / "o"),
            metrics=metrics,
            render_pdf=ReportPdfRenderer(),
        )

        def worker(handler) -> ConsumerWorker:
            return ConsumerWorker(
                bus=_NoBus(),
                group="bench",
                topics=[],
                handler=handler,
                sessions=sessions,
                inbox=orm.inbox,
                metrics=metrics,
            )

        baseline = _rate(worker(lambda s, r, e: None), _records(args.exams, "1"))
        routed = _rate(worker(event_handler(deps)), _records(args.exams, "2"))
        redelivered = _rate(worker(event_handler(deps)), _records(args.exams, "2"))
        print(f"exams: {args.exams} (SQLite, single node)")
        print(f"inbox-only baseline : {baseline:8.1f} events/s")
        print(f"route + outbox      : {routed:8.1f} exams/s  ({routed / baseline:.2f}x baseline)")
        print(
            f"redelivered (dedupe): {redelivered:8.1f} events/s  "
            f"({redelivered / baseline:.2f}x baseline)"
        )
        print(f"prefecture average need: ~{30000 / 86400:.2f} exams/s")

        doc = {
            "language": "zh",
            "title": "甲状腺超声检查报告",
            "version": 1,
            "exam": {
                "exam_type": "thyroid",
                "study_instance_uid": "1.2.3",
                "institution_id": "t",
                "patient_ref": "p",
            },
            "findings_text": "甲状腺右叶可见低回声结节。" * 10,
            "conclusion": "结节，建议随访。",
            "signed_by": "dr",
            "signed_at": NOW.isoformat(),
        }
        n, started = 20, time.perf_counter()
        for _ in range(n):
            deps.render_pdf(doc)
        pdf_ms = (time.perf_counter() - started) / n * 1000
        version = {
            "report_id": "r1",
            "version": 1,
            "amended_from_version": 0,
            "findings": [],
            "signed_at": NOW.isoformat(),
            "signed_by": "dr",
            "conclusion": "c",
            "pdf_key": "reports/r1/v1.pdf",
            "language": "zh",
            "title": "t",
        }
        read = {
            "exam_type": "thyroid",
            "patient_ref": "p",
            "study_uid": "1.2.3",
            "exam_completed_at": NOW.isoformat(),
        }
        exam = {
            "instances": [
                {
                    "series_instance_uid": "1.2.3.1",
                    "sop_instance_uid": f"1.2.3.1.{i}",
                    "sop_class_uid": "1.2.840.10008.5.1.4.1.1.6.1",
                    "modality": "US",
                }
                for i in range(20)
            ]
        }
        started = time.perf_counter()
        for _ in range(n):
            build_bundle(version, read, exam)
        fhir_ms = (time.perf_counter() - started) / n * 1000
        print(f"PDF render (font {deps.render_pdf.font}): {pdf_ms:6.1f} ms/report")
        print(f"FHIR bundle build+validate (20 instances): {fhir_ms:6.1f} ms/report")


if __name__ == "__main__":
    main()
