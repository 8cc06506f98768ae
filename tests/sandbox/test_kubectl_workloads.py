"""kubectl against the sandbox's workloads: wait for Ready, logs, delete with GC."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from _support import eventually, settled
from kubelet_world import alive

pytestmark = pytest.mark.kubectl

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ticker-{u}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: ticker-{u}}}
  template:
    metadata:
      labels: {{app: ticker-{u}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: tick
        image: busybox:1.36
        command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]
"""


def _run(kubectl: str, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [kubectl, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}"
    return proc.stdout


def test_wait_logs_and_delete_with_garbage_collection(sandbox, kubectl, kubectl_env, unique):
    k = lambda *a, **kw: _run(kubectl, kubectl_env, *a, **kw)  # noqa: E731
    k("apply", "-f", "-", stdin=DEPLOYMENT.format(u=unique))
    selector = f"app=ticker-{unique}"
    # kubectl wait needs the pods to exist first; then it watches their Ready condition.
    eventually(
        lambda: k("get", "pods", "-l", selector, "-o", "name").split(),
        20,
        0.1,
        "the Deployment's 2 pods created",
        until=lambda pods: len(pods) >= 2,
    )
    out = k("wait", "--for=condition=Ready", "pod", "-l", selector, "--timeout=30s")
    assert out.count("condition met") == 2
    rollout = k("rollout", "status", f"deployment/ticker-{unique}", "--timeout=30s")
    assert "successfully rolled out" in rollout
    pods = k("get", "pods", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}").split()
    assert len(pods) == 2
    ips = k("get", "pods", "-l", selector, "-o", "jsonpath={.items[*].status.podIP}").split()
    assert len(set(ips)) == 2 and all(ip.startswith("127.") for ip in ips)

    logs = eventually(  # a few ticks
        lambda: k("logs", pods[0]).splitlines(),
        20,
        0.1,
        f"3 lines in the log of {pods[0]}",
        until=lambda lines: len(lines) >= 3,
    )
    assert len(logs) >= 3 and logs[0] == "tick 0" and logs[1] == "tick 1"
    tail = k("logs", "--tail=2", pods[0]).splitlines()
    assert len(tail) == 2 and all(line.startswith("tick ") for line in tail)
    assert int(tail[1].split()[1]) == int(tail[0].split()[1]) + 1
    via_deployment = k("logs", f"deployment/ticker-{unique}", "--tail=1")
    assert via_deployment.startswith("tick ")

    k("scale", f"deployment/ticker-{unique}", "--replicas=3")
    k("rollout", "status", f"deployment/ticker-{unique}", "--timeout=30s")
    ready = k("get", f"deployment/ticker-{unique}", "-o", "jsonpath={.status.readyReplicas}")
    assert ready == "3"
    pids = sandbox.pod_processes()
    assert len(pids) == 3 and all(alive(p) for p in pids)
    k("delete", "deployment", f"ticker-{unique}")
    left = settled(lambda: k("get", "pods,replicasets", "-l", selector, "-o", "name").strip(), 20)
    assert not left, "the Deployment's pods were not garbage-collected"
    assert settled(lambda: [p for p in pids if alive(p)], 10) == [], (
        "pod processes outlived their pods"
    )


CRASHER = """
apiVersion: v1
kind: Pod
metadata:
  name: crasher-{u}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: ["sh", "-c", "echo run-started; sleep 0.3; exit 3"]
"""


def test_logs_previous_and_timestamps(kubectl, kubectl_env, unique):
    k = lambda *a, **kw: _run(kubectl, kubectl_env, *a, **kw)  # noqa: E731
    k("apply", "-f", "-", stdin=CRASHER.format(u=unique))
    name = f"crasher-{unique}"
    eventually(
        lambda: int(
            k("get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].restartCount}") or 0
        ),
        20,
        0.1,
        "the crashing container restarted (restartCount >= 1)",
    )
    assert k("logs", name, "--previous") == "run-started\n"
    stamped = k("logs", name, "--previous", "--timestamps").splitlines()
    assert len(stamped) == 1
    stamp, text = stamped[0].split(" ", 1)
    assert text == "run-started"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", stamp)
    exit_code = k(
        "get",
        "pod",
        name,
        "-o",
        "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}",
    )
    assert exit_code == "3"
    k("delete", "pod", name, "--wait=true")


def test_foreground_cascade_holds_the_deployment_until_its_pods_are_gone(
    kubectl, kubectl_env, unique
):
    k = lambda *a, **kw: _run(kubectl, kubectl_env, *a, **kw)  # noqa: E731
    k("apply", "-f", "-", stdin=DEPLOYMENT.format(u=unique))
    selector = f"app=ticker-{unique}"
    pods = eventually(
        lambda: k("get", "pods", "-l", selector, "-o", "name").split(),
        20,
        0.1,
        "the Deployment's 2 pods created",
        until=lambda pods: len(pods) >= 2,
    )
    # A finalizer on one pod keeps it (deletionTimestamp set) until it is removed.
    held = pods[0]
    k("patch", held, "--type=merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    deployment = f"deployment/ticker-{unique}"
    k("delete", deployment, "--cascade=foreground", "--wait=false")
    eventually(
        lambda: k("get", "pods", "-l", selector, "-o", "name").split(),
        20,
        0.1,
        f"only the held pod {held} left",
        until=lambda left: left == [held],
    )
    # The unheld pod is gone: the garbage collector has worked through the cascade, and
    # what is left now stays for the finalizer.
    # Foreground: the Deployment waits, marked for deletion, for its last pod.
    finalizers = k("get", deployment, "-o", "jsonpath={.metadata.finalizers}")
    assert "foregroundDeletion" in finalizers, k("get", deployment, "-o", "yaml")
    assert k("get", deployment, "-o", "jsonpath={.metadata.deletionTimestamp}")
    assert k("get", held, "-o", "jsonpath={.metadata.deletionTimestamp}")
    k("patch", held, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    deadline = time.monotonic() + 20  # for both waits below
    left = settled(
        lambda: k("get", "deployments,replicasets,pods", "-l", selector, "-o", "name").strip(),
        20,
        0.1,
    )
    assert not left, f"not deleted after the pods: {left}"
    # the Deployment has no labels: the garbage collector removes it once its dependents
    # are gone, a moment after the listing above comes back empty
    proc = settled(
        lambda: subprocess.run(
            [kubectl, "get", deployment],
            env=kubectl_env,
            capture_output=True,
            text=True,
            timeout=60,
        ),
        max(0.0, deadline - time.monotonic()),
        0.1,
        until=lambda proc: proc.returncode != 0,
    )
    assert proc.returncode != 0 and "NotFound" in proc.stderr, proc.stdout


def test_logs_follow_streams_until_the_container_ends(kubectl, kubectl_env, unique):
    k = lambda *a, **kw: _run(kubectl, kubectl_env, *a, **kw)  # noqa: E731
    name = f"counter-{unique}"
    k(
        "run",
        name,
        "--image=busybox:1.36",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3; do echo n$i; sleep 0.4; done",
    )
    eventually(
        lambda: k("get", "pod", name, "-o", "jsonpath={.status.phase}"),
        20,
        message=f"pod {name} started (not Pending)",
        until=lambda phase: phase != "Pending",
    )
    t0 = time.monotonic()
    out = k("logs", "-f", name)
    assert out == "n1\nn2\nn3\n"
    assert time.monotonic() - t0 < 10  # it ended with the container, not on a timeout
    k("delete", "pod", name)


EXEC_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: shell-{u}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: ["sleep", "60"]
    env: [{{name: GREETING, value: hello-from-env}}]
    volumeMounts: [{{name: cfg, mountPath: /etc/cfg}}]
  volumes: [{{name: cfg, configMap: {{name: cfg-{u}}}}}]
"""


def test_exec_runs_in_the_pod_context(sandbox, kubectl, kubectl_env, unique):
    k = lambda *a, **kw: _run(kubectl, kubectl_env, *a, **kw)  # noqa: E731
    k("create", "configmap", f"cfg-{unique}", "--from-literal=mode=fast")
    k("apply", "-f", "-", stdin=EXEC_POD.format(u=unique))
    name = f"shell-{unique}"
    k("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=30s")
    ip = k("get", "pod", name, "-o", "jsonpath={.status.podIP}")
    out = k("exec", name, "--", "sh", "-c", "echo $GREETING $SANDBOX_POD_IP; cat /etc/cfg/mode")
    assert out == f"hello-from-env {ip}\nfast"
    assert k("exec", "-i", name, "--", "cat", stdin="piped through\n") == "piped through\n"
    failed = subprocess.run(
        [kubectl, "exec", name, "--", "sh", "-c", "exit 7"],
        env=kubectl_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 7
    missing = subprocess.run(
        [kubectl, "exec", name, "--", "no-such-binary"],
        env=kubectl_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0
    assert 'exec: "no-such-binary": executable file not found in $PATH' in missing.stderr
    k("delete", "pod", name)
