"""Hold low descriptors, so the next socket a process opens is numbered past select()'s limit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def descriptors_past(limit: int) -> Iterator[None]:
    """Hold open descriptors until the next one the process opens is numbered above `limit`."""
    held = [os.open(os.devnull, os.O_RDONLY)]
    while held[-1] <= limit:
        held.append(os.open(os.devnull, os.O_RDONLY))
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
