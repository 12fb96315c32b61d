"""The DICOM port is open from start-up; the SCP behind it is built on the first connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from descriptors import descriptors_past

from sonobridge.ingest.entrypoints.dimse_listener import DimseListener
from sonobridge.ingest.settings import IngestSettings


@pytest.fixture
def listener() -> Iterator[tuple[DimseListener, threading.Event, threading.Thread]]:
    # No association gets as far as the handlers here, so no dependencies are needed.
    scp = DimseListener(cast(Any, None), IngestSettings(dimse_port=0))
    stop = threading.Event()
    thread = threading.Thread(target=scp.run, args=(stop,), daemon=True)
    thread.start()
    assert scp.ready.wait(30)
    yield scp, stop, thread
    stop.set()
    thread.join(10)


def _wait_for(condition: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_port_accepts_connections_before_the_scp_is_built(
    listener: tuple[DimseListener, threading.Event, threading.Thread],
) -> None:
    scp, _, _ = listener
    assert scp.port
    assert scp.scp is None
    with socket.create_connection(("127.0.0.1", scp.port), timeout=5):
        assert _wait_for(lambda: scp.scp is not None and scp.scp.ready.is_set())
    built = scp.scp
    assert built is not None
    # The SCP serves on the very socket bound at start-up, so no connection was refused.
    assert built.port == scp.port
    # And it answers there: a peer that sends no association request is cut off once the ARTIM
    # timeout passes (a port nobody accepted on would leave it waiting). Counting the SCP's
    # association threads instead raced that 2 s window on a loaded machine.
    with socket.create_connection(("127.0.0.1", scp.port), timeout=60) as peer:
        assert peer.recv(1) == b""


def test_a_port_numbered_past_1024_still_hands_its_first_connection_over() -> None:
    # select() refuses such a descriptor; the listener's thread died and the port stayed dead.
    with descriptors_past(1100):
        scp = DimseListener(cast(Any, None), IngestSettings(dimse_port=0))
        stop = threading.Event()
        thread = threading.Thread(target=scp.run, args=(stop,), daemon=True)
        thread.start()
        try:
            assert scp.ready.wait(30)
            with socket.create_connection(("127.0.0.1", scp.port), timeout=5):
                assert _wait_for(lambda: scp.scp is not None and scp.scp.ready.is_set())
        finally:
            stop.set()
            thread.join(10)
    assert not thread.is_alive()


def test_stopping_an_idle_listener_closes_its_port(
    listener: tuple[DimseListener, threading.Event, threading.Thread],
) -> None:
    scp, stop, thread = listener
    port = scp.port
    assert port
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert scp.scp is None
    assert not scp.ready.is_set()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
