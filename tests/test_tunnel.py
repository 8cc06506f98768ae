"""The tunnel through the sandbox: exact bytes, concurrency, drops, pod replacement,
health checks, permissions, protocol fallback, loopback-only listening."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _support import eventually
from _support.echo import ECHO, ECHO_PORT, PEER_GONE, no_recorded_errors
from aiohttp import web

from arkouda_k8s.errors import KubeError, TunnelError
from arkouda_k8s.kube import ApiEndpoint, Kube
from arkouda_k8s.sandbox import Sandbox
from arkouda_k8s.sandbox.portforward import PortForwardRegistry, handle_portforward
from arkouda_k8s.tunnel import Tunnel

kubernetes = pytest.importorskip("kubernetes")

CLOSED_PORT = 7999


class World:
    """One sandbox, its admin endpoint and a CoreV1Api for making echo pods."""

    def __init__(self) -> None:
        self.sb = Sandbox().start()
        self.kube = Kube.from_kubeconfig(self.sb.kubeconfig_path)
        self.api_client = kubernetes.config.new_client_from_config(
            config_file=self.sb.kubeconfig_path
        )
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self.echo_pods: list[str] = []

    def endpoint(self) -> ApiEndpoint:
        return self.kube.endpoint()

    def echo_pod(self, name: str, labels: dict[str, str] | None = None) -> str:
        self.core.create_namespaced_pod(
            "default",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": labels or {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "echo",
                            "image": "example/echo:1",
                            "command": [sys.executable, "-c", ECHO],
                            "readinessProbe": {
                                "tcpSocket": {"port": ECHO_PORT},
                                "periodSeconds": 1,
                            },
                        }
                    ]
                },
            },
        )
        self.echo_pods.append(name)
        self.wait_ready(name)
        return name

    def echo_logs(self) -> dict[str, str]:
        """The log of each echo pod still there (pod -> text)."""
        logs = {}
        for pod in self.echo_pods:
            try:
                logs[pod] = self.kube.logs(pod, "default")
            except KubeError as exc:
                if exc.status != 404:  # a pod a test deleted: its log went with it
                    raise
        return logs

    def wait_ready(self, name: str, timeout: float = 30) -> None:
        eventually(
            lambda: self.core.read_namespaced_pod(name, "default").status,
            timeout,
            0.1,
            f"pod {name} Running and Ready",
            until=lambda st: (
                st.phase == "Running"
                and {c.type: c.status for c in st.conditions or []}.get("Ready") == "True"
            ),
        )

    def running_pod(self, selector: str) -> str:
        """A resolver: the Running, not-terminating pod with these labels."""
        pods = self.core.list_namespaced_pod("default", label_selector=selector).items
        live = [
            p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        ]
        if not live:
            raise TunnelError(f"no running pod with {selector}")
        return str(live[0].metadata.name)

    def close(self) -> None:
        self.api_client.close()
        self.sb.stop()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def echo(world: World) -> str:
    return world.echo_pod("tunnel-echo")


@pytest.fixture(autouse=True)
def echo_server_errors_fail_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """An error the echo server met during a test fails that test (it would otherwise
    look like a clean end of a connection)."""
    if "world" not in request.fixturenames:
        yield
        return
    world = request.getfixturevalue("world")
    resets = request.node.get_closest_marker("echo_resets") is not None
    with no_recorded_errors(world.echo_logs, allow=PEER_GONE if resets else ()):
        yield


PUMPS = ["native", "asyncio"]


@contextlib.contextmanager
def pump_chosen(pump: str) -> Iterator[None]:
    """Tunnels started inside move SPDY bytes with this pump (read when they start)."""
    before = os.environ.get("ARKOUDA_K8S_TUNNEL_PUMP")
    os.environ["ARKOUDA_K8S_TUNNEL_PUMP"] = pump
    try:
        yield
    finally:
        if before is None:
            del os.environ["ARKOUDA_K8S_TUNNEL_PUMP"]
        else:
            os.environ["ARKOUDA_K8S_TUNNEL_PUMP"] = before


def pump_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "arkouda-k8s-pump"]


@pytest.fixture(scope="module", params=PUMPS)
def tunnel(world: World, echo: str, request: pytest.FixtureRequest) -> Iterator[Tunnel]:
    # the native pump (built by pip install from _pump.c) and the asyncio fallback
    with pump_chosen(request.param):
        t = Tunnel(world.endpoint(), "default", echo, ECHO_PORT).start()
    try:
        assert t.pump == request.param
        yield t
    finally:
        t.stop()


def echo_through(
    address: tuple[str, int], payload: bytes, *, half_close: bool = True, timeout: float = 60
) -> bytes:
    """Send payload through the tunnel while reading the echo in a thread."""
    got = bytearray()
    failure: list[BaseException] = []
    with socket.create_connection(address, timeout=timeout) as sock:

        def read() -> None:
            try:
                while len(got) < len(payload):
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        return
                    got.extend(chunk)
            except OSError as exc:
                failure.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            sock.sendall(payload)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            failure.append(exc)
        reader.join(timeout)
        assert not reader.is_alive(), f"transfer hung at {len(got)} of {len(payload)} bytes"
    if failure:
        raise failure[0]
    return bytes(got)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def until(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """eventually(), where a connection error or a failed assertion is a "not yet"."""
    errors: list[BaseException] = []

    def attempt() -> Any:
        try:
            return check()
        except (OSError, AssertionError) as exc:
            errors.append(exc)
            return None

    return eventually(
        attempt, timeout, 0.05, lambda: f"{what} (last error: {errors[-1] if errors else None!r})"
    )


# --- bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [1, 2, 1000, 65_536 + 7, 1024 * 1024 + 3, 16 * 1024 * 1024 + 1, 64 * 1024 * 1024],
    ids=lambda n: f"{n}B",
)
def test_bytes_round_trip_exactly(tunnel: Tunnel, size: int) -> None:
    payload = os.urandom(size)
    assert sha(echo_through(tunnel.local_address, payload)) == sha(payload)


def test_the_tunnel_speaks_raw_spdy_by_default(tunnel: Tunnel) -> None:
    assert tunnel.wire_protocol == "spdy"
    assert tunnel.state == "ready"


def test_stdlib_event_loop_round_trips_too(
    world: World, echo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvloop is used when installed; the stdlib loop copies differently and must work too
    monkeypatch.setenv("ARKOUDA_K8S_TUNNEL_LOOP", "asyncio")
    with Tunnel(world.endpoint(), "default", echo, ECHO_PORT) as t:
        assert type(t._loop).__module__.startswith("asyncio")
        for size in (5, 33 * 1024 * 1024 + 3):
            payload = os.urandom(size)
            assert sha(echo_through(t.local_address, payload)) == sha(payload)


def test_websocket_protocol_round_trips_too(world: World, echo: str) -> None:
    with Tunnel(world.endpoint(), "default", echo, ECHO_PORT, protocol="websocket") as t:
        assert t.wire_protocol == "websocket"
        for size in (1, 300_000, 8 * 1024 * 1024 + 9):
            payload = os.urandom(size)
            # v4 cannot half-close: read exactly what was sent
            back = echo_through(t.local_address, payload, half_close=False)
            assert sha(back) == sha(payload)


@pytest.mark.parametrize(
    "protocol, pump", [("spdy", "native"), ("spdy", "asyncio"), ("websocket", "asyncio")]
)
def test_closed_connections_release_their_streams(
    world: World, echo: str, protocol: str, pump: str
) -> None:
    # more than aiohttp's 100-connection pool: a leaked stream would hang connection 101
    with (
        pump_chosen(pump),
        Tunnel(world.endpoint(), "default", echo, ECHO_PORT, protocol=protocol) as t,
    ):
        assert t.pump == pump
        for i in range(120):
            with socket.create_connection(t.local_address, timeout=10) as sock:
                message = f"request {i}".encode()
                sock.sendall(message)
                assert sock.recv(100) == message
        registry = world.sb.portforward_registry
        until("every stream released", lambda: registry.open_streams == 0, 5)


@pytest.mark.parametrize(
    "protocol, pump", [("spdy", "native"), ("spdy", "asyncio"), ("websocket", "asyncio")]
)
def test_a_pod_connection_reset_resets_the_local_one(
    world: World, echo: str, protocol: str, pump: str
) -> None:
    """The pod resets the connection (it fails, not ends): the local client must get a
    reset too, never a clean EOF it would take for a complete (here: empty) answer."""
    with (
        pump_chosen(pump),
        Tunnel(world.endpoint(), "default", echo, ECHO_PORT, protocol=protocol) as t,
    ):
        with socket.create_connection(t.local_address, timeout=10) as sock:
            sock.sendall(b"RESET")  # the echo pod resets a connection that starts so
            with pytest.raises(ConnectionResetError):
                while sock.recv(100):
                    pass
        assert "connection reset by peer" in str(t.last_error)
        # only that connection failed: the tunnel carries the next one (v4: no half-close)
        again = echo_through(t.local_address, b"after", half_close=protocol == "spdy")
        assert again == b"after"


def test_32_concurrent_connections(tunnel: Tunnel) -> None:
    payloads = [os.urandom(256 * 1024 + i) for i in range(32)]
    results: list[bytes | BaseException | None] = [None] * 32

    def run(i: int) -> None:
        try:
            results[i] = echo_through(tunnel.local_address, payloads[i])
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    for i, result in enumerate(results):
        assert isinstance(result, bytes), f"connection {i}: {result!r}"
        assert sha(result) == sha(payloads[i]), f"connection {i} corrupted"


def test_listener_is_loopback_only(tunnel: Tunnel) -> None:
    host, port = tunnel.local_address
    assert host == "127.0.0.1"
    # bound to 127.0.0.1 itself, not to every address: another loopback IP is refused
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=2)
    assert echo_through((host, port), b"x") == b"x"


# --- failures -----------------------------------------------------------------------------


@pytest.mark.echo_resets
def test_dropped_streams_fail_their_requests_and_the_next_succeeds(
    world: World, tunnel: Tunnel
) -> None:
    size = 256 * 1024 * 1024  # long enough to be mid-transfer when the drop comes
    progress = [threading.Event(), threading.Event()]  # one per transfer
    outcomes: list[dict[str, Any]] = []

    def transfer(started: threading.Event) -> None:
        outcome: dict[str, Any] = {"received": 0, "errors": []}
        outcomes.append(outcome)
        with socket.create_connection(tunnel.local_address, timeout=30) as sock:
            sender = threading.Thread(
                target=_send_quietly, args=(sock, size, outcome["errors"]), daemon=True
            )
            sender.start()
            try:
                while outcome["received"] < size:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        break
                    outcome["received"] += len(chunk)
                    if outcome["received"] > 4 * 1024 * 1024:
                        started.set()
            except OSError as exc:
                outcome["errors"].append(exc)
            sender.join(20)

    runners = [threading.Thread(target=transfer, args=(p,), daemon=True) for p in progress]
    for runner in runners:
        runner.start()
    # both mid-transfer: a transfer not yet started would get a fresh stream after the drop
    assert all(p.wait(30) for p in progress), "transfer did not start"
    dropped = world.sb.faults.drop_portforward_streams()
    dropped_at = time.monotonic()
    assert dropped >= 1
    for runner in runners:
        runner.join(30)
        assert not runner.is_alive(), "a request hung after its stream was dropped"
    for outcome in outcomes:
        # the connection is reset: an error on the socket, never a complete transfer
        assert outcome["received"] < size
        assert any(
            isinstance(e, (ConnectionResetError, BrokenPipeError)) for e in outcome["errors"]
        ), outcome
    assert tunnel.last_error is not None and "dropped" in tunnel.last_error.message
    payload = os.urandom(100_000)
    until(
        "an echo after the drop", lambda: echo_through(tunnel.local_address, payload) == payload, 2
    )
    assert time.monotonic() - dropped_at < 2.5
    assert tunnel.state == "ready"


def _send_quietly(sock: socket.socket, size: int, errors: list[BaseException]) -> None:
    block = os.urandom(1 << 20)
    sent = 0
    try:
        while sent < size:
            sock.sendall(block)
            sent += len(block)
    except OSError as exc:
        errors.append(exc)


@pytest.mark.parametrize("pump", PUMPS)
def test_nothing_listening_resets_the_connection_with_the_reason(
    world: World, echo: str, pump: str
) -> None:
    with pump_chosen(pump), Tunnel(world.endpoint(), "default", echo, CLOSED_PORT) as t:
        with socket.create_connection(t.local_address, timeout=10) as sock:
            sock.sendall(b"hello")
            with pytest.raises(ConnectionResetError):
                while sock.recv(10):
                    pass
        until("the error recorded", lambda: t.last_error is not None, 5)
        assert "connection refused" in str(t.last_error)
        assert f"port {CLOSED_PORT}" in str(t.last_error)


def test_follows_the_server_pod_when_it_is_replaced(world: World) -> None:
    label = f"tunnel-follow-{uuid.uuid4().hex[:6]}"
    world.echo_pod(f"{label}-a", labels={"app": label})
    states: list[tuple[str, Any]] = []
    resolver_threads: list[str] = []

    def resolve() -> str:
        resolver_threads.append(threading.current_thread().name)
        return world.running_pod(f"app={label}")

    with Tunnel(
        world.endpoint(),
        "default",
        resolve,
        ECHO_PORT,
        on_state=lambda state, error: states.append((state, error)),
    ) as t:
        assert t.pod_name == f"{label}-a"
        payload = os.urandom(50_000)
        assert echo_through(t.local_address, payload) == payload
        world.core.delete_namespaced_pod(f"{label}-a", "default", grace_period_seconds=0)
        world.echo_pod(f"{label}-b", labels={"app": label})
        until(
            "an echo through the new pod",
            lambda: echo_through(t.local_address, payload, timeout=15) == payload,
            30,
        )
        assert t.pod_name == f"{label}-b"
        assert t.state == "ready"
    # the blocking resolver never ran on the caller's thread
    assert resolver_threads and threading.main_thread().name not in resolver_threads
    assert states[0][0] == "starting" and states[-1][0] == "closed"


def test_health_check_moves_state_to_reconnecting_and_back(world: World, echo: str) -> None:
    healthy = threading.Event()
    healthy.set()
    states: list[tuple[str, Any]] = []
    checked: list[tuple[str, int]] = []

    def check(host: str, port: int) -> None:
        checked.append((host, port))
        if not healthy.is_set():
            raise ConnectionError("server did not answer the handshake")
        assert echo_through((host, port), b"ping") == b"ping"

    with Tunnel(
        world.endpoint(),
        "default",
        echo,
        ECHO_PORT,
        health_check=check,
        health_interval=0.2,
        on_state=lambda state, error: states.append((state, error)),
    ) as t:
        assert t.state == "ready"
        assert checked[0] == t.local_address
        healthy.clear()
        until("reconnecting", lambda: t.state == "reconnecting", 5)
        assert "handshake" in str(t.last_error)
        assert any(s == "reconnecting" and e is not None for s, e in states)
        healthy.set()
        until("ready again", lambda: t.state == "ready", 5)
    names = [s for s, _ in states]
    assert names[:2] == ["starting", "ready"]
    assert "reconnecting" in names and names[-1] == "closed"


def test_health_failing_past_reconnect_timeout_is_failed(world: World, echo: str) -> None:
    healthy = threading.Event()
    healthy.set()

    def check(host: str, port: int) -> None:
        if not healthy.is_set():
            raise ConnectionError("no answer")

    with Tunnel(
        world.endpoint(),
        "default",
        echo,
        ECHO_PORT,
        health_check=check,
        health_interval=0.1,
        reconnect_timeout=0.5,
    ) as t:
        healthy.clear()
        until("failed", lambda: t.state == "failed", 5)
        assert "no answer" in str(t.last_error)
        healthy.set()  # a later success still brings it back
        until("ready again", lambda: t.state == "ready", 5)


# Both pumps: the asyncio one is what CPython 3.14 gets (the native one is not built there).
@pytest.mark.parametrize("pump", PUMPS)
def test_start_fails_clearly_without_permission(world: World, echo: str, pump: str) -> None:
    path = world.sb.kubeconfig_for_user(f"nobody-{uuid.uuid4().hex[:6]}")
    endpoint = Kube.from_kubeconfig(path).endpoint()
    tunnel = Tunnel(endpoint, "default", echo, ECHO_PORT)
    with pump_chosen(pump), pytest.raises(TunnelError) as info:
        tunnel.start(timeout=10)
    message = info.value.one_line()
    assert "forbidden" in message.lower() and "pods/portforward" in message
    assert tunnel.state == "closed"


@pytest.mark.parametrize("pump", PUMPS)
def test_an_unchecked_start_costs_no_port_forward_of_its_own(
    world: World, echo: str, pump: str
) -> None:
    """``check_on_start=False`` (a short-lived status read's tunnel): start opens no
    port-forward, the first connection is the only one and makes it ready; a refused
    first connection fails the tunnel with the API server's reason, set before the
    connection is reset."""
    registry = world.sb.portforward_registry
    before = registry.opened
    with (
        pump_chosen(pump),
        Tunnel(world.endpoint(), "default", echo, ECHO_PORT, check_on_start=False) as t,
    ):
        assert registry.opened == before and t.state == "starting"
        assert echo_through(t.local_address, b"first") == b"first"
        assert registry.opened == before + 1 and t.state == "ready"

    path = world.sb.kubeconfig_for_user(f"nobody-{uuid.uuid4().hex[:6]}")
    endpoint = Kube.from_kubeconfig(path).endpoint()
    with pump_chosen(pump), Tunnel(endpoint, "default", echo, ECHO_PORT, check_on_start=False) as t:
        with socket.create_connection(t.local_address, timeout=10) as sock:
            sock.sendall(b"refused")
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b"", "bytes came through a refused port-forward"
        assert t.state == "failed"
        message = t.last_error.one_line() if t.last_error else ""
        assert "forbidden" in message.lower() and "pods/portforward" in message


def test_expired_credentials_are_refreshed_from_a_callable_endpoint(
    world: World, echo: str
) -> None:
    good = world.endpoint()
    expired = ApiEndpoint(good.server, good.ssl_context, {"Authorization": "Bearer expired"})
    handed_out: list[ApiEndpoint] = []

    def endpoint() -> ApiEndpoint:
        handed_out.append(expired if not handed_out else good)
        return handed_out[-1]

    with Tunnel(endpoint, "default", echo, ECHO_PORT) as t:
        assert echo_through(t.local_address, b"fresh") == b"fresh"
    assert handed_out == [expired, good]
    # a plain endpoint with a bad token fails at start, naming the 401
    with pytest.raises(TunnelError, match="Unauthorized|401"):
        Tunnel(expired, "default", echo, ECHO_PORT).start(timeout=5)


def test_an_expired_client_certificate_is_named(world: World, echo: str, tmp_path: Any) -> None:
    import datetime

    import yaml

    cert, key = world.sb.ca.issue_client(
        "sandbox-admin", ["system:masters"], lifetime=datetime.timedelta(minutes=-1)
    )
    path = tmp_path / "expired.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(world.sb.kubeconfig_dict(client_certificate=cert, client_key=key), fh)
    kube = Kube.from_kubeconfig(str(path))
    with pytest.raises(TunnelError) as info:
        # a callable endpoint, as the cluster hands it: fresh credentials are asked for once
        Tunnel(kube.endpoint, "default", echo, ECHO_PORT).start(timeout=5)
    message = info.value.one_line()
    assert "unauthorized: the kubeconfig's client certificate expired at" in message
    assert "renew the credentials" in message
    assert "pods/portforward" not in message and "refused" not in message


@pytest.mark.parametrize("pump", PUMPS)
def test_missing_pod_times_out_with_the_api_reason(world: World, pump: str) -> None:
    tunnel = Tunnel(world.endpoint(), "default", "no-such-pod", ECHO_PORT)
    started = time.monotonic()
    with pump_chosen(pump), pytest.raises(TunnelError) as info:
        tunnel.start(timeout=2)
    assert time.monotonic() - started < 5
    assert "not found" in info.value.one_line()


def test_stop_closes_the_listener(world: World, echo: str) -> None:
    t = Tunnel(world.endpoint(), "default", echo, ECHO_PORT).start()
    address = t.local_address
    assert echo_through(address, b"abc") == b"abc"
    t.stop()
    assert t.state == "closed"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2)
    t.stop()  # idempotent


@pytest.mark.parametrize("pump", PUMPS)
def test_idle_connections_are_kept_alive_with_pings(world: World, echo: str, pump: str) -> None:
    with (
        pump_chosen(pump),
        Tunnel(world.endpoint(), "default", echo, ECHO_PORT, ping_interval=0.1) as t,
        socket.create_connection(t.local_address, timeout=10) as sock,
    ):
        sock.sendall(b"before")
        assert sock.recv(6) == b"before"
        until("answered pings on the idle connection", lambda: t.pings_answered >= 3, 5)
        sock.sendall(b"after")  # the pings did not disturb the data stream
        assert sock.recv(5) == b"after"


@pytest.mark.echo_resets
@pytest.mark.parametrize("pump", PUMPS)
def test_stop_resets_live_transfers_and_ends_every_pump(world: World, echo: str, pump: str) -> None:
    with pump_chosen(pump):
        t = Tunnel(world.endpoint(), "default", echo, ECHO_PORT).start()
    errors: list[BaseException] = []
    received = [0]
    progress = threading.Event()
    with socket.create_connection(t.local_address, timeout=30) as sock:
        sender = threading.Thread(target=_send_quietly, args=(sock, 1 << 30, errors), daemon=True)
        sender.start()
        try:
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                received[0] += len(chunk)
                if received[0] > 4 * 1024 * 1024 and not progress.is_set():
                    progress.set()
                    stopped_at = time.monotonic()
                    t.stop()
        except OSError as exc:
            errors.append(exc)
        sender.join(20)
    assert progress.is_set(), "the transfer did not start"
    assert time.monotonic() - stopped_at < 5
    # the client sees a reset (an error), never a clean end of a transfer it did not finish
    assert any(isinstance(e, (ConnectionResetError, BrokenPipeError)) for e in errors), errors
    assert received[0] < 1 << 30
    assert pump_threads() == []
    registry = world.sb.portforward_registry
    until("every stream released", lambda: registry.open_streams == 0, 5)


@pytest.mark.echo_resets
@pytest.mark.parametrize("pump", PUMPS)
def test_a_client_that_resets_mid_transfer_leaves_the_tunnel_working(
    world: World, echo: str, pump: str
) -> None:
    with pump_chosen(pump), Tunnel(world.endpoint(), "default", echo, ECHO_PORT) as t:
        sock = socket.create_connection(t.local_address, timeout=30)
        errors: list[BaseException] = []
        sender = threading.Thread(target=_send_quietly, args=(sock, 1 << 30, errors), daemon=True)
        sender.start()
        got = 0
        while got < 4 * 1024 * 1024:
            got += len(sock.recv(1 << 20))
        # an abortive close while the pod is still sending: an RST, not a FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        sender.join(20)
        registry = world.sb.portforward_registry
        until("the reset connection's stream released", lambda: registry.open_streams == 0, 5)
        until("its pump ended", lambda: pump_threads() == [], 5)
        payload = os.urandom(300_000)
        assert echo_through(t.local_address, payload) == payload
        assert t.state == "ready"


EXIT_WITH_A_LIVE_TRANSFER = """
import os, socket, sys, threading
from arkouda_k8s.kube import Kube
from arkouda_k8s.tunnel import Tunnel
kubeconfig, pod, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
tunnel = Tunnel(Kube.from_kubeconfig(kubeconfig).endpoint(), "default", pod, port,
                on_state=lambda state, error: print("state", state, flush=True)).start()
sock = socket.create_connection(tunnel.local_address)
def send():
    block = os.urandom(1 << 20)
    try:
        while True:
            sock.sendall(block)
    except OSError:
        pass
echoed = threading.Event()
def drain():
    try:
        while sock.recv(1 << 20):
            echoed.set()
    except OSError:
        pass
threading.Thread(target=send, daemon=True).start()
threading.Thread(target=drain, daemon=True).start()
assert echoed.wait(30), "no byte came back through the tunnel"  # the transfer is under way
print("leaving with the transfer running", flush=True)
"""


@pytest.mark.echo_resets
def test_a_tunnel_left_open_is_stopped_at_interpreter_exit(world: World, echo: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", EXIT_WITH_A_LIVE_TRANSFER, world.sb.kubeconfig_path, echo]
        + [str(ECHO_PORT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    lines = child.stdout.splitlines()
    # stopped (its pump threads ended) before the interpreter went away, not killed with it
    assert lines[-2:] == ["leaving with the transfer running", "state closed"], lines
    registry = world.sb.portforward_registry
    until("the child's stream released", lambda: registry.open_streams == 0, 5)


def test_fixed_local_port(world: World, echo: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Tunnel(world.endpoint(), "default", echo, ECHO_PORT, local_port=port) as t:
        assert t.local_address == ("127.0.0.1", port)
        assert echo_through(t.local_address, b"fixed") == b"fixed"


def test_command_line_forwards_until_terminated(world: World, echo: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "arkouda_k8s.tunnel", echo, str(ECHO_PORT)],
        env=dict(os.environ, KUBECONFIG=world.sb.kubeconfig_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(rf"Forwarding from 127\.0\.0\.1:(\d+) -> {ECHO_PORT}\n", line)
        assert match, line
        payload = os.urandom(1_000_000)
        assert echo_through(("127.0.0.1", int(match.group(1))), payload) == payload
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_command_line_names_the_problem(world: World) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "arkouda_k8s.tunnel", "no-such-pod", "7000", "--timeout", "1"],
        env=dict(os.environ, KUBECONFIG=world.sb.kubeconfig_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "not found" in done.stderr
    assert done.stdout == ""


def test_bad_arguments_are_named() -> None:
    endpoint = ApiEndpoint("https://127.0.0.1:1", None, {})
    with pytest.raises(TunnelError, match="remote_port"):
        Tunnel(endpoint, "default", "pod", remote_port=0)
    with pytest.raises(TunnelError, match="protocol"):
        Tunnel(endpoint, "default", "pod", protocol="carrier-pigeon")


# --- protocol fallback, against a server that refuses SPDY --------------------------------


@pytest.fixture
def websocket_only_server() -> Iterator[str]:
    """An API stand-in that refuses the SPDY upgrade but serves websocket port-forwards
    (to a local echo server), as a proxy that only passes websockets would."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        echo_server = await asyncio.start_server(echo, "127.0.0.1", 0)
        echo_port = echo_server.sockets[0].getsockname()[1]
        registry = PortForwardRegistry()

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", echo_port)

        async def route(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Upgrade", "").lower() != "websocket":
                return web.json_response(
                    {"kind": "Status", "message": "upgrade to SPDY/3.1 is not supported"},
                    status=400,
                )
            return await handle_portforward(request, connect, registry)

        app = web.Application()
        app.router.add_route("*", "/api/v1/namespaces/{namespace}/pods/{name}/portforward", route)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        box["stop"] = asyncio.Event()
        ready.set()
        await box["stop"].wait()
        await registry.close()
        await runner.cleanup()
        echo_server.close()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["url"]
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        loop.close()


def test_falls_back_to_websocket_when_spdy_is_refused(websocket_only_server: str) -> None:
    endpoint = ApiEndpoint(websocket_only_server, None, {})
    with Tunnel(endpoint, "default", "echo", 5555) as t:
        assert t.wire_protocol == "websocket"
        payload = os.urandom(200_000)
        assert echo_through(t.local_address, payload, half_close=False) == payload


def test_spdy_only_reports_the_refusal(websocket_only_server: str) -> None:
    endpoint = ApiEndpoint(websocket_only_server, None, {})
    with pytest.raises(TunnelError, match="not supported"):
        Tunnel(endpoint, "default", "echo", 5555, protocol="spdy").start(timeout=2)


def _kubeconfig_naming(world: World, tmp_path: Any, server_name: str) -> str:
    """The sandbox's kubeconfig with ``tls-server-name`` set on its cluster."""
    import yaml

    with open(world.sb.kubeconfig_path) as f:
        config = yaml.safe_load(f)
    for cluster in config["clusters"]:
        cluster["cluster"]["tls-server-name"] = server_name
    path = tmp_path / "kubeconfig"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize("protocol", ["spdy", "websocket"])
def test_a_wrong_tls_server_name_is_refused_like_kubectl(
    world: World, echo: str, tmp_path: Any, protocol: str
) -> None:
    # The certificate is valid for 127.0.0.1 but not for the configured name: kubectl
    # and the official client refuse, and so must every dial of the tunnel (before any
    # bearer token is sent).
    path = _kubeconfig_naming(world, tmp_path, "not-the-api-server.example")
    kube = Kube.from_kubeconfig(path)
    with pytest.raises(KubeError, match="not-the-api-server.example|hostname"):
        kube.get("Pod", echo, "default")
    for pump in PUMPS:
        with pump_chosen(pump):
            tunnel = Tunnel(kube.endpoint(), "default", echo, ECHO_PORT, protocol=protocol)
            with pytest.raises(TunnelError, match="not-the-api-server.example|hostname"):
                tunnel.start(timeout=5)
        assert tunnel.state == "closed"


@pytest.mark.parametrize("pump", PUMPS)
def test_tls_server_name_is_the_name_the_certificate_is_checked_against(
    world: World, echo: str, tmp_path: Any, pump: str
) -> None:
    kube = Kube.from_kubeconfig(_kubeconfig_naming(world, tmp_path, "kubernetes.default.svc"))
    assert kube.get("Pod", echo, "default") is not None
    with pump_chosen(pump), Tunnel(kube.endpoint(), "default", echo, ECHO_PORT) as t:
        assert t.pump == pump
        assert echo_through(t.local_address, b"named") == b"named"
