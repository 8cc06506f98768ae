"""Faults, soak and load against the sandbox, with figures.

Injects, at seeded random points: API 500/503 and connection resets (before the server
acts, and after it acted with the answer lost) during status, tunnel start, deploy and
teardown; port-forward streams dropped during a soak of id+checksum requests through one
tunnel; the API server restarted (every connection cut, the port closed for a moment)
during deploy, status, teardown and under a soak through the tunnel; the server pod
deleted, and the server or a locale pod evicted by the node, while a computation runs;
the CLI SIGKILLed mid-deploy and mid-teardown, then torn down from a new process. Then
32 clients through one tunnel against a direct connection to the same stand-in server.

    python benchmarks/reliability.py                # the full run (>= 300 faults)
    python benchmarks/reliability.py --short        # what CI runs, a few minutes
    python benchmarks/reliability.py --seed 1234    # replay a run

The last line reads
``faults=<n> survived=<n> lost=<n> orphans=<n> max_detect_s=<x> max_recover_s=<y>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "reliability"))

import faultlab  # noqa: E402
from _support.lifecycle import FAST, admin, cluster, spec  # noqa: E402

from arkouda_k8s.sandbox import Sandbox  # type: ignore[attr-defined]  # noqa: E402

FULL = {
    "requests": 10_000,
    "status": 150,
    "tunnel": 30,
    "deploys": 8,
    "cli": 4,
    "kills": 2,
    "restarts": 6,
    "restart_requests": 3_000,
    "evictions": 2,
    "clients": 32,
    "load_s": 60.0,
}
SHORT = {
    "requests": 1_500,
    "status": 20,
    "tunnel": 6,
    "deploys": 2,
    "cli": 2,
    "kills": 1,
    "restarts": 1,
    "restart_requests": 600,
    "evictions": 1,
    "clients": 32,
    "load_s": 5.0,
}


def run(scale: dict[str, float], seed: int | None) -> faultlab.Ledger:
    rng, seed = faultlab.make_rng(seed)
    ledger = faultlab.Ledger(seed)
    with Sandbox() as sb:
        kube = admin(sb)
        pod = faultlab.echo_pod(kube, "rel-echo")
        started = time.monotonic()
        soak = faultlab.soak(kube, sb, pod, ledger, rng, requests=int(scale["requests"]))
        print(
            f"soak: {soak['requests']} requests, {soak['drops']} drops, lost {soak['lost']}, "
            f"answered twice {soak['twice']}, {soak['s']:.1f}s",
            flush=True,
        )
        faultlab.tunnel_faults(sb, kube, pod, ledger, rng, int(scale["tunnel"]))
        c = cluster(sb, spec("rel-status", locales=1), timeouts=FAST).deploy()
        try:
            faultlab.status_faults(sb, c, ledger, rng, int(scale["status"]))
        finally:
            c.teardown()
        ledger.orphans += faultlab.orphans_of(sb, kube, "rel-status")
        faultlab.deploy_teardown_faults(sb, kube, ledger, rng, int(scale["deploys"]))
        for i in range(int(scale["kills"])):
            faultlab.server_pod_killed(sb, kube, ledger, f"rel-kill{i}")
        faultlab.deploy_teardown_faults(
            sb, kube, ledger, rng, int(scale["restarts"]), "rel-r", kinds=(faultlab.RESTART,)
        )
        restarts = faultlab.soak(
            kube,
            sb,
            pod,
            ledger,
            rng,
            requests=int(scale["restart_requests"]),
            drop_every=(100, 300),
            kind=faultlab.RESTART,
        )
        print(
            f"soak under API restarts: {restarts['requests']} requests, {restarts['drops']} "
            f"restarts, lost {restarts['lost']}, answered twice {restarts['twice']}",
            flush=True,
        )
        for i in range(int(scale["evictions"])):
            for component in ("server", "locale"):
                faultlab.pods_evicted(sb, kube, ledger, f"rel-ev{i}-{component[0]}", component)
            faultlab.evicted_during_deploy(sb, kube, ledger, f"rel-ev{i}-d")
        faultlab.cli_killed(sb, kube, ledger, rng, int(scale["cli"]))
        print(f"faults done in {time.monotonic() - started:.0f}s", flush=True)
        figures = faultlab.load(sb, int(scale["clients"]), scale["load_s"])
    print()
    print(f"load: {int(scale['clients'])} clients for {scale['load_s']:g}s (getconfig)")
    for path, f in figures.items():
        print(
            f"  {path:<7} {f['per_s']:>8.0f} req/s  p50 {f['p50_ms']:6.2f} ms  "
            f"p99 {f['p99_ms']:6.2f} ms  errors {f['errors']:.0f}"
        )
    print()
    for note in ledger.notes:
        print(f"note: {note}")
    print(ledger.table())
    print(
        f"seed={seed} lost={ledger.lost} answered_twice={ledger.duplicated} orphans={ledger.orphans}"
    )
    return ledger


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the short run CI makes")
    parser.add_argument("--seed", type=int, help="replay the run of this seed")
    args = parser.parse_args()
    ledger = run(SHORT if args.short else FULL, args.seed)
    print(ledger.summary())
    ok = (
        not ledger.failures() and ledger.lost == 0 and ledger.duplicated == 0 and not ledger.orphans
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
