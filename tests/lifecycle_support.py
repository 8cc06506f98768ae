"""Helpers for the lifecycle tests (kube.py, cluster.py, the CLI's cluster commands).

Everything here reaches the sandbox the way a user's cluster is reached: through a
kubeconfig file and the official client.
"""

from __future__ import annotations

import time
from typing import Any

from arkouda_k8s.cluster import OWNED_KINDS, ArkoudaCluster, Progress, Timeouts
from arkouda_k8s.kube import Kube
from arkouda_k8s.spec import ClusterSpec

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


def wait_no_processes(sb: Any, deadline: float = 10.0) -> list[int]:
    """The pod processes still alive after up to ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while True:
        left = list(sb.pod_processes())
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.1)


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
