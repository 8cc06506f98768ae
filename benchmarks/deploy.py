"""Deploy to Ready in the sandbox: API requests and wall time for 4, 64 and 256 locales.

    python benchmarks/deploy.py [--sizes 4 64 256] [--mode udp] [--api-latency 30ms] [--rounds 3]

For each size: a fresh deployment (udp, 100m cpu / 256Mi per pod), ``deploy()`` until the
Arkouda handshake answers through the tunnel, then ``teardown()``; the fastest of
``--rounds`` such deploys is shown. Requests are counted
twice: by the sandbox API server (every HTTP request it served, by verb) and by our own
client (``Kube.requests``). Waiting is done with list + watch, so the client's count
must not grow with the number of locales: the locale pods are created by the
Deployment's controllers, not by one request per pod. The script exits 1 when the
client's count at the largest size exceeds the smallest by more than ``--slack``.

``--api-latency 30ms`` runs every size twice: without latency, then with the sandbox
answering each API request that much later (a cluster a continent away). The client
counts the round trips it waited for one after another (``Kube.round_trips``: requests
sent while none of its others was waiting, so requests sent side by side count once);
they must stay under ``--max-round-trips`` (default 20), else the script exits 1. The
extra time to Ready is printed next to it.
"""

from __future__ import annotations

import argparse
import sys
import time

from arkouda_k8s.cluster import ArkoudaCluster, Timeouts
from arkouda_k8s.errors import UsageError
from arkouda_k8s.sandbox import Sandbox
from arkouda_k8s.sandbox.__main__ import parse_latency
from arkouda_k8s.spec import ClusterSpec


def run_one(sb: Sandbox, locales: int, mode: str) -> dict[str, object]:
    spec = ClusterSpec(
        name=f"bench-{locales}",
        namespace="default",
        mode=mode,
        locales=locales,
        cpu="100m",
        memory="256Mi",
    )
    cluster = ArkoudaCluster(
        spec,
        kubeconfig=sb.kubeconfig_path,
        timeouts=Timeouts(locales=600, server=300, handshake=120, teardown=600),
    )
    sb.stats.reset()
    start = time.perf_counter()
    cluster.deploy()
    ready = time.perf_counter() - start
    served = sb.stats.requests
    client = cluster.kube.requests
    trips = cluster.kube.round_trips
    start = time.perf_counter()
    cluster.teardown()
    gone = time.perf_counter() - start
    return {
        "locales": locales,
        "ready_s": ready,
        "teardown_s": gone,
        "client_requests": client,
        "round_trips": trips,
        "server_requests": served["total"],
        "by_verb": {k: v for k, v in sorted(served.items()) if k not in ("total", "discovery")},
    }


def latency(text: str) -> float:
    """'30ms', '0.03s', '0.03' -> seconds (the sandbox's own parser)."""
    try:
        return parse_latency(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 64, 256])
    parser.add_argument("--mode", default="udp", choices=["udp", "smp"])
    parser.add_argument("--slack", type=int, default=10, help="allowed growth of client requests")
    parser.add_argument(
        "--api-latency",
        type=latency,
        default=0.0,
        metavar="DELAY",
        help="also deploy with the sandbox answering each API request this late (e.g. 30ms)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="deploys per size and latency; the fastest is shown (a shared machine's load "
        "moves every figure)",
    )
    parser.add_argument(
        "--max-round-trips",
        type=int,
        default=20,
        help="with --api-latency: allowed sequential round trips to Ready",
    )
    args = parser.parse_args(argv)
    rows = []
    verdicts = []
    delays = [0.0, args.api_latency] if args.api_latency else [0.0]
    # Two nodes: 256 locale pods exceed one node's 256-pod allocatable with the server.
    with Sandbox(nodes=2) as sb:
        for n in args.sizes:
            by_delay = {}
            for delay in delays:
                sb.api_latency = delay
                runs = [run_one(sb, n, args.mode) for _ in range(max(1, args.rounds))]
                row = min(runs, key=lambda r: float(r["ready_s"]))  # type: ignore[arg-type]
                by_delay[delay] = row
                print(
                    f"{n:>4} locales, API latency {delay * 1000:3.0f} ms: ready in "
                    f"{row['ready_s']:6.2f} s, teardown {row['teardown_s']:6.2f} s, "
                    f"client requests {row['client_requests']:>4} in "
                    f"{row['round_trips']:>3} round trips, served "
                    f"{row['server_requests']:>4} {row['by_verb']}",
                    flush=True,
                )
            sb.api_latency = 0.0
            rows.append(by_delay[0.0])
            if args.api_latency:
                slow = by_delay[args.api_latency]
                extra = float(slow["ready_s"]) - float(by_delay[0.0]["ready_s"])  # type: ignore[arg-type]
                trips = int(slow["round_trips"])  # type: ignore[call-overload]
                ok = trips < args.max_round_trips
                verdicts.append(ok)
                print(
                    f"{n:>4} locales: {trips} sequential round trips to Ready (allowed under "
                    f"{args.max_round_trips}): {'ok' if ok else 'FAIL'}; "
                    f"{args.api_latency * 1000:.0f} ms latency added {extra:+.2f} s "
                    f"(= {extra / args.api_latency:.0f} x the latency, the server's own "
                    "discovery requests included)",
                    flush=True,
                )
    growth = int(rows[-1]["client_requests"]) - int(rows[0]["client_requests"])  # type: ignore[call-overload]
    verdict = "ok" if growth <= args.slack else "FAIL"
    verdicts.append(verdict == "ok")
    print(
        f"client requests from {rows[0]['locales']} to {rows[-1]['locales']} locales grew by "
        f"{growth} (allowed {args.slack}): {verdict}"
    )
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
