"""`arkouda-k8s logs` on the sandbox: -f/--follow prints new lines as they are written and
stops when the pod is deleted; --since, --locale, --timestamps and --previous select what
they say; secrets stay masked; a terminal never receives the pods' control characters."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest
import zmq
from _support import eventually
from _support.lifecycle import cli_process, labelled, on_a_terminal, token_of
from _support.lifecycle import run_cli as run

from arkouda_k8s.cli import main
from arkouda_k8s.cluster import ArkoudaCluster
from arkouda_k8s.credentials import MASK

SMALL = ["--cpu", "100m", "--memory", "256Mi", "--release", "v2023.05.05"]
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z ")


def send_command(sb, kube, name, cmd):
    """One request to the deployment's (stand-in) server through a tunnel; the server
    logs every command it receives (`>>> cmd ...`), known or not."""
    cluster = ArkoudaCluster.from_name(name, kubeconfig=sb.kubeconfig_path, connect=False)
    try:
        host, port = cluster.start_tunnel()
        ctx = zmq.Context()
        try:
            sock = ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, 15000)
            sock.connect(f"tcp://{host}:{port}")
            message = {"user": "test", "token": token_of(kube, name), "cmd": cmd}
            sock.send_string(json.dumps({**message, "format": "STRING", "args": "", "size": -1}))
            sock.recv_string()  # an error reply for an unknown command: logged all the same
            sock.close(0)
        finally:
            ctx.destroy(linger=0)
    finally:
        cluster.close()


def delete_pod(kube, name):
    pod = kube.get("Pod", name)
    assert kube.delete("Pod", name, uid=pod["metadata"]["uid"])


def deploy(sb, name, *extra):
    args = ["deploy", "--name", name, *SMALL, "--kubeconfig", sb.kubeconfig_path, *extra]
    assert main(args) == 0


@pytest.fixture(scope="module")
def udp(sb, kube):
    """A udp deployment of 3 locales: the server pod and two locale pods."""
    deploy(sb, "logs-a", "--locales", "3")
    yield "logs-a"
    main(["teardown", "logs-a", "--kubeconfig", sb.kubeconfig_path])
    assert labelled(kube, "logs-a") == []


class Lines:
    """The stdout lines of a process, read by a thread, awaited with a deadline."""

    def __init__(self, proc):
        self.proc = proc
        self.seen: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, pattern, timeout=30.0):
        deadline = time.monotonic() + timeout
        for line in self.seen:
            if pattern in line:
                return line
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if pattern in line:
                return line
        raise AssertionError(f"no line with {pattern!r} in {self.seen}")


def test_follow_prints_new_lines_and_stops_when_the_pod_is_deleted(sb, kube):
    deploy(sb, "logs-f", "--mode", "smp", "--locales", "1")
    proc = cli_process("logs", "logs-f", "-f", "--kubeconfig", sb.kubeconfig_path)
    try:
        lines = Lines(proc)
        lines.wait_for("server listening on")  # what was there before the follow
        for _ in range(2):
            marker = f"marker-{uuid.uuid4().hex[:8]}"
            send_command(sb, kube, "logs-f", marker)
            # Printed while the pod still runs: the follow streams, it does not poll.
            assert f">>> {marker}" in lines.wait_for(marker)
            assert proc.poll() is None
        assert token_of(kube, "logs-f") not in "\n".join(lines.seen)
        delete_pod(kube, "logs-f-server")
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        main(["teardown", "logs-f", "--kubeconfig", sb.kubeconfig_path])
    assert labelled(kube, "logs-f") == []


def test_since_selects_the_recent_lines(sb, kube, udp, capsys):
    where = ["--kubeconfig", sb.kubeconfig_path]
    code, out, err = run(capsys, "logs", udp, "--timestamps", *where)
    assert code == 0, err
    banner = next(ln for ln in out.splitlines() if "server listening on" in ln)
    assert RFC3339.match(banner), banner
    # The banner must be well older than the window asked for below.
    written = time.mktime(time.strptime(banner[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    eventually(
        lambda: time.time() - written,
        30,
        0.2,
        "the banner 6 s old",
        until=lambda age: age >= 6,
    )
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    send_command(sb, kube, udp, marker)
    code, out, err = run(capsys, "logs", udp, "--since", "4s", *where)
    assert code == 0, err
    assert f">>> {marker}" in out and "server listening on" not in out
    code, out, err = run(capsys, "logs", udp, *where)
    assert f">>> {marker}" in out and "server listening on" in out
    code, out, err = run(capsys, "logs", udp, "--since", "soon", *where)
    assert code == 2 and "--since: 'soon' is not a duration" in err


def test_locale_selects_one_pod_in_the_launchers_order(sb, kube, udp, capsys):
    where = ["--kubeconfig", sb.kubeconfig_path]
    pods = kube.list("Pod", label_selector=f"app.kubernetes.io/instance={udp}")["items"]
    # The launch script hands the launcher the server, then the locale pods by IP.
    ips = sorted(
        p["status"]["podIP"]
        for p in pods
        if p["metadata"]["labels"]["app.kubernetes.io/component"] == "locale"
    )
    code, out, err = run(capsys, "logs", udp, "--locale", "0", *where)
    assert code == 0 and "server listening on" in out and "==>" not in out
    assert f"locale 0 is pod {udp}-server" in err
    for n, ip in enumerate(ips, start=1):
        code, out, err = run(capsys, "logs", udp, "--locale", str(n), "--timestamps", *where)
        assert code == 0, err
        assert f"listening on {ip}:22" in out and "server listening on" not in out
        other = [i for i in ips if i != ip]
        assert all(f"{i}:22" not in out for i in other)
        assert all(RFC3339.match(ln) for ln in out.splitlines() if ln)
    code, out, err = run(capsys, "logs", udp, "--locale", "3", *where)
    assert code == 2 and "--locale: 3 is not a locale of logs-a" in err and out == ""
    # Without --locale, every locale pod, each under its name.
    code, out, err = run(capsys, "logs", udp, "--component", "locale", *where)
    assert code == 0 and out.count("==> logs-a-locale-") == 2


def test_previous_asks_for_the_last_terminated_container(sb, udp, capsys):
    code, out, err = run(capsys, "logs", udp, "--previous", "--kubeconfig", sb.kubeconfig_path)
    assert code == 1 and out == ""
    assert 'previous terminated container "arkouda-server"' in err


def test_a_terminal_gets_no_control_characters(sb, kube, udp):
    """A client can put escape sequences into the server's log (the server logs every
    command it is sent): on a terminal they are removed, into a pipe they pass as they are."""
    evil = "\x1b]0;owned\x07\x1b[2J\x1b[31mevil\rcmd"
    send_command(sb, kube, udp, evil)
    argv = [sys.executable, "-m", "arkouda_k8s.cli", "logs", udp]
    argv += ["--kubeconfig", sb.kubeconfig_path]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    piped = subprocess.run(argv, capture_output=True, env=env, timeout=60)
    assert piped.returncode == 0 and f">>> {evil}".encode() in piped.stdout

    screen = on_a_terminal(argv, env)
    assert ">>> evilcmd" in screen
    assert "\x1b" not in screen and "\x07" not in screen
    # The pty turns each newline into \r\n; no other carriage return reaches it.
    assert "\r" not in screen.replace("\r\n", "\n")


def test_logs_mask_pem_blocks_and_tokens_like_the_magics(sb, kube, udp, capsys):
    """A PEM block, a token and a Bearer credential a pod prints are masked by
    `arkouda-k8s logs`, printed at once or followed, with the masks %arkouda_logs shows
    (ArkoudaCluster.logs masks)."""
    kind = "PRIVATE " + "KEY"  # assembled here: no key-shaped text in the repository
    body = "MIIEvQIBADANBgkq" + uuid.uuid4().hex
    secret = "s" + uuid.uuid4().hex
    bearer = "b" + uuid.uuid4().hex
    proc = cli_process("logs", udp, "-f", "--tail", "1", "--kubeconfig", sb.kubeconfig_path)
    try:
        lines = Lines(proc)
        lines.wait_for("")  # the follow is streaming before the line is written
        marker = f"leak-{uuid.uuid4().hex[:8]}"
        pem = f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"
        said = f"{marker} token={secret} Authorization: Bearer {bearer} {pem}"
        send_command(sb, kube, udp, said)
        masked = (
            f">>> {marker} token={MASK} Authorization: Bearer {MASK} -----BEGIN {kind}----- {MASK}"
        )
        assert lines.wait_for(marker).endswith(masked)
        code, out, err = run(capsys, "logs", udp, "--kubeconfig", sb.kubeconfig_path)
        assert code == 0, err
        assert masked in out
        followed = "\n".join(lines.seen)
        for shown in (out, followed):
            assert body not in shown and secret not in shown and bearer not in shown
    finally:
        proc.kill()
        proc.wait()


def test_follow_every_locale_pod_until_ctrl_c_or_they_go(sb, kube, udp):
    """Several pods: each line under its pod's name; Ctrl-C ends the follow (exit 0);
    without Ctrl-C it ends once every followed pod is deleted."""
    import signal

    pods = sorted(
        p["metadata"]["name"]
        for p in kube.list(
            "Pod",
            label_selector=f"app.kubernetes.io/instance={udp},app.kubernetes.io/component=locale",
        )["items"]
    )
    assert len(pods) == 2
    where = ["--kubeconfig", sb.kubeconfig_path]
    proc = cli_process("logs", udp, "--component", "locale", "-f", *where)
    try:
        lines = Lines(proc)
        for pod in pods:
            assert lines.wait_for(f"[{pod}] arkouda-k8s: sshd listening on")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    proc = cli_process("logs", udp, "--component", "locale", "-f", *where)
    try:
        lines = Lines(proc)
        for pod in pods:
            lines.wait_for(f"[{pod}] ")
        for pod in pods:  # the Deployment makes new ones; those are not followed
            delete_pod(kube, pod)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
