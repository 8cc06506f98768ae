"""``%arkouda_connect NAME`` after a kernel restart: through the Jupyter server's tunnel
(the arkouda_k8s server extension holds it) against a fresh tunnel of the kernel's own.

A sandbox, a real jupyter_server on 127.0.0.1 with the extension and a deployment made
through its REST API. Each round restarts the kernel, imports what the magic needs (not
counted: the same in both paths, shown apart), then times ``%arkouda_connect`` and a sum
on the server. The fresh-tunnel path is the kernel without the server
(``ARKOUDA_K8S_SERVER_TUNNEL=0``): port-forward, Arkouda handshake, session.

    python benchmarks/jupyter_reconnect.py [--rounds 3]

The goal: under 100 ms through the server's tunnel, against seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _support.jupyter import JupyterServer  # noqa: E402

from arkouda_k8s.sandbox import Sandbox  # type: ignore[attr-defined]  # noqa: E402

NAME = "bench-reconnect"
TIMED = """
import os, time
{env}
t0 = time.perf_counter()
import arkouda_k8s.cluster, arkouda_k8s.session, arkouda_k8s.jupyter_link, arkouda
import kubernetes.client, kubernetes.config
t1 = time.perf_counter()
from arkouda_k8s.magics import _LOADED
m = next(iter(_LOADED.values()))
c = m.cluster("{name}", connect=True)  # what %arkouda_connect does, step by step
t2 = time.perf_counter()
m.bind(c)
t3 = time.perf_counter()
m.show_status(c)
t4 = time.perf_counter()
assert int(ak.arange(0, 10, 1).sum()) == 45
print("TIMES", t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def one(kernel: Any, fresh: bool) -> tuple[float, float, float, float]:
    """(imports, tunnel, session, status card) in seconds, in a freshly restarted kernel."""
    kernel.restart()
    kernel.run("%load_ext arkouda_k8s\n%config ArkoudaMagics.widgets = False")
    env = "os.environ['ARKOUDA_K8S_SERVER_TUNNEL'] = '0'" if fresh else ""
    out = kernel.run(TIMED.format(env=env, name=NAME))
    line = next(ln for ln in out.splitlines() if ln.startswith("TIMES"))
    imports, tunnel, bind, card = (float(x) for x in line.split()[1:])
    return imports, tunnel, bind, card


def _row(label: str, server: float, fresh: float) -> str:
    return f"  {label:<34} {server * 1000:8.1f} ms {fresh * 1000:8.1f} ms {fresh / server:6.1f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        server = JupyterServer(Path(tmp), sb.kubeconfig_path)
        kernel = None
        try:
            spec = {"name": NAME, "namespace": "default", "cpu": "100m", "memory": "256Mi"}
            op = server.deploy({**spec, "authenticate": False})
            assert op["state"] == "succeeded", op
            kernel = server.start_kernel()
            held, fresh = [], []
            for _ in range(args.rounds):
                held.append(one(kernel, fresh=False))
                fresh.append(one(kernel, fresh=True))

            def med(rounds: list[tuple[float, ...]], *parts: int) -> float:
                return statistics.median(sum(r[p] for p in parts) for r in rounds)

            print(f"%arkouda_connect after a kernel restart ({args.rounds} rounds, median)")
            print(f"  {'':<34} {'server':>11} {'fresh':>11}  ratio")
            print(_row("tunnel (the server holds it)", med(held, 1), med(fresh, 1)))
            print(_row("tunnel + session (ak bound)", med(held, 1, 2), med(fresh, 1, 2)))
            print(_row("the whole magic (+ status card)", med(held, 1, 2, 3), med(fresh, 1, 2, 3)))
            imports = statistics.median(r[0] for r in held + fresh)
            print(f"  (imports before the magic, the same in either path: {imports * 1000:.0f} ms)")
            return 0 if med(held, 1) < 0.1 else 1
        finally:
            if kernel is not None:
                kernel.shutdown()
            server.request("DELETE", f"arkouda-k8s/api/clusters/default/{NAME}")
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
