"""The simulated kubelet: pods as processes, IPs, env, mounts, probes, logs, restarts."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import stat
import sys
import time
from pathlib import Path

import pytest
from _support import settled
from kubelet_world import World, alive, condition, container_status, descendants, is_ready

from arkouda_k8s.sandbox.kubelet import expand_vars, normalise_image, plan_container

PY = sys.executable


@pytest.fixture(scope="module")
def world():
    w = World()
    yield w
    w.close()


def _touch(world: World, pod: str, name: str) -> None:
    """Create ``name`` in the container's working directory, as ``kubectl exec`` would."""
    if world.isolated:
        code, out = world.exec(pod, ["touch", name])
        assert code == 0, out
    else:  # the container's working directory is its pod dir
        Path(world.kubelet.root, world.pod(pod)["metadata"]["uid"], name).touch()


def _pod(name: str, command: list[str] | None, **spec) -> dict:
    container = {
        "name": spec.pop("container_name", "main"),
        "image": spec.pop("image", "busybox:1.36"),
    }
    if command is not None:
        container["command"] = command
    for key in (
        "env",
        "envFrom",
        "ports",
        "readinessProbe",
        "livenessProbe",
        "volumeMounts",
        "resources",
    ):
        if key in spec:
            container[key] = spec.pop(key)
    meta = {
        "name": name,
        "labels": spec.pop("labels", {}),
        "annotations": spec.pop("annotations", {}),
    }
    return {"metadata": meta, "spec": {"containers": [container], **spec}}


def _listener(delay: float, port: int = 8080) -> list[str]:
    # "listening" is printed just before listen(): a probe that finds the port open comes
    # after the line is in the log, so "no such line" means "not listening yet" (printed
    # after listen(), a probe could pass before the line was written)
    code = (
        "import os, socket, time\n"
        f"time.sleep({delay})\n"
        "s = socket.socket(); s.bind((os.environ['SANDBOX_POD_IP'], %d))\n"
        "print('listening', flush=True)\n"
        "s.listen()\n"
        "while True:\n    c, _ = s.accept(); c.close()\n" % port
    )
    return [PY, "-c", code]


def test_deployment_pods_are_processes_with_unique_ips_and_tcp_readiness(world):
    world.create(
        "deployments.apps",
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "example/web:1",
                                "command": _listener(1.5),
                                "ports": [{"containerPort": 8080}],
                                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                            }
                        ]
                    },
                },
            },
        },
    )
    pods = world.wait(
        "3 running web pods",
        lambda: (
            [
                p
                for p in world.store.list("pods", "default", label_selector="app=web")[0]
                if container_status(p).get("state", {}).get("running")
            ]
            if len(world.store.list("pods", "default", label_selector="app=web")[0]) == 3
            else None
        ),
    )
    # Running but not listening yet: the TCP probe must keep them unready.
    early = [world.pod(p["metadata"]["name"]) for p in pods]
    assert not any(
        is_ready(p)
        for p in early
        if "listening" not in world.kubelet.read_log("default", p["metadata"]["name"]).decode()
    )
    ready = world.wait(
        "3 ready web pods",
        lambda: (lambda ps: ps if len(ps) == 3 and all(is_ready(p) for p in ps) else None)(
            world.store.list("pods", "default", label_selector="app=web")[0]
        ),
    )
    ips = [p["status"]["podIP"] for p in ready]
    assert len(set(ips)) == 3
    for p in ready:
        assert ipaddress.ip_address(p["status"]["podIP"]) in ipaddress.ip_network("127.0.0.0/8")
        assert p["status"]["hostIP"] == "127.0.0.1"
        assert p["spec"]["nodeName"] == "sandbox-node"
        assert b"listening" in world.log(p["metadata"]["name"])
        # The readiness reflects a real listener on the pod IP.
        with socket.create_connection((p["status"]["podIP"], 8080), timeout=2):
            pass
        cs = container_status(p)
        assert cs["ready"] and cs["started"] and cs["restartCount"] == 0
        assert cs["containerID"].startswith("containerd://")
        assert cs["image"] == "docker.io/example/web:1"
        assert cs["imageID"].startswith("docker.io/example/web@sha256:")
    pids = world.call(world.kubelet.processes)
    assert len(pids) == 3 and all(alive(pid) for pid in pids)
    world.delete("deployments.apps", "web")
    world.wait(
        "web pods gone",
        lambda: not world.store.list("pods", "default", label_selector="app=web")[0],
    )
    world.wait("web processes gone", lambda: not any(alive(pid) for pid in pids), timeout=10)


def test_env_and_mounted_secret_reach_the_process_and_the_pod_dir_goes_with_the_pod(world):
    world.create(
        "secrets",
        {"metadata": {"name": "creds"}, "stringData": {"user": "test-user", "pw": "test-pw-1"}},
    )
    world.create(
        "configmaps",
        {"metadata": {"name": "conf"}, "data": {"mode": "fast", "script.sh": "echo from-script"}},
    )
    script = (
        'echo "name=$MY_NAME ns=$MY_NS ip=$MY_IP node=$MY_NODE app=$MY_APP host=$MY_HOST"; '
        'echo "user=$USER_NAME mode=$MODE cfg_mode=$CFG_mode"; '
        'echo "file=$(cat /etc/creds/pw)"; echo "via_env=$(cat $PW_FILE)"; '
        "sh /opt/tools/run.sh; "
        'echo "root=$SANDBOX_ROOT cwd=$(pwd)"; echo "aliases=$SANDBOX_HOST_ALIASES"; '
        "python3 -c 'import arkouda_k8s; print(\"imports\", arkouda_k8s.__name__)'; sleep 60"
    )
    world.create(
        "pods",
        _pod(
            "envpod",
            ["sh", "-c", script],
            labels={"app": "envtest"},
            env=[
                {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "MY_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {
                    "name": "MY_APP",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}},
                },
                {
                    "name": "USER_NAME",
                    "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}},
                },
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "mode"}}},
                {"name": "PW_FILE", "value": "/etc/creds/pw"},
            ],
            envFrom=[{"configMapRef": {"name": "conf"}, "prefix": "CFG_"}],
            volumeMounts=[
                {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
                {"name": "conf", "mountPath": "/opt/tools/run.sh", "subPath": "run.sh"},
            ],
            volumes=[
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                {
                    "name": "conf",
                    "configMap": {
                        "name": "conf",
                        "items": [{"key": "script.sh", "path": "run.sh", "mode": 0o755}],
                    },
                },
            ],
        ),
    )
    world.wait_pod("envpod", lambda p: b"imports arkouda_k8s" in world.log("envpod"), "output")
    pod = world.pod("envpod")
    out = world.call(world.kubelet.read_log, "default", "envpod").decode()
    ip = pod["status"]["podIP"]
    assert f"name=envpod ns=default ip={ip} node=sandbox-node app=envtest host=127.0.0.1" in out
    assert "user=test-user mode=fast cfg_mode=fast" in out
    assert "file=test-pw-1" in out and "via_env=test-pw-1" in out
    assert "from-script" in out
    assert "imports arkouda_k8s" in out
    if world.isolated:
        # Its own filesystem view: the mounts are where the spec puts them.
        assert "root= cwd=/" in out
        code, modes = world.exec(
            "envpod", ["stat", "-c", "%a", "/etc/creds/pw", "/opt/tools/run.sh"]
        )
        assert (code, modes.split()) == (0, [b"400", b"755"])
        root = str(Path(world.kubelet.root, pod["metadata"]["uid"]))
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
        world.delete("pods", "envpod")
        world.wait("pod dir removed", lambda: not os.path.exists(root), timeout=10)
        return
    root = out.split("root=", 1)[1].split()[0]
    assert root.startswith("/dev/shm/arkouda-k8s-sandbox-") and root.endswith(
        pod["metadata"]["uid"]
    )
    assert out.split("cwd=", 1)[1].split()[0].startswith(root)
    assert "kubernetes.default.svc:443=127.0.0.1:9" in out
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(Path(root, "etc/creds/pw")).st_mode) == 0o400
    assert stat.S_IMODE(os.stat(Path(root, "opt/tools/run.sh")).st_mode) == 0o755
    world.delete("pods", "envpod")
    world.wait("pod dir removed", lambda: not os.path.exists(root), timeout=10)


def test_missing_secret_keeps_pod_creating_with_failed_mount_until_it_exists(world):
    world.create(
        "pods",
        _pod(
            "mountwait",
            ["sh", "-c", "cat /s/k; sleep 60"],
            volumeMounts=[{"name": "s", "mountPath": "/s"}],
            volumes=[{"name": "s", "secret": {"secretName": "later"}}],
        ),
    )
    world.wait(
        "FailedMount event",
        lambda: [
            e
            for e in world.store.list("events", "default")[0]
            if e["involvedObject"]["name"] == "mountwait" and e["reason"] == "FailedMount"
        ],
    )
    pod = world.pod("mountwait")
    assert pod["status"]["phase"] == "Pending"
    assert container_status(pod)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    ev = [e for e in world.events("mountwait") if e["reason"] == "FailedMount"][0]
    assert ev["type"] == "Warning"
    assert ev["message"] == 'MountVolume.SetUp failed for volume "s" : secret "later" not found'
    world.create("secrets", {"metadata": {"name": "later"}, "stringData": {"k": "arrived"}})
    world.wait_pod(
        "mountwait",
        lambda p: b"arrived" in world.log("mountwait"),
        "secret content",
    )
    world.delete("pods", "mountwait")


def test_missing_env_secret_is_create_container_config_error(world):
    world.create(
        "pods",
        _pod(
            "cfgerr",
            ["sleep", "30"],
            env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}],
        ),
    )
    pod = world.wait_pod(
        "cfgerr",
        lambda p: (
            container_status(p).get("state", {}).get("waiting", {}).get("reason")
            == "CreateContainerConfigError"
        ),
        "config error",
    )
    assert container_status(pod)["state"]["waiting"]["message"] == 'secret "nope" not found'
    world.delete("pods", "cfgerr")


def test_logs_timestamps_tail_follow_and_previous(world):
    world.create(
        "pods",
        _pod("logger", ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 0.3; exit 2"]),
    )
    world.wait_pod("logger", lambda p: container_status(p).get("restartCount", 0) >= 1, "a restart")
    previous = world.call(world.kubelet.read_log, "default", "logger", None, None, True).decode()
    assert previous == "line1\nline2\nline3\nline4\nline5\n"
    tail = world.call(
        lambda: world.kubelet.read_log("default", "logger", tail_lines=2, previous=True)
    )
    assert tail == b"line4\nline5\n"
    stamped = world.call(
        lambda: world.kubelet.read_log("default", "logger", previous=True, timestamps=True)
    )
    first = stamped.decode().splitlines()[0]
    stamp, text = first.split(" ", 1)
    assert (
        text == "line1"
        and stamp.endswith("Z")
        and len(stamp) == len("2026-01-01T00:00:00.000000000Z")
    )
    pod = world.pod("logger")
    last = container_status(pod)["lastState"]["terminated"]
    assert last["exitCode"] == 2 and last["reason"] == "Error"
    world.delete("pods", "logger")

    world.create(
        "pods",
        _pod(
            "follower",
            ["sh", "-c", "echo a; sleep 0.5; echo b; sleep 0.5; echo c"],
            restartPolicy="Never",
        ),
    )
    world.wait_pod(
        "follower",
        lambda p: (
            container_status(p).get("state", {}).get("running")
            or container_status(p).get("state", {}).get("terminated")
        ),
        "start",
    )

    async def follow() -> bytes:
        chunks = []
        async for chunk in world.kubelet.follow_log("default", "follower"):
            chunks.append(chunk)
        return b"".join(chunks)

    assert world.call(follow, timeout=10) == b"a\nb\nc\n"
    world.delete("pods", "follower")


def test_log_errors_match_the_real_messages(world):
    from arkouda_k8s.sandbox.store import ApiError

    world.create("pods", _pod("quiet", ["sleep", "30"]))
    world.wait_pod(
        "quiet", lambda p: container_status(p).get("state", {}).get("running"), "running"
    )
    with pytest.raises(
        ApiError, match='previous terminated container "main" in pod "quiet" not found'
    ):
        world.call(lambda: world.kubelet.read_log("default", "quiet", previous=True))
    world.delete("pods", "quiet")


def test_restart_policies_and_exit_states(world):
    world.create("pods", _pod("ok", ["sh", "-c", "exit 0"], restartPolicy="Never"))
    world.create("pods", _pod("bad", ["sh", "-c", "exit 3"], restartPolicy="Never"))
    world.create("pods", _pod("onfail", ["sh", "-c", "exit 0"], restartPolicy="OnFailure"))
    ok = world.wait_pod("ok", lambda p: p["status"].get("phase") == "Succeeded", "Succeeded")
    term = container_status(ok)["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert condition(ok, "Ready")["reason"] == "PodCompleted"
    bad = world.wait_pod("bad", lambda p: p["status"].get("phase") == "Failed", "Failed")
    term = container_status(bad)["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert container_status(bad)["restartCount"] == 0
    world.wait_pod("onfail", lambda p: p["status"].get("phase") == "Succeeded", "Succeeded")
    for name in ("ok", "bad", "onfail"):
        world.delete("pods", name)


def test_liveness_failure_kills_and_restarts(world):
    world.create(
        "pods",
        _pod(
            "unlive",
            ["sleep", "60"],
            ports=[{"containerPort": 7000, "name": "svc"}],
            livenessProbe={"tcpSocket": {"port": "svc"}, "periodSeconds": 1, "failureThreshold": 2},
        ),
    )
    pod = world.wait_pod(
        "unlive", lambda p: container_status(p).get("restartCount", 0) >= 1, "a liveness restart"
    )
    reasons = {(e["reason"], e["message"]) for e in world.events("unlive")}
    assert ("Killing", "Container main failed liveness probe, will be restarted") in reasons
    ip = pod["status"]["podIP"]
    assert (
        "Unhealthy",
        f"Liveness probe failed: dial tcp {ip}:7000: connect: connection refused",
    ) in reasons
    world.delete("pods", "unlive")


def test_delete_sends_sigterm_then_sigkill_after_the_grace_period(world):
    world.create(
        "pods",
        _pod(
            "stubborn",
            ["sh", "-c", "trap '' TERM; echo trapped; while true; do sleep 0.1; done"],
            terminationGracePeriodSeconds=1,
        ),
    )
    before = set(world.call(world.kubelet.processes))
    world.wait_pod(
        "stubborn",
        lambda p: b"trapped" in world.log("stubborn"),
        "trap set",
    )
    (pid,) = set(world.call(world.kubelet.processes)) - before
    t0 = time.monotonic()
    world.delete("pods", "stubborn")
    world.wait("stubborn process killed", lambda: not alive(pid), timeout=10)
    took = time.monotonic() - t0
    assert 0.8 <= took < 5, took  # it ignored SIGTERM, so only the SIGKILL after 1 s ended it
    assert not [p for p in descendants() if _pgid(p) == pid]  # its sleep children went too


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_idle_locale_pods_are_listeners_not_processes(world):
    if world.isolated:
        pytest.skip("containers run over image models (tests/sandbox/test_containers.py)")
    before = set(world.call(world.kubelet.processes))
    world.create(
        "pods",
        _pod(
            "locale",
            ["sh", "/opt/arkouda/start-arkouda-locale.sh"],
            image="bearsrus/arkouda-udp-server:v2023.05.05",
            ports=[{"containerPort": 22}],
            readinessProbe={"tcpSocket": {"port": 22}, "periodSeconds": 1},
        ),
    )
    pod = world.wait_pod("locale", is_ready, "Ready")
    assert set(world.call(world.kubelet.processes)) == before
    with socket.create_connection((pod["status"]["podIP"], 22), timeout=2) as s:
        assert s.recv(64).startswith(b"SSH-2.0-")
    world.delete("pods", "locale")
    world.wait("pod object gone", lambda: world.pod("locale") is None)

    def refused() -> bool:
        try:
            socket.create_connection((pod["status"]["podIP"], 22), timeout=1).close()
        except OSError:
            return True
        return False

    world.wait("listener closed", refused, timeout=10)


def test_image_table_and_helpers():
    server = plan_container(
        {
            "image": "bearsrus/arkouda-udp-server:v2023.05.05",
            "command": ["sh", "/opt/arkouda/start-arkouda-server.sh"],
            "args": ["--ServerPort=5555"],
        },
        {"NUMLOCALES": "3"},
    )
    assert server.argv == [
        sys.executable,
        "-m",
        "arkouda_k8s.sandbox.arkouda_server",
        "-nl",
        "3",
        "--ServerPort=5555",
    ]
    locale = plan_container(
        {
            "image": "reg.example/x/arkouda-smp-server:v1",
            "command": ["sh", "/opt/arkouda/start-arkouda-locale.sh"],
        },
        {},
    )
    assert locale.argv is None
    assert plan_container({"image": "busybox"}, {}).argv is None
    assert plan_container({"image": "busybox", "command": ["echo"], "args": ["hi"]}, {}).argv == [
        "echo",
        "hi",
    ]
    assert expand_vars("$(A)-$(B)-$$(A)", {"A": "1"}) == "1-$(B)-$(A)"
    assert normalise_image("busybox") == "docker.io/library/busybox:latest"
    assert normalise_image("quay.io/a/b:1") == "quay.io/a/b:1"


def test_server_image_runs_the_stand_in_server_with_numlocales(world):
    if world.isolated:
        pytest.skip("containers run over image models (tests/sandbox/test_containers.py)")
    before = set(world.call(world.kubelet.processes))
    world.create(
        "pods",
        _pod(
            "ak-server",
            ["sh", "/opt/arkouda/start-arkouda-server.sh"],
            image="bearsrus/arkouda-smp-server:v2023.05.05",
            env=[{"name": "NUMLOCALES", "value": "2"}],
            ports=[{"containerPort": 5555, "name": "arkouda"}],
            readinessProbe={"tcpSocket": {"port": "arkouda"}, "periodSeconds": 1},
        ),
    )
    pod = world.wait_pod("ak-server", is_ready, "the stand-in server listening", timeout=30)
    (pid,) = set(world.call(world.kubelet.processes)) - before
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert b"arkouda_k8s.sandbox.arkouda_server" in argv
    assert argv[argv.index(b"-nl") + 1] == b"2"
    with socket.create_connection((pod["status"]["podIP"], 5555), timeout=2):
        pass
    world.delete("pods", "ak-server")
    world.wait("server process gone", lambda: not alive(pid), timeout=10)


def test_exec_and_http_probes(world):
    http = (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        ok = os.path.exists('ready')\n"
        "        self.send_response(200 if ok else 503); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer((os.environ['SANDBOX_POD_IP'], 8081), H).serve_forever()\n"
    )
    world.create(
        "pods",
        _pod(
            "httpprobe",
            [PY, "-c", http],
            ports=[{"containerPort": 8081}],
            readinessProbe={"httpGet": {"path": "/healthz", "port": 8081}, "periodSeconds": 1},
        ),
    )
    world.create(
        "pods",
        _pod(
            "execprobe",
            ["sleep", "60"],
            readinessProbe={"exec": {"command": ["test", "-e", "flag"]}, "periodSeconds": 1},
        ),
    )
    pod = world.wait_pod(
        "httpprobe",
        lambda p: any(
            e["message"] == "Readiness probe failed: HTTP probe failed with statuscode: 503"
            for e in world.store.list("events", "default")[0]
            if e["involvedObject"]["name"] == "httpprobe"
        ),
        "an HTTP probe answered 503",
    )
    assert not is_ready(pod)  # the server answers, but with 503
    for name, flag in (("httpprobe", "ready"), ("execprobe", "flag")):
        assert not is_ready(world.pod(name))
        _touch(world, name, flag)
        world.wait_pod(name, is_ready, "ready once the probe passes")
    world.delete("pods", "httpprobe")
    world.delete("pods", "execprobe")


def test_init_containers_run_first_and_in_order(world):
    # Each container has its own filesystem: the order is handed over in an emptyDir.
    shared = [{"name": "shared", "mountPath": "/shared"}]
    pod = _pod(
        "withinit",
        ["sh", "-c", "cat /shared/order; sleep 60"],
        restartPolicy="Always",
        volumeMounts=shared,
        volumes=[{"name": "shared", "emptyDir": {}}],
    )
    pod["spec"]["initContainers"] = [
        {
            "name": "first",
            "image": "busybox",
            "command": ["sh", "-c", "sleep 0.5; echo first >> /shared/order"],
            "volumeMounts": shared,
        },
        {
            "name": "second",
            "image": "busybox",
            "command": ["sh", "-c", "echo second >> /shared/order"],
            "volumeMounts": shared,
        },
    ]
    world.create("pods", pod)
    early = world.wait_pod(
        "withinit", lambda p: (p.get("status") or {}).get("initContainerStatuses"), "init statuses"
    )
    assert early["status"]["phase"] == "Pending"
    init = condition(early, "Initialized")
    assert init["status"] == "False" and init["reason"] == "ContainersNotInitialized"
    assert container_status(early)["state"] == {"waiting": {"reason": "PodInitializing"}}
    done = world.wait_pod("withinit", lambda p: b"second" in world.log("withinit"), "main ran")
    assert world.log("withinit") == b"first\nsecond\n"
    assert condition(done, "Initialized")["status"] == "True"
    firsts = done["status"]["initContainerStatuses"]
    assert [s["state"]["terminated"]["reason"] for s in firsts] == ["Completed", "Completed"]
    world.delete("pods", "withinit")

    failing = _pod("initfail", ["sleep", "60"], restartPolicy="Never")
    failing["spec"]["initContainers"] = [
        {"name": "boom", "image": "busybox", "command": ["sh", "-c", "exit 4"]}
    ]
    world.create("pods", failing)
    bad = world.wait_pod("initfail", lambda p: p["status"].get("phase") == "Failed", "Failed")
    assert bad["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert container_status(bad)["state"] == {"waiting": {"reason": "PodInitializing"}}
    world.delete("pods", "initfail")


def test_deleting_pods_while_they_start_leaves_no_process(world):
    marker = f"race-marker-{os.getpid()}"
    # Deletes land before, around and after the fork (about 50 ms after binding).
    delays = [0.0, 0.02, *(0.04 + 0.005 * k for k in range(12)), 0.12, 0.2]
    for i, delay in enumerate(delays):
        world.create("pods", _pod(f"race-{i}", ["sh", "-c", f"sleep 60; : {marker}"]))
        time.sleep(delay)
        world.delete("pods", f"race-{i}")

    def marked() -> list[int]:
        out = []
        for pid in descendants():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read() and alive(pid):
                        out.append(pid)
            except OSError:  # gone, or exiting while we read (ESRCH)
                pass
        return out

    left = settled(marked, 10, 0.1)
    assert left == [], f"processes outlived their pods: {left}"
    # The kubelet forgets a pid once it has reaped the process, a moment after it died.
    world.wait("the kubelet's process table empty", lambda: not world.kubelet.processes(), 10)


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:  # gone, or exiting while we read (ESRCH)
        return []


def test_an_exec_cancelled_as_its_process_starts_leaves_no_process(world):
    """A kubectl exec whose request goes away (the client hung up) while its process is
    being started: the process has forked, its command runs (sh started a child), the
    start has not returned yet. Every process of that exec goes, the child too, as with
    a pod deleted while it starts."""
    world.create("pods", _pod("exec-cancel", ["sleep", "60"]))
    world.wait_pod("exec-cancel", lambda p: p["status"].get("phase") == "Running", "Running")
    marker = f"exec-cancel-{os.getpid()}"
    before = set(descendants())

    def started() -> list[int]:
        """The exec's processes, once its shell runs its child (sleep 61)."""
        new = [p for p in descendants() if p not in before]
        return new if any(_cmdline(p)[:2] == ["sleep", "61"] for p in new) else []

    async def cancel_while_starting() -> tuple[list[int], bool, bool]:
        task = asyncio.ensure_future(
            world.kubelet.exec_in_pod(
                "default", "exec-cancel", "main", ["sh", "-c", f"sleep 61; : {marker}"]
            )
        )
        deadline = time.monotonic() + 20
        # The fork happens on the loop: awaited until the first process of the exec shows.
        while not set(descendants()) - before:
            assert time.monotonic() < deadline and not task.done(), "the exec never forked"
            await asyncio.sleep(0)
        # Then the loop is held (no await) until the command runs, so the exec cannot
        # finish starting: the cancel lands in the middle of the start.
        while not (procs := started()):
            assert time.monotonic() < deadline, "the exec's command never ran"
        landed = not task.done()
        task.cancel()
        # bounded: a start that waits for its pipes to close waits for every process
        await asyncio.wait({task}, timeout=10)
        return procs, landed, task.cancelled()

    procs, landed, cancelled = world.call(cancel_while_starting)
    assert landed, "the exec had finished starting before the cancel"
    left = settled(lambda: [p for p in procs if alive(p) and _cmdline(p)], 10, 0.1)
    assert left == [], f"processes outlived their cancelled exec: {left}"
    assert cancelled, "the cancelled exec did not end as cancelled"
    world.wait(
        "the kubelet's process table without the exec",
        lambda: not set(procs) & set(world.kubelet.processes()),
        10,
    )
    world.delete("pods", "exec-cancel")


def test_empty_dir_is_shared_by_the_pods_containers(world):
    pod = _pod(
        "shared",
        ["sh", "-c", "echo handed-over > /work/note; sleep 60"],
        volumeMounts=[{"name": "scratch", "mountPath": "/work"}],
        volumes=[
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": "/etc"}},
        ],
    )
    pod["spec"]["containers"].append(
        {
            "name": "reader",
            "image": "busybox",
            "command": [
                "sh",
                "-c",
                "while [ ! -s /work/note ]; do sleep 0.1; done; cat /work/note; ls /host; sleep 60",
            ],
            "volumeMounts": [
                {"name": "scratch", "mountPath": "/work"},
                {"name": "host", "mountPath": "/host"},
            ],
        }
    )
    world.create("pods", pod)
    world.wait_pod(
        "shared", lambda p: b"handed-over" in world.log("shared", container="reader"), "note"
    )
    # hostPath maps to an empty pod-dir folder: the host's /etc is not exposed.
    assert world.log("shared", container="reader") == b"handed-over\n"
    world.delete("pods", "shared")


def test_idle_port_that_needs_root_is_served_to_probes_only(monkeypatch):
    import asyncio

    from arkouda_k8s.sandbox import kubelet as kubelet_module

    real_start = asyncio.start_server

    async def start_server(cb, host, port):
        if 0 < port < 1024:
            raise PermissionError(13, "Permission denied")  # what a non-root user gets
        return await real_start(cb, host, port)

    monkeypatch.setattr(kubelet_module.asyncio, "start_server", start_server)

    async def scenario():
        buf = kubelet_module.LogBuffer()
        rt = await kubelet_module.IdleRuntime.start("127.0.0.1", [22, 0], buf, b"")
        try:
            return set(rt.serving), buf.read()
        finally:
            rt.signal(15)

    serving, text = asyncio.run(scenario())
    assert ("127.0.0.1", 22) in serving
    assert b"ports [22] need root" in text


def test_startup_probe_gates_started_and_restarts_on_failure(world):
    pod = _pod("slowstart", ["sleep", "60"])
    pod["spec"]["containers"][0]["startupProbe"] = {
        "exec": {"command": ["test", "-e", "booted"]},
        "periodSeconds": 1,
        "failureThreshold": 30,
    }
    world.create("pods", pod)
    running = world.wait_pod(
        "slowstart", lambda p: container_status(p).get("state", {}).get("running"), "running"
    )
    assert container_status(running)["started"] is False and not is_ready(running)
    _touch(world, "slowstart", "booted")
    done = world.wait_pod("slowstart", is_ready, "ready after the startup probe passed")
    assert container_status(done)["started"] is True
    world.delete("pods", "slowstart")

    never = _pod("neverstart", ["sleep", "60"])
    never["spec"]["containers"][0]["startupProbe"] = {
        "exec": {"command": ["false"]},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    world.create("pods", never)
    world.wait_pod(
        "neverstart", lambda p: container_status(p).get("restartCount", 0) >= 1, "a restart"
    )
    messages = {e["message"] for e in world.events("neverstart")}
    assert "Container main failed startup probe, will be restarted" in messages
    world.delete("pods", "neverstart")


def test_traversing_mount_and_item_paths_never_touch_the_host(world, tmp_path):
    """The kubelet runs as root: pod-supplied paths must stay inside the pod directory."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("precious")
    climb = "../" * 12
    world.create("configmaps", {"metadata": {"name": "payload"}, "data": {"k": "planted"}})
    world.create(
        "pods",
        _pod(
            "climber",
            ["sleep", "30"],
            volumeMounts=[{"name": "c", "mountPath": "/" + climb + str(victim).lstrip("/")}],
            volumes=[{"name": "c", "emptyDir": {}}],
        ),
    )
    world.create(
        "pods",
        _pod(
            "writer",
            ["sleep", "30"],
            volumeMounts=[{"name": "c", "mountPath": "/data"}],
            volumes=[
                {
                    "name": "c",
                    "configMap": {
                        "name": "payload",
                        "items": [{"key": "k", "path": climb + str(victim / "planted")}],
                    },
                }
            ],
        ),
    )
    for name in ("climber", "writer"):
        world.wait(
            f"{name}: FailedMount naming the escape",
            lambda name=name: [
                e
                for e in world.events(name)
                if e["reason"] == "FailedMount" and "outside the pod directory" in e["message"]
            ],
        )
        assert world.pod(name)["status"]["phase"] == "Pending"
        world.delete("pods", name)
    assert (victim / "keep").read_text() == "precious"
    assert not (victim / "planted").exists()


def test_without_isolation_the_sandbox_says_so_once_and_runs_as_before(tmp_path):
    """Not root (or isolation turned off): one warning, then today's process model."""
    import subprocess

    script = tmp_path / "fallback.py"
    script.write_text(
        "import logging, sys\n"
        # kubelet_world (tests/sandbox) and the _support it uses (tests)
        f"sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "from kubelet_world import World, is_ready\n"
        "worlds = [World(), World()]\n"
        "w = worlds[0]\n"
        "assert not w.isolated\n"
        "w.create('pods', {'metadata': {'name': 's'}, 'spec': {'nodeName': 'sandbox-node',\n"
        "  'containers': [{'name': 'main', 'image': 'bearsrus/arkouda-udp-server:v2023.05.05',\n"
        "  'command': ['sh', '/opt/arkouda/start-arkouda-server.sh'],\n"
        "  'args': ['--authenticate=false', '--ServerPort=5555'],\n"
        "  'env': [{'name': 'NUMLOCALES', 'value': '2'}]}]}})\n"
        "w.wait_pod('s', lambda p: b'server listening' in w.log('s'), 'stand-in server')\n"
        "for x in worlds: x.close()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "ARKOUDA_K8S_SANDBOX_ISOLATION": "off"}
    proc = subprocess.run(
        [PY, str(script)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"
    said = [ln for ln in proc.stderr.splitlines() if "without their own filesystem view" in ln]
    assert len(said) == 1, proc.stderr  # once per process, however many kubelets
    assert "ARKOUDA_K8S_SANDBOX_ISOLATION=off" in said[0]


_STOP_MID_PROBE = """
import asyncio, gc, logging, sys
sys.path[:0] = PATHS
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from kubelet_world import World, descendants

def probing(n):
    found = 0
    for pid in descendants():
        try:
            found += b"31.5" in open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            pass
    return found == n

# A few rounds: whether a cancelled probe happens to end before the stop returns is a
# race (a thread reaps its process); the old kubelet lost it in most rounds, not all.
for round in range(3):
    w = World()
    names = [f"probed-{i}" for i in range(6)]
    for name in names:
        # An idle container (no command) stops at once: nothing else in the pod's stop
        # gives its cancelled probe time to end.
        w.create("pods", {"metadata": {"name": name}, "spec": {"containers": [{
            "name": "main", "image": "busybox:1.36", "ports": [{"containerPort": 8080}],
            "readinessProbe": {"exec": {"command": ["sleep", "31.5"]},
                               "periodSeconds": 1, "timeoutSeconds": 60},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}})
    w.wait("every readiness probe running", lambda: probing(len(names)), timeout=60)

    async def stop():
        await w.controllers.stop()
        await w.kubelet.stop()
        return [t.get_coro() for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    print("pending:", w.call(stop))
    # What World.close() does next: the loop stops and closes right after the stop.
    w.loop.call_soon_threadsafe(w.loop.stop)
    w._thread.join(5)
    w.loop.close()
    del w
    gc.collect()
"""


def test_stopping_pods_mid_probe_leaves_no_pending_task_and_no_warning(tmp_path):
    """A stop while exec probes run: every task the kubelet cancelled has ended when
    the stop returns, so closing the loop right after prints no "Task was destroyed but
    it is pending" and no "Event loop is closed". In a process of its own: asyncio says
    so on stderr when the tasks and transports are collected, up to interpreter exit."""
    import subprocess

    script = tmp_path / "stop_mid_probe.py"
    # kubelet_world (tests/sandbox) and the _support it uses (tests)
    paths = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
    script.write_text(_STOP_MID_PROBE.replace("PATHS", repr(paths)))
    proc = subprocess.run(
        [PY, str(script)], capture_output=True, text=True, timeout=240, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["pending: []"] * 3, proc.stdout
    for said in ("Task was destroyed", "Event loop is closed", "is closed", "Traceback"):
        assert said not in proc.stderr, proc.stderr[-3000:]
