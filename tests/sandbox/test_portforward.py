"""The sandbox's pod port-forward, driven by the clients users have: the official Python
client (websocket v4), kubectl over websocket-SPDY, and kubectl's raw SPDY fallback."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _support import eventually, settled
from _support.echo import ECHO, ECHO_PORT, PEER_GONE, no_recorded_errors

from arkouda_k8s.sandbox import Sandbox

kubernetes = pytest.importorskip("kubernetes")
from kubernetes.stream import portforward  # noqa: E402

CLOSED_PORT = 7999  # nothing listens here in the echo pod


@pytest.fixture(scope="module")
def core(sandbox: Sandbox) -> Iterator[Any]:
    api = kubernetes.config.new_client_from_config(config_file=sandbox.kubeconfig_path)
    yield kubernetes.client.CoreV1Api(api)
    api.close()


@pytest.fixture(scope="module")
def echo_pod(core: Any) -> str:
    name = "pf-echo"
    core.create_namespaced_pod(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "pf-echo"}},
            "spec": {
                "containers": [
                    {
                        "name": "echo",
                        "image": "example/echo:1",
                        "command": [sys.executable, "-c", ECHO],
                        "ports": [{"containerPort": ECHO_PORT}],
                        "readinessProbe": {
                            "tcpSocket": {"port": ECHO_PORT},
                            "periodSeconds": 1,
                        },
                    }
                ]
            },
        },
    )
    eventually(
        lambda: core.read_namespaced_pod(name, "default").status,
        30,
        0.2,
        f"echo pod {name} Running and Ready",
        until=lambda st: (
            st.phase == "Running"
            and {c.type: c.status for c in st.conditions or []}.get("Ready") == "True"
        ),
    )
    return name


@pytest.fixture(autouse=True)
def echo_server_errors_fail_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """An error the echo server met during a test fails that test (it would otherwise
    look like a clean end of a connection)."""
    if "echo_pod" not in request.fixturenames:
        yield
        return
    core, pod = request.getfixturevalue("core"), request.getfixturevalue("echo_pod")
    resets = request.node.get_closest_marker("echo_resets") is not None

    def logs() -> dict[str, str]:
        return {pod: core.read_namespaced_pod_log(pod, "default")}

    with no_recorded_errors(logs, allow=PEER_GONE if resets else ()):
        yield


def _echo_through(sock: socket.socket, payload: bytes, half_close: bool = True) -> bytes:
    """Send payload while reading the echo in a thread; returns what came back."""
    got = bytearray()

    def read() -> None:
        while len(got) < len(payload):
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sock.sendall(payload)
    if half_close:
        sock.shutdown(socket.SHUT_WR)
    reader.join(30)
    assert not reader.is_alive(), f"echo stalled at {len(got)} of {len(payload)} bytes"
    return bytes(got)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the official Python client: websocket v4.channel.k8s.io ----------------------------


def test_python_client_portforward_moves_bytes_both_ways(core: Any, echo_pod: str) -> None:
    pf = portforward(
        core.connect_get_namespaced_pod_portforward, echo_pod, "default", ports=str(ECHO_PORT)
    )
    sock = pf.socket(ECHO_PORT)
    sock.setblocking(True)
    sock.settimeout(30)
    payload = os.urandom(3 * 1024 * 1024 + 17)
    back = _echo_through(sock, payload, half_close=False)  # v4 has no half-close
    assert _digest(back) == _digest(payload)
    assert pf.error(ECHO_PORT) is None
    sock.close()


def test_python_client_forward_to_closed_port_reports_error_channel(
    core: Any, echo_pod: str
) -> None:
    pf = portforward(
        core.connect_get_namespaced_pod_portforward, echo_pod, "default", ports=str(CLOSED_PORT)
    )
    sock = pf.socket(CLOSED_PORT)
    sock.settimeout(10)
    started = time.monotonic()
    assert sock.recv(10) == b""  # closed, not hanging
    assert time.monotonic() - started < 10
    error = pf.error(CLOSED_PORT)
    assert error is not None
    assert f"port {CLOSED_PORT}" in error and "connection refused" in error
    assert f"default/{echo_pod}" in error


def test_python_client_two_ports_in_one_websocket(core: Any, echo_pod: str) -> None:
    pf = portforward(
        core.connect_get_namespaced_pod_portforward,
        echo_pod,
        "default",
        ports=f"{ECHO_PORT},{CLOSED_PORT}",
    )
    sock = pf.socket(ECHO_PORT)
    sock.settimeout(10)
    payload = os.urandom(100_000)
    assert _echo_through(sock, payload, half_close=False) == payload
    closed = pf.socket(CLOSED_PORT)
    closed.settimeout(10)
    assert closed.recv(10) == b""
    assert "connection refused" in (pf.error(CLOSED_PORT) or "")
    sock.close()


# --- kubectl: websocket-SPDY first, raw SPDY as the fallback ----------------------------


class KubectlForward:
    """``kubectl port-forward pod/NAME :PORT`` as a child process, stopped on exit."""

    def __init__(self, env: dict[str, str], pod: str, port: int, websockets: bool) -> None:
        env = dict(env)
        if not websockets:
            env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "false"
        self.proc = subprocess.Popen(
            ["kubectl", "port-forward", f"pod/{pod}", f":{port}", "-v=6"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        self._stderr_changed = threading.Condition()
        self._drainer = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drainer.start()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "Forwarding from 127.0.0.1:NNNN -> PORT"
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if match is None:
            self.stop()
            raise AssertionError(f"kubectl did not start forwarding: {line!r} {self.stderr}")
        self.port = int(match.group(1))

    def _drain_stderr(self) -> None:
        # Reads until kubectl closes its stderr (it exits), then closes our end: stop()
        # never closes the pipe under this thread.
        assert self.proc.stderr is not None
        with self.proc.stderr as pipe:
            for line in pipe:
                with self._stderr_changed:
                    self.stderr.append(line)
                    self._stderr_changed.notify_all()
        with self._stderr_changed:
            self._stderr_changed.notify_all()

    def wait_for_stderr(self, text: str, timeout: float) -> str:
        """kubectl's stderr once it holds ``text`` (or once it ended, or at the deadline):
        the drain thread may not have read a line yet when the process has exited."""
        deadline = time.monotonic() + timeout
        with self._stderr_changed:
            while text not in "".join(self.stderr) and self._drainer.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._stderr_changed.wait(left)
            return "".join(self.stderr)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        return sock

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        # kubectl has exited: its stderr is at its end, and the drain thread with it
        self._drainer.join(5)
        assert not self._drainer.is_alive(), "kubectl's stderr stayed open after it exited"


@pytest.mark.kubectl
@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-spdy", "raw-spdy"])
def test_kubectl_port_forward_moves_bytes_both_ways(
    kubectl: str, kubectl_env: dict[str, str], echo_pod: str, websockets: bool
) -> None:
    forward = KubectlForward(kubectl_env, echo_pod, ECHO_PORT, websockets)
    try:
        for size in (1, 70_000, 8 * 1024 * 1024 + 5):
            payload = os.urandom(size)
            with forward.connect() as sock:
                assert _digest(_echo_through(sock, payload)) == _digest(payload)
        # several connections at once share one SPDY session, paired by requestid
        payloads = [os.urandom(500_000 + i) for i in range(6)]
        results: list[bytes] = [b""] * len(payloads)

        def one(i: int) -> None:
            with forward.connect() as sock:
                results[i] = _echo_through(sock, payloads[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(payloads))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert [_digest(r) for r in results] == [_digest(p) for p in payloads]
        log = "".join(forward.stderr)
        # kubectl logs its websocket dial at -v=6; the fallback must not have used it
        assert ("WebSocket" in log) is websockets, log[-2000:]
        assert "101 Switching Protocols" in log
    finally:
        forward.stop()


@pytest.mark.kubectl
@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-spdy", "raw-spdy"])
def test_kubectl_forward_to_closed_port_shows_error_not_hang(
    kubectl: str, kubectl_env: dict[str, str], echo_pod: str, websockets: bool
) -> None:
    forward = KubectlForward(kubectl_env, echo_pod, CLOSED_PORT, websockets)
    try:
        with forward.connect() as sock:
            sock.settimeout(10)
            assert sock.recv(10) == b""  # kubectl closes the connection: no hang
        log = forward.wait_for_stderr("connection refused", 10)
        assert f"error forwarding port {CLOSED_PORT}" in log and "connection refused" in log
    finally:
        forward.stop()


# --- faults and protocol edges -------------------------------------------------------------


def test_drop_all_closes_every_open_forward(
    sandbox: Sandbox, core: Any, kubectl: str, kubectl_env: dict[str, str], echo_pod: str
) -> None:
    # one forward of each kind, each with a connection that has moved bytes
    pf = portforward(
        core.connect_get_namespaced_pod_portforward, echo_pod, "default", ports=str(ECHO_PORT)
    )
    py_sock = pf.socket(ECHO_PORT)
    py_sock.settimeout(10)
    ws_forward = KubectlForward(kubectl_env, echo_pod, ECHO_PORT, websockets=True)
    raw_forward = KubectlForward(kubectl_env, echo_pod, ECHO_PORT, websockets=False)
    try:
        socks = [py_sock, ws_forward.connect(), raw_forward.connect()]
        for sock in socks:
            sock.settimeout(10)
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
        registry = sandbox.portforward_registry
        assert registry.open_streams >= 3
        dropped = sandbox.faults.drop_portforward_streams()
        assert dropped >= 3
        started = time.monotonic()
        for sock in socks:
            try:
                data = sock.recv(10)
            except OSError:
                data = b""
            assert data == b""
        assert time.monotonic() - started < 5
        assert registry.open_streams == 0
        # kubectl exits once its connection to the API server is lost
        for forward in (ws_forward, raw_forward):
            forward.proc.wait(10)
            assert "lost connection to pod" in forward.wait_for_stderr("lost connection", 10)
        for sock in socks:
            sock.close()
    finally:
        ws_forward.stop()
        raw_forward.stop()


def test_forwards_closed_at_once_release_their_pod_connections(
    sandbox: Sandbox, echo_pod: str
) -> None:
    # a readiness probe opens a forward and closes it before any data: the pod connection
    # it opened must close too, wherever the close lands (here often during the pod dial)
    import websocket

    context = ssl.create_default_context(cadata=sandbox.ca_pem)
    path = f"/api/v1/namespaces/default/pods/{echo_pod}/portforward?ports={ECHO_PORT}"
    registry = sandbox.portforward_registry
    for _ in range(60):
        raw = socket.create_connection(("127.0.0.1", sandbox.port), timeout=10)
        tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
        ws = websocket.create_connection(
            f"wss://127.0.0.1:{sandbox.port}{path}",
            socket=tls,
            subprotocols=["v4.channel.k8s.io"],
            header=[f"Authorization: Bearer {sandbox.admin_token}"],
        )
        ws.close()
    assert settled(lambda: registry.open_streams, 5) == 0, (
        f"{registry.open_streams} pod connections left open"
    )


def _raw_request(sandbox: Sandbox, head: str) -> tuple[int, str]:
    context = ssl.create_default_context(cadata=sandbox.ca_pem)
    with (
        socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ", 2)[1])
        return status, data.decode(errors="replace")


def test_portforward_without_upgrade_is_a_clear_400(sandbox: Sandbox, echo_pod: str) -> None:
    status, text = _raw_request(
        sandbox,
        f"GET /api/v1/namespaces/default/pods/{echo_pod}/portforward?ports={ECHO_PORT} "
        f"HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sandbox.admin_token}\r\n"
        "Connection: close\r\n\r\n",
    )
    assert status == 400


def test_raw_spdy_upgrade_answers_101_with_protocol_headers(
    sandbox: Sandbox, echo_pod: str
) -> None:
    status, text = _raw_request(
        sandbox,
        f"POST /api/v1/namespaces/default/pods/{echo_pod}/portforward HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: Bearer {sandbox.admin_token}\r\n"
        "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        "X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n",
    )
    assert status == 101
    assert "X-Stream-Protocol-Version: portforward.k8s.io" in text
    assert "Upgrade: SPDY/3.1" in text
    assert "Transfer-Encoding" not in text


def test_a_header_bomb_ends_the_spdy_session_and_the_server_keeps_serving(
    sandbox: Sandbox, echo_pod: str
) -> None:
    from arkouda_k8s import spdy

    context = ssl.create_default_context(cadata=sandbox.ca_pem)
    bomb = spdy.HeaderCodec().encode({"streamtype": "data", "port": "x" * (64 << 20)})
    with (
        socket.create_connection(("127.0.0.1", sandbox.port), timeout=20) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            f"POST /api/v1/namespaces/default/pods/{echo_pod}/portforward HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: Bearer {sandbox.admin_token}\r\n"
            "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            "X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += tls.recv(65536)
        assert data.startswith(b"HTTP/1.1 101")
        tls.sendall(spdy.syn_stream(1, bomb))
        received = data.split(b"\r\n\r\n", 1)[1]
        while chunk := tls.recv(65536):
            received += chunk
    # a GOAWAY with PROTOCOL_ERROR, then the connection closes
    assert spdy.goaway(0, spdy.PROTOCOL_ERROR) in received
    status, _ = _raw_request(
        sandbox,
        f"GET /api/v1/namespaces/default/pods/{echo_pod} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {sandbox.admin_token}\r\nConnection: close\r\n\r\n",
    )
    assert status == 200
