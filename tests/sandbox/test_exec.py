"""``pods/exec`` over websockets: the official client's ``stream()`` and ``kubectl exec``.

The command runs through the kubelet's ``exec_in_pod``; here a stand-in kubelet runs
it as a plain local process, so the test shows the API server's protocol alone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import api_client_for
from kubernetes import client
from kubernetes.stream import stream

from arkouda_k8s.sandbox import Sandbox
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
