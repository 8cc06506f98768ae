"""``python -m arkouda_k8s.sandbox``: run the simulated cluster in the foreground.

Same as ``arkouda-k8s sandbox [--port P] [--kubeconfig-out FILE] [--api-latency 30ms]``:
prints the API URL and the ``export KUBECONFIG=...`` line, then serves until Ctrl-C or
SIGTERM. ``--api-latency`` answers every API request that much later, as a cluster far
away would.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import Any, TextIO

from ..options import add_sandbox_options


def write_private(path: str, data: bytes) -> None:
    """Replace ``path`` with a file only its owner can read, holding ``data``.

    The kubeconfig carries the admin token: opening an existing file with O_TRUNC would
    keep that file's mode (a 0644 file stays world-readable). A new 0600 file in the same
    directory, renamed over the old one, never exposes the token.
    """
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".kubeconfig-")
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp creates with mode 0600
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def parse_latency(text: str, option: str = "--api-latency") -> float:
    """'30ms', '0.03s', '0.03' -> seconds; a UsageError naming ``option`` otherwise."""
    import re

    from ..errors import UsageError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text or "")
    if not m:
        raise UsageError(f"{option}: {text!r} is not a latency", "use e.g. 30ms or 0.03s")
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def run_foreground(
    port: int = 0,
    kubeconfig_out: str | None = None,
    out: TextIO | None = None,
    api_latency: float = 0.0,
    *,
    nodes: int = 1,
    pull_seconds: float = 0.0,
) -> int:
    """Start a Sandbox, say how to use it, serve until Ctrl-C/SIGTERM; exit code."""
    from . import Sandbox

    out = out or sys.stdout
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    written: str | None = None
    try:
        with Sandbox(
            port=port, api_latency=api_latency, nodes=nodes, pull_seconds=pull_seconds
        ) as sb:
            path = sb.kubeconfig_path
            if kubeconfig_out:
                written = os.path.abspath(kubeconfig_out)
                with open(sb.kubeconfig_path, "rb") as src:
                    write_private(written, src.read())
                path = written
            print(
                "arkouda-k8s sandbox: a SIMULATED Kubernetes API for testing (not a real "
                "cluster; pods run as local processes)",
                file=out,
            )
            print(f"API server: {sb.url}", file=out)
            print(
                f"nodes: {', '.join(sb.node_names)}"
                + (f" (image pulls take {pull_seconds:g}s per node)" if pull_seconds else ""),
                file=out,
            )
            print(f"export KUBECONFIG={path}", file=out)
            print("Press Ctrl-C to stop (the kubeconfig stops working then).", file=out)
            out.flush()
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            print("arkouda-k8s sandbox: stopping", file=out)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if written and os.path.exists(written):
            os.unlink(written)  # holds a token that died with the sandbox
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m arkouda_k8s.sandbox",
        description="Run the arkouda-k8s sandbox: a simulated Kubernetes cluster (not Kubernetes).",
    )
    add_sandbox_options(parser)
    return run_from_args(parser.parse_args(argv))


def run_from_args(args: argparse.Namespace) -> int:
    """``run_foreground`` with the options of ``arkouda-k8s sandbox`` (and of this
    module's own command line)."""
    latency = parse_latency(args.api_latency) if args.api_latency else 0.0
    return run_foreground(
        args.port,
        args.kubeconfig_out,
        api_latency=latency,
        nodes=args.nodes,
        pull_seconds=args.pull_seconds,
    )


if __name__ == "__main__":
    sys.exit(main())
