"""A database or object store going down answers 503 + Retry-After, never a 500 (issue 20 chaos)."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy.exc
import urllib3.exceptions
from fastapi.testclient import TestClient
from starlette.requests import ClientDisconnect

from sonobridge.common.http import create_service_app
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.problems import PROBLEM_JSON


def _app_raising(exc: Exception) -> TestClient:
    app = create_service_app(service="outage", metrics=ServiceMetrics("outage"))

    @app.post("/v1/exams")
    def open_exam() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


# What the chaos run saw while PostgreSQL restarted, and what MinIO's client raises when down.
OUTAGES = [
    sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    urllib3.exceptions.MaxRetryError(None, "/sonobridge/dicom/x.dcm", "connection refused"),
]


@pytest.mark.parametrize("outage", OUTAGES, ids=lambda e: type(e).__name__)
def test_a_dependency_outage_answers_503_with_retry_after(outage: Exception) -> None:
    answer = _app_raising(outage).post("/v1/exams")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert int(answer.headers["retry-after"]) > 0
    assert answer.json()["reason"] == "dependency_unavailable"
    # The exception's message may carry SQL and values: it never reaches the caller.
    assert "server closed" not in answer.text and "SELECT" not in answer.text


def test_a_caller_hanging_up_is_not_logged_as_a_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="sonobridge.common.http"):
        _app_raising(ClientDisconnect()).post("/v1/exams")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("client went away" in r.getMessage() for r in caplog.records)


def test_a_bug_is_still_a_500_with_an_error_id() -> None:
    answer = _app_raising(KeyError("exam")).post("/v1/exams")
    assert answer.status_code == 500
    assert answer.json()["error_id"]
