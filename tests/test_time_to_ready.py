"""Time to Ready when image pulls dominate (issue #18): the server pod starts with its
locales so every node pulls at once; a stuck locale is the reported cause while the
server waits; locales spread one per node (preferred, required, none) on a sandbox of
several nodes, each with its own image cache."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from _support import eventually, settled
from _support.lifecycle import (
    FAST,
    Recorder,
    admin,
    cluster,
    deployment,
    labelled,
    spec,
    wait_no_processes,
)

from arkouda_k8s.errors import ImagePullError, UnschedulableError
from arkouda_k8s.sandbox import Sandbox

PULL = 4.0  # seconds an image pull takes on a node without the image
FAULT_KEY = "sandbox.arkouda-k8s.dev/fault"


@pytest.fixture(scope="module")
def nodes4():
    with Sandbox(nodes=4, pull_seconds=PULL) as sb:
        yield sb


def _pods(kube, name):
    return kube.list("Pod", "default", label_selector=f"app.kubernetes.io/instance={name}")["items"]


def _events(kube, pod):
    return [
        e
        for e in kube.list("Event", "default")["items"]
        if (e.get("involvedObject") or {}).get("name") == pod
    ]


def _time_to_ready(sb, name, *, old_ordering=False):
    sb.pulls.forget()  # every node without the image
    with deployment(sb, spec(name, locales=3), deploy=False) as c:
        c._server_after_locales = old_ordering
        start = time.monotonic()
        c.deploy()
        return time.monotonic() - start


def test_the_server_pull_overlaps_the_locales_pulls(nodes4):
    slow = 8.0  # long enough to stand out of a loaded machine's noise
    nodes4.pulls.set_pull_seconds(slow)
    try:
        old = _time_to_ready(nodes4, "ttr-old", old_ordering=True)
        new = _time_to_ready(nodes4, "ttr-new2")
    finally:
        nodes4.pulls.set_pull_seconds(PULL)
    # the old ordering waits for one more whole pull (the server's node's)
    assert old - new > slow / 2, (old, new)


def test_server_pulls_while_its_locales_pull(nodes4):
    kube = admin(nodes4)
    nodes4.pulls.forget()
    with deployment(nodes4, spec("ttr-new", locales=3)):
        pods = _pods(kube, "ttr-new")
        server = next(p for p in pods if p["metadata"]["name"].endswith("-server"))
        # every pod on a node that had no image: each pulled for a whole pull time
        pulled = {
            p["metadata"]["name"]: [e for e in _events(kube, p["metadata"]["name"])] for p in pods
        }
        assert all(
            any(e["reason"] == "Pulled" and "Successfully pulled" in e["message"] for e in evs)
            for evs in pulled.values()
        ), pulled
        # the server's pull started before any locale's pull was over (side by side)
        server_pulling = min(
            e["firstTimestamp"] or e["eventTime"]
            for e in pulled[server["metadata"]["name"]]
            if e["reason"] == "Pulling"
        )
        locale_pulled = min(
            e["firstTimestamp"] or e["eventTime"]
            for name, evs in pulled.items()
            if name != server["metadata"]["name"]
            for e in evs
            if e["reason"] == "Pulled"
        )
        assert server_pulling < locale_pulled


def test_locale_image_pull_backoff_is_the_cause_while_the_server_waits(nodes4):
    kube = admin(nodes4)
    rec = Recorder()
    bad = spec(
        "ttr-ipb",
        locales=3,
        annotations={
            FAULT_KEY: "ImagePullBackOff",
            "sandbox.arkouda-k8s.dev/fault-selector": "app.kubernetes.io/component=locale",
        },
    )
    # A server stage far longer than the test: only the locale's reason can end it.
    c = cluster(nodes4, bad, timeouts=replace(FAST, locales=120, server=120), on_progress=rec)
    start = time.monotonic()
    with pytest.raises(ImagePullError) as err:
        c.deploy()
    took = time.monotonic() - start
    exc = err.value
    assert exc.stage == "locales" and exc.reason in ("ImagePullBackOff", "ErrImagePull")
    assert exc.pod and "-locale-" in exc.pod
    assert "bearsrus/arkouda-udp-server" in exc.one_line()
    # the server pod was created and waiting meanwhile (not after the locales)
    assert "server: server pod created" in rec.messages(), rec.messages()
    assert took < 30, took
    assert labelled(kube, "ttr-ipb") == []
    assert wait_no_processes(nodes4) == []


def _nodes_of(kube, name):
    return sorted((p["spec"].get("nodeName") or "") for p in _pods(kube, name))


def test_four_locales_land_on_four_nodes(nodes4):
    kube = admin(nodes4)
    # A node already busier than the others: by free memory alone, two locales would
    # share the emptiest node; spreading puts one on each.
    filler = kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "ttr-filler", "namespace": "default"},
            "spec": {
                "nodeName": "sandbox-node",
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox:1.36",
                        "command": ["sleep", "3600"],
                        "resources": {"requests": {"cpu": "100m", "memory": "2Gi"}},
                    }
                ],
            },
        },
    )
    try:
        with deployment(nodes4, spec("ttr-four", locales=4)):
            on = _nodes_of(kube, "ttr-four")
            assert len(set(on)) == 4, on
    finally:
        kube.delete("Pod", "ttr-filler", "default", uid=filler["metadata"]["uid"])


@pytest.fixture()
def two_nodes(nodes4):
    """Only two of the four nodes take new pods (the others cordoned)."""
    kube = admin(nodes4)
    cordoned = ["sandbox-node-3", "sandbox-node-4"]
    for n in cordoned:
        kube.patch("Node", n, {"spec": {"unschedulable": True}})
    yield nodes4
    for n in cordoned:
        kube.patch("Node", n, {"spec": {"unschedulable": False}})


def test_preferred_spread_on_two_nodes_still_deploys(two_nodes):
    kube = admin(two_nodes)
    with deployment(two_nodes, spec("ttr-pref", locales=4)):
        on = _nodes_of(kube, "ttr-pref")
        assert len(on) == 4 and set(on) == {"sandbox-node", "sandbox-node-2"}, on


def test_required_spread_on_two_nodes_fails_at_once_with_the_reason(two_nodes):
    kube = admin(two_nodes)
    c = cluster(two_nodes, spec("ttr-req", locales=4, spread="required"))
    start = time.monotonic()
    with pytest.raises(UnschedulableError) as err:
        c.deploy()
    took = time.monotonic() - start
    text = err.value.one_line()
    assert "didn't match pod anti-affinity rules" in text, text
    assert "0/4 nodes are available" in text and "2 node(s) were unschedulable" in text
    assert "--spread preferred" in (err.value.hint or "")
    assert took < 20, took
    assert labelled(kube, "ttr-req") == []


def test_spread_is_anti_affinity_on_the_hostname_for_every_pod_of_the_instance():
    from arkouda_k8s import manifests
    from arkouda_k8s.spec import ClusterSpec

    def affinity(**kw):
        objs = manifests.render(ClusterSpec(name="sp", namespace="default", locales=3, **kw))
        pod = next(o for o in objs if o["kind"] == "Pod")["spec"]
        tmpl = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]
        assert pod.get("affinity") == tmpl.get("affinity")
        return pod.get("affinity")

    pref = affinity()["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert pref[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pref[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "arkouda",
        "app.kubernetes.io/instance": "sp",
    }
    req = affinity(spread="required")["podAntiAffinity"]
    assert req["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == (
        "kubernetes.io/hostname"
    )
    assert affinity(spread="none") is None


def test_a_pull_costs_time_once_per_node_and_image():
    import asyncio

    from arkouda_k8s.sandbox.pulls import Pulls

    async def scenario():
        pulls = Pulls({"big:1": 0.5, "*": 0.0})
        t0 = time.monotonic()
        # two pods of one node share a pull; another node pulls on its own, at once
        waited = await asyncio.gather(
            pulls.pull("a", "big:1"), pulls.pull("a", "big:1"), pulls.pull("b", "big:1")
        )
        together = time.monotonic() - t0
        assert all(w >= 0.45 for w in waited) and together < 0.9
        assert pulls.present("a", "big:1") and not pulls.present("c", "big:1")
        pulls.forget("a")
        assert pulls.cached("a") == set() and pulls.cached("b") == {"big:1"}

    asyncio.run(scenario())


def test_progress_and_status_show_which_image_pulls_on_how_many_nodes_for_how_long(
    nodes4, monkeypatch
):
    import re

    from arkouda_k8s import readiness

    monkeypatch.setattr(readiness, "PULL_TICK", 1.0)
    pulling = re.compile(r"pulling bearsrus/arkouda-udp-server:v[\d.]+ on (\d) nodes?, (\d+) s")
    # the status card while the nodes pull (the deploy returned once the pods exist)
    nodes4.pulls.forget()
    with deployment(nodes4, spec("ttr-pst", locales=3), deploy=False) as c:
        c.deploy(wait=False)
        # the deploy returned once the server pod exists: the locale pods' controller and
        # the scheduler may still be placing the last one (the card then says 2 nodes)
        three = r"pulling bearsrus/arkouda-udp-server:v[\d.]+ on 3 nodes, \d+ s"
        last: dict[str, str] = {}

        def message() -> str:
            last["message"] = c.status(probe=False).message
            return last["message"] if re.search(three, last["message"]) else ""

        eventually(message, timeout=PULL * 2, message=lambda: last.get("message", ""))
    # the deploy's progress: the image, the nodes, the seconds going on (once the
    # pulls of the deploy above, which go on without their pods, are over)
    assert not settled(nodes4.pulls.under_way, timeout=30)
    nodes4.pulls.forget()
    rec = Recorder()
    with deployment(nodes4, spec("ttr-pull", locales=3), on_progress=rec):
        pass
    seen = [m for m in map(pulling.search, rec.messages()) if m]
    assert seen, rec.messages()
    assert max(int(m.group(1)) for m in seen) == 3  # server and both locales: 3 nodes
    assert max(int(m.group(2)) for m in seen) >= PULL - 2, rec.messages()


def test_prepull_puts_the_image_on_every_node_and_the_next_deploy_pulls_nothing(nodes4, capsys):
    from _support.lifecycle import run_cli

    kube = admin(nodes4)
    nodes4.pulls.forget()
    image = "bearsrus/arkouda-udp-server:v2023.05.05"
    code, out, err = run_cli(
        capsys,
        "prepull",
        "--release",
        "v2023.05.05",
        "--kubeconfig",
        nodes4.kubeconfig_path,
        "-n",
        "default",
    )
    assert code == 0, err
    assert f"{image} is on 4 node(s)" in out
    assert f"pulling {image} on 4 nodes" in err, err
    assert all(nodes4.pulls.present(n, image) for n in nodes4.node_names)
    # removed when done, its pods with it
    assert kube.list("DaemonSet", "default")["items"] == []
    assert settled(lambda: _pods(kube, None), timeout=30) == []
    with deployment(nodes4, spec("ttr-warm", locales=3), deploy=False) as c:
        start = time.monotonic()
        c.deploy()
        took = time.monotonic() - start
        for p in _pods(kube, "ttr-warm"):
            reasons = [(e["reason"], e["message"]) for e in _events(kube, p["metadata"]["name"])]
            assert ("Pulling", f'Pulling image "{image}"') not in reasons, reasons
            assert any("already present on machine" in m for r, m in reasons), reasons
        assert took < 2 * PULL, took


def test_prepull_only_on_nodes_of_the_selector_and_a_bad_selector_is_one_line(nodes4, capsys):
    from _support.lifecycle import run_cli

    nodes4.pulls.forget()
    common = ["--kubeconfig", nodes4.kubeconfig_path, "-n", "default"]
    code, out, err = run_cli(
        capsys,
        "prepull",
        "--release",
        "v2023.05.05",
        "--node-selector",
        "kubernetes.io/hostname=sandbox-node-2",
        *common,
    )
    assert code == 0, err
    assert "is on 1 node(s)" in out
    image = "bearsrus/arkouda-udp-server:v2023.05.05"
    assert [n for n in nodes4.node_names if nodes4.pulls.present(n, image)] == ["sandbox-node-2"]
    code, out, err = run_cli(capsys, "prepull", "--node-selector", "nokey", *common)
    assert code == 2 and "--node-selector" in err and len(err.strip().splitlines()) == 1


def test_the_prepull_magic_shows_progress_and_leaves_nothing(nodes4, monkeypatch, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from arkouda_k8s import magics as magics_module

    for key in magics_module.SETTINGS:
        monkeypatch.delenv(f"ARKOUDA_K8S_{key.upper()}", raising=False)
    monkeypatch.setenv("ARKOUDA_K8S_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.config.pop("ArkoudaMagics", None)
    shell.run_line_magic("load_ext", "arkouda_k8s")
    nodes4.pulls.forget()
    try:
        with capture_output() as out:
            result = shell.run_cell(
                "%arkouda_prepull --release v2023.05.05 --node-selector "
                "kubernetes.io/hostname=sandbox-node-3 "
                f"--kubeconfig {nodes4.kubeconfig_path} --namespace default"
            )
        assert result.error_in_exec is None, out.stdout + out.stderr
    finally:
        shell.run_line_magic("unload_ext", "arkouda_k8s")
    text = out.stdout + out.stderr
    image = "bearsrus/arkouda-udp-server:v2023.05.05"
    assert f"pulling {image} on 1 node" in text, text
    assert f"{image} is on 1 node(s)" in text, text
    assert nodes4.pulls.present("sandbox-node-3", image)
    assert admin(nodes4).list("DaemonSet", "default")["items"] == []
