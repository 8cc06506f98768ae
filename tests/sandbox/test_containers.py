"""Containers over image models: what a real runtime and the real Arkouda images show.

Each container runs in its own mount namespace over a model of its image (user ubuntu,
uid 1000, passwordless sudo, the image's PATH and WORKDIR, /opt/arkouda with the
launcher and server stand-ins), volumes mounted over it as containerd mounts them, the
command run as given; udp pods run OpenSSH's sshd on their own address, and the
launcher stand-in starts one locale process per host over real ssh.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest
from _support import settled
from kubelet_world import World, container_status, is_ready

from arkouda_k8s.credentials import Credentials
from arkouda_k8s.sandbox.kubelet import container_support
from arkouda_k8s.spec import ClusterSpec

pytestmark = pytest.mark.skipif(
    container_support() is not None,
    reason=f"containers cannot be isolated here: {container_support()}",
)

UDP = "bearsrus/arkouda-udp-server:v2023.05.05"
SMP = "bearsrus/arkouda-smp-server:v2023.05.05"

# Install the SSH key pair the way the launch scripts do; the modes are parameters so a
# test can get them wrong. Then sshd, as the image's user, through sudo.
KEYS = """\
set -e
mkdir -p ~/.ssh && chmod 700 ~/.ssh
cp ~/ssh-keys/id_rsa ~/ssh-keys/id_rsa.pub ~/.ssh/
cp ~/ssh-keys/id_rsa.pub ~/.ssh/authorized_keys
chmod {key_mode} ~/.ssh/id_rsa && chmod {auth_mode} ~/.ssh/authorized_keys
{extra}
printf 'Host *\\n  StrictHostKeyChecking no\\n  UserKnownHostsFile /dev/null\\n  LogLevel ERROR\\n' > ~/.ssh/config
"""
SSHD = "sudo mkdir -p /run/sshd && sudo /usr/sbin/sshd\n"
WAIT = "trap 'exit 0' TERM; while :; do sleep 1; done\n"


@pytest.fixture(scope="module")
def world():
    w = World()
    creds = Credentials.generate(ClusterSpec(name="ct", namespace="default"))
    w.create(
        "secrets",
        {
            "metadata": {"name": "keys"},
            "data": {
                "id_rsa": base64.b64encode(creds.ssh_private_key).decode(),
                "id_rsa.pub": base64.b64encode(creds.ssh_public_key).decode(),
            },
        },
    )
    yield w
    w.close()


def _pod(name, image, script, *, env=None, ports=(), probe=None, **extra):
    container = {
        "name": "main",
        "image": image,
        "command": ["sh", "-c", script],
        "env": env or [],
        "ports": [{"containerPort": p} for p in ports],
        "volumeMounts": [{"name": "keys", "mountPath": "/home/ubuntu/ssh-keys", "readOnly": True}]
        + extra.pop("mounts", []),
    }
    if probe:
        container["readinessProbe"] = probe
    container.update(extra.pop("container", {}))
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": "sandbox-node",
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            "volumes": [{"name": "keys", "secret": {"secretName": "keys"}}]
            + extra.pop("volumes", []),
        },
    }


def _locale(world, name, *, auth_mode="600", sshd=True):
    script = KEYS.format(key_mode="600", auth_mode=auth_mode, extra="") + (SSHD if sshd else "")
    world.create(
        "pods",
        _pod(
            name,
            UDP,
            script + WAIT,
            ports=[22],
            probe={"tcpSocket": {"port": 22}, "periodSeconds": 1},
        ),
    )
    if sshd:
        return world.wait_pod(name, is_ready, "sshd listening")["status"]["podIP"]
    return world.wait_pod(name, lambda p: p["status"].get("podIP"), "running")["status"]["podIP"]


def _server(world, name, hosts, *, key_extra="", key_mode="600", nl=None):
    script = KEYS.format(key_mode=key_mode, auth_mode="600", extra=key_extra) + SSHD
    script += f"exec /opt/arkouda/arkouda_server -nl {nl or len(hosts) + 1} --authenticate=false"
    world.create(
        "pods",
        _pod(
            name,
            UDP,
            script,
            env=[
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "SSH_SERVERS", "value": " ".join(["$(MY_IP)", *hosts])},
            ],
            ports=[22, 5555],
        ),
    )


def _ended(world, name):
    pod = world.wait_pod(
        name, lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), "ended", timeout=60
    )
    return pod, world.log(name).decode()


def _gone(world, *names):
    for n in names:
        world.delete("pods", n)


def test_the_container_sees_the_images_user_path_workdir_and_files(world):
    world.create(
        "pods",
        _pod(
            "view",
            UDP,
            "id; pwd; echo PATH=$PATH; hostname; ls /opt/arkouda; sudo -n id -u; "
            "command -v arkouda_server || echo no-arkouda_server-on-PATH; "
            "ls -d ~/.ssh 2>/dev/null || echo no-dot-ssh",
        ),
    )
    pod, out = _ended(world, "view")
    assert pod["status"]["phase"] == "Succeeded", out
    lines = out.splitlines()
    assert lines[0].startswith("uid=1000(ubuntu) gid=1000(ubuntu) groups=1000(ubuntu),27(sudo)")
    assert lines[1] == "/opt"  # the image's WORKDIR
    assert lines[2] == (
        "PATH=/opt/chapel/1.30.0/bin/linux64-x86_64:/usr/local/sbin:/usr/local/bin:"
        "/usr/sbin:/usr/bin:/sbin:/bin"
    )
    assert lines[3] == "view"
    files = set(lines[4:10])
    assert {"arkouda_server", "arkouda_server_real", "dep", "start-arkouda-server.sh"} <= files
    assert "0" in lines  # passwordless sudo
    assert "no-arkouda_server-on-PATH" in lines and "no-dot-ssh" in lines
    _gone(world, "view")


@pytest.mark.parametrize(
    ("security", "expect"),
    [
        # What Kubernetes gives a container that says nothing: sudo works (setuid root).
        ({}, ["0", "CapBnd:\t00000000a80425fb"]),
        # No privilege escalation: the setuid bit of sudo gains nothing, sudo refuses.
        ({"allowPrivilegeEscalation": False}, ["sudo-refused"]),
        # Root with ALL dropped and one added back: exactly that one (CHOWN is bit 0).
        (
            {"runAsUser": 0, "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}},
            ["uid=0(root)", "CapEff:\t0000000000000001", "CapBnd:\t0000000000000001"],
        ),
    ],
    ids=["default", "no-escalation", "root-chown-only"],
)
def test_the_security_context_is_what_the_process_gets(world, security, expect):
    """Like runc: the bounding set (the runtime's defaults, minus drop, plus add) and
    no_new_privs; so a manifest that needs a capability or sudo it forbids fails here."""
    name = f"sc-{len(security)}-{len(str(security))}"
    world.create(
        "pods",
        _pod(
            name,
            UDP,
            "id; (sudo -n id -u 2>/dev/null || echo sudo-refused); grep -E '^Cap(Eff|Bnd)' "
            "/proc/self/status",
            container={"securityContext": security},
        ),
    )
    pod, out = _ended(world, name)
    assert pod["status"]["phase"] == "Succeeded", out
    for line in expect:
        assert any(got.startswith(line) for got in out.splitlines()), (line, out)
    _gone(world, name)


def test_run_as_non_root_refuses_a_container_that_would_run_as_root(world):
    """The kubelet's check before it creates the container (the image's user, or
    runAsUser, decides): CreateContainerConfigError, the process never starts."""
    world.create(
        "pods",
        _pod(
            "nonroot",
            UDP,
            "touch /tmp/started; sleep 30",
            container={"securityContext": {"runAsNonRoot": True, "runAsUser": 0}},
        ),
    )
    pod = world.wait_pod(
        "nonroot",
        lambda p: any(
            (cs.get("state") or {}).get("waiting", {}).get("reason") == "CreateContainerConfigError"
            for cs in p["status"].get("containerStatuses") or []
        ),
        "refused",
    )
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert "runAsNonRoot and image will run as root" in waiting["message"]
    _gone(world, "nonroot")


def test_a_volume_over_opt_arkouda_hides_the_launcher(world):
    world.create("configmaps", {"metadata": {"name": "launch"}, "data": {"start.sh": "echo mine"}})
    script = "ls /opt/arkouda; exec /opt/arkouda/arkouda_server -nl 1"
    world.create(
        "pods",
        _pod(
            "hidden",
            UDP,
            script,
            mounts=[{"name": "launch", "mountPath": "/opt/arkouda", "readOnly": True}],
            volumes=[{"name": "launch", "configMap": {"name": "launch"}}],
        ),
    )
    pod, out = _ended(world, "hidden")
    assert out.splitlines()[0] == "start.sh"  # the volume, nothing of the image
    assert "/opt/arkouda/arkouda_server: not found" in out
    assert container_status(pod)["state"]["terminated"]["exitCode"] == 127
    # One file with subPath leaves the image's directory as it is.
    world.create(
        "pods",
        _pod(
            "subpath",
            UDP,
            "ls /opt/arkouda; sh /opt/arkouda/start.sh; echo x > /opt/arkouda/start.sh",
            mounts=[
                {
                    "name": "launch",
                    "mountPath": "/opt/arkouda/start.sh",
                    "subPath": "start.sh",
                    "readOnly": True,
                }
            ],
            volumes=[{"name": "launch", "configMap": {"name": "launch"}}],
        ),
    )
    pod, out = _ended(world, "subpath")
    assert {"arkouda_server", "arkouda_server_real", "start.sh"} <= set(out.split())
    assert "mine" in out.splitlines()
    assert "Read-only file system" in out  # readOnly honoured
    _gone(world, "hidden", "subpath")


def test_a_bare_arkouda_server_is_not_found_on_the_images_path(world):
    script = (
        "test -x /opt/arkouda/arkouda_server && echo launcher-present; exec arkouda_server -nl 1"
    )
    world.create("pods", _pod("bare", UDP, script))
    pod, out = _ended(world, "bare")
    # In the image, but not on its PATH.
    assert out.startswith("launcher-present\n") and "arkouda_server: not found" in out
    assert pod["status"]["phase"] == "Failed"
    # As the container's command (no shell): the runtime's own words.
    world.create("pods", _pod("barecmd", UDP, "", container={"command": ["arkouda_server"]}))
    pod = world.wait_pod(
        "barecmd", lambda p: container_status(p).get("state", {}).get("terminated"), "StartError"
    )
    term = container_status(pod)["state"]["terminated"]
    assert term["reason"] == "StartError"
    assert 'exec: "arkouda_server": executable file not found in $PATH' in term["message"]
    _gone(world, "bare", "barecmd")


def test_sshd_listens_on_the_pods_address_only(world):
    ip = _locale(world, "loc-a")
    with socket.create_connection((ip, 22), timeout=5) as s:
        assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
    # Nothing on this machine's own address: sshd runs inside pods only.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", 22), timeout=2):
        pass
    procs = world.call(world.kubelet.container_processes, "default", "loc-a", "main")
    assert any(argv[0].startswith("sshd: /usr/sbin/sshd [listener]") for argv in procs), procs
    _gone(world, "loc-a")


def test_udp_launcher_starts_one_process_per_locale_host_over_ssh(world):
    hosts = [_locale(world, "loc-1"), _locale(world, "loc-2")]
    _server(world, "srv", hosts)
    world.wait_pod("srv", lambda p: b"server listening on" in world.log("srv"), "banner")
    log = world.log("srv").decode()
    assert "3 locale(s) running on" in log
    for i, pod in enumerate(["srv", "loc-1", "loc-2"]):
        procs = world.call(world.kubelet.container_processes, "default", pod, "main")
        locales = [a for a in procs if any(x.startswith("--sandbox-locale=") for x in a)]
        # One locale process on each host, the real program's path as ps shows it, the
        # launcher's environment on its command line (amudprun's -E).
        assert len(locales) == 1, procs
        assert locales[0][2] == "/opt/arkouda/arkouda_server_real"
        assert f"--sandbox-locale={i}/3" in locales[0]
        assert any(x.startswith("SSH_SERVERS=127.") for x in locales[0]), locales[0]
        assert f"stand-in locale {i} of 3 running on {pod} as uid 1000" in log
    # Deleting the server pod ends the locale processes with it.
    _gone(world, "srv")
    left = settled(
        lambda: [
            a
            for a in world.call(world.kubelet.container_processes, "default", "loc-1", "main")
            if "--sandbox-locale=1/3" in " ".join(a)
        ],
        20,
        0.1,
    )
    assert left == [], "the locale process outlived its server"
    _gone(world, "loc-1", "loc-2")


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("authorized_keys 0666", "Permission denied (publickey)"),
        ("private key owned by root", "Permission denied"),
        ("sshd not listening yet", "Connection refused"),
        ("SSH_SERVERS short", "needs exactly 3"),
    ],
)
def test_the_launcher_fails_as_ssh_does(world, case, why):
    tag = case.split()[0].lower().replace("_", "")
    loc = f"bad-{tag}"
    ip = _locale(
        world,
        loc,
        auth_mode="666" if case.startswith("authorized") else "600",
        sshd=case != "sshd not listening yet",
    )
    extra = "sudo chown root:root ~/.ssh/id_rsa" if "owned by root" in case else ""
    srv = f"srv-{tag}"
    _server(world, srv, [ip], key_extra=extra, nl=3 if case == "SSH_SERVERS short" else None)
    pod, out = _ended(world, srv)
    assert pod["status"]["phase"] == "Failed"
    assert why in out, out
    assert "server listening" not in out
    if case.startswith("authorized"):
        # sshd's StrictModes, in the locale pod's own log of its sshd (stderr: -e is off):
        # the refusal is what the client sees.
        assert "locale 1 on" in out
    _gone(world, loc, srv)


@pytest.mark.parametrize(
    ("volume", "mount", "why"),
    [
        (
            {"hostPath": {"path": "/arkouda-files", "type": "DirectoryOrCreate"}},
            {},
            "Permission denied",
        ),
        ({"emptyDir": {}}, {"readOnly": True}, "Read-only file system"),
    ],
    ids=["unwritable-hostPath", "read-only-workdir"],
)
def test_the_server_needs_a_writable_working_directory(world, volume, mount, why):
    name = "wd-" + ("host" if "hostPath" in volume else "ro")
    world.create(
        "pods",
        _pod(
            name,
            UDP,
            "exec /opt/arkouda/arkouda_server_real -nl 1 --authenticate=true",
            mounts=[{"name": "files", "mountPath": "/arkouda-files", **mount}],
            volumes=[{"name": "files", **volume}],
            container={"workingDir": "/arkouda-files"},
        ),
    )
    pod, out = _ended(world, name)
    assert pod["status"]["phase"] == "Failed"
    assert why in out, out
    _gone(world, name)


def test_smp_launcher_runs_the_program_in_place_with_the_token_file(world):
    world.create("secrets", {"metadata": {"name": "tok"}, "stringData": {"token": "from-the-file"}})
    script = (
        "mkdir -p .arkouda && cp /etc/tok/token .arkouda/tokens.txt && "
        "exec /opt/arkouda/arkouda_server -nl 2 --authenticate=true --ServerPort=5555"
    )
    world.create(
        "pods",
        _pod(
            "smp",
            SMP,
            script,
            env=[{"name": "ARKOUDA_SERVER_TOKEN", "value": "from-the-env"}],
            mounts=[{"name": "tok", "mountPath": "/etc/tok", "readOnly": True}],
            volumes=[{"name": "tok", "secret": {"secretName": "tok"}}],
        ),
    )
    pod = world.wait_pod("smp", lambda p: b"server listening" in world.log("smp"), "banner")
    from arkouda_k8s.protocol import ArkoudaProbe

    ip = pod["status"]["podIP"]
    with ArkoudaProbe(ip, 5555, token="from-the-file", timeout=10) as probe:
        assert probe.handshake()["numLocales"] == 2
    code, out = world.exec("smp", ["cat", "/opt/arkouda/.arkouda/tokens.txt"])
    assert (code, out) == (0, b"from-the-file")  # read, not appended again
    _gone(world, "smp")


def test_the_exporter_image_reads_the_real_exporters_variables(world):
    import urllib.request

    env = [
        # What the chart sets and the real exporter ignores, then what it reads.
        {"name": "EXPORT_PORT", "value": "5081"},
        {"name": "ARKOUDA_SERVER_NAME", "value": "ignored"},
        {"name": "METRICS_SCRAPE_PORT", "value": "5082"},
        {"name": "ARKOUDA_METRICS_SERVER_NAME", "value": "ak-metrics"},
    ]
    world.create(
        "pods",
        {
            "metadata": {"name": "exporter"},
            "spec": {
                "nodeName": "sandbox-node",
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "main",
                        "image": "bearsrus/prometheus-arkouda-exporter:v2023.05.05",
                        "env": env,
                        "ports": [{"containerPort": 5082}],
                        "readinessProbe": {"tcpSocket": {"port": 5082}, "periodSeconds": 1},
                    }
                ],
            },
        },
    )
    ip = world.wait_pod("exporter", is_ready, "serving")["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:5082/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'arkouda_up{arkouda_server_name="ak-metrics"} 0' in text  # no server on 5556
    assert "stand-in" in text
    _gone(world, "exporter")


def _bare(name, image, **container):
    """A pod with one container of ``image`` and nothing else (no keys, no mounts)."""
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": "sandbox-node",
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": image, **container}],
        },
    }


def test_the_runner_image_runs_the_projects_cli_as_its_user(world):
    """The pipeline image (images/runner/Dockerfile): ENTRYPOINT arkouda-k8s run."""
    runner = "arkouda-k8s-runner:0.1.0"
    args = ["--server", "127.0.0.1:1", "--connect-timeout", "1", "-c", "pass"]
    world.create("pods", _bare("runner", runner, args=args))
    pod, out = _ended(world, "runner")
    # The CLI ran (found on the image's PATH) and gave up on the unreachable server.
    assert "executable file not found" not in str(container_status(pod))
    assert container_status(pod)["state"]["terminated"]["exitCode"] == 3, out
    world.create("pods", _bare("runner-id", runner, command=["sh", "-c", "id -u; pwd"]))
    pod, out = _ended(world, "runner-id")
    assert out.split() == ["10001", "/home/runner"]
    _gone(world, "runner", "runner-id")


def _inside(root: str) -> list[int]:
    """Pids of processes whose root directory lies in a kubelet root (its containers)."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/root").startswith(root + "/"):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # ended since it was listed
        return b""


def test_containers_of_a_kubelet_killed_outright_go_with_the_next_kubelet(tmp_path):
    """A kubelet that dies without stopping its pods leaves their processes running (sshd
    daemonized out of its container's process group); the next kubelet removes them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from arkouda_k8s.sandbox.kubelet import remove_orphans

    script = tmp_path / "kubelet.py"
    script.write_text(
        "import sys\n"
        # kubelet_world (tests/sandbox) and the _support it uses (tests)
        f"sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]\n"
        "from kubelet_world import World, is_ready\n"
        "w = World()\n"
        "w.create('pods', {'metadata': {'name': 'd'}, 'spec': {'nodeName': 'sandbox-node',\n"
        f"  'containers': [{{'name': 'main', 'image': {UDP!r}, 'ports': [{{'containerPort': 22}}],\n"
        f"  'command': ['sh', '-c', {SSHD + WAIT!r}],\n"
        "  'readinessProbe': {'tcpSocket': {'port': 22}, 'periodSeconds': 1}}]}})\n"
        "w.wait_pod('d', is_ready, 'sshd listening')\n"
        "print(w.kubelet.root, flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        root = proc.stdout.readline().strip()
        assert root, "the kubelet did not start its pod"
    finally:
        proc.kill()  # no shutdown: SIGKILL
        proc.wait()
    # Nothing stopped the pod: its script and the sshd it started are still running.
    left = _inside(root)
    assert any(_cmdline(p).startswith(b"sshd:") for p in left), left
    assert remove_orphans(Path(root).parent) >= 1  # as every kubelet does when it starts
    assert settled(lambda: _inside(root), 10, 0.1) == [], "the orphaned sshd is still running"
    assert not os.path.exists(root)
