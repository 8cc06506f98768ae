"""`arkouda-k8s run`: code with ``ak`` bound, exit codes 0 / 1 / 2, token never printed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from arkouda_k8s.cli import main
from arkouda_k8s.sandbox.arkouda_server import StandInProcess

pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")

TOKEN = "runner-token-xyz-987"


@pytest.fixture(scope="module")
def server():
    with StandInProcess("--authenticate=false", "--arkoudaVersion=2020.07.07") as srv:
        yield srv


def test_runs_code_with_ak_bound(server, capsys):
    code = "a = ak.arange(0, 10, 1)\nprint('sum', (a * 2).sum())"
    assert main(["run", "--server", f"{server.host}:{server.port}", "-c", code]) == 0
    out = capsys.readouterr().out
    assert "sum 90" in out.splitlines()


def test_runs_a_file(server, tmp_path, capsys):
    script = tmp_path / "job.py"
    script.write_text("import numpy as np\nprint(ak.array(np.arange(5)).max())\n")
    assert main(["run", "--server", f"{server.host}:{server.port}", str(script)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "4"


def test_arkouda_error_exits_1_with_one_line(server, capsys):
    code = "ak.client.generic_msg('nosuchcmd')"
    assert main(["run", "--server", f"{server.host}:{server.port}", "-c", code]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("arkouda-k8s: error: RuntimeError: Error: unrecognized command")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--server", "localhost", "-c", "pass"], "HOST:PORT"),
        (["--server", "127.0.0.1:99999", "-c", "pass"], "HOST:PORT"),
        (["--server", "127.0.0.1:5555"], "exactly one of -c CODE and FILE"),
        (["--server", "127.0.0.1:5555", "-c", "pass", "x.py"], "exactly one of -c CODE and FILE"),
        (["--server", "127.0.0.1:5555", "/nonexistent/job.py"], "cannot read"),
    ],
)
def test_bad_input_exits_2(argv, needle, capsys):
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_syntax_error_is_bad_input(server, capsys):
    assert main(["run", "--server", f"{server.host}:{server.port}", "-c", "def ("]) == 2
    assert "does not compile" in capsys.readouterr().err


def test_nothing_listening_exits_1(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["run", "--server", f"127.0.0.1:{port}", "-c", "pass"]) == 1
    assert "connection refused" in capsys.readouterr().err


def test_token_from_environment_is_used_and_never_printed():
    env = dict(os.environ, ARKOUDA_SERVER_TOKEN=TOKEN)
    with StandInProcess("--authenticate=true", env=env) as srv:
        proc = subprocess.run(
            [sys.executable, "-m", "arkouda_k8s.cli", "run", "--server", f"127.0.0.1:{srv.port}"]
            + ["-c", "print(ak.get_config()['authenticate'])"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        wrong = subprocess.run(
            [sys.executable, "-m", "arkouda_k8s.cli", "run", "--server", f"127.0.0.1:{srv.port}"]
            + ["--token", "bad-token", "-c", "pass"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    # The 2020 client cannot send a token: the token reached the probe, which passed,
    # and the session explains why this client cannot be used.
    assert proc.returncode == 1
    assert "cannot send a token" in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    assert wrong.returncode == 1 and "refused the token" in wrong.stderr
    assert "bad-token" not in wrong.stderr
