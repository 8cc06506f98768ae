"""Calls the deploy makes side by side: one call on a daemon thread whose result (or
error) is collected later, and the outcome of a call whose failure may not matter."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

R = TypeVar("R")


def outcome(fn: Callable[..., R], *args: Any) -> tuple[R | None, BaseException | None]:
    """(result, None) or (None, the exception): for calls whose failure may not matter."""
    try:
        return fn(*args), None
    except Exception as exc:
        return None, exc


def result(done: tuple[R | None, BaseException | None]) -> R:
    """The value of an ``outcome``, or its exception raised."""
    value, exc = done
    if exc is not None:
        raise exc
    return value  # type: ignore[return-value]


class Background(threading.Thread, Generic[R]):
    """One call on a daemon thread; ``result()`` waits for it and re-raises its error."""

    def __init__(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> None:
        super().__init__(name="arkouda-k8s-background", daemon=True)
        self._call = functools.partial(fn, *args, **kwargs)
        self._outcome: tuple[R | None, BaseException | None] = (None, None)

    def run(self) -> None:
        self._outcome = outcome(self._call)

    def result(self) -> R:
        self.join()
        return result(self._outcome)

    def take(self) -> R:
        """``result()``, once: the job forgets it (the caller becomes its only holder)."""
        self.join()
        done, self._outcome = self._outcome, (None, None)
        return result(done)


def in_background(fn: Callable[..., R], *args: Any, **kwargs: Any) -> Background[R]:
    job = Background(fn, *args, **kwargs)
    job.start()
    return job
