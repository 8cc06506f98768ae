"""`arkouda-k8s sandbox` runs the simulated cluster in the foreground until SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from api_support import api_client_for
from kubernetes import client

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("existing", [False, True], ids=["new file", "existing 0644 file"])
def test_sandbox_command_serves_until_sigterm(tmp_path: Path, existing: bool) -> None:
    out_file = tmp_path / "kubeconfig"
    if existing:  # it kept its mode and received the admin token
        out_file.write_text("old content\n")
        out_file.chmod(0o644)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "arkouda_k8s.cli", "sandbox", "--kubeconfig-out", str(out_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("export KUBECONFIG="):
                break
        text = "".join(lines)
        assert "SIMULATED Kubernetes API" in text and "not a real cluster" in text
        assert f"export KUBECONFIG={out_file}" in text
        assert "API server: https://127.0.0.1:" in text
        assert (out_file.stat().st_mode & 0o777) == 0o600
        assert "old content" not in out_file.read_text()
        assert [p.name for p in tmp_path.iterdir()] == ["kubeconfig"]  # no temp file left
        with api_client_for(str(out_file)) as api:
            names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
        assert "default" in names
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not out_file.exists()  # the token in it died with the sandbox
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_api_latency_delays_every_request_and_bad_values_are_exit_2(capsys) -> None:
    """`--api-latency 30ms` (a distant cluster): every API answer comes that much later."""
    from arkouda_k8s.cli import main
    from arkouda_k8s.kube import Kube
    from arkouda_k8s.sandbox import Sandbox
    from arkouda_k8s.sandbox.__main__ import parse_latency

    assert parse_latency("30ms") == 0.03 and parse_latency("0.2s") == 0.2
    with Sandbox(kubelet=False, controllers=False, api_latency=parse_latency("200ms")) as sb:
        kube = Kube.from_kubeconfig(sb.kubeconfig_path)
        kube.get("Namespace", "default")  # the connection is open: only the delay remains
        start = time.monotonic()
        for _ in range(3):
            kube.get("Namespace", "default")
        assert time.monotonic() - start >= 3 * 0.2
    assert main(["sandbox", "--api-latency", "soon"]) == 2
    assert "--api-latency" in capsys.readouterr().err
