"""`arkouda-k8s run`: -c / FILE / stdin, exit codes 0-3, waiting for a late server, folders,
--shutdown, and the token kept out of output, tracebacks and process arguments."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _support import settled

from arkouda_k8s.cli import main
from arkouda_k8s.sandbox.arkouda_server import StandInProcess

pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")

TOKEN = "runner-token-xyz-987"


@pytest.fixture(scope="module")
def server():
    with StandInProcess("--authenticate=false", "--arkoudaVersion=2020.07.07") as srv:
        yield srv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ARKOUDA_TOKEN", "ARKOUDA_SERVER")}
    env.update(extra)
    return env


def _run(*argv: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arkouda_k8s.cli", "run", *argv],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


# -- the three ways to give code ----------------------------------------------------------


def test_code_from_c(server, capsys):
    code = "a = ak.arange(0, 10, 1)\nprint('sum', (a * 2).sum())"
    assert main(["run", "--server", f"{server.host}:{server.port}", "-c", code]) == 0
    assert "sum 90" in capsys.readouterr().out.splitlines()


def test_code_from_a_file_sees_np(server, tmp_path, capsys):
    script = tmp_path / "job.py"
    script.write_text("print(ak.array(np.arange(5)).max())\n")
    assert main(["run", "--server", f"{server.host}:{server.port}", str(script)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "4"


def test_code_from_standard_input(server, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("print(ak.arange(0, 5, 1).sum() + 100)\n"))
    assert main(["run", "--server", f"{server.host}:{server.port}", "-"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "110"


def test_standard_input_through_a_pipe(server):
    proc = _run(
        "--server", f"{server.host}:{server.port}", "-", input="print(ak.arange(0, 3, 1).sum())\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "3"


def test_address_from_environment_and_the_flag_wins(server, monkeypatch, capsys):
    monkeypatch.setenv("ARKOUDA_SERVER", f"{server.host}:{server.port}")
    assert main(["run", "-c", "print('via env', ak.arange(0, 4, 1).sum())"]) == 0
    assert "via env 6" in capsys.readouterr().out
    monkeypatch.setenv("ARKOUDA_SERVER", f"127.0.0.1:{_free_port()}")  # nothing there
    argv = ["run", "--server", f"{server.host}:{server.port}", "--connect-timeout", "1"]
    assert main([*argv, "-c", "print('via flag')"]) == 0
    assert "via flag" in capsys.readouterr().out


# -- exit codes -----------------------------------------------------------------------------


def test_failing_code_exits_1_with_its_traceback(server, tmp_path):
    script = tmp_path / "step.py"
    script.write_text(
        "x = ak.arange(0, 3, 1)\n\ndef f():\n    raise ValueError('no good')\n\nf()\n"
    )
    proc = _run("--server", f"{server.host}:{server.port}", str(script))
    assert proc.returncode == 1
    err = proc.stderr
    assert err.startswith("Traceback (most recent call last):")
    assert f'File "{script}", line 6' in err and "raise ValueError('no good')" in err
    assert "runner.py" not in err  # the code's frames only
    assert err.splitlines()[-1] == "arkouda-k8s: error: ValueError: no good"


def test_arkouda_error_exits_1(server, capsys):
    code = "ak.client.generic_msg('nosuchcmd')"
    assert main(["run", "--server", f"{server.host}:{server.port}", "-c", code]) == 1
    err = capsys.readouterr().err
    assert 'File "<string>", line 1' in err and code in err  # -c source shown in the traceback
    assert err.splitlines()[-1].startswith(
        "arkouda-k8s: error: RuntimeError: Error: unrecognized command"
    )


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--server", "localhost", "-c", "pass"], "--server: 'localhost' is not HOST:PORT"),
        (["--server", "127.0.0.1:99999", "-c", "pass"], "is not HOST:PORT"),
        (["--server", "127.0.0.1:5555"], "exactly one of -c CODE, FILE and -"),
        (["--server", "127.0.0.1:5555", "-c", "pass", "x.py"], "exactly one of"),
        (["--server", "127.0.0.1:5555", "/nonexistent/job.py"], "FILE: cannot read"),
        (["-c", "pass"], "no server: give --server HOST:PORT, set ARKOUDA_SERVER"),
        (["--server", "127.0.0.1:5555", "--in-cluster", "a", "-c", "pass"], "not allowed with"),
        (["--server", "127.0.0.1:5555", "--namespace", "x", "-c", "pass"], "--namespace: only"),
        (["--server", "127.0.0.1:5555", "--connect-timeout", "-1", "-c", "1"], "negative"),
        (["--server", "127.0.0.1:5555", "--connect-timeout", "x", "-c", "1"], "invalid float"),
        (["--server", "127.0.0.1:5555", "--input", "/nonexistent", "-c", "1"], "--input:"),
        (["--server", "127.0.0.1:5555", "--token-file", "/nonexistent", "-c", "1"], "--token-file"),
        (["--server", "127.0.0.1:5555", "-c", "def ("], "does not compile"),
    ],
)
def test_bad_input_exits_2(argv, needle, capsys, monkeypatch):
    monkeypatch.delenv("ARKOUDA_SERVER", raising=False)
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_in_cluster_outside_a_pod_is_bad_input(capsys, monkeypatch):
    # No service account here: the process is not in a pod.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["run", "--in-cluster", "demo", "--connect-timeout", "1", "-c", "pass"]) == 2
    err = capsys.readouterr().err
    assert "--in-cluster: this process has no pod service account" in err
    assert "--server HOST:PORT" in err and err.count("\n") == 1


def test_token_on_the_command_line_is_refused(capsys):
    assert main(["run", "--server", "127.0.0.1:5555", "--token", TOKEN, "-c", "pass"]) == 2
    err = capsys.readouterr().err
    assert "--token-file PATH" in err and "ARKOUDA_TOKEN" in err
    assert TOKEN not in err


def test_unreachable_server_exits_3_within_its_timeout():
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    proc = _run("--server", f"127.0.0.1:{port}", "--connect-timeout", "2", "-c", "pass")
    took = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    assert "no Arkouda server answered" in proc.stderr and "connection refused" in proc.stderr
    assert 2.0 <= took < 2.0 + 10  # it retried for the whole wait, then gave up


def test_silent_server_exits_3_within_its_timeout():
    # A port that accepts TCP connections and never answers (a busy or stuck server).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        started = time.monotonic()
        proc = _run("--server", f"127.0.0.1:{port}", "--connect-timeout", "2", "-c", "pass")
        took = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    assert "does not answer" in proc.stderr
    assert took < 2.0 + 10


def test_waits_for_a_server_that_answers_3s_later():
    port = _free_port()
    code = "print('late sum', ak.arange(0, 10, 1).sum())"
    started = time.monotonic()
    runner = subprocess.Popen(
        [sys.executable, "-m", "arkouda_k8s.cli", "run", "--server", f"127.0.0.1:{port}"]
        + ["--connect-timeout", "60", "-c", code],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The runner must still be waiting 3 s in (no server yet)...
        with pytest.raises(subprocess.TimeoutExpired):
            runner.wait(timeout=3)
        # ...then the server comes up on the address it was given.
        args = ("--authenticate=false", "--arkoudaVersion=2020.07.07", f"--ServerPort={port}")
        with StandInProcess(*args):
            out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, err
    assert "late sum 45" in out.splitlines()
    assert time.monotonic() - started >= 3


# -- pipeline folders, --shutdown --------------------------------------------------------


def test_folders_are_bound_and_an_empty_output_is_reported(server, tmp_path, capsys):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "n.txt").write_text("7\n")
    writes = (
        "n = int((input_dir / 'n.txt').read_text())\n"
        "(output_dir / 'sum.txt').write_text(str(ak.arange(0, n, 1).sum()))\n"
    )
    argv = ["run", "--server", f"{server.host}:{server.port}", "--input", str(inp)]
    assert main([*argv, "--output", str(out), "-c", writes]) == 0
    assert (out / "sum.txt").read_text() == "21"
    assert "wrote nothing" not in capsys.readouterr().err

    empty = tmp_path / "empty-out"
    assert main([*argv, "--output", str(empty), "-c", "print(input_dir.name)"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "in"
    assert f"warning: the step wrote nothing to its output folder {empty}" in captured.err


def test_shutdown_only_when_asked():
    with StandInProcess("--authenticate=false", "--arkoudaVersion=2020.07.07") as srv:
        address = f"127.0.0.1:{srv.port}"
        assert _run("--server", address, "-c", "pass").returncode == 0
        assert srv._proc is not None and srv._proc.poll() is None  # still serving
        proc = _run("--server", address, "--shutdown", "-c", "print(ak.arange(0, 2, 1).sum())")
        assert proc.returncode == 0, proc.stderr
        assert srv._proc.wait(timeout=30) is not None  # the server exited


# -- the token ----------------------------------------------------------------------------


def _proc_text(pid: int, what: str) -> str:
    try:
        return (
            Path(f"/proc/{pid}/{what}").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:  # a thread or process that ended while we looked
                children = []
            for child in map(int, children):
                out.append(child)
                todo.append(child)
    return out


def test_token_is_nowhere_in_output_tracebacks_or_process_arguments(server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    started, go = tmp_path / "started", tmp_path / "go"
    # The code starts a child process and holds until the test has looked at both.
    code = (
        "import os, pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        # written whole, then renamed: the test reads it as soon as the name exists
        f"pathlib.Path({str(started)!r} + '.part').write_text(str(child.pid))\n"
        f"os.replace({str(started)!r} + '.part', {str(started)!r})\n"
        "deadline = time.monotonic() + 60\n"
        f"while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "child.kill(); child.wait()\n"
        "print('env token:', os.environ.get('ARKOUDA_TOKEN'))\n"
        "raise RuntimeError('step failed on purpose')\n"
    )
    address = f"{server.host}:{server.port}"
    scanned = []
    for how, env in (
        ("env", _env(ARKOUDA_TOKEN=TOKEN, ARKOUDA_K8S_DEBUG="1")),
        ("file", _env(ARKOUDA_K8S_DEBUG="1")),
    ):
        started.unlink(missing_ok=True)
        go.unlink(missing_ok=True)
        argv = ["--server", address, "-c", code]
        if how == "file":
            argv = ["--token-file", str(token_file), *argv]
        runner = subprocess.Popen(
            [sys.executable, "-m", "arkouda_k8s.cli", "run", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # the code has started its child, or the runner ended: what it said is shown
            settled(lambda r=runner: started.exists() or r.poll() is not None, 60, until=bool)
            assert started.exists(), runner.communicate()[1]
            child = int(started.read_text())
            pids = [runner.pid, *_descendants(runner.pid)]
            assert child in pids
            for pid in pids:
                scanned.append(pid)
                assert TOKEN not in _proc_text(pid, "cmdline")
            # nothing the code starts inherits the token
            assert TOKEN not in _proc_text(child, "environ")
            go.write_text("")
            out, err = runner.communicate(timeout=60)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.communicate()
        assert runner.returncode == 1
        assert "env token: None" in out
        assert "Traceback" in err and "step failed on purpose" in err
        assert TOKEN not in out + err
    assert len(scanned) >= 4


def test_token_is_masked_in_errors_from_an_authenticating_server():
    env = _env(ARKOUDA_SERVER_TOKEN=TOKEN)
    with StandInProcess("--authenticate=true", env=env) as srv:
        address = f"127.0.0.1:{srv.port}"
        right = _run("--server", address, "-c", "pass", env=_env(ARKOUDA_TOKEN=TOKEN))
        wrong = _run("--server", address, "-c", "pass", env=_env(ARKOUDA_TOKEN="wrong-" + TOKEN))
        debug = _run(
            "--server",
            address,
            "-c",
            "pass",
            env=_env(ARKOUDA_TOKEN="wrong-" + TOKEN, ARKOUDA_K8S_DEBUG="1"),
        )
    # The 2020 client cannot send a token: the probe's handshake with the token passed,
    # and the session explains why this client cannot be used.
    assert right.returncode == 1 and "cannot send a token" in right.stderr
    assert wrong.returncode == 1 and "refused the token" in wrong.stderr
    assert "Traceback" in debug.stderr
    for proc in (right, wrong, debug):
        assert TOKEN not in proc.stdout + proc.stderr


def test_sigterm_stops_the_step_and_disconnects(server, tmp_path):
    """A deleted pod's SIGTERM ends the step at once (exit 130), even mid-computation."""
    started = tmp_path / "started"
    code = (
        f"import time\nak.arange(0, 3, 1)\nopen({str(started)!r}, 'w').close()\ntime.sleep(120)\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "arkouda_k8s.cli", "run", "--server", f"{server.host}:{server.port}"]
        + ["-c", code],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        settled(lambda: started.exists() or runner.poll() is not None, 60, until=bool)
        assert started.exists(), runner.communicate()[1]
        runner.terminate()
        _, err = runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 130
    assert "arkouda-k8s: interrupted" in err
