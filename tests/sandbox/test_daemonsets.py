"""apps/v1 DaemonSets in the sandbox, through the official client: one pod of the
template on each node its nodeSelector and taints allow (a cordoned node included), the
counts in status, a node that starts to match gets its pod, deletion takes the pods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _support import eventually as _eventually
from api_support import api_client_for
from kubernetes import client
from kubernetes.client.rest import ApiException

from arkouda_k8s.sandbox import Sandbox


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[Sandbox]:
    with Sandbox(nodes=3) as sb:
        yield sb


def eventually(probe: Any) -> Any:
    return _eventually(probe, timeout=60)


def _ds(name: str, **pod: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}
                    ],
                    "terminationGracePeriodSeconds": 1,
                    **pod,
                },
            },
        },
    }


def _nodes_of(core: Any, name: str) -> list[str]:
    pods = core.list_namespaced_pod("default", label_selector=f"app={name}").items
    return sorted(p.spec.node_name for p in pods if not p.metadata.deletion_timestamp)


def test_one_pod_per_allowed_node_with_counts_and_gone_with_the_daemonset(three_nodes):
    api = api_client_for(three_nodes.kubeconfig_path)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    core.patch_node("sandbox-node-2", {"spec": {"unschedulable": True}})  # still gets one
    core.patch_node(
        "sandbox-node-3",
        {"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}},
    )
    try:
        created = apps.create_namespaced_daemon_set("default", _ds("everywhere"))
        assert created.spec.update_strategy.type == "RollingUpdate"
        assert eventually(
            lambda: _nodes_of(core, "everywhere") == ["sandbox-node", "sandbox-node-2"]
        )

        def counted() -> Any:
            st = apps.read_namespaced_daemon_set("everywhere", "default").status
            return st if st.number_ready == 2 else None

        st = eventually(counted)
        assert (st.desired_number_scheduled, st.current_number_scheduled) == (2, 2)
        assert st.number_available == 2 and not st.number_misscheduled
        # the taint tolerated: the third node gets its pod too
        apps.create_namespaced_daemon_set(
            "default",
            _ds(
                "tolerant",
                tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            ),
        )
        assert eventually(lambda: len(_nodes_of(core, "tolerant")) == 3)
        apps.delete_namespaced_daemon_set("everywhere", "default")
        apps.delete_namespaced_daemon_set("tolerant", "default")
        assert eventually(
            lambda: not _nodes_of(core, "everywhere") and not _nodes_of(core, "tolerant"),
        )
    finally:
        core.patch_node("sandbox-node-2", {"spec": {"unschedulable": False}})
        core.patch_node("sandbox-node-3", {"spec": {"taints": []}})


def test_node_selector_and_a_node_that_starts_to_match(three_nodes):
    api = api_client_for(three_nodes.kubeconfig_path)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_daemon_set("default", _ds("pool", node_selector={"pool": "ak"}))
    try:
        # nothing matches yet: the count says so
        st = eventually(
            lambda: apps.read_namespaced_daemon_set("pool", "default").status.observed_generation,
        )
        assert (
            st
            and apps.read_namespaced_daemon_set("pool", "default").status.desired_number_scheduled
            == 0
        )
        core.patch_node("sandbox-node-3", {"metadata": {"labels": {"pool": "ak"}}})
        assert eventually(lambda: _nodes_of(core, "pool") == ["sandbox-node-3"])
    finally:
        core.patch_node("sandbox-node-3", {"metadata": {"labels": {"pool": None}}})
        apps.delete_namespaced_daemon_set("pool", "default")


def test_a_selector_that_misses_the_template_is_refused(three_nodes):
    api = api_client_for(three_nodes.kubeconfig_path)
    bad = _ds("bad")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as err:
        client.AppsV1Api(api).create_namespaced_daemon_set("default", bad)
    assert err.value.status == 422 and "does not match template" in err.value.body
