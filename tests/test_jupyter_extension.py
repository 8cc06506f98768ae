"""The Jupyter server extension (arkouda_k8s/jupyter_extension.py) in a real jupyter_server
on 127.0.0.1 over the sandbox: REST list/status/deploy/teardown, one server-owned tunnel
shared by two kernels and kept across a kernel restart, authentication and XSRF, the
heartbeat of held deployments and the teardown of ephemeral ones at shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import eventually
from _support.jupyter import JupyterServer
from _support.lifecycle import labelled, run_cli, torn_down

from arkouda_k8s.cluster import HEARTBEAT_ANNOTATION, ArkoudaCluster
from arkouda_k8s.errors import ClusterNotFound

pytest.importorskip("jupyter_server")

API = "arkouda-k8s/api"
SMALL = {"cpu": "100m", "memory": "256Mi", "locales": 2, "namespace": "default"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(sb: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    srv = JupyterServer(
        tmp_path_factory.mktemp("jupyter"), sb.kubeconfig_path, "--ArkoudaK8s.heartbeat_interval=1"
    )
    try:
        yield srv
    finally:
        srv.stop()


def _connect_code(name: str) -> str:
    return (
        "%load_ext arkouda_k8s\n"
        f"%arkouda_connect {name}\n"
        "from arkouda_k8s.magics import _LOADED\n"
        f"c = next(iter(_LOADED.values())).clusters[{name!r}]\n"
        "print('ADDRESS', c.address, type(c.tunnel).__name__)\n"
        "print('SUM', ak.arange(0, 10, 1).sum())\n"
        "print(c.status().to_text())\n"
    )


# Run after a connect's cell: the look for expired deployments it asked for runs once
# that cell ends; when it is done, was the Kubernetes client ever loaded?
KUBERNETES_LOADED = (
    "import sys\n"
    "from arkouda_k8s.magics import _LOADED\n"
    "m = next(iter(_LOADED.values()))\n"
    "assert m._expired_checked\n"
    "if m._expired_check is not None:\n"
    "    m._expired_check.join(60)\n"
    "print('KUBERNETES', 'kubernetes' in sys.modules)\n"
)


def _address(output: str) -> str:
    line = next(ln for ln in output.splitlines() if ln.startswith("ADDRESS"))
    return line.split(" ", 1)[1]


def test_installing_the_package_enables_the_extension(tmp_path: Path) -> None:
    # this environment's install (pip install -e, as the README says) placed the file
    installed = Path(sys.prefix, "etc/jupyter/jupyter_server_config.d/arkouda_k8s.json")
    assert json.loads(installed.read_text())["ServerApp"]["jpserver_extensions"] == {
        "arkouda_k8s": True
    }
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path), "NO_COLOR": "1"},
    )
    text = out.stdout + out.stderr
    assert "arkouda_k8s" in text and "arkouda_k8s 0.1.0" in text, text
    # a normal install: the wheel carries the same file into etc/jupyter
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("arkouda_k8s-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        assert (
            "arkouda_k8s-0.1.0.data/data/etc/jupyter/jupyter_server_config.d/arkouda_k8s.json"
            in zf.namelist()
        )


def test_unauthenticated_and_cross_origin_requests_are_refused(server: JupyterServer) -> None:
    status, _ = server.request("GET", f"{API}/clusters", token=False)
    assert status == 403
    status, _ = server.request("POST", f"{API}/clusters", {"spec": {"name": "nope"}}, token=False)
    assert status == 403
    # A browser holding the user's login cookie, posting without the _xsrf token: from
    # another site (Jupyter's origin check answers 404, "Blocking Cross Origin API
    # request"), and even from the same origin (the XSRF check: 403)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    opener.open(f"{server.url}api/status?token={server.token}", timeout=30).read()
    for origin, refusal in (("http://evil.example", 404), (server.url.rstrip("/"), 403)):
        req = urllib.request.Request(
            f"{server.url}{API}/clusters",
            data=json.dumps({"spec": {"name": "csrf", **SMALL}}).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Origin": origin},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(req, timeout=30)
        assert refused.value.code == refusal, origin
    assert "Blocking Cross Origin API request" in server.log_text()
    # the same cookie does read (a GET needs no XSRF token): the refusals were the checks
    ok = opener.open(f"{server.url}{API}/clusters", timeout=30)
    assert ok.status == 200
    status, doc = server.request("GET", f"{API}/clusters")
    assert "csrf" not in [i["name"] for i in doc["items"]]


def test_rest_deploy_list_status_errors_teardown(server: JupyterServer, kube: Any) -> None:
    name = "jx-rest"
    op = server.deploy({"name": name, **SMALL})
    assert op["state"] == "succeeded", op
    stages = [p["stage"] for p in op["progress"]]
    assert "handshake" in stages and stages[-1] == "ready", stages
    assert op["status"]["stage"] == "Ready"

    status, doc = server.request("GET", f"{API}/clusters")
    assert status == 200
    item = next(i for i in doc["items"] if i["name"] == name)
    assert item["stage"] == "Ready" and item["localePods"] == {"ready": 1, "total": 1}
    assert item["heldByServer"] is True and item["tunnel"]["address"].startswith("127.0.0.1:")
    assert item["heartbeatAgeSeconds"] is not None and item["expiresAt"] is None

    status, doc = server.request("GET", f"{API}/clusters/default/{name}")
    assert status == 200 and doc["kind"] == "ClusterStatus" and doc["stage"] == "Ready", doc
    assert doc["arkoudaVersion"]

    # errors: the CLI's one line and hint, with HTTP statuses
    status, doc = server.request("POST", f"{API}/clusters", {"spec": {"name": "x", "locales": 0}})
    assert status == 400 and doc["message"].startswith("locales:"), doc
    status, doc = server.request(
        "POST", f"{API}/clusters", {"spec": {"name": name, **SMALL, "locales": 3}}
    )
    assert status == 409 and "exists with different settings" in doc["message"], doc
    assert "teardown" in doc["hint"]
    status, doc = server.request("GET", f"{API}/clusters/default/jx-none")
    assert status == 404 and doc["kind"] == "ClusterNotFound" and doc["hint"], doc
    status, doc = server.request("POST", f"{API}/clusters/default/jx-none/tunnel")
    assert status == 404, doc
    for path in ("operations/0badc0de", "operations/0badc0de/events"):
        status, doc = server.request("GET", f"{API}/{path}")
        assert status == 404 and "no operation '0badc0de'" in doc["message"], (path, doc)

    status, doc = server.request("DELETE", f"{API}/clusters/default/{name}")
    assert status == 200 and any(d.startswith("Pod/") for d in doc["deleted"]), doc
    assert labelled(kube, name) == []
    status, doc = server.request("GET", f"{API}/clusters/default/{name}")
    assert status == 404


def test_status_of_a_held_deployment_reads_over_its_one_kept_connection(
    server: JupyterServer, sb: Any, kube: Any
) -> None:
    """A deployment the server holds: every GET status reads the server's memory over
    the connection its deploy's handshake opened and keeps with the tunnel, so no GET
    opens a port-forward and one forwarded connection stays open, not two (the server's
    own kept connection used to come on top of the handshake's)."""
    name = "jx-held"
    registry = sb.portforward_registry
    streams_before = registry.open_streams
    with torn_down(kube, name, lambda: server.request("DELETE", f"{API}/clusters/default/{name}")):
        assert server.deploy({"name": name, **SMALL})["state"] == "succeeded"
        opened = registry.opened
        for _ in range(3):
            status, doc = server.request("GET", f"{API}/clusters/default/{name}")
            assert status == 200 and doc["heldByServer"] is True, doc
            assert doc["memory"]["usedBytes"] is not None and doc["arkoudaVersion"], doc
        assert registry.opened == opened, f"{registry.opened - opened} port-forwards in 3 GETs"
        assert registry.open_streams - streams_before == 1, registry.open_streams


def test_rest_status_of_a_deployment_not_held_carries_the_warnings(
    server: JupyterServer, sb: Any, deployed: Any
) -> None:
    """The server holds no tunnel to it: GET status reads memory and version through a
    short-lived one (not reported as a tunnel: it is stopped), and when that is refused
    the document still answers and its `warnings` say why (the CLI's stderr lines)."""
    from _support.lifecycle import spec

    with deployed(spec("jx-warn", locales=1)) as c:
        c.close()
        status, doc = server.request("GET", f"{API}/clusters/default/jx-warn")
        assert status == 200 and doc["heldByServer"] is False, doc
        assert doc["arkoudaVersion"] and doc["memory"]["usedBytes"] is not None, doc
        assert doc["warnings"] == [] and doc["tunnel"] is None, doc
        sb.faults.deny("*", "pods/portforward", user="*")
        try:  # a new read, not the one just made (shared for a few seconds)
            status, doc = server.request("GET", f"{API}/clusters/default/jx-warn?refresh=1")
        finally:
            sb.faults.clear()
        assert status == 200 and doc["stage"] == "Ready", doc
        assert doc["memory"]["usedBytes"] is None, doc
        assert len(doc["warnings"]) == 1 and "pods/portforward" in doc["warnings"][0], doc


def test_status_polls_of_a_deployment_not_held_share_one_read(
    sb: Any, deployed: Any, tmp_path: Path
) -> None:
    """Every tab or panel polling GET status of a deployment the server holds no tunnel
    to made the server open a short-lived port-forward and handshake per request (the
    sandbox's API server counts the port-forwards it accepts). Within the reuse window
    (600 s here, so that the test does not race it) they share one read: N requests at
    once await the one in flight, N later ones get it with its age; `?refresh=1` reads
    again; a deploy or teardown through the server forgets the read."""
    from concurrent.futures import ThreadPoolExecutor

    from _support.lifecycle import spec

    n, name = 5, "jx-polled"
    path = f"{API}/clusters/default/{name}"
    registry = sb.portforward_registry
    srv = JupyterServer(tmp_path, sb.kubeconfig_path, "--ArkoudaK8s.status_reuse_seconds=600")

    def forwards(requests: Any) -> tuple[int, list[tuple[int, Any]]]:
        before = registry.opened
        answers = list(requests())
        assert all(code == 200 for code, _ in answers), answers
        return registry.opened - before, answers

    try:
        with deployed(spec(name, locales=1)) as held:
            held.close()  # the deploy's own tunnel: nobody holds one now
            with ThreadPoolExecutor(n) as pool:
                at_once, first = forwards(
                    lambda: pool.map(lambda _: srv.request("GET", path), range(n))
                )
            one_after_another, later = forwards(
                lambda: (srv.request("GET", path) for _ in range(n))
            )
            one_read, [(_, fresh)] = forwards(lambda: [srv.request("GET", f"{path}?refresh=1")])
            assert one_read >= 1, "a read opens a short-lived port-forward"
            assert (at_once, one_after_another) == (one_read, 0), (
                f"{n} GETs at once: {at_once} port-forwards, {n} after them: "
                f"{one_after_another}; one read: {one_read}"
            )
            docs = [doc for _, doc in first + later]
            assert len({doc["readAt"] for doc in docs}) == 1, docs  # the same read
            assert all(doc["stage"] == "Ready" and doc["heldByServer"] is False for doc in docs)
            assert all(doc["memory"]["usedBytes"] is not None for doc in docs), docs
            assert fresh["readAgeSeconds"] == 0 and fresh["readAt"] >= docs[0]["readAt"]
            again, [(_, shared)] = forwards(lambda: [srv.request("GET", path)])
            assert again == 0 and shared["readAt"] == fresh["readAt"], shared
            assert shared["readAgeSeconds"] >= 0

            # a deploy through the server forgets the read: here it fails (port-forwards
            # refused), and the next GET says why rather than repeating the read before it
            sb.faults.deny("*", "pods/portforward", user="*")
            try:
                op = srv.deploy({"name": name, **SMALL, "locales": 1})
                assert op["state"] == "failed", op
                code, doc = srv.request("GET", path)
            finally:
                sb.faults.clear()
            assert code == 200 and doc["heldByServer"] is False, doc
            assert any("pods/portforward" in w for w in doc["warnings"]), doc
            # a teardown through the server forgets it too: gone, not the last read
            assert srv.request("DELETE", path)[0] == 200
            code, doc = srv.request("GET", path)
            assert code == 404 and doc["kind"] == "ClusterNotFound", doc
    finally:
        srv.stop()


def test_rest_teardown_removes_remains_whose_spec_is_unreadable(
    server: JupyterServer, sb: Any, kube: Any, deployed: Any
) -> None:
    """DELETE of a deployment the server does not hold is the library's one teardown by
    name: what a state ConfigMap of ours owns goes even when no spec can be read from it
    (the answer was 404 and everything stayed)."""
    from arkouda_k8s.manifests import SPEC_ANNOTATION
    from arkouda_k8s.spec import ClusterSpec

    name = "jx-unread"
    remains = ArkoudaCluster(
        ClusterSpec(name=name, mode="smp", **SMALL), kubeconfig=sb.kubeconfig_path
    )
    with deployed(remains, deploy=False):  # its teardown is for when the DELETE failed to
        remains.deploy(wait=False)
        unread = {"metadata": {"annotations": {SPEC_ANNOTATION: None}}}
        kube.patch("ConfigMap", f"{name}-state", unread)
        kube.patch("Pod", f"{name}-server", unread)
        assert f"Pod/{name}-server" in labelled(kube, name)
        status, doc = server.request("DELETE", f"{API}/clusters/default/{name}")
        assert status == 200 and f"Pod/{name}-server" in doc["deleted"], doc
        assert labelled(kube, name) == []


def test_two_kernels_share_one_tunnel_and_a_restart_reattaches_through_it(
    server: JupyterServer, kube: Any
) -> None:
    name = "jx-shared"
    # no token: the installable 2020 client cannot send one
    assert server.deploy({"name": name, **SMALL, "authenticate": False})["state"] == "succeeded"
    first, second = server.start_kernel(), server.start_kernel()
    try:
        out1 = first.run(_connect_code(name))
        out2 = second.run(_connect_code(name))
        status, doc = server.request("GET", f"{API}/clusters/default/{name}")
        held = "('{}', {})".format(*doc["tunnel"]["address"].rsplit(":", 1))
        assert _address(out1) == _address(out2) == f"{held} _BorrowedTunnel", (out1, out2)
        assert "SUM 45" in out1 and "SUM 45" in out2
        # the server's status, as the kernel sees it; the kernel needed no Kubernetes
        # client of its own (its import alone takes seconds in a fresh kernel)
        assert "stage    Ready" in out1 and f"shared at {doc['tunnel']['address']}" in out1
        assert re.search(r"memory +\S+ \S+ used of", out1), out1
        assert "KUBERNETES False" in first.run(KUBERNETES_LOADED)
        assert "KUBERNETES False" in second.run(KUBERNETES_LOADED)

        first.restart()
        out = first.run(_connect_code(name))
        assert _address(out) == f"{held} _BorrowedTunnel" and "SUM 45" in out, out
        # the other kernel kept computing through the same tunnel meanwhile
        assert "45" in second.run("print(ak.arange(0, 10, 1).sum())")

        # the server renews the heartbeat of what it holds (interval 1 s here)
        def beat() -> str:
            cm = kube.get("ConfigMap", f"{name}-state", "default")
            return str(cm["metadata"]["annotations"][HEARTBEAT_ANNOTATION])

        before = beat()
        eventually(beat, 30, 0.2, "the heartbeat renewed", until=lambda now: now != before)
    finally:
        first.shutdown()
        second.shutdown()
        server.request("DELETE", f"{API}/clusters/default/{name}")


def _events(server: JupyterServer, op_id: str, token: bool = True) -> list[tuple[str, Any]]:
    """The server-sent events of operation ``op_id``, read until the stream ends."""
    req = urllib.request.Request(
        f"{server.url}{API}/operations/{op_id}/events",
        headers={"Accept": "text/event-stream"},
    )
    if token:
        req.add_header("Authorization", f"token {server.token}")
    events, name = [], ""
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


def test_deploy_progress_streams_as_server_sent_events(server: JupyterServer) -> None:
    name = "jx-events"
    status, op = server.request("POST", f"{API}/clusters", {"spec": {"name": name, **SMALL}})
    assert status == 202, op
    try:
        events = _events(server, op["id"])  # while it deploys, until it ends
        stages = [data["stage"] for kind, data in events if kind == "progress"]
        assert "handshake" in stages and stages[-1] == "ready", events
        kind, final = events[-1]
        assert kind == "succeeded" and final["status"]["stage"] == "Ready", events
        assert final["progress"] == [data for kind, data in events if kind == "progress"]
        # the polled operation tells the same story; a finished one streams it all at once
        assert server.request("GET", f"{API}/operations/{op['id']}")[1] == final
        assert _events(server, op["id"]) == events
        with pytest.raises(urllib.error.HTTPError) as refused:
            _events(server, op["id"], token=False)
        assert refused.value.code == 403
    finally:
        server.request("DELETE", f"{API}/clusters/default/{name}")


def _refuses(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def test_a_teardown_elsewhere_closes_the_servers_tunnel(server: JupyterServer, kube: Any) -> None:
    """A kernel's %arkouda_teardown goes through the server, which closes its tunnel at
    once; a teardown behind its back (another client's credentials) is noticed within a
    heartbeat interval (1 s here). Either way no listener is left for a deployment that
    is gone, and the name can be deployed and reached again."""
    kernel = server.start_kernel()
    try:
        for name in ("jx-gone-kernel", "jx-gone-elsewhere"):
            spec = {"name": name, **SMALL, "authenticate": False}
            assert server.deploy(spec)["state"] == "succeeded"
            status, doc = server.request("POST", f"{API}/clusters/default/{name}/tunnel")
            assert status == 200, doc
            host, port = doc["address"]
            assert not _refuses(host, port)
            if name == "jx-gone-kernel":
                out = kernel.run(
                    f"%load_ext arkouda_k8s\n%arkouda_connect {name}\n%arkouda_teardown {name}"
                )
                assert f"{name}: deleted" in out, out
                assert _refuses(host, port)  # at once: the server made the teardown
            else:
                ArkoudaCluster.from_name(name, "default", kube=kube, connect=False).teardown()
                eventually(
                    lambda: _refuses(host, port),  # noqa: B023 - called at once, in this turn
                    30,
                    0.2,
                    "the server closing its tunnel to a deployment torn down elsewhere",
                )
            assert labelled(kube, name) == []
            status, doc = server.request("GET", f"{API}/clusters")
            assert name not in [i["name"] for i in doc["items"]]
        # made again under a name the server held: a new tunnel that computes
        name = "jx-gone-kernel"
        assert server.deploy({"name": name, **SMALL, "authenticate": False})["state"] == "succeeded"
        out = kernel.run(_connect_code(name))
        assert "SUM 45" in out, out
    finally:
        kernel.shutdown()
        for name in ("jx-gone-kernel", "jx-gone-elsewhere"):
            server.request("DELETE", f"{API}/clusters/default/{name}")


def test_shutdown_tears_down_ephemeral_deployments_and_leaves_the_others(
    sb: Any, kube: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = JupyterServer(tmp_path, sb.kubeconfig_path)
    small = ["--cpu", "100m", "--memory", "256Mi", "--locales", "2", "-n", "default"]
    try:
        assert srv.deploy({"name": "jx-eph", **SMALL}, ephemeral=True)["state"] == "succeeded"
        assert srv.deploy({"name": "jx-kept", **SMALL})["state"] == "succeeded"
        # marked by the CLI, held by the server once a kernel (here: a request) asks
        code, _, err = run_cli(
            capsys, "deploy", "--name", "jx-cli", "--ephemeral", *small,
            "--kubeconfig", sb.kubeconfig_path,
        )  # fmt: skip
        assert code == 0, err
        assert srv.request("POST", f"{API}/clusters/default/jx-cli/tunnel")[0] == 200
        # held as ephemeral, then deleted behind the server's back and made again (not
        # ephemeral) under the same name: that one is not the server's to delete
        assert srv.deploy({"name": "jx-again", **SMALL}, ephemeral=True)["state"] == "succeeded"
        ArkoudaCluster.from_name("jx-again", "default", kube=kube, connect=False).teardown()
        code, _, err = run_cli(
            capsys, "deploy", "--name", "jx-again", *small, "--kubeconfig", sb.kubeconfig_path
        )
        assert code == 0, err
        status, doc = srv.request("POST", f"{API}/clusters/default/jx-again/tunnel")
        assert status == 200, doc
        status, doc = srv.request("GET", f"{API}/clusters")
        marks = {i["name"]: i["ephemeral"] for i in doc["items"]}
        assert marks == {"jx-eph": True, "jx-kept": False, "jx-cli": True, "jx-again": False}
    finally:
        srv.stop()  # SIGTERM, as a service manager stops it
    try:
        assert srv.process.returncode is not None
        assert labelled(kube, "jx-eph") == [], srv.log_text()[-3000:]
        assert labelled(kube, "jx-cli") == [], srv.log_text()[-3000:]
        for name in ("jx-kept", "jx-again"):
            assert any(x.startswith("Pod/") for x in labelled(kube, name)), name
    finally:
        for name in ("jx-kept", "jx-again", "jx-eph", "jx-cli"):
            with contextlib.suppress(ClusterNotFound):
                ArkoudaCluster.from_name(name, "default", kube=kube, connect=False).teardown()


def test_allow_deploy_false_refuses_deploy_and_teardown(sb: Any, tmp_path: Path) -> None:
    srv = JupyterServer(tmp_path, sb.kubeconfig_path, "--ArkoudaK8s.allow_deploy=False")
    try:
        status, doc = srv.request("POST", f"{API}/clusters", {"spec": {"name": "jx-no", **SMALL}})
        assert status == 403 and "allow_deploy" in doc["hint"], doc
        status, doc = srv.request("DELETE", f"{API}/clusters/default/jx-no")
        assert status == 403
        assert srv.request("GET", f"{API}/clusters")[0] == 200
    finally:
        srv.stop()
