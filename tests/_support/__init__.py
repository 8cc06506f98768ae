"""What the tests share: waiting with a deadline here; the rest by concern.

- ``_support.lifecycle``: specs, clusters and CLI runs against the shared sandbox, and
  what a deployment leaves behind (``labelled``, ``wait_no_processes``).
- ``_support.echo``: the echo pod of the port-forward and tunnel tests.
- ``_support.jupyter``: a real Jupyter server for the server extension's tests.
- ``_support.pod_root``: the real images' filesystems modelled over this machine's.

The folder ``tests`` is on the import path through pytest's ``pythonpath`` setting
(pyproject.toml), so every test imports ``_support`` the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
    until: Callable[[T], object] = bool,
) -> T:
    """``probe()``'s first answer that ``until`` accepts (by default: a truthy one),
    polled every ``interval`` seconds until ``timeout`` seconds have passed.

    When the deadline passes the test fails with ``message`` (what was awaited; a
    callable is asked then, so it can describe the state at that moment) and the last
    answer. An exception from ``probe`` is not retried (it is a failure, not a "not yet").
    """
    end = time.monotonic() + timeout
    while True:
        got = probe()
        if until(got):
            return got
        if time.monotonic() > end:
            text = message() if callable(message) else message
            raise AssertionError(f"not within {timeout:g}s: {text or probe!r} (last: {got!r})")
        time.sleep(interval)


def settled(
    probe: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    until: Callable[[T], object] = lambda got: not got,
) -> T:
    """``probe()``'s answer once ``until`` accepts it (by default: once it is falsy), or
    its last answer after ``timeout`` seconds.

    For "nothing left" checks and for measurements: the caller asserts on (or records)
    what is returned, so a failure shows what was still there.
    """
    end = time.monotonic() + timeout
    while True:
        got = probe()
        if until(got) or time.monotonic() > end:
            return got
        time.sleep(interval)
