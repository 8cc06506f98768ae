"""Session.bind: the installed 2020.7.7 client bound to the stand-in server."""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np
import pytest

from arkouda_k8s.errors import ClientMissing, ServerNotAnswering, SessionError
from arkouda_k8s.protocol import TokenRefused
from arkouda_k8s.sandbox.arkouda_server import StandInProcess
from arkouda_k8s.session import Session, client_sends_token, version_key

ak = pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")

TOKEN = "session-token-abcdef"


@pytest.fixture(scope="module")
def server():
    with StandInProcess("-nl", "2", "--authenticate=false", "--arkoudaVersion=2020.07.07") as s:
        yield s


@pytest.fixture(scope="module")
def v2023_server():
    with StandInProcess("--authenticate=false") as s:  # reports v2023.05.05
        yield s


def test_bind_computes_and_restores_blocking_receives(server):
    import zmq

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matching versions: no warning at all
        session = Session.bind(server.host, server.port, timeout=3)
    try:
        assert session.ak is ak
        assert session.config["numLocales"] == 2
        sock = sys.modules["arkouda.client"].socket
        assert sock.getsockopt(zmq.RCVTIMEO) == -1
        assert sock.getsockopt(zmq.SNDTIMEO) == -1
        data = np.arange(1000)
        assert session.ak.array(data).sum() == data.sum()
    finally:
        session.close()
    assert sys.modules["arkouda.client"].connected is False
    session.close()  # idempotent


def test_version_mismatch_warns_naming_both(v2023_server):
    with pytest.warns(RuntimeWarning) as record:
        session = Session.bind(v2023_server.host, v2023_server.port, timeout=3)
    session.close()
    texts = [str(w.message) for w in record]
    ours = [t for t in texts if "2020.07.07" in t and "v2023.05.05" in t]
    assert len(ours) == 1, texts
    assert not any("Version mismatch" in t for t in texts)  # the client's own is replaced


def test_server_version_given_by_caller_is_checked(server):
    with pytest.warns(RuntimeWarning, match="v2023.05.05"):
        session = Session.bind(server.host, server.port, server_version="v2023.05.05")
    session.close()


def test_client_without_token_support_refuses_auth_server():
    env = dict(os.environ, ARKOUDA_SERVER_TOKEN=TOKEN)
    with StandInProcess("--authenticate=true", env=env) as srv:
        with pytest.raises(SessionError) as err:
            Session.bind(srv.host, srv.port, token=TOKEN, timeout=3)
        text = err.value.one_line()
        assert "cannot send a token" in text and "--no-auth" in text
        assert TOKEN not in text
        with pytest.raises(TokenRefused):
            Session.bind(srv.host, srv.port, token="wrong", timeout=3)


def test_silent_server_gives_an_error_not_a_hang():
    """A server that accepts connections and never answers (busy, stuck)."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        t0 = time.monotonic()
        with pytest.raises(ServerNotAnswering):
            Session.bind("127.0.0.1", port, timeout=1)
        assert time.monotonic() - t0 < 5
        assert sys.modules["arkouda.client"].connected is False
    finally:
        sock.close(0)
        ctx.term()


def test_missing_client_says_how_to_install(monkeypatch):
    for mod in [m for m in sys.modules if m.startswith("arkouda.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "arkouda", None)  # `import arkouda` now fails
    with pytest.raises(ClientMissing) as err:
        Session.bind("127.0.0.1", 1)
    assert "install_arkouda_client.py" in err.value.one_line()


def test_version_key():
    assert version_key("v2023.05.05") == version_key("2023.5.5")
    assert version_key("2020.07.07") != version_key("v2023.05.05")


def test_token_goes_to_a_client_that_accepts_it(monkeypatch):
    """A v2023-style client (``access_token``) gets the token; its token file goes to tmpfs."""
    import types

    calls = []
    fake = types.ModuleType("arkouda")
    fake.__version__ = "v2023.05.05"

    def connect(server="localhost", port=5555, timeout=0, access_token=None, connect_url=None):
        calls.append({"server": server, "port": port, "timeout": timeout, "token": access_token})

    fake.connect = connect
    fake_client = types.ModuleType("arkouda.client")
    fake_client.socket = None
    fake.client = fake_client
    for mod in [m for m in sys.modules if m.startswith("arkouda.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "arkouda", fake)
    monkeypatch.setitem(sys.modules, "arkouda.client", fake_client)
    monkeypatch.delenv("ARKOUDA_CLIENT_DIRECTORY", raising=False)
    assert client_sends_token() is True

    env = dict(os.environ, ARKOUDA_SERVER_TOKEN=TOKEN)
    with StandInProcess("--authenticate=true", env=env) as srv, warnings.catch_warnings():
        warnings.simplefilter("error")
        session = Session.bind(srv.host, srv.port, token=TOKEN, timeout=2.5)
    assert calls == [{"server": srv.host, "port": srv.port, "timeout": 3, "token": TOKEN}]
    assert session.ak is fake and TOKEN not in repr(session)
    client_dir = os.environ["ARKOUDA_CLIENT_DIRECTORY"]
    assert client_dir.startswith("/dev/shm/") and oct(os.stat(client_dir).st_mode)[-3:] == "700"
    session.close()
    assert not os.path.exists(client_dir) and "ARKOUDA_CLIENT_DIRECTORY" not in os.environ


def test_client_sends_token_reports_the_installed_client():
    assert client_sends_token() is False  # the installed 2020.7.7 client has no access_token


def test_2020_client_refused_for_a_real_v2023_server(server, monkeypatch):
    """A real (not stand-in) server of 2021+ reads only JSON: the 2020 client cannot talk."""
    from arkouda_k8s import protocol

    real_handshake = protocol.ArkoudaProbe.handshake

    def real_server_config(self):
        config = real_handshake(self)
        config.pop("standIn")
        config["arkoudaVersion"] = "v2023.05.05"
        return config

    monkeypatch.setattr(protocol.ArkoudaProbe, "handshake", real_server_config)
    with pytest.raises(SessionError) as err:
        Session.bind(server.host, server.port, timeout=3)
    assert "2020 text protocol" in str(err.value) and "v2023.05.05" in str(err.value)
    assert sys.modules["arkouda.client"].connected is False


def test_server_time_counts_requests_and_waiting(server):
    import zmq

    client = sys.modules["arkouda.client"]
    session = Session.bind(server.host, server.port, timeout=3)
    try:
        raw = client.socket.wrapped  # the client's socket, wrapped while bound
        assert isinstance(raw, zmq.Socket)
        before = session.server_time()
        t0 = time.perf_counter()
        data = np.arange(200_000)
        assert session.ak.array(data).sum() == data.sum()
        wall = time.perf_counter() - t0
        requests, seconds = session.server_time()
        assert requests - before[0] >= 2  # the array upload and the sum, at least
        assert 0 < seconds - before[1] <= wall
        idle = session.server_time()
        assert np.arange(2_000_000).sum() > 0  # computing in Python is not server time
        assert session.server_time() == idle
    finally:
        session.close()
    assert client.socket is raw  # the client's own socket is back
    assert session.server_time() == idle  # the counts outlive the session


def test_server_time_survives_the_client_replacing_its_socket(server):
    client = sys.modules["arkouda.client"]
    session = Session.bind(server.host, server.port, timeout=3)
    try:
        session.ak.arange(0, 10, 1)
        counted = session.server_time()
        # what the 2020 client does after an interrupted request: a fresh REQ socket
        client.socket.wrapped.close(0)
        client.socket = client.context.socket(__import__("zmq").REQ)
        client.socket.connect(client.pspStr)
        assert session.server_time() == counted  # the next cell starts with this call
        session.ak.arange(0, 10, 1)
        requests, seconds = session.server_time()
        assert requests > counted[0] and seconds > counted[1]
    finally:
        session.close()


def test_timed_socket_passes_messages_through_uncopied():
    from arkouda_k8s.session import TimedSocket

    seen = []

    class Sock:
        rcvtimeo = -1

        def send(self, data, flags=0, copy=True):
            seen.append((data, copy))

        def recv(self, flags=0, copy=True):
            return reply

    payload, reply = bytearray(b"x" * 1_000_000), memoryview(b"y" * 1_000_000)
    sock = Sock()
    timed = TimedSocket(sock)
    timed.send(payload, copy=False)
    assert timed.recv() is reply
    assert seen == [(payload, False)] and seen[0][0] is payload
    assert timed.requests == 1
    timed.rcvtimeo = 5000  # socket options set on the socket itself
    assert sock.rcvtimeo == 5000


def test_disconnect_and_shutdown_through_the_timed_socket():
    client = sys.modules["arkouda.client"]
    with StandInProcess("--authenticate=false", "--arkoudaVersion=2020.07.07") as srv:
        session = Session.bind(srv.host, srv.port, timeout=3)
        session.ak.disconnect()  # the user's own call, with the wrapper in place
        assert client.connected is False
        session.close()
        session = Session.bind(srv.host, srv.port, timeout=3)
        assert session.ak.arange(0, 5, 1).sum() == 10
        session.ak.shutdown()
        assert client.connected is False
        srv.wait(timeout=10)  # the server really stopped
        session.close()  # nothing left to undo, no hang


def test_a_known_server_config_binds_without_a_probe(server, monkeypatch):
    """The Jupyter server's handshake stands in for the probe: the client's connect is the
    only round trip, and the config's checks still apply."""
    from arkouda_k8s import protocol

    config = protocol.ArkoudaProbe(server.host, server.port, timeout=3).__enter__().handshake()

    def no_probe(self):
        raise AssertionError("probed although the config was given")

    monkeypatch.setattr(protocol.ArkoudaProbe, "handshake", no_probe)
    session = Session.bind(server.host, server.port, timeout=3, config=config)
    try:
        assert session.config == config and session.ak.arange(0, 10, 1).sum() == 45
    finally:
        session.close()
    real = {k: v for k, v in config.items() if k != "standIn"}
    with pytest.raises(SessionError, match="2020 text protocol"):
        Session.bind(server.host, server.port, timeout=3, config=real)
