"""Image pulls of the sandbox's nodes: each node has its own image cache, and a pull
costs time once per node and image (like a real node, where the Arkouda image's
gigabytes dominate a deploy's wall time).

The kubelet calls :meth:`Pulls.pull` before a container's first start; the time an image
takes is set per image (``Sandbox(pull_seconds=8)`` for every image, or a mapping from
image to seconds, ``"*"`` for the rest). Containers of one node that need the same
image at once share one pull, as the container runtime does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

# A pull of an image without a configured time: short, but not free.
DEFAULT_PULL_SECONDS = 0.05


class Pulls:
    """Per-node image caches and the pulls that fill them."""

    def __init__(self, pull_seconds: float | Mapping[str, float] = 0.0) -> None:
        self.set_pull_seconds(pull_seconds)
        self._cached: dict[str, set[str]] = {}
        self._running: dict[tuple[str, str], asyncio.Future[None]] = {}

    def set_pull_seconds(self, pull_seconds: float | Mapping[str, float]) -> None:
        times = dict(pull_seconds) if isinstance(pull_seconds, Mapping) else {"*": pull_seconds}
        for image, seconds in times.items():
            if float(seconds) < 0:
                raise ValueError(f"pull_seconds[{image!r}]: {seconds!r} is negative")
        self._times = {k: float(v) for k, v in times.items()}

    def seconds(self, image: str) -> float:
        """How long a pull of ``image`` takes on a node without it."""
        return self._times.get(image, self._times.get("*", 0.0)) or DEFAULT_PULL_SECONDS

    def cached(self, node: str) -> set[str]:
        """The images present on ``node``."""
        return set(self._cached.get(node, ()))

    def present(self, node: str, image: str) -> bool:
        return image in self._cached.get(node, ())

    async def pull(self, node: str, image: str) -> float:
        """Pull ``image`` onto ``node`` (joining a pull already under way); the seconds
        this caller waited. The pull runs on its own: a pod deleted meanwhile stops
        waiting, the node still gets the image (as with a real runtime)."""
        t0 = time.monotonic()
        key = (node, image)
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch(node, image))
            self._running[key] = task
            task.add_done_callback(lambda _t: self._running.pop(key, None))
        await asyncio.shield(task)
        return time.monotonic() - t0

    async def _fetch(self, node: str, image: str) -> None:
        await asyncio.sleep(self.seconds(image))
        self._cached.setdefault(node, set()).add(image)

    def under_way(self) -> set[tuple[str, str]]:
        """(node, image) of every pull not finished yet."""
        return set(self._running)

    def forget(self, node: str | None = None) -> None:
        """Empty one node's cache (every node's without ``node``)."""
        if node is None:
            self._cached.clear()
        else:
            self._cached.pop(node, None)
