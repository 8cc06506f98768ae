"""The sandbox controllers: Deployment -> ReplicaSet -> pods, scheduler, Endpoints, GC."""

from __future__ import annotations

import re

import pytest
from kubelet_world import World, alive, condition, is_ready

from arkouda_k8s.sandbox.controllers import template_hash
from arkouda_k8s.sandbox.primitives import parse_quantity

IDLE = "bearsrus/arkouda-udp-server:v2023.05.05"


@pytest.fixture(scope="module")
def world():
    w = World(node_memory="1Gi", node_cpu="4")
    yield w
    w.close()


def _deployment(name: str, replicas: int, *, memory: str | None = None, command=None) -> dict:
    container: dict = {"name": "c", "image": IDLE, "ports": [{"containerPort": 22, "name": "ssh"}]}
    container["command"] = command or ["sh", "/opt/arkouda/start-arkouda-locale.sh"]
    if memory:
        container["resources"] = {"requests": {"memory": memory}}
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container]},
            },
        },
    }


def _pods(world: World, app: str) -> list[dict]:
    return world.store.list("pods", "default", label_selector=f"app={app}")[0]


def _deployment_settled(world: World, name: str, replicas: int):
    def check():
        d = world.store.get("deployments.apps", "default", name)
        st = d.get("status") or {}
        pods = [p for p in _pods(world, name) if is_ready(p)]
        ok = (
            st.get("readyReplicas", 0) == replicas
            and st.get("availableReplicas", 0) == replicas
            and st.get("replicas", 0) == replicas
            and len(pods) == replicas
            and len(_pods(world, name)) == replicas
        )
        return d if ok else None

    return world.wait(f"deployment {name} at {replicas} ready", check)


def test_deployment_replicaset_pods_chain_scaling_and_status(world):
    world.create("deployments.apps", _deployment("loc", 3))
    d = _deployment_settled(world, "loc", 3)
    (rs,) = world.list("replicasets.apps")
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert rs["metadata"]["ownerReferences"][0]["controller"] is True
    phash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"loc-{phash}"
    for p in _pods(world, "loc"):
        assert re.fullmatch(rf"loc-{phash}-[a-z0-9]{{5}}", p["metadata"]["name"])
        assert p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert p["metadata"]["labels"]["pod-template-hash"] == phash
    st = d["status"]
    assert st["updatedReplicas"] == 3 and st["observedGeneration"] == d["metadata"]["generation"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Available"]["status"] == "True"
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert (
        conds["Progressing"]["message"] == f'ReplicaSet "loc-{phash}" has successfully progressed.'
    )
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    # Scale down: two pods go, their listeners close; then up again.
    d["spec"]["replicas"] = 1
    d["metadata"].pop("resourceVersion")
    world.call(world.store.update, "deployments.apps", d)
    d = _deployment_settled(world, "loc", 1)
    assert d["status"]["observedGeneration"] == d["metadata"]["generation"] == 2
    msgs = [e["message"] for e in world.events("loc")]
    assert f"Scaled up replica set loc-{phash} from 0 to 3" in msgs
    assert f"Scaled down replica set loc-{phash} from 3 to 1" in msgs
    rs_events = [e["reason"] for e in world.events(f"loc-{phash}")]
    assert rs_events.count("SuccessfulCreate") == 3 and rs_events.count("SuccessfulDelete") == 2
    d["spec"]["replicas"] = 2
    d["metadata"].pop("resourceVersion")
    world.call(world.store.update, "deployments.apps", d)
    _deployment_settled(world, "loc", 2)

    # A new template rolls to a new ReplicaSet; the old one is scaled to zero.
    d = world.get("deployments.apps", "loc")
    d["spec"]["template"]["metadata"]["labels"]["rev"] = "2"
    d["metadata"].pop("resourceVersion")
    world.call(world.store.update, "deployments.apps", d)
    world.wait(
        "rollout to revision 2",
        lambda: (
            [
                p
                for p in _pods(world, "loc")
                if p["metadata"]["labels"].get("rev") == "2" and is_ready(p)
            ]
            if len(_pods(world, "loc")) == 2
            and all(p["metadata"]["labels"].get("rev") == "2" for p in _pods(world, "loc"))
            else None
        ),
    )
    sets = {r["metadata"]["name"]: r for r in world.list("replicasets.apps")}
    assert len(sets) == 2 and sets[f"loc-{phash}"]["spec"]["replicas"] == 0
    world.delete("deployments.apps", "loc")
    world.wait(
        "GC of loc", lambda: not _pods(world, "loc") and not world.store.list("replicasets.apps")[0]
    )


def test_a_replicaset_under_a_full_quota_reports_failed_create_until_there_is_room(world):
    """A ReplicaSet's pods go through quota admission, as a real controller's create goes
    through the API: no pod while the quota is full, a FailedCreate warning with the
    API's refusal, and the pod once the quota is gone."""
    world.create("resourcequotas", {"metadata": {"name": "full"}, "spec": {"hard": {"pods": "0"}}})
    try:
        world.create("deployments.apps", _deployment("capped", 1))
        rs = world.wait(
            "the ReplicaSet",
            lambda: [
                r["metadata"]["name"]
                for r in world.store.list("replicasets.apps", "default")[0]
                if r["metadata"]["name"].startswith("capped-")
            ],
        )[0]
        (event, *_) = world.wait(
            "FailedCreate",
            lambda: [
                e
                for e in world.store.list("events", "default")[0]
                if e["involvedObject"]["name"] == rs and e["reason"] == "FailedCreate"
            ],
        )
        assert event["type"] == "Warning"
        assert event["message"].startswith(
            f'Error creating: pods "{rs}-" is forbidden: exceeded quota: full'
        )
        assert _pods(world, "capped") == []
    finally:
        world.delete("resourcequotas", "full")
    _deployment_settled(world, "capped", 1)
    world.delete("deployments.apps", "capped")
    world.wait("GC of capped", lambda: not _pods(world, "capped"))


def test_unschedulable_for_real_when_memory_does_not_fit(world):
    world.create("deployments.apps", _deployment("big", 1, memory="700Mi"))
    _deployment_settled(world, "big", 1)
    world.create(
        "pods",
        {
            "metadata": {"name": "second"},
            "spec": {
                "containers": [
                    {"name": "c", "image": IDLE, "resources": {"requests": {"memory": "700Mi"}}}
                ]
            },
        },
    )
    expected = (
        "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )
    pod = world.wait_pod(
        "second", lambda p: condition(p, "PodScheduled").get("status") == "False", "unschedulable"
    )
    cond = condition(pod, "PodScheduled")
    assert cond["reason"] == "Unschedulable" and cond["message"] == expected
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    events = [e for e in world.events("second") if e["reason"] == "FailedScheduling"]
    assert events and events[0]["message"] == expected and events[0]["type"] == "Warning"
    assert events[0]["source"]["component"] == "default-scheduler"
    # Freeing the memory lets it schedule and run.
    world.delete("deployments.apps", "big")
    pod = world.wait_pod("second", is_ready, "scheduled and ready after the space freed")
    assert condition(pod, "PodScheduled")["status"] == "True"
    assert any(e["reason"] == "Scheduled" for e in world.events("second"))
    world.delete("pods", "second")


def test_node_selector_mismatch_message(world):
    world.create(
        "pods",
        {
            "metadata": {"name": "picky"},
            "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": IDLE}]},
        },
    )
    pod = world.wait_pod(
        "picky", lambda p: condition(p, "PodScheduled").get("status") == "False", "unschedulable"
    )
    assert condition(pod, "PodScheduled")["message"] == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    world.delete("pods", "picky")


def test_endpoints_follow_ready_pods_and_leave_selectorless_services_alone(world):
    world.create(
        "services",
        {
            "metadata": {"name": "loc-svc"},
            "spec": {
                "selector": {"app": "eps"},
                "ports": [{"name": "ssh", "port": 2222, "targetPort": "ssh"}],
            },
        },
    )
    world.create("services", {"metadata": {"name": "manual"}, "spec": {"ports": [{"port": 5555}]}})
    world.create("deployments.apps", _deployment("eps", 2))
    _deployment_settled(world, "eps", 2)
    ips = sorted(p["status"]["podIP"] for p in _pods(world, "eps"))

    def endpoints_ready():
        ep = world.store.get("endpoints", "default", "loc-svc")
        if not ep or not ep.get("subsets"):
            return None
        got = sorted(a["ip"] for a in ep["subsets"][0].get("addresses") or [])
        return ep if got == ips else None

    ep = world.wait("endpoints with both pods", endpoints_ready)
    assert ep["subsets"][0]["ports"] == [{"port": 22, "protocol": "TCP", "name": "ssh"}]
    assert {a["targetRef"]["kind"] for a in ep["subsets"][0]["addresses"]} == {"Pod"}
    assert world.get("endpoints", "manual") is None
    world.delete("deployments.apps", "eps")
    world.wait(
        "endpoints emptied",
        lambda: world.store.get("endpoints", "default", "loc-svc")["subsets"] == [],
    )
    world.delete("services", "loc-svc")
    world.wait(
        "endpoints deleted", lambda: world.store.get("endpoints", "default", "loc-svc") is None
    )
    world.delete("services", "manual")


def test_foreground_deletion_waits_for_dependents_and_orphan_keeps_them(world):
    world.create("deployments.apps", _deployment("fg", 2))
    _deployment_settled(world, "fg", 2)
    d = world.get("deployments.apps", "fg")
    d["metadata"]["finalizers"] = ["foregroundDeletion"]
    d["metadata"].pop("resourceVersion")
    world.call(world.store.update, "deployments.apps", d)
    marked = world.delete("deployments.apps", "fg")
    assert marked["metadata"].get("deletionTimestamp")  # held by its finalizer
    world.wait("fg gone", lambda: world.store.get("deployments.apps", "default", "fg") is None)
    # The owner only went after everything under it.
    assert not _pods(world, "fg") and not world.list("replicasets.apps")

    world.create("deployments.apps", _deployment("orph", 1))
    _deployment_settled(world, "orph", 1)
    d = world.get("deployments.apps", "orph")
    d["metadata"]["finalizers"] = ["orphan"]
    d["metadata"].pop("resourceVersion")
    world.call(world.store.update, "deployments.apps", d)
    world.delete("deployments.apps", "orph")
    world.wait("orph gone", lambda: world.store.get("deployments.apps", "default", "orph") is None)
    (rs,) = world.list("replicasets.apps")
    assert not rs["metadata"].get("ownerReferences")
    assert len(_pods(world, "orph")) == 1
    world.delete("replicasets.apps", rs["metadata"]["name"])
    world.wait("orphaned pods collected with their ReplicaSet", lambda: not _pods(world, "orph"))


def test_namespace_termination_deletes_contents_and_processes(world):
    world.create("namespaces", {"metadata": {"name": "doomed"}})
    world.create(
        "deployments.apps",
        dict(
            _deployment("runner", 1, command=["sleep", "60"]),
            metadata={"name": "runner", "namespace": "doomed"},
        ),
    )
    world.create(
        "secrets", {"metadata": {"name": "s", "namespace": "doomed"}, "stringData": {"a": "b"}}
    )

    def running_pids():
        pods = world.store.list("pods", "doomed")[0]
        return world.kubelet.processes() if pods and all(is_ready(p) for p in pods) else None

    pids = world.wait("runner running", running_pids)
    ns = world.call(world.store.delete, "namespaces", None, "doomed")
    assert ns["status"]["phase"] == "Terminating"
    world.wait("namespace gone", lambda: world.store.get("namespaces", None, "doomed") is None)
    for resource in ("pods", "secrets", "deployments.apps", "replicasets.apps"):
        assert world.list(resource, "doomed") == []
    world.wait("runner process gone", lambda: not any(alive(p) for p in pids), timeout=10)


def test_quantities_and_template_hash():
    assert parse_quantity("2Gi") == 2 * 1024**3
    assert parse_quantity("500m") * 2 == 1
    assert parse_quantity("1e3") == 1000
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("lots")
    a = {"spec": {"containers": [{"image": "x"}]}}
    assert template_hash(a) == template_hash(dict(a)) != template_hash({"spec": {}})
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{10}", template_hash(a))


def test_scheduler_spreads_by_free_memory_across_nodes():
    w = World(node_memory="3Gi")
    try:
        alloc = {"cpu": "4", "memory": "3Gi", "pods": "256"}
        w.call(
            w.store.create,
            "nodes",
            {
                "metadata": {
                    "name": "sandbox-node-2",
                    "labels": {"kubernetes.io/hostname": "sandbox-node-2"},
                },
                "status": {"capacity": dict(alloc), "allocatable": dict(alloc)},
            },
        )
        w.node_names.append("sandbox-node-2")
        w.create("deployments.apps", _deployment("spread", 5, memory="1536Mi"))

        def placed():
            pods = _pods(w, "spread")
            nodes = [p["spec"].get("nodeName") for p in pods]
            return pods if len(pods) == 5 and sum(n is not None for n in nodes) == 4 else None

        pods = w.wait("four of five pods placed", placed)
        nodes = sorted(p["spec"]["nodeName"] for p in pods if p["spec"].get("nodeName"))
        assert nodes == ["sandbox-node", "sandbox-node", "sandbox-node-2", "sandbox-node-2"]
        (pending,) = [p for p in pods if not p["spec"].get("nodeName")]
        pending = w.wait_pod(
            pending["metadata"]["name"],
            lambda p: condition(p, "PodScheduled").get("reason") == "Unschedulable",
            "unschedulable",
        )
        assert condition(pending, "PodScheduled")["message"].startswith(
            "0/2 nodes are available: 2 Insufficient memory."
        )
        w.wait(
            "ready on both nodes", lambda: len([p for p in _pods(w, "spread") if is_ready(p)]) == 4
        )
    finally:
        w.close()
