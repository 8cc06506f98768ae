"""The stages of a deployment's life as the engine reports and bounds them: the
``Progress`` event each stage sends to front ends and the ``Timeouts`` (one deadline
per stage). Shared by the lifecycle and the modules it delegates to (teardown,
readiness), so none of them needs ``cluster.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Progress:
    """One step of a deploy or teardown, for progress bars and status lines.

    ``note``: a one-off notice within the stage (a locale pod being replaced), not a
    step of its count: a front end shows it as a line of its own, not one a later count
    overwrites or a log thins out."""

    stage: str
    done: int
    total: int
    message: str
    note: bool = False


@dataclass(frozen=True)
class Timeouts:
    """Deadline of each stage, in seconds; no wait in the lifecycle is unbounded."""

    preflight: float = 60.0
    # Includes waiting for an administrator to approve the CSR.
    credentials: float = 300.0
    locales: float = 600.0
    server: float = 300.0
    handshake: float = 120.0
    teardown: float = 180.0
    # How long a pod may stay Unschedulable before the deploy fails: 0 fails at once;
    # on a cluster that autoscales, give the autoscaler time to add a node (e.g. 300).
    unschedulable: float = 0.0
    # --registration server: how long an approved CSR may wait for a signer. A signer
    # answers within seconds; some clusters have none for this signer (EKS) and the
    # request would wait forever.
    signing: float = 60.0


ProgressCallback = Callable[[Progress], None]


class Report(Protocol):
    """What the modules below the lifecycle report through: (stage, done, total,
    message), and ``note=True`` for a one-off notice (``Progress.note``)."""

    def __call__(
        self, stage: str, done: int, total: int, message: str, /, *, note: bool = False
    ) -> None: ...
