"""``python -m arkouda_k8s.tunnel POD PORT``: forward a pod port until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import PROTOCOLS, Tunnel


def main(argv: list[str] | None = None) -> int:
    """``python -m arkouda_k8s.tunnel``: forward a pod port until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m arkouda_k8s.tunnel",
        description="Forward 127.0.0.1:LOCAL to a pod port through the Kubernetes API.",
    )
    parser.add_argument("pod")
    parser.add_argument("remote_port", type=int)
    parser.add_argument("--local-port", type=int, default=0)
    parser.add_argument("--namespace", "-n")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="auto")
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds to wait for the first forward"
    )
    args = parser.parse_args(argv)
    from ..errors import ArkoudaK8sError
    from ..kube import Kube

    try:
        kube = Kube.from_kubeconfig(args.kubeconfig, args.context, args.namespace)
        tunnel = Tunnel(
            kube.endpoint(),
            kube.namespace,
            args.pod,
            args.remote_port,
            args.local_port,
            protocol=args.protocol,
        )
        tunnel.start(timeout=args.timeout)
    except ArkoudaK8sError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    host, port = tunnel.local_address
    print(f"Forwarding from {host}:{port} -> {args.remote_port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        tunnel.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
