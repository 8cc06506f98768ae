"""Deploy to Ready in the sandbox: API requests and wall time for 4, 64 and 256 locales.

    python benchmarks/deploy.py [--sizes 4 64 256] [--mode udp]

For each size: a fresh deployment (udp, 100m cpu / 256Mi per pod), ``deploy()`` until the
Arkouda handshake answers through the tunnel, then ``teardown()``. Requests are counted
twice: by the sandbox API server (every HTTP request it served, by verb) and by our own
client (``Kube.requests``). Waiting is done with list + watch, so the client's count
must not grow with the number of locales: the locale pods are created by the
Deployment's controllers, not by one request per pod. The script exits 1 when the
client's count at the largest size exceeds the smallest by more than ``--slack``.
"""

from __future__ import annotations

import argparse
import sys
import time

from arkouda_k8s.cluster import ArkoudaCluster, Timeouts
from arkouda_k8s.sandbox import Sandbox
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
    start = time.perf_counter()
    cluster.teardown()
    gone = time.perf_counter() - start
    return {
        "locales": locales,
        "ready_s": ready,
        "teardown_s": gone,
        "client_requests": client,
        "server_requests": served["total"],
        "by_verb": {k: v for k, v in sorted(served.items()) if k not in ("total", "discovery")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 64, 256])
    parser.add_argument("--mode", default="udp", choices=["udp", "smp"])
    parser.add_argument("--slack", type=int, default=10, help="allowed growth of client requests")
    args = parser.parse_args(argv)
    rows = []
    # Two nodes: 256 locale pods exceed one node's 256-pod allocatable with the server.
    with Sandbox(nodes=2) as sb:
        for n in args.sizes:
            row = run_one(sb, n, args.mode)
            rows.append(row)
            print(
                f"{n:>4} locales: ready in {row['ready_s']:6.2f} s, teardown {row['teardown_s']:6.2f} s, "
                f"client requests {row['client_requests']:>4}, served {row['server_requests']:>4} "
                f"{row['by_verb']}",
                flush=True,
            )
    growth = int(rows[-1]["client_requests"]) - int(rows[0]["client_requests"])  # type: ignore[call-overload]
    verdict = "ok" if growth <= args.slack else "FAIL"
    print(
        f"client requests from {rows[0]['locales']} to {rows[-1]['locales']} locales grew by "
        f"{growth} (allowed {args.slack}): {verdict}"
    )
    return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
