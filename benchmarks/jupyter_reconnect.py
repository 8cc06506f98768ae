"""``%arkouda_connect NAME`` after a kernel restart: through the Jupyter server's tunnel
(the arkouda_k8s server extension holds it) against a fresh tunnel of the kernel's own.

A sandbox, a real jupyter_server on 127.0.0.1 with the extension and a deployment made
through its REST API, then one untimed connect in each path (the scenario is a
reconnect: a kernel used the deployment before). Each round restarts the kernel, runs
``%load_ext arkouda_k8s``, imports what the magic needs in either path (the arkouda
client, the lifecycle, the status card: not counted, shown apart), then times the real
``%arkouda_connect NAME`` and each of its steps (tunnel, session, status card), then
computes a sum through it. The fresh-tunnel path is the kernel without the server
(``ARKOUDA_K8S_SERVER_TUNNEL=0``: find the pod, port-forward, Arkouda handshake,
session); it also needs the Kubernetes client, imported before the timing (its import
is shown apart too), while the server's path must not load it at all (checked).

    python benchmarks/jupyter_reconnect.py [--rounds 5] [--widgets]

The goal: the whole magic under 100 ms through the server's tunnel (exit status 1
otherwise), against seconds for a fresh tunnel to a remote cluster.
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
GOAL = 0.1
TIMED = """
import os, sys, time
{env}
t0 = time.perf_counter()
import arkouda, arkouda_k8s.cluster, arkouda_k8s.session, arkouda_k8s.jupyter_link
import arkouda_k8s.widgets
t1 = time.perf_counter()
if {fresh}:
    import kubernetes.client, kubernetes.config
t2 = time.perf_counter()
from arkouda_k8s.magics import _LOADED
m = next(iter(_LOADED.values()))
steps = {{}}
def timed(step, fn):
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            steps[step] = time.perf_counter() - start
    return run
# the magic calls these three in turn: timed as instance attributes
m.cluster = timed("tunnel", m.cluster)
m.bind = timed("session", m.bind)
m.show_status = timed("card", m.show_status)
t3 = time.perf_counter()
get_ipython().run_line_magic("arkouda_connect", "{name}")
t4 = time.perf_counter()
assert int(ak.arange(0, 10, 1).sum()) == 45
print("TIMES", t1 - t0, t2 - t1, t4 - t3, steps["tunnel"], steps["session"], steps["card"],
      int("kubernetes" in sys.modules))
"""


class Round:
    """One ``%arkouda_connect`` in a freshly restarted kernel (seconds)."""

    def __init__(self, line: str) -> None:
        values = [float(x) for x in line.split()[1:]]
        self.imports, self.kube_import, self.whole = values[0:3]
        self.tunnel, self.session, self.card = values[3:6]
        self.kubernetes_loaded = bool(values[6])


def one(kernel: Any, fresh: bool, widgets: bool = False) -> Round:
    kernel.restart()
    kernel.run(f"%load_ext arkouda_k8s\n%config ArkoudaMagics.widgets = {widgets}")
    env = "os.environ['ARKOUDA_K8S_SERVER_TUNNEL'] = '0'" if fresh else ""
    out = kernel.run(TIMED.format(env=env, name=NAME, fresh=fresh))
    return Round(next(ln for ln in out.splitlines() if ln.startswith("TIMES")))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def _row(label: str, server: float, fresh: float) -> str:
    return f"  {label:<36} {_ms(server)} {_ms(fresh)} {fresh / server:6.1f}x"


def report(held: list[Round], fresh: list[Round]) -> bool:
    """Print the figures; whether the goal is met."""

    def med(rounds: list[Round], step: str) -> float:
        return statistics.median(getattr(r, step) for r in rounds)

    print(f"%arkouda_connect after a kernel restart ({len(held)} rounds, median)")
    print(f"  {'':<36} {'server':>11} {'fresh':>11}  ratio")
    for label, step in (
        ("tunnel (server's / port-forward)", "tunnel"),
        ("session (ak bound)", "session"),
        ("status card", "card"),
        ("the whole magic", "whole"),
    ):
        print(_row(label, med(held, step), med(fresh, step)))
    whole = [r.whole for r in held]
    print(
        "  the whole magic through the server's tunnel, each round: "
        + ", ".join(f"{w * 1000:.0f}" for w in whole)
        + f" ms (goal: under {GOAL * 1000:.0f} ms)"
    )
    print(
        "  not counted: the imports either path needs (arkouda client, lifecycle, card) "
        f"{med(held + fresh, 'imports') * 1000:.0f} ms; the fresh path's Kubernetes client "
        f"{med(fresh, 'kube_import') * 1000:.0f} ms more"
    )
    loaded = any(r.kubernetes_loaded for r in held)
    print(f"  the server's path loaded the Kubernetes client: {'yes' if loaded else 'no'}")
    return statistics.median(whole) < GOAL and not loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--widgets",
        action="store_true",
        help="the live panel (a notebook's default) instead of the text card",
    )
    args = parser.parse_args()
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        server = JupyterServer(Path(tmp), sb.kubeconfig_path)
        kernel = None
        try:
            spec = {"name": NAME, "namespace": "default", "cpu": "100m", "memory": "256Mi"}
            op = server.deploy({**spec, "authenticate": False})
            assert op["state"] == "succeeded", op
            kernel = server.start_kernel()
            # the scenario is a reconnect: a kernel has used the deployment before (the
            # server's first connect of its life is not timed, in either path)
            one(kernel, fresh=False, widgets=args.widgets)
            one(kernel, fresh=True, widgets=args.widgets)
            held: list[Round] = []
            fresh: list[Round] = []
            for _ in range(args.rounds):
                held.append(one(kernel, fresh=False, widgets=args.widgets))
                fresh.append(one(kernel, fresh=True, widgets=args.widgets))
            return 0 if report(held, fresh) else 1
        finally:
            if kernel is not None:
                kernel.shutdown()
            server.request("DELETE", f"arkouda-k8s/api/clusters/default/{NAME}")
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
