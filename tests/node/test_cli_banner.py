"""The serving banner names InferStream's port, and says so when that port is still busy."""

from __future__ import annotations

from sonobridge.node.cli import _stream_address


class _Streams:
    requested_port = 50162

    def __init__(self, bound: int | None) -> None:
        self._bound = bound
        self.timeouts: list[float] = []

    def wait_bound(self, timeout: float = 30.0) -> int:
        self.timeouts.append(timeout)
        if self._bound is None:
            raise RuntimeError("the InferStream server did not start")
        return self._bound


def test_the_banner_names_the_bound_stream_port() -> None:
    assert _stream_address("127.0.0.1", _Streams(50999)) == "127.0.0.1:50999"


def test_a_busy_stream_port_is_said_without_failing_the_banner_or_waiting_long() -> None:
    streams = _Streams(None)
    said = _stream_address("127.0.0.1", streams)
    assert said.startswith("not listening yet (127.0.0.1:50162 busy?")
    assert streams.timeouts and max(streams.timeouts) <= 5.0
