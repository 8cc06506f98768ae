"""The progress of image pulls: which images the pods are pulling on which nodes (read
from pod states, as Kubernetes shows nothing finer), how long each has been pulling as
this client saw it, the one-line text the progress shows, and the ticker that keeps the
seconds going while the API is quiet. Used by the deploy's waits (``readiness``) and by
``prepull``. Pure apart from the clock and the ticker's thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# How often the progress shows a pull's seconds going on, and after how long a pull is
# shown at all (shorter ones: the image was there, or nearly).
PULL_TICK = 1.0
PULL_SHOW = 2.0


def pulling(pods: Iterable[dict[str, Any]]) -> dict[str, dict[str, str | None]]:
    """Images being pulled, read from pod states: image -> {node: since}, where a pod
    bound to the node has a container of that image still waiting in ContainerCreating
    (on a node without the image, that is the pull; Kubernetes shows nothing finer in a
    pod's status) and ``since`` is when the pod was scheduled (the API server's clock)."""
    out: dict[str, dict[str, str | None]] = {}
    for p in pods:
        spec = p.get("spec") or {}
        node = spec.get("nodeName")
        status = p.get("status") or {}
        if not node or p["metadata"].get("deletionTimestamp"):
            continue
        images = {
            c.get("name"): c.get("image")
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        }
        since = next(
            (
                c.get("lastTransitionTime")
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled"
            ),
            None,
        )
        for cs in (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []
        ):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            image = images.get(cs.get("name")) or cs.get("image")
            if waiting.get("reason") == "ContainerCreating" and image:
                nodes = out.setdefault(image, {})
                if node not in nodes or (since or "") < (nodes[node] or ""):
                    nodes[node] = since
    return out


def pull_text(images: Mapping[str, Mapping[str, Any]], seconds: Mapping[str, float]) -> str:
    """'pulling IMAGE on 3 nodes, 40 s' (one clause per image)."""
    parts = []
    for image in sorted(images):
        n = len(images[image])
        took = seconds.get(image)
        parts.append(
            f"pulling {image} on {n} node{'' if n == 1 else 's'}"
            + (f", {took:.0f} s" if took is not None else "")
        )
    return "; ".join(parts)


class PullClock:
    """How long each image has been pulling, as this client saw it (no clock of the API
    server needed): started at the first sight, forgotten when no node pulls it."""

    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {}
        self._since: dict[str, float] = {}

    def update(self, images: dict[str, dict[str, Any]]) -> PullClock:
        now = time.monotonic()
        self.images = images
        self._since = {i: self._since.get(i, now) for i in images}
        return self

    def _shown(self) -> dict[str, dict[str, Any]]:
        # an image already on its node "pulls" for a blink: not worth a line
        now = time.monotonic()
        return {i: n for i, n in self.images.items() if now - self._since[i] >= PULL_SHOW}

    def shape(self) -> tuple[tuple[str, int], ...]:
        return tuple(sorted((i, len(n)) for i, n in self._shown().items()))

    def text(self) -> str:
        now = time.monotonic()
        # whole seconds, then steps of 5 (a log gets a line per step, not per second)
        return pull_text(
            self._shown(),
            {i: _step(now - t) for i, t in self._since.items()},
        )


def _step(seconds: float) -> float:
    return float(int(seconds)) if seconds < 5 else float(int(seconds) // 5 * 5)


class Ticker(threading.Thread):
    """Calls ``tick`` every ``interval`` seconds until stopped (a pull's seconds go on
    while nothing changes in the API, so no watch event would show them)."""

    def __init__(self, tick: Callable[[], None], interval: float) -> None:
        super().__init__(daemon=True, name="arkouda-k8s-progress")
        self._tick = tick
        self._interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        if self._stop_event.wait(min(PULL_SHOW, self._interval)):
            return
        with contextlib.suppress(Exception):
            self._tick()
        while not self._stop_event.wait(self._interval):
            with contextlib.suppress(Exception):  # progress must never break a deploy
                self._tick()

    def stop(self) -> None:
        self._stop_event.set()
