"""A deploy in the sandbox fails where it would fail on a real cluster with the real images.

The sandbox runs every container over a model of its image (tests/sandbox/test_containers.py):
so reverting one of the launch fixes of the real-images issue, the launch ConfigMap
mounted over the image's /opt/arkouda or the launcher called through a PATH that does
not hold it, makes the deploy fail with the reason a user would see; as rendered, the
deploy passes, and the launcher starts one locale process per host over real ssh.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from _support.lifecycle import FAST, labelled, spec

from arkouda_k8s import manifests
from arkouda_k8s.cluster import ArkoudaCluster
from arkouda_k8s.errors import ArkoudaK8sError
from arkouda_k8s.sandbox.kubelet import container_support

pytestmark = pytest.mark.skipif(
    container_support() is not None,
    reason=f"containers cannot be isolated here: {container_support()}",
)
LAUNCHER = "/opt/arkouda/arkouda_server"


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    if obj["kind"] == "Deployment":
        return [obj["spec"]["template"]["spec"]]
    return []


def _launch_at_opt_arkouda(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The launch ConfigMap mounted over the image's /opt/arkouda (the chart's bug)."""
    for obj in objects:
        for pod in _pod_specs(obj):
            launch = {
                v["name"]
                for v in pod.get("volumes") or []
                if (v.get("configMap") or {}).get("name", "").endswith("-launch")
            }
            for c in pod["containers"]:
                for m in c.get("volumeMounts") or []:
                    if m["name"] in launch:
                        m["mountPath"] = "/opt/arkouda"
                        m.pop("subPath", None)
                c["command"] = [
                    w.replace(manifests.LAUNCH_DIR + "/", "/opt/arkouda/") for w in c["command"]
                ]
    return objects


def _bare_launcher(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The launch script calls ``arkouda_server`` through PATH (which does not hold it)."""
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].endswith("-launch"):
            obj["data"] = {k: v.replace(LAUNCHER, "arkouda_server") for k, v in obj["data"].items()}
    return objects


def _with(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    render, server_pod = manifests.render, manifests.server_pod
    monkeypatch.setattr(manifests, "render", lambda *a, **k: change(copy.deepcopy(render(*a, **k))))
    monkeypatch.setattr(
        manifests, "server_pod", lambda *a, **k: change([copy.deepcopy(server_pod(*a, **k))])[0]
    )


def _processes(sb: Any, pod: str, container: str) -> list[list[str]]:
    return sb.call(lambda: sb.kubelet.container_processes("default", pod, container))


def test_as_rendered_the_udp_deploy_runs_a_locale_on_every_host_over_ssh(sb, kube, deployed):
    c = ArkoudaCluster(spec("img-ok", locales=3), kubeconfig=sb.kubeconfig_path, timeouts=FAST)
    with deployed(c):
        assert c.config is not None and c.config["numLocales"] == 3
        pods = kube.list("Pod", "default", label_selector=manifests.selector(c.spec))["items"]
        seen = {}
        for p in pods:
            name = p["metadata"]["name"]
            container = p["spec"]["containers"][0]["name"]
            seen[name] = [
                a
                for a in _processes(sb, name, container)
                if a[2:3] == ["/opt/arkouda/arkouda_server_real"]
                and a[3].startswith("--sandbox-locale=")
            ]
        # One locale process per pod (server pod included: locale 0), started over ssh.
        assert sorted(len(v) for v in seen.values()) == [1, 1, 1], seen
        ranks = sorted(
            next(x for x in v[0] if x.startswith("--sandbox-locale=")) for v in seen.values()
        )
        assert ranks == [f"--sandbox-locale={i}/3" for i in range(3)]
    assert labelled(kube, "img-ok") == []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_launch_at_opt_arkouda, f"{LAUNCHER}: not found"),
        (_bare_launcher, "arkouda_server: not found"),
    ],
    ids=["launch-configmap-at-opt-arkouda", "bare-arkouda_server"],
)
def test_each_reverted_launch_fix_fails_the_deploy_with_the_users_reason(
    sb, kube, monkeypatch, change, why
):
    _with(monkeypatch, change)
    name = "img-" + change.__name__.strip("_").split("_")[0]
    c = ArkoudaCluster(spec(name, locales=2), kubeconfig=sb.kubeconfig_path, timeouts=FAST)
    with pytest.raises(ArkoudaK8sError) as err:
        c.deploy()
    assert why in err.value.one_line(), err.value.one_line()
    assert labelled(kube, name) == []  # the failed deploy rolled back
