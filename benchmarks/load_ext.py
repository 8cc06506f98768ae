"""How long ``%load_ext arkouda_k8s`` takes of its own, against a 0.3 s budget.

Each run is a fresh interpreter (a subprocess) that first builds an IPython shell (not
counted: IPython's own start), then times ``%load_ext arkouda_k8s``: importing the
package and the magics module, reading the settings, registering the magics. It also
reports which heavy modules that pulled in (the Kubernetes client, ipywidgets, numpy,
the lifecycle must load lazily) and the slowest imports by ``-X importtime``.

    python benchmarks/load_ext.py [--runs 7]

Exit status 1 when the median exceeds the budget or a heavy module was imported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BUDGET = 0.3
HEAVY = ("kubernetes", "ipywidgets", "numpy", "arkouda_k8s.cluster", "arkouda_k8s.kube", "arkouda")
ROOT = Path(__file__).resolve().parent.parent

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: nowhere
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: nobody, user: {}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]
"""

CHILD = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
before = set(sys.modules)
t0 = time.perf_counter()
ip.run_line_magic("load_ext", "arkouda_k8s")
elapsed = time.perf_counter() - t0
new = sorted(set(sys.modules) - before)
print(json.dumps({"seconds": elapsed, "modules": new}))
"""


def one_run(importtime: bool, env: dict[str, str]) -> tuple[dict, str]:
    cmd = [sys.executable]
    if importtime:
        cmd += ["-X", "importtime"]
    proc = subprocess.run(
        [*cmd, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def slowest_imports(stderr: str, modules: set[str], top: int = 8) -> list[tuple[int, str]]:
    """(cumulative microseconds, module as indented by -X importtime) the load caused."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, raw = line[12:].split("|")
        name = raw.rstrip()[1:]  # keep the nesting indentation after the separator's space
        if name.strip() in modules and cumulative.strip().isdigit():
            rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        # No kubeconfig: the load-time check for expired deployments has nothing to read,
        # so the figure is the extension's import and registration cost alone.
        env["KUBECONFIG"] = str(Path(home) / "no-kubeconfig")
        env["HOME"] = home
        env["IPYTHONDIR"] = str(Path(home) / "ipython")
        results = [one_run(False, env)[0] for _ in range(args.runs)]
        timed, stderr = one_run(True, env)
        # With a kubeconfig the expired-deployment check starts, in a background thread:
        # the load itself must not wait for it (its server, port 1, never answers).
        kubeconfig = Path(home) / "kubeconfig"
        kubeconfig.write_text(KUBECONFIG)
        env["KUBECONFIG"] = str(kubeconfig)
        with_check = [one_run(False, env)[0]["seconds"] for _ in range(max(3, args.runs // 2))]
    seconds = [r["seconds"] for r in results]
    median = statistics.median(seconds)
    modules = set(results[0]["modules"])
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    print(f"%load_ext arkouda_k8s, {args.runs} fresh interpreters (IPython start not counted)")
    print(
        f"  median {median * 1000:.1f} ms  min {min(seconds) * 1000:.1f} ms  "
        f"max {max(seconds) * 1000:.1f} ms"
    )
    print(f"  budget {BUDGET * 1000:.0f} ms: ratio {median / BUDGET:.2f}")
    checked = statistics.median(with_check)
    print(
        f"  with a kubeconfig (expired-deployment check in the background): median "
        f"{checked * 1000:.1f} ms, ratio {checked / BUDGET:.2f}"
    )
    print(f"  modules imported by the load: {len(modules)}")
    print(f"  heavy modules imported: {', '.join(heavy) if heavy else 'none'}")
    print("  slowest imports (-X importtime, cumulative):")
    for us, name in slowest_imports(stderr, set(timed["modules"])):
        print(f"    {us / 1000:7.1f} ms  {name}")
    return 0 if max(median, checked) <= BUDGET and not heavy else 1


if __name__ == "__main__":
    sys.exit(main())
