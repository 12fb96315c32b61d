"""Pytest plugin: watch the test process's open descriptors and report their peak at the end.

One process runs the whole suite; descriptors a fixture leaves open add up across it, and past
1024 select() fails in libraries that still use it. A peak above the threshold warns in the
summary and, with SONOBRIDGE_FD_STRICT=1, fails the run.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import pytest

# Under select()'s 1024 with room for what a test holds while it runs.
THRESHOLD = int(os.environ.get("SONOBRIDGE_FD_WARN", "900"))
_FD_DIR = "/proc/self/fd"


def open_descriptors() -> int:
    """How many descriptors this process holds (0 where /proc is not mounted)."""
    try:
        return len(os.listdir(_FD_DIR)) - 1  # less the listing's own
    except OSError:
        return 0


def descriptor_kinds() -> Counter[str]:
    """This process's descriptors by kind: file, socket, pipe, anon_inode, dev."""
    kinds: Counter[str] = Counter()
    for fd in os.listdir(_FD_DIR):
        try:
            target = os.readlink(f"{_FD_DIR}/{fd}")
        except OSError:
            continue  # closed meanwhile, or the listing's own
        if target.startswith("/dev/"):
            kinds["dev"] += 1
        elif target.startswith(("socket:", "pipe:", "anon_inode:")):
            kinds[target.split(":", 1)[0]] += 1
        else:
            kinds["file"] += 1
    return kinds


@dataclass
class Peak:
    """The most descriptors seen after a test, and after which."""

    count: int = 0
    after: str = ""


_peak = Peak()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> object:
    """Count after each test's teardown, when its fixtures should have closed what they held."""
    yield
    count = open_descriptors()
    if count > _peak.count:
        _peak.count, _peak.after = count, item.nodeid


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the peak and the count at the end; warn above the threshold."""
    if not _peak.after:
        return
    kinds = ", ".join(f"{k} {n}" for k, n in descriptor_kinds().most_common())
    line = f"open descriptors: peak {_peak.count} after {_peak.after}; at the end {kinds}"
    if _peak.count > THRESHOLD:
        terminalreporter.write_line(f"WARNING {line} (over {THRESHOLD}: a fixture leaks)", red=True)
    else:
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With SONOBRIDGE_FD_STRICT=1, a peak over the threshold fails an otherwise green run."""
    strict = os.environ.get("SONOBRIDGE_FD_STRICT") == "1"
    if strict and _peak.count > THRESHOLD and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
