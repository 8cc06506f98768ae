"""`arkouda-k8s quickstart`: README's first command, end to end on the embedded sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py first")


def _pod_processes() -> set[int]:
    """Live pod processes of a quickstart deployment (a sandbox sets SANDBOX_POD_IP)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
                if b"SANDBOX_POD_IP=" in env and b"quickstart" in env:
                    found.add(int(entry))
        except OSError:
            continue
    return found


def test_quickstart_deploys_computes_and_leaves_nothing_behind() -> None:
    before = _pod_processes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "arkouda_k8s.cli", "quickstart", "--locales", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    # The example's answers, checked against NumPy by the command itself.
    assert "sum(arange(1000)) = 499500" in out
    assert "numpy says" not in out
    assert re.search(r"locales\s+3: 1 in the server pod \+ 2/2 locale pods running", out), out
    assert re.search(r"torn down: \d+ object", out)
    assert "not Kubernetes" in out  # the sandbox says what it is
    assert "Traceback" not in err
    # The sandbox ran its pods as processes: none outlives the command.
    assert _pod_processes() - before == set()


def test_quickstart_rejects_bad_locales_with_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "arkouda_k8s.cli", "quickstart", "--locales", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--locales" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
