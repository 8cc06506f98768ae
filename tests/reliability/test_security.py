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
from _support.lifecycle import FAST, cluster, deployment, labelled, spec

from arkouda_k8s import manifests
from arkouda_k8s.errors import ArkoudaK8sError
from arkouda_k8s.protocol import ArkoudaProbe

NAME = "rel-sec"

# What the server pod needs from the API (registration "client", the default): find the
# locale pods of its own instance. Nothing else: no Secrets, no writes, no cluster scope.
SERVER_NEEDS = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]

# What each container may do beyond an unprivileged process, and why. Every one drops
# ALL and forbids privilege escalation (no sudo); these are the ones added back. Each
# capability of sshd is needed: without any one of them the sandbox's deploy fails.
SSHD = {
    "SETUID": "sshd logs the launcher in as ubuntu; the script switches to ubuntu",
    "SETGID": "the same switch of groups",
    "SYS_CHROOT": "sshd's privilege separation chroots into /run/sshd",
    "NET_BIND_SERVICE": "sshd listens on port 22",
}
CHOWN = {"CHOWN": "the init container gives the hostPath directory to uid 1000"}
# (mode, container) -> (runAsUser, capabilities added)
PRIVILEGES = {
    ("udp", "arkouda-server"): (0, SSHD),
    ("udp", "arkouda-locale"): (0, SSHD),
    ("udp", "persistence-owner"): (0, CHOWN),
    ("udp", "prometheus-arkouda-exporter"): (None, {}),
    ("smp", "arkouda-server"): (1000, {}),
    ("smp", "persistence-owner"): (0, CHOWN),
    ("smp", "prometheus-arkouda-exporter"): (None, {}),
}
CAPABILITY_BITS = {"CHOWN": 0, "SETGID": 6, "SETUID": 7, "NET_BIND_SERVICE": 10, "SYS_CHROOT": 18}


@pytest.fixture(scope="module")
def rel_sec(sb: Any) -> Iterator[Any]:
    """One deployment for the module (the deployed fixture is per test): torn down at the
    end, with nothing of it left."""
    with deployment(sb, spec(NAME, locales=2), timeouts=FAST) as c:
        yield c


def _pods(spec_: Any) -> list[dict[str, Any]]:
    locale = manifests.locale_deployment(spec_)["spec"]["template"]
    return [manifests.server_pod(spec_)] + ([locale] if spec_.mode == "udp" else [])


@pytest.mark.parametrize("mode", ["udp", "smp"])
def test_containers_hold_only_what_sshd_needs_each_with_its_reason(mode: str) -> None:
    from arkouda_k8s.spec import Persistence

    s = spec(NAME, mode=mode, locales=2, metrics=True, persistence=Persistence("/mnt/ak"))
    seen = set()
    for pod in _pods(s):
        annotations = pod["metadata"].get("annotations", {})
        for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
            user, caps = PRIVILEGES[(mode, c["name"])]
            seen.add(c["name"])
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert sorted(sc["capabilities"].get("add", [])) == sorted(caps), c["name"]
            assert sc.get("runAsUser") == user, c["name"]
            assert not sc.get("privileged")
            assert sc.get("runAsNonRoot", False) == (user is not None and user != 0)
            for cap in caps:
                why = annotations[manifests.CAPABILITY_ANNOTATION + cap]
                assert why.startswith(c["name"] + ": ") and len(why) > 40, why
        added = {k for k in annotations if k.startswith(manifests.CAPABILITY_ANNOTATION)}
        wanted = {
            manifests.CAPABILITY_ANNOTATION + cap
            for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
            for cap in PRIVILEGES[(mode, c["name"])][1]
        }
        assert added == wanted
    assert "persistence-owner" in seen


def _status_bits(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{field} missing for {pid}")


def test_arkouda_runs_as_the_images_user_and_only_sshd_holds_capabilities(
    sb: Any, kube: Any, rel_sec: Any
) -> None:
    """On the running deployment: the rendered securityContext is what the pods got, the
    Arkouda processes run as uid 1000 with no capability, and what runs as root (sshd, and
    a locale's waiting shell) holds sshd's four capabilities at most."""
    from arkouda_k8s.sandbox.kubelet import container_support

    if container_support() is not None:
        pytest.skip(f"containers are not isolated here: {container_support()}")
    sshd_bits = sum(1 << CAPABILITY_BITS[c] for c in SSHD)
    pods = kube.list("Pod", "default", label_selector=f"app.kubernetes.io/instance={NAME}")
    ips = {p["status"]["podIP"]: p for p in pods["items"]}
    assert len(ips) == 2
    for pod in ips.values():
        for c in pod["spec"]["containers"]:
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": sorted(SSHD)}
    by_user: dict[int, set[str]] = {0: set(), 1000: set()}
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("SANDBOX_POD_IP") not in ips:
                continue
            uid, name, pid = proc.uids().effective, proc.name(), proc.pid
            effective = _status_bits(pid, "CapEff")
        except (psutil.Error, OSError):
            continue
        by_user.setdefault(uid, set()).add(name)
        if uid == 0:
            assert effective & ~sshd_bits == 0, (name, hex(effective))
        else:
            assert effective == 0, (name, hex(effective))
    assert set(by_user) == {0, 1000}, by_user
    assert by_user[0] <= {"sshd", "sh", "sleep"}, by_user
    assert any(n.startswith("arkouda_server") for n in by_user[1000]), by_user


def test_a_deploy_with_a_host_path_and_metrics_runs_without_sudo(sb: Any, deployed: Any) -> None:
    """The init container (root, CHOWN only) gives the node's directory to uid 1000; the
    server and its locales write there with no way to escalate; the exporter runs with no
    capability at all."""
    from arkouda_k8s.spec import Persistence

    s = spec("rel-sec-hostpath", locales=2, metrics=True, persistence=Persistence("/mnt/rel-sec"))
    with deployed(s, timeouts=FAST) as c:
        assert c.status().stage == "Ready"
        from arkouda_k8s.sandbox.kubelet import container_support

        if container_support() is None:  # isolated containers: the sandbox's node keeps it
            node_dir = Path(sb.kubelet.root) / "node" / "mnt" / "rel-sec"
            assert (node_dir.stat().st_uid, node_dir.stat().st_gid) == (1000, 1000)


@pytest.mark.parametrize("missing", ["SYS_CHROOT", "SETUID"])
def test_without_one_of_sshds_capabilities_the_deploy_fails(
    sb: Any, kube: Any, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """The list is not longer than needed, and the sandbox holds pods to it: without
    SYS_CHROOT sshd's privilege separation cannot log the launcher in; without SETUID
    nothing can switch to ubuntu. (NET_BIND_SERVICE and SETGID fail the same way: sshd
    cannot bind port 22, setpriv cannot set the group.)"""
    from arkouda_k8s.errors import DeployError
    from arkouda_k8s.sandbox.kubelet import container_support

    if container_support() is not None:
        pytest.skip(f"containers are not isolated here: {container_support()}")
    fewer = {k: v for k, v in manifests.SSHD_CAPABILITIES.items() if k != missing}
    monkeypatch.setattr(manifests, "SSHD_CAPABILITIES", fewer)
    name = f"rel-sec-no-{missing.lower().replace('_', '')}"
    with pytest.raises(DeployError) as failed:
        cluster(sb, spec(name, locales=2), timeouts=FAST).deploy()
    line = failed.value.one_line()
    assert "ssh" in line or "setresuid" in line, line
    assert labelled(kube, name) == []


def test_every_listener_of_ours_is_loopback(rel_sec: Any) -> None:
    listening = [
        conn.laddr
        for conn in psutil.Process().net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert rel_sec.address in [(a.ip, a.port) for a in listening]
    for addr in listening:
        assert ipaddress.ip_address(addr.ip).is_loopback, f"listening on {addr.ip}:{addr.port}"


def test_authentication_is_on_by_default(rel_sec: Any, needles: Any) -> None:
    host, port = rel_sec.address
    with ArkoudaProbe(host, port, token=rel_sec.token(), timeout=5) as probe:
        assert probe.handshake()
    for token in (None, "not-the-token-0123456789"):
        with (
            ArkoudaProbe(host, port, token=token, timeout=5) as probe,
            pytest.raises(ArkoudaK8sError) as refused,
        ):
            probe.getmemused()
        assert "token" in str(refused.value).lower()
        needles.check(f"{refused.value} {refused.value.hint or ''} {probe!r}", "the refusal")


def test_the_servers_role_grants_exactly_what_it_needs(rel_sec: Any, kube: Any) -> None:
    rendered = [o for o in manifests.rbac(rel_sec.spec) if o["kind"] == "Role"]
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
    sb: Any, kube: Any, rel_sec: Any, needles: Any
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


def test_a_pods_directory_is_removed_with_the_pod(sb: Any, kube: Any, deployed: Any) -> None:
    with deployed(spec("rel-sec-gone", locales=1), timeouts=FAST) as c:
        server = kube.get("Pod", c.names.server_pod, "default")
        where = Path(sb.kubelet.root) / server["metadata"]["uid"]
        assert where.is_dir() and stat.S_IMODE(where.stat().st_mode) == 0o700
    assert not where.exists()  # the block's end tore the deployment down


def test_files_we_write_are_private(sb: Any, rel_sec: Any) -> None:
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


def test_a_hand_edited_token_secret_is_named_at_once(sb: Any, kube: Any, rel_sec: Any) -> None:
    """Someone changed the token Secret by hand: reattaching says the server refused the
    token (and which Secret), within seconds, instead of waiting out the handshake."""
    import base64
    import time

    from arkouda_k8s.cluster import ArkoudaCluster

    name = rel_sec.names.token_secret
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
