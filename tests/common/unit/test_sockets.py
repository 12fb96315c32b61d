"""`readable` tells data, end of file and silence apart, for descriptors past select()'s limit."""

from __future__ import annotations

import socket

import pytest
from descriptors import descriptors_past

from sonobridge.common.sockets import readable


@pytest.mark.parametrize("past_1024", [False, True])
def test_silence_data_and_end_of_file(past_1024: bool) -> None:
    if past_1024:
        with descriptors_past(1100):
            ours, peer = socket.socketpair()
    else:
        ours, peer = socket.socketpair()
    try:
        assert (ours.fileno() > 1024) is past_1024
        assert not readable(ours.fileno())
        peer.sendall(b"x")
        assert readable(ours.fileno(), 5.0)
        assert ours.recv(1) == b"x"
        assert not readable(ours.fileno())
        peer.close()
        assert readable(ours.fileno(), 5.0)
        assert ours.recv(1) == b""
    finally:
        ours.close()
        peer.close()
