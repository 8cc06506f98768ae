"""Security, measured on a running deployment: loopback-only listeners, authentication
on by default, the server's Role exactly what it needs, no secret on the local disk
outside the pod's own directory (0700, removed with the pod), files we write 0600, and
(through the conftest's needles) no secret in any output of this folder's tests."""

from __future__ import annotations

import ipaddress
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from lifecycle_support import FAST, cluster, spec

from arkouda_k8s import manifests
from arkouda_k8s.errors import ArkoudaK8sError
from arkouda_k8s.protocol import ArkoudaProbe

NAME = "rel-sec"

# What the server pod needs from the API (registration "client", the default): find the
# locale pods of its own instance. Nothing else: no Secrets, no writes, no cluster scope.
SERVER_NEEDS = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


@pytest.fixture(scope="module")
def deployed(sb: Any) -> Iterator[Any]:
    c = cluster(sb, spec(NAME, locales=2), timeouts=FAST).deploy()
    try:
        yield c
    finally:
        c.teardown()


def test_every_listener_of_ours_is_loopback(deployed: Any) -> None:
    listening = [
        conn.laddr
        for conn in psutil.Process().net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert deployed.address in [(a.ip, a.port) for a in listening]
    for addr in listening:
        assert ipaddress.ip_address(addr.ip).is_loopback, f"listening on {addr.ip}:{addr.port}"


def test_authentication_is_on_by_default(deployed: Any, needles: Any) -> None:
    host, port = deployed.address
    with ArkoudaProbe(host, port, token=deployed.token(), timeout=5) as probe:
        assert probe.handshake()
    for token in (None, "not-the-token-0123456789"):
        with (
            ArkoudaProbe(host, port, token=token, timeout=5) as probe,
            pytest.raises(ArkoudaK8sError) as refused,
        ):
            probe.getmemused()
        assert "token" in str(refused.value).lower()
        needles.check(f"{refused.value} {refused.value.hint or ''} {probe!r}", "the refusal")


def test_the_servers_role_grants_exactly_what_it_needs(deployed: Any, kube: Any) -> None:
    rendered = [o for o in manifests.rbac(deployed.spec) if o["kind"] == "Role"]
    assert [r["rules"] for r in rendered] == [SERVER_NEEDS]
    live = kube.get("Role", rendered[0]["metadata"]["name"], "default")
    assert live["rules"] == SERVER_NEEDS
    bindings = kube.list(
        "RoleBinding", "default", label_selector=f"app.kubernetes.io/instance={NAME}"
    )
    assert [b["roleRef"]["name"] for b in bindings["items"]] == [rendered[0]["metadata"]["name"]]
    cluster_roles = kube.list("ClusterRole", label_selector=f"app.kubernetes.io/instance={NAME}")
    assert cluster_roles["items"] == []


def test_private_keys_only_in_the_pods_own_directories(
    sb: Any, kube: Any, deployed: Any, needles: Any
) -> None:
    pod_root = Path(sb.kubelet.root)
    uids = {p["metadata"]["uid"] for p in kube.list("Pod", "default")["items"]}
    pod_dirs = [p for p in pod_root.iterdir() if p.name in uids]
    assert len(pod_dirs) >= 2  # the server and the locale pod
    for d in pod_dirs:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    # Secret material anywhere else we write: the temp and runtime folders, the home's
    # arkouda-k8s files and the working directory (the kubeconfig holds the sandbox's own
    # admin token, by design; it is 0600 below).
    places = {Path(tempfile.gettempdir()), Path.cwd(), Path.home() / ".cache" / "arkouda-k8s"}
    if os.environ.get("XDG_RUNTIME_DIR"):
        places.add(Path(os.environ["XDG_RUNTIME_DIR"]))
    needle_values = [v for v in needles.values if v != sb.admin_token]
    for place in places:
        for path in _files(place, skip=pod_root):
            if path == Path(sb.kubeconfig_path):
                continue
            try:
                text = path.read_bytes()[:1_000_000].decode("utf-8", "replace")
            except OSError:
                continue
            leaked = [v[:6] for v in needle_values if v in text]
            assert not leaked, f"secret material in {path}"


def _files(place: Path, skip: Path, limit: int = 20_000) -> Iterator[Path]:
    """Regular files we could have written under ``place`` (recent, ours, not huge)."""
    if not place.is_dir():
        return
    seen = 0
    for root, dirs, files in os.walk(place):
        dirs[:] = [d for d in dirs if Path(root, d) != skip and not d.startswith((".git", "."))]
        for f in files:
            path = Path(root, f)
            try:
                info = path.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                continue
            if info.st_size > 5_000_000:
                continue
            seen += 1
            if seen > limit:
                return
            yield path


def test_a_pods_directory_is_removed_with_the_pod(sb: Any, kube: Any) -> None:
    c = cluster(sb, spec("rel-sec-gone", locales=1), timeouts=FAST).deploy()
    server = kube.get("Pod", c.names.server_pod, "default")
    where = Path(sb.kubelet.root) / server["metadata"]["uid"]
    assert where.is_dir() and stat.S_IMODE(where.stat().st_mode) == 0o700
    c.teardown()
    assert not where.exists()


def test_files_we_write_are_private(sb: Any, deployed: Any) -> None:
    assert stat.S_IMODE(os.stat(sb.kubeconfig_path).st_mode) == 0o600
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    records = Path(base, f"arkouda-k8s-{os.getuid()}")
    assert records.is_dir(), "the held tunnel is recorded for the user's other processes"
    # this process's record (other processes of the user may hold tunnels too)
    mine = [p for p in records.rglob("*") if p.name.endswith(f"{os.getpid()}.json")]
    assert mine
    for path in [records, *records.iterdir(), *mine]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & 0o077, f"{path} is {oct(mode)}"


def test_a_hand_edited_token_secret_is_named_at_once(sb: Any, kube: Any, deployed: Any) -> None:
    """Someone changed the token Secret by hand: reattaching says the server refused the
    token (and which Secret), within seconds, instead of waiting out the handshake."""
    import base64
    import time

    from arkouda_k8s.cluster import ArkoudaCluster

    name = deployed.names.token_secret
    original = kube.get("Secret", name, "default")
    edited = base64.b64encode(b"edited-by-hand-0123456789abcdef").decode()
    kube.patch("Secret", name, {"data": {"token": edited}}, "default")
    try:
        start = time.monotonic()
        with pytest.raises(ArkoudaK8sError) as err:
            ArkoudaCluster.from_name(NAME, "default", kubeconfig=sb.kubeconfig_path, timeouts=FAST)
        took = time.monotonic() - start
    finally:
        kube.patch("Secret", name, {"data": original["data"]}, "default")
    line = err.value.one_line()
    assert "token" in line.lower() and "\n" not in line
    assert took < 20, f"{took:.0f}s to tell a refused token"
