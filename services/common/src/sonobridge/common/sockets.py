"""Whether a socket has something to read, for a descriptor of any number."""

from __future__ import annotations

from select import POLLERR, POLLHUP, POLLIN, poll


def readable(fileno: int, timeout_s: float = 0.0) -> bool:
    """Return True once a read on `fileno` would not block: data, end of file or an error."""
    # poll, not select: select() refuses descriptors numbered 1024 or more, which a busy
    # service's sockets reach.
    watch = poll()
    watch.register(fileno, POLLIN | POLLERR | POLLHUP)
    return bool(watch.poll(timeout_s * 1000))
