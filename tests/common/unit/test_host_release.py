"""A service host closes, once and on stop, what its plumbing built, never what a caller passed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI

from sonobridge.common.host import ServiceHost
from sonobridge.common.infrastructure import Plumbing
from sonobridge.common.settings import ServiceSettings


def test_stop_runs_every_release_once_even_after_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    released: list[str] = []

    def broken() -> None:
        released.append("broken")
        raise OSError("already gone")

    host = ServiceHost(
        "svc",
        app=FastAPI(),
        http_host="127.0.0.1",
        http_port=0,
        releases=[lambda: released.append("bus"), broken, lambda: released.append("engine")],
    )
    host.start()
    assert released == []
    with caplog.at_level(logging.ERROR, logger="sonobridge.common.host"):
        host.stop()
        host.stop()

    assert released == ["bus", "broken", "engine"]
    assert "releasing a resource on stop failed" in caplog.text


def test_plumbing_releases_the_bus_and_engine_it_built_and_not_those_passed(
    tmp_path: Path,
) -> None:
    settings = ServiceSettings(data_dir=tmp_path)
    bus, engine = cast(Any, object()), cast(Any, object())

    passed = Plumbing.build("ingest", settings, bus=bus, engine=engine)
    built = Plumbing.build("ingest", settings)
    try:
        assert passed.releases == ()
        assert built.releases == (built.bus.close, built.engine.dispose)
    finally:
        for release in built.releases:
            release()
