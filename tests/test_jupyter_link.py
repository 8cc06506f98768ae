"""A kernel's link to the Jupyter server (arkouda_k8s/jupyter_link.py) without a server:
where a kubeconfig points, read without the Kubernetes client (the kernel compares it
with the server's before using its tunnel), and the server's status and list documents
read back as what the server saw."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from arkouda_k8s import jupyter_link
from arkouda_k8s.errors import UsageError
from arkouda_k8s.kube import Kube
from arkouda_k8s.status import ClusterInfo, ClusterStatus

TWO_CONTEXTS = """apiVersion: v1
kind: Config
current-context: first
clusters:
- {name: one, cluster: {server: "https://10.0.0.1:6443/"}}
- {name: two, cluster: {server: "https://api.example.test"}}
users: [{name: u, user: {token: not-read}}]
contexts:
- {name: first, context: {cluster: one, user: u}}
- {name: second, context: {cluster: two, user: u, namespace: team}}
"""


def test_api_target_names_what_the_kubernetes_client_would_reach(sb: Any, tmp_path: Path) -> None:
    path = str(sb.kubeconfig_path)
    for namespace in (None, "elsewhere"):
        kube = Kube.connect(path, None, namespace)
        target = jupyter_link.api_target(path, None, namespace)
        assert target == jupyter_link.ApiTarget(kube.server, kube.namespace, kube.context)

    config = tmp_path / "config"
    config.write_text(TWO_CONTEXTS)
    for context in (None, "second"):
        kube = Kube.connect(str(config), context, None)
        target = jupyter_link.api_target(str(config), context, None)
        assert target is not None
        assert (target.server, target.namespace) == (kube.server, kube.namespace)
    # a context the file lacks: no answer here, the Kube's own error for the user
    assert jupyter_link.api_target(str(config), "third") is None
    with pytest.raises(UsageError, match="third"):
        Kube.connect(str(config), "third")


def test_api_target_in_a_pod_and_without_any_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    pod = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    target = jupyter_link.api_target(environ=pod, namespace="ns")
    assert target == jupyter_link.ApiTarget("https://[fd00::1]:443", "ns", None)
    assert jupyter_link.api_target(environ={}) is None  # the Kube says "no kubeconfig"


def _target_in_a_new_process(path: Path, cache: Path) -> list[str]:
    """api_target's answer in a fresh interpreter (a restarted kernel), and whether it
    loaded the Kubernetes client and PyYAML."""
    code = (
        "import sys\nfrom arkouda_k8s import jupyter_link\n"
        f"t = jupyter_link.api_target({str(path)!r}, cache_dir={str(cache)!r})\n"
        "print(t.server, t.namespace, t.context, 'kubernetes' in sys.modules, 'yaml' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return out.stdout.split()


def test_a_restarted_kernel_reads_the_kubeconfig_without_loading_parsers(
    tmp_path: Path,
) -> None:
    """No Kubernetes client ever; PyYAML only until the answer is kept in the (private)
    runtime folder, and again as soon as the file changes."""
    config, cache = tmp_path / "config", tmp_path / "runtime"
    cache.mkdir()
    config.write_text(TWO_CONTEXTS)
    first = _target_in_a_new_process(config, cache)
    assert first == ["https://10.0.0.1:6443", "default", "first", "False", "True"]
    assert _target_in_a_new_process(config, cache) == first[:4] + ["False"]
    kept = next(cache.glob("arkouda-k8s-kubeconfig-*.json")).read_text()
    assert "not-read" not in kept  # the file's credentials are not copied
    config.write_text(TWO_CONTEXTS.replace("current-context: first", "current-context: second"))
    assert _target_in_a_new_process(config, cache) == [
        "https://api.example.test", "team", "second", "False", "True"
    ]  # fmt: skip


def test_status_and_list_documents_read_back_as_sent() -> None:
    status = ClusterStatus(
        name="demo",
        namespace="team",
        context="ctx",
        stage="Ready",
        locales_ready=3,
        locales_total=3,
        server_phase="Running",
        server_ready=True,
        address=("127.0.0.1", 41234),
        tunnel_state="open",
        memory_used=1234,
        memory_max=4 << 30,
        arkouda_version="v2023.05.05",
        age=125.0,
        expires_at=datetime(2026, 12, 7, 13, 0, 5, tzinfo=UTC),
        message="",
        heartbeat_expired=False,
        locales=4,
        mode="udp",
        # the kernel's card shows why the server's numbers are missing, as the server saw
        warnings=("the API server refused the port-forward: forbidden",),
    )
    assert ClusterStatus.from_dict(status.to_dict()) == status
    assert ClusterStatus.from_dict(status.to_dict()).to_text() == status.to_text()
    info = ClusterInfo(
        name="demo",
        namespace="team",
        stage="Locales",
        locales_ready=1,
        locales_total=3,
        mode="udp",
        release="v2023.05.05",
        age=60.0,
        heartbeat=datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC),
        expires_at=None,
        heartbeat_expired=True,
        context="ctx",
        server_pod="demo-server",
        memory="4Gi",
        memory_max=12 << 30,
        tunnel_address=("127.0.0.1", 5555),
    )
    assert ClusterInfo.from_dict(info.to_dict()) == info
