"""Fault injection through pod annotations, observed with the official kubernetes client.

Each fault must show what a real cluster shows: waiting/terminated reasons, messages,
restartCount, lastState, conditions and events.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from _support import eventually
from kubelet_world import alive, descendants

from arkouda_k8s.sandbox import Sandbox

kubernetes = pytest.importorskip("kubernetes")

P = "sandbox.arkouda-k8s.dev/"
IMAGE = "bearsrus/arkouda-udp-server:v2023.05.05"
LOCALE = ["sh", "/opt/arkouda/start-arkouda-locale.sh"]


@pytest.fixture(scope="module")
def sb():
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def api(sb):
    client = kubernetes.config.new_client_from_config(config_file=sb.kubeconfig_path)
    yield kubernetes.client.CoreV1Api(client)
    client.close()


def _create(
    api, name: str, annotations: dict[str, str], *, policy: str = "Always", command=None, probe=None
):
    container: dict[str, Any] = {
        "name": "c",
        "image": IMAGE,
        "command": command or LOCALE,
        "ports": [{"containerPort": 22}],
    }
    if probe:
        container["readinessProbe"] = probe
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"restartPolicy": policy, "containers": [container]},
    }
    return api.create_namespaced_pod("default", body)


def _until(api, name: str, pred: Callable[[Any], Any], what: str, timeout: float = 20) -> Any:
    """Pod ``name`` once ``pred`` holds (a failure shows the pod as last read)."""
    return eventually(
        lambda: api.read_namespaced_pod(name, "default"),
        timeout,
        0.1,
        f"pod {name}: {what}",
        until=pred,
    )


def _cs(pod) -> Any:
    return (pod.status.container_statuses or [None])[0]


def _waiting(pod) -> str | None:
    cs = _cs(pod)
    return cs.state.waiting.reason if cs and cs.state and cs.state.waiting else None


def _events(api, name: str) -> list[Any]:
    return api.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items


def _probe_failures(api, name: str) -> int:
    """How many probes of pod ``name`` failed (repeated events are folded into a count)."""
    return sum(e.count or 1 for e in _events(api, name) if e.reason == "Unhealthy")


def _cond(pod, ctype: str) -> Any:
    return next((c for c in pod.status.conditions or [] if c.type == ctype), None)


def _cleanup(api, name: str) -> None:
    api.delete_namespaced_pod(name, "default")


def test_image_pull_backoff(api):
    _create(api, "f-pull", {P + "fault": "ImagePullBackOff"})
    err = _until(api, "f-pull", lambda p: _waiting(p) == "ErrImagePull", "ErrImagePull")
    assert "not found" in _cs(err).state.waiting.message
    pod = _until(api, "f-pull", lambda p: _waiting(p) == "ImagePullBackOff", "ImagePullBackOff")
    w = _cs(pod).state.waiting
    assert w.message == f'Back-off pulling image "{IMAGE}"'
    assert pod.status.phase == "Pending"
    assert _cs(pod).restart_count == 0 and not _cs(pod).ready
    events = _events(api, "f-pull")
    failed = [e.message for e in events if e.reason == "Failed"]
    assert any(m.startswith(f'Failed to pull image "{IMAGE}": ') for m in failed)
    assert "Error: ErrImagePull" in failed
    assert any(e.reason == "BackOff" and e.message == w.message for e in events)
    _cleanup(api, "f-pull")


def test_unschedulable_default_and_custom_message(api):
    _create(api, "f-unsched", {P + "fault": "Unschedulable"})
    custom = "0/1 nodes are available: 1 node(s) had untolerated taint {gpu: true}."
    _create(api, "f-unsched2", {P + "fault": "Unschedulable", P + "unschedulable-message": custom})
    for name, message in (
        (
            "f-unsched",
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
        ),
        ("f-unsched2", custom),
    ):
        pod = _until(api, name, lambda p: _cond(p, "PodScheduled") is not None, "PodScheduled")
        cond = _cond(pod, "PodScheduled")
        assert (cond.status, cond.reason, cond.message) == ("False", "Unschedulable", message)
        assert pod.status.phase == "Pending" and not pod.spec.node_name
        ev = [e for e in _events(api, name) if e.reason == "FailedScheduling"]
        assert ev and ev[0].type == "Warning" and ev[0].message == message
        _cleanup(api, name)


def test_oom_killed_restarts_into_crash_loop(api):
    _create(api, "f-oom", {P + "fault": "OOMKilled"})
    pod = _until(
        api,
        "f-oom",
        lambda p: _waiting(p) == "CrashLoopBackOff",
        "CrashLoopBackOff after OOM kills",
    )
    cs = _cs(pod)
    last = cs.last_state.terminated
    assert (last.reason, last.exit_code) == ("OOMKilled", 137)
    assert cs.restart_count >= 1
    assert pod.status.phase == "Running"
    assert any(e.reason == "OOMKilling" for e in api.list_namespaced_event("default").items)
    assert any(e.reason == "BackOff" for e in _events(api, "f-oom"))
    _cleanup(api, "f-oom")


def test_crash_loop_backoff(api):
    pod = _create(api, "f-crash", {P + "fault": "CrashLoopBackOff"})
    uid = pod.metadata.uid
    pod = _until(api, "f-crash", lambda p: _waiting(p) == "CrashLoopBackOff", "CrashLoopBackOff")
    cs = _cs(pod)
    assert re.fullmatch(
        rf"back-off \d+s restarting failed container=c pod=f-crash_default\({uid}\)",
        cs.state.waiting.message,
    )
    assert (cs.last_state.terminated.reason, cs.last_state.terminated.exit_code) == ("Error", 1)
    assert cs.restart_count >= 1 and not cs.ready
    assert _cond(pod, "Ready").reason == "ContainersNotReady"
    previous = api.read_namespaced_pod_log("f-crash", "default", previous=True)
    assert "CrashLoopBackOff" in previous and previous.strip()
    backoff = [e for e in _events(api, "f-crash") if e.reason == "BackOff"]
    assert backoff[0].message == (
        f"Back-off restarting failed container c in pod f-crash_default({uid})"
    )
    _cleanup(api, "f-crash")


def test_never_ready(api):
    probe = {"tcpSocket": {"port": 22}, "periodSeconds": 1}
    _create(api, "f-never", {P + "fault": "NeverReady"}, probe=probe)
    pod = _until(
        api,
        "f-never",
        lambda p: (
            p.status.phase == "Running"
            and any(e.reason == "Unhealthy" for e in _events(api, "f-never"))
        ),
        "Running with Unhealthy events",
    )
    # a few probe periods later (two more failed probes) it must still not be ready
    failed = _probe_failures(api, "f-never")
    eventually(
        lambda: _probe_failures(api, "f-never"),
        20,
        0.1,
        "two more failed readiness probes of f-never",
        until=lambda n: n >= failed + 2,
    )
    pod = api.read_namespaced_pod("f-never", "default")
    cs = _cs(pod)
    assert cs.state.running is not None and not cs.ready and cs.restart_count == 0
    ready = _cond(pod, "Ready")
    assert (ready.status, ready.reason) == ("False", "ContainersNotReady")
    assert ready.message == "containers with unready status: [c]"
    unhealthy = [e for e in _events(api, "f-never") if e.reason == "Unhealthy"]
    ip = pod.status.pod_ip
    assert unhealthy[0].type == "Warning"
    assert (
        unhealthy[0].message
        == f"Readiness probe failed: dial tcp {ip}:22: connect: connection refused"
    )
    _cleanup(api, "f-never")


def test_start_delay_keeps_container_creating(api):
    t0 = time.monotonic()
    _create(api, "f-slow", {P + "start-delay-seconds": "2"})
    pod = _until(api, "f-slow", lambda p: _waiting(p) == "ContainerCreating", "ContainerCreating")
    assert pod.status.phase == "Pending"
    pod = _until(api, "f-slow", lambda p: _cs(p) and _cs(p).ready, "ready")
    assert time.monotonic() - t0 >= 2
    pulled = [e.message for e in _events(api, "f-slow") if e.reason == "Pulled"]
    assert re.match(rf'Successfully pulled image "{IMAGE}" in 2\.\d+s', pulled[0])
    _cleanup(api, "f-slow")


def test_kill_after_seconds(api):
    _create(api, "f-kill", {P + "kill-after-seconds": "1"}, policy="Never", command=["sleep", "60"])
    pod = _until(api, "f-kill", lambda p: p.status.phase == "Failed", "Failed")
    term = _cs(pod).state.terminated
    assert (term.reason, term.exit_code) == ("Error", 137)
    _create(api, "f-kill2", {P + "kill-after-seconds": "1"})
    pod = _until(api, "f-kill2", lambda p: _cs(p) and _cs(p).restart_count >= 1, "a restart")
    last = _cs(pod).last_state.terminated
    assert (last.reason, last.exit_code) == ("Error", 137)
    _cleanup(api, "f-kill")
    _cleanup(api, "f-kill2")


def test_sandbox_stop_leaves_no_process_behind():
    before = set(descendants())
    with Sandbox() as sandbox:
        client = kubernetes.config.new_client_from_config(config_file=sandbox.kubeconfig_path)
        api = kubernetes.client.CoreV1Api(client)
        for i in range(3):
            _create(
                api,
                f"busy-{i}",
                {},
                command=["sh", "-c", "sleep 60 & sleep 60 & trap '' TERM; wait"],
            )
        pids = eventually(
            sandbox.pod_processes,
            20,
            0.1,
            "3 pod processes started",
            until=lambda pids: len(pids) >= 3,
        )
        assert len(pids) == 3 and all(alive(p) for p in pids)
        started = set(descendants()) - before
        assert len(started) >= 9  # three shells with two sleeps each
        root = sandbox.kubelet.root
        assert root.is_dir() and any(root.iterdir())  # the pods' private dirs on tmpfs
        client.close()
    assert not root.exists()
    left = [p for p in set(descendants()) - before if alive(p)]
    assert left == []
    assert not any(alive(p) for p in started)
