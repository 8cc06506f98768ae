"""Helpers for the lifecycle tests (kube.py, cluster.py, the CLI's cluster commands).

Everything here reaches the sandbox the way a user's cluster is reached: through a
kubeconfig file and the official client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from arkouda_k8s.cluster import OWNED_KINDS, ArkoudaCluster, Progress, Timeouts
from arkouda_k8s.kube import Kube
from arkouda_k8s.spec import ClusterSpec

from . import settled

# Small pods so that 16 locales fit anywhere; short deadlines so a fault shows fast.
SMALL = {"cpu": "100m", "memory": "256Mi"}
FAST = Timeouts(preflight=20, credentials=20, locales=40, server=40, handshake=30, teardown=40)
FAULT = Timeouts(preflight=20, credentials=20, locales=12, server=12, handshake=10, teardown=30)


def spec(name: str, **kw: Any) -> ClusterSpec:
    return ClusterSpec(name=name, namespace=kw.pop("namespace", "default"), **{**SMALL, **kw})


def admin(sb: Any, namespace: str = "default") -> Kube:
    return Kube.from_kubeconfig(sb.kubeconfig_path, namespace=namespace)


def labelled(kube: Kube, name: str, namespace: str = "default") -> list[str]:
    """Every object of instance ``name`` still present (labelled, self-registered or CSR)."""
    sel = f"app.kubernetes.io/instance={name}"
    out = []
    for kind in OWNED_KINDS:
        out += [
            f"{kind}/{o['metadata']['name']}"
            for o in kube.list(kind, namespace, label_selector=sel)["items"]
        ]
    for kind in ("Service", "Endpoints"):
        if kube.get(kind, f"{name}-arkouda", namespace) is not None:
            out.append(f"{kind}/{name}-arkouda")
    if kube.get("CertificateSigningRequest", f"arkouda-k8s-{namespace}-{name}") is not None:
        out.append(f"CertificateSigningRequest/arkouda-k8s-{namespace}-{name}")
    return out


@contextlib.contextmanager
def torn_down(
    kube: Kube, name: str, teardown: Callable[[], object], namespace: str = "default"
) -> Iterator[None]:
    """``with torn_down(kube, name, teardown):``: at the end of the block, even when it
    failed, ``teardown()`` runs, and then nothing labelled with ``name`` may be left.

    For deployments a front end made and tears down (a magic, the CLI); the ``deployed``
    fixture (conftest.py) does the same for an ``ArkoudaCluster``.
    """
    try:
        yield
    finally:
        teardown()
    left = labelled(kube, name, namespace)  # _support is not assertion-rewritten: say it
    assert left == [], f"{namespace}/{name} left objects behind: {left}"


@contextlib.contextmanager
def deployment(
    sb: Any, target: ClusterSpec | ArkoudaCluster, deploy: bool = True, **kw: Any
) -> Iterator[ArkoudaCluster]:
    """``with deployment(sb, spec_or_cluster) as c:`` on any sandbox: ``c`` deployed
    (``deploy=False``: not yet), closed and torn down at the end of the block even when it
    failed, and then nothing of it left. The ``deployed`` fixture is this on the shared
    sandbox."""
    c = target if isinstance(target, ArkoudaCluster) else cluster(sb, target, **kw)

    def close_and_teardown() -> None:
        c.close()
        c.teardown()

    with torn_down(admin(sb), c.spec.name, close_and_teardown, c.namespace):
        if deploy:
            c.deploy()
        yield c


def wait_no_processes(sb: Any, deadline: float = 10.0) -> list[int]:
    """The pod processes still alive after up to ``deadline`` seconds."""
    return settled(lambda: list(sb.pod_processes()), deadline, interval=0.1)


class Recorder:
    """Collects progress events."""

    def __init__(self) -> None:
        self.events: list[Progress] = []

    def __call__(self, event: Progress) -> None:
        self.events.append(event)

    def messages(self) -> list[str]:
        return [f"{e.stage}: {e.message}" for e in self.events]


def cluster(sb: Any, s: ClusterSpec, **kw: Any) -> ArkoudaCluster:
    kw.setdefault("timeouts", FAST)
    return ArkoudaCluster(s, kubeconfig=sb.kubeconfig_path, **kw)


# -- the CLI ------------------------------------------------------------------------------


def run_cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """`arkouda-k8s ARGV` in this process: (exit code, stdout, stderr)."""
    from arkouda_k8s.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_torn_down(sb: Any, capsys: Any, name: str, namespace: str = "default") -> Any:
    """``torn_down`` for a deployment the CLI made: `arkouda-k8s teardown NAME`, which
    must exit 0, at the end of the block, and then nothing of it left."""

    def teardown() -> None:
        code, _, err = run_cli(
            capsys, "teardown", name, "-n", namespace, "--kubeconfig", sb.kubeconfig_path
        )
        assert code == 0, err

    return torn_down(admin(sb), name, teardown, namespace)


def token_of(kube: Kube, name: str, namespace: str = "default") -> str:
    """The server token of deployment ``name`` (from its Secret): what no output may show."""
    import base64

    secret = kube.get("Secret", f"{name}-token", namespace) or {}
    return base64.b64decode(secret["data"]["token"]).decode()


def dead_kubeconfig(folder: Any, namespace: str | None = None) -> tuple[str, int]:
    """A kubeconfig whose API address is a loopback port nothing listens on: (path, port)."""
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ns = f", namespace: {namespace}" if namespace else ""
    path = os.path.join(str(folder), "dead.kubeconfig")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(
            "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
            f"clusters: [{{name: gone, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
            "users: [{name: me, user: {token: not-a-secret}}]\n"
            f"contexts: [{{name: dead, context: {{cluster: gone, user: me{ns}}}}}]\n"
        )
    return path, port


def on_a_terminal(argv: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """What a terminal shows of ``argv``'s stdout (a pseudo-terminal); asserts exit 0."""
    import os
    import pty
    import subprocess

    main_fd, tty_fd = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdout=tty_fd, stderr=subprocess.DEVNULL, env=env)
        os.close(tty_fd)
        chunks = []
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: every writer closed
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=timeout) == 0
    finally:
        os.close(main_fd)
    return b"".join(chunks).decode()


def cli_process(*argv: str) -> Any:
    """`arkouda-k8s ARGV` as a child process (text pipes), for commands that hold on:
    forward, logs -f. The caller stops it."""
    import os
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "arkouda_k8s.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
