"""What one status read costs: port-forwards the API server accepts, and wall-clock time.

A sandbox and one deployment (1 locale). Then, each ``--rounds`` times: the status of the
tunnel the deploy holds (``cluster.status()``: the server's memory read through it), and
the status of the same deployment seen by a process that holds no tunnel
(``status(handshake=True)``, what `arkouda-k8s status NAME` and the Jupyter server's GET
status of a deployment it does not hold do: a short-lived tunnel, a handshake, the
memory read, the tunnel stopped). The sandbox's API server counts the port-forwards it
accepted (``portforward_registry.opened``); every read must show memory and version.

    python benchmarks/status_read.py [--rounds 7]

Exit status 1 when a read opened more port-forwards than GOAL says or lacked a number.
Figures (shared 2-core machine; port-forwards per read, then the median wall clock of
9 reads in each of 3-4 runs, which the machine's load moves):

    before (e073dc7)   held tunnel  2, 15-20 ms     short-lived  5, 40-83 ms
    after              held tunnel  0,  3.1-3.4 ms  short-lived  1, 20-27 ms

(one kept connection per tunnel for the handshake and the memory reads, one TCP
connection per probe conversation, and no port-forward check of the short-lived tunnel's
own before its handshake).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _support.lifecycle import admin, deployment, spec  # noqa: E402

from arkouda_k8s.cluster import ArkoudaCluster  # noqa: E402
from arkouda_k8s.sandbox import Sandbox  # type: ignore[attr-defined]  # noqa: E402

NAME = "bench-status"
GOAL = {"held": 0, "short-lived": 1}


def timed(sb: Any, read: Any) -> tuple[int, float, Any]:
    registry = sb.portforward_registry
    before, started = registry.opened, time.perf_counter()
    status = read()
    return registry.opened - before, time.perf_counter() - started, status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, list[tuple[int, float]]] = {kind: [] for kind in GOAL}
    failures = []
    with Sandbox() as sb, deployment(sb, spec(NAME, locales=1)) as held:
        shown = ArkoudaCluster.from_name(NAME, "default", kube=admin(sb), connect=False)
        reads = {
            "held": held.status,
            "short-lived": lambda: shown.status(handshake=True),
        }
        for kind, read in reads.items():
            read()  # untimed: imports, the first connection of the held tunnel
            for _ in range(args.rounds):
                opened, seconds, status = timed(sb, read)
                results[kind].append((opened, seconds))
                if status.memory_used is None or not status.arkouda_version:
                    failures.append(f"{kind}: no numbers: {status.warnings}")
    for kind, runs in results.items():
        forwards = sorted({opened for opened, _ in runs})
        times = [seconds * 1000 for _, seconds in runs]
        print(
            f"{kind:12} port-forwards per read {forwards}   "
            f"median {statistics.median(times):6.1f} ms   min {min(times):6.1f} ms   "
            f"max {max(times):6.1f} ms   ({len(runs)} reads)"
        )
        if max(forwards) > GOAL[kind]:
            failures.append(f"{kind}: {max(forwards)} port-forwards per read (goal {GOAL[kind]})")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
