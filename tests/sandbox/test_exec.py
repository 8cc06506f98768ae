"""``pods/exec`` over websockets: the official client's ``stream()`` and ``kubectl exec``.

The command runs through the kubelet's ``exec_in_pod``. The protocol tests use a
stand-in kubelet that runs it as a plain local process, so they show the API server's
protocol alone; the securityContext tests exec into containers of the real kubelet, which
runs the command as ``runc exec`` does: with the container's user, capabilities and
no_new_privs, in its root and working directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import api_client_for
from kubernetes import client
from kubernetes.stream import stream

from arkouda_k8s import manifests
from arkouda_k8s.sandbox import Sandbox
from arkouda_k8s.sandbox.kubelet import container_support
from arkouda_k8s.sandbox.store import ApiError


class LocalExecKubelet:
    """Only what the API server asks of a kubelet for exec."""

    def __init__(self) -> None:
        self.started: list[list[str]] = []

    async def exec_in_pod(
        self, namespace: str, name: str, container: str, command: list[str]
    ) -> asyncio.subprocess.Process:
        if command[0] == "missing-binary":
            raise ApiError(400, "BadRequest", 'exec: "missing-binary": executable file not found')
        self.started.append(command)
        return await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )


@pytest.fixture(scope="module")
def exec_sandbox() -> Iterator[Sandbox]:
    with Sandbox(kubelet=False, controllers=False) as sb:
        sb.kubelet = LocalExecKubelet()

        def running_pod() -> None:
            pod = sb.store.create(
                "pods",
                {
                    "metadata": {"name": "shell", "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
                },
            )
            pod["status"] = {"phase": "Running", "podIP": "127.0.0.1"}
            sb.store.update("pods", pod, subresource="status")

        sb.call(running_pod)
        yield sb


def test_python_client_stream_exit_code_stdout_stderr(exec_sandbox: Sandbox) -> None:
    core = client.CoreV1Api(api_client_for(exec_sandbox.kubeconfig_path))
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "shell",
        "default",
        command=["sh", "-c", "echo out; echo err >&2; exit 3"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=10)
    assert resp.read_stdout().strip() == "out"
    assert resp.read_stderr().strip() == "err"
    assert resp.returncode == 3
    resp.close()

    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "shell",
        "default",
        command=["head", "-n", "1"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.write_stdin("hello from stdin\n")
    resp.run_forever(timeout=10)
    assert resp.read_stdout() == "hello from stdin\n"
    assert resp.returncode == 0
    resp.close()


def test_kubectl_exec(exec_sandbox: Sandbox, tmp_path: Any) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("!!! NO kubectl ON THIS MACHINE: kubectl exec is SKIPPED !!!")
    env = dict(
        os.environ,
        KUBECONFIG=exec_sandbox.kubeconfig_path,
        KUBECACHEDIR=str(tmp_path / "cache"),
        HOME=str(tmp_path),
    )
    proc = subprocess.run(
        [kubectl, "exec", "shell", "--", "sh", "-c", "echo hi; echo oops >&2; exit 2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.stdout == "hi\n" and "oops" in proc.stderr
    assert proc.returncode == 2
    piped = subprocess.run(
        [kubectl, "exec", "-i", "shell", "--", "tr", "a-z", "A-Z"],
        input="shout\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "SHOUT\n"  # stdin was closed, so tr finished
    missing = subprocess.run(
        [kubectl, "exec", "shell", "--", "missing-binary"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode != 0 and "executable file not found" in missing.stderr
    wrong = subprocess.run(
        [kubectl, "exec", "shell", "-c", "nope", "--", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert wrong.returncode != 0 and "nope" in wrong.stderr


# -- the container's securityContext holds for what runs through exec -------------------------

SMP = "bearsrus/arkouda-smp-server:v2023.05.05"
UDP = "bearsrus/arkouda-udp-server:v2023.05.05"
# What a process shows of its privileges, and whether sudo (setuid root in the images)
# gains anything.
PRIVILEGES = (
    "id -u; id -G; pwd; grep -E '^(Cap(Prm|Eff|Bnd)|NoNewPrivs):' /proc/self/status; "
    "if sudo -n true 2>/dev/null; then echo sudo-worked; else echo sudo-refused; fi"
)
SSHD_BITS = {"SETGID": 6, "SETUID": 7, "NET_BIND_SERVICE": 10, "SYS_CHROOT": 18}


def _kubectl(kubectl: str, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [kubectl, *args], env=env, input=stdin, capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr.strip()}"
    return proc.stdout


@pytest.fixture
def running(sandbox: Sandbox, kubectl: str, kubectl_env: dict[str, str]) -> Iterator[Any]:
    """``running(name, image, securityContext)``: a Ready pod whose main process has
    moved to /tmp (exec must start in the container's working directory, not in its
    main process's); deleted at the end."""
    if container_support() is not None:
        pytest.skip(f"containers are not isolated here: {container_support()}")
    made: list[str] = []

    def run(name: str, image: str, security: dict[str, Any]) -> None:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "main",
                        "image": image,
                        "command": ["sh", "-c", "cd /tmp; exec sleep 300"],
                        "securityContext": security,
                    }
                ],
            },
        }
        _kubectl(kubectl, kubectl_env, "apply", "-f", "-", stdin=json.dumps(pod))
        made.append(name)
        wait = ("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        _kubectl(kubectl, kubectl_env, *wait)

    yield run
    for name in made:
        _kubectl(kubectl, kubectl_env, "delete", "pod", name, "--wait=false")


def _status(lines: list[str]) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_kubectl_exec_into_an_smp_container_runs_as_its_user_without_privileges(
    running: Any, kubectl: str, kubectl_env: dict[str, str]
) -> None:
    """The smp pods' securityContext (uid 1000, drop ALL, no escalation): an exec runs as
    ubuntu with the image's groups, no capability (none to gain either) and
    no_new_privs, so the images' passwordless sudo refuses, as on a real cluster."""
    sc = manifests.security_context(run_as_root=False)
    assert sc["runAsUser"] == 1000 and sc["capabilities"] == {"drop": ["ALL"]}
    running("exec-smp", SMP, sc)
    out = _kubectl(kubectl, kubectl_env, "exec", "exec-smp", "--", "sh", "-c", PRIVILEGES)
    lines = out.splitlines()
    assert lines[:3] == ["1000", "1000 27", "/opt/arkouda"], out  # ubuntu, sudo group, WORKDIR
    status = _status(lines)
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == "0000000000000000", out
    assert status["NoNewPrivs"] == "1", out
    assert lines[-1] == "sudo-refused", out


def test_kubectl_exec_into_a_udp_container_holds_only_sshds_capabilities(
    sandbox: Sandbox, running: Any, kubectl: str, kubectl_env: dict[str, str]
) -> None:
    """The udp pods' securityContext (root, drop ALL, add sshd's four, no escalation): an
    exec, through kubectl or the official client's stream(), holds exactly those four
    and no_new_privs, as runc exec gives the container's process spec."""
    sc = manifests.security_context(run_as_root=True, capabilities=manifests.SSHD_CAPABILITIES)
    assert sc["capabilities"] == {"drop": ["ALL"], "add": sorted(SSHD_BITS)}
    running("exec-udp", UDP, sc)
    bits = f"{sum(1 << b for b in SSHD_BITS.values()):016x}"
    assert bits == "00000000000404c0"

    out = _kubectl(kubectl, kubectl_env, "exec", "exec-udp", "--", "sh", "-c", PRIVILEGES)
    core = client.CoreV1Api(api_client_for(sandbox.kubeconfig_path))
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "exec-udp",
        "default",
        command=["sh", "-c", PRIVILEGES],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=30)
    streamed = resp.read_stdout()
    assert resp.returncode == 0, resp.read_stderr()
    resp.close()
    for got in (out, streamed):
        lines = got.splitlines()
        assert lines[:3] == ["0", "0", "/opt"], got  # root, the image's WORKDIR
        status = _status(lines)
        assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == bits, got
        assert status["NoNewPrivs"] == "1", got
