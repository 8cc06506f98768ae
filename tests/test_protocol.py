"""ArkoudaProbe against the stand-in server: handshake, memory, shutdown, and the three
ways a server can fail to answer (nothing listens, halted, token refused)."""

from __future__ import annotations

import os
import socket
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
def halted_server():
    """A stand-in whose self-registration fails: port bound, nothing answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_api = s.getsockname()[1]  # closed again: connection refused
    env = dict(
        os.environ,
        K8S_HOST=f"https://127.0.0.1:{dead_api}",
        CERT_FILE="/nonexistent/tls.crt",
        KEY_FILE="/nonexistent/tls.key",
        NAMESPACE="default",
        EXTERNAL_SERVICE_NAME="arkouda-halted",
    )
    with StandInProcess("--authenticate=false", env=env, wait_banner=False) as srv:
        srv.wait_for("arkouda server halted")
        yield srv


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


def test_halted_server_is_not_answering_and_probe_recovers(halted_server):
    assert "ExternalSystemError" in halted_server.output
    with ArkoudaProbe(halted_server.host, halted_server.port, timeout=1.0) as probe:
        for _ in range(2):  # a fresh socket each time: the second probe is not stuck
            t0 = time.monotonic()
            with pytest.raises(ServerNotAnswering) as err:
                probe.handshake()
            assert time.monotonic() - t0 < 5
            assert err.value.reason == "silent"
            assert "accepts connections" in str(err.value)
            assert "log" in err.value.one_line()


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
