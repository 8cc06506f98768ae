"""ArkoudaProbe against the stand-in server: handshake, memory, shutdown, and the three
ways a server can fail to answer (nothing listens, silent, token refused), and the
start contract of the real server the stand-in keeps (token file, exit on a failed
registration)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from arkouda_k8s.errors import ServerNotAnswering
from arkouda_k8s.protocol import ArkoudaProbe, TokenRefused
from arkouda_k8s.sandbox.arkouda_server import StandInProcess

TOKEN = "probe-token-0123456789"


@pytest.fixture(scope="module")
def server():
    with StandInProcess("-nl", "4", "--authenticate=false") as srv:
        yield srv


@pytest.fixture(scope="module")
def auth_server():
    env = dict(os.environ, ARKOUDA_SERVER_TOKEN=TOKEN)
    with StandInProcess("--authenticate=true", env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def silent_server():
    """A peer that accepts ZeroMQ connections and never replies (a busy or stuck server)."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        yield "127.0.0.1", port
    finally:
        sock.close(0)
        ctx.term()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_handshake_returns_the_server_config(server):
    with ArkoudaProbe(server.host, server.port, timeout=5) as probe:
        config = probe.handshake()
        assert config["numLocales"] == 4
        assert config["ServerPort"] == server.port
        assert config["arkoudaVersion"] == "v2023.05.05"
        assert config["standIn"] is True


def test_getmemused_counts_arrays(server):
    import zmq

    with ArkoudaProbe(server.host, server.port) as probe:
        before = probe.getmemused()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10000)
    sock.connect(f"tcp://{server.host}:{server.port}")
    try:
        sock.send_string("arange 0 1000 1")  # a 2020-format request: 8000 bytes
        assert sock.recv_string().startswith("created ")
    finally:
        sock.close(0)
        ctx.term()
    with ArkoudaProbe(server.host, server.port) as probe:
        assert probe.getmemused() == before + 8000


def test_token_is_required_and_checked(auth_server):
    with ArkoudaProbe(auth_server.host, auth_server.port, token=TOKEN) as probe:
        assert probe.handshake()["authenticate"] is True
    for token in (None, "not-the-token"):
        with ArkoudaProbe(auth_server.host, auth_server.port, token=token) as probe:
            with pytest.raises(TokenRefused) as err:
                probe.handshake()
            assert TOKEN not in str(err.value)
            assert "token" in err.value.one_line()
            assert "not-the-token" not in repr(probe)


def test_connection_refused_is_told_apart(server):
    port = _closed_port()
    with ArkoudaProbe("127.0.0.1", port, timeout=5) as probe:
        t0 = time.monotonic()
        with pytest.raises(ServerNotAnswering) as err:
            probe.handshake()
        assert time.monotonic() - t0 < 3
    assert err.value.reason == "refused"
    assert "connection refused" in str(err.value)


def test_silent_server_is_not_answering_and_probe_recovers(silent_server):
    with ArkoudaProbe(*silent_server, timeout=1.0) as probe:
        for _ in range(2):  # a fresh socket each time: the second probe is not stuck
            t0 = time.monotonic()
            with pytest.raises(ServerNotAnswering) as err:
                probe.handshake()
            assert time.monotonic() - t0 < 5
            assert err.value.reason == "silent"
            assert "accepts connections" in str(err.value)
            assert "log" in err.value.one_line()


def test_a_connection_closed_before_the_reply_is_said_at_once_and_not_redialed():
    """A port that accepts and then closes (a tunnel whose server pod does not listen,
    a server that exits): said as such at once, on the conversation's one TCP connection;
    ZeroMQ used to redial it every 100 ms (through a tunnel: a port-forward each) and
    the probe then said "silent" after its whole timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept_and_close() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        conn.close()

    closer = threading.Thread(target=accept_and_close, daemon=True)
    closer.start()
    try:
        with ArkoudaProbe(*listener.getsockname(), timeout=10) as probe:
            t0 = time.monotonic()
            with pytest.raises(ServerNotAnswering) as err:
                probe.handshake()
            assert time.monotonic() - t0 < 3
            assert err.value.reason == "closed"
            assert "closed the connection before the Arkouda server answered" in str(err.value)
            closer.join(5)
            listener.settimeout(0.5)  # ZeroMQ redialed within 0.1 s
            with pytest.raises(TimeoutError):
                accepted.append(listener.accept()[0])
        assert len(accepted) == 1
    finally:
        for conn in accepted:
            conn.close()
        listener.close()


def test_server_whose_registration_fails_exits_like_the_real_one():
    """arkouda_server's ExternalSystemError escapes its main: it exits (ServerDaemon.chpl,
    image_facts.yaml server.registration_failure); so does the stand-in."""
    env = dict(
        os.environ,
        K8S_HOST=f"https://127.0.0.1:{_closed_port()}",
        CERT_FILE="/nonexistent/tls.crt",
        KEY_FILE="/nonexistent/tls.key",
        NAMESPACE="default",
        EXTERNAL_SERVICE_NAME="arkouda-exits",
    )
    flags = (
        "--authenticate=false",
        "--ExternalIntegration.systemType=SystemType.KUBERNETES",
        "--ServerDaemon.daemonTypes=ServerDaemonType.INTEGRATION",
    )
    with StandInProcess(*flags, env=env, wait_banner=False) as srv:
        assert srv.wait(20) == 1
        assert "ExternalSystemError" in srv.output
        with (
            ArkoudaProbe(srv.host, srv.port, timeout=1.0) as probe,
            pytest.raises(ServerNotAnswering) as err,
        ):
            probe.handshake()
        assert err.value.reason == "refused"


def test_server_without_the_integration_daemon_registers_nothing():
    """K8S_HOST alone does not make the server register (registration "client")."""
    env = dict(os.environ, K8S_HOST=f"https://127.0.0.1:{_closed_port()}", NAMESPACE="default")
    with (
        StandInProcess("--authenticate=false", env=env) as srv,
        ArkoudaProbe(srv.host, srv.port, timeout=5) as probe,
    ):
        assert probe.handshake()["numLocales"] == 1
    assert "ExternalSystemError" not in srv.output


def test_token_comes_from_the_tokens_file_before_the_environment(tmp_path):
    """Security.chpl: <cwd>/.arkouda/tokens.txt first, then ARKOUDA_SERVER_TOKEN."""
    (tmp_path / ".arkouda").mkdir()
    (tmp_path / ".arkouda" / "tokens.txt").write_text("from-the-file-0123456789")
    env = dict(os.environ, ARKOUDA_SERVER_TOKEN="from-the-environment")
    with StandInProcess("--authenticate=true", env=env, cwd=str(tmp_path)) as srv:
        with ArkoudaProbe(srv.host, srv.port, token="from-the-file-0123456789") as probe:
            assert probe.handshake()["numLocales"] == 1
        with (
            ArkoudaProbe(srv.host, srv.port, token="from-the-environment") as probe,
            pytest.raises(TokenRefused),
        ):
            probe.handshake()


def test_shutdown_stops_the_server():
    with StandInProcess("--authenticate=false") as srv:
        with ArkoudaProbe(srv.host, srv.port) as probe:
            probe.handshake()
            probe.shutdown()
        assert srv.wait(20) == 0
        with ArkoudaProbe(srv.host, srv.port, timeout=2) as probe:
            with pytest.raises(ServerNotAnswering) as err:
                probe.handshake()
            assert err.value.reason == "refused"
