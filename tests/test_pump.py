"""The tunnel's native pump (arkouda_k8s/_pump.c) against a scripted API server.

Each test gets a real TLS connection (the pump's remote side, a client SSLSocket as the
tunnel makes it) to a peer that speaks SPDY frames by hand, and a TCP connection on
127.0.0.1 standing for the local client. The tunnel-level behaviour is in test_tunnel.py.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from _support import eventually, settled

from arkouda_k8s.sandbox.auth import CertificateAuthority

_pump = pytest.importorskip("arkouda_k8s._pump")

DATA, ERROR = 3, 1
FIN = 0x01


def data_frame(stream: int, payload: bytes, fin: bool = False) -> bytes:
    return struct.pack(">II", stream, (FIN if fin else 0) << 24 | len(payload)) + payload


def control_frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8003, kind, len(payload)) + payload


def ping(ping_id: int) -> bytes:
    return control_frame(6, struct.pack(">I", ping_id))


class Peer:
    """The API server's end, owned by one thread (an SSL object is not for two threads):
    it parses the frames it reads and writes what a test queues with ``send``."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.frames: list[tuple[str, int, int, bytes]] = []  # (kind, id/type, flags, payload)
        self.lock = threading.Lock()
        self.outgoing = bytearray()
        self.closing = False
        self.stopped = threading.Event()
        self.wake_r, self.wake_w = socket.socketpair()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.setblocking(False)
        buf = bytearray()
        try:
            while not self.stopped.is_set():
                with self.lock:
                    if not self.outgoing and self.closing:
                        return
                    pending = bool(self.outgoing)
                writable = [self.sock] if pending else []
                ready, can_write, _ = select.select([self.sock, self.wake_r], writable, [], 0.5)
                if self.wake_r in ready:
                    self.wake_r.recv(4096)
                if can_write or pending:
                    with self.lock:
                        try:
                            sent = self.sock.send(self.outgoing[: 1 << 20])
                            del self.outgoing[:sent]
                        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                            pass
                if self.sock in ready or self.sock.pending():
                    try:
                        chunk = self.sock.recv(1 << 20)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        continue
                    if not chunk:
                        return
                    buf += chunk
                    while len(buf) >= 8:
                        word0, word1 = struct.unpack_from(">II", buf)
                        end = 8 + (word1 & 0xFFFFFF)
                        if len(buf) < end:
                            break
                        payload = bytes(buf[8:end])
                        del buf[:end]
                        with self.lock:
                            if word0 & 0x80000000:
                                self.frames.append(
                                    ("control", word0 & 0xFFFF, word1 >> 24, payload)
                                )
                            else:
                                self.frames.append(("data", word0, word1 >> 24, payload))
        except OSError:
            pass
        finally:
            if self.closing:
                self.sock.close()

    def send(self, data: bytes) -> None:
        with self.lock:
            self.outgoing += data
        self.wake_w.send(b"x")

    def close_after_sending(self) -> None:
        """Close the TCP connection (no TLS close_notify) once everything queued is out."""
        self.closing = True
        self.wake_w.send(b"x")
        self.thread.join(10)

    def stop(self) -> None:
        self.stopped.set()
        self.wake_w.send(b"x")
        self.thread.join(10)
        self.wake_r.close()
        self.wake_w.close()

    def seen(self) -> list[tuple[str, int, int, bytes]]:
        with self.lock:
            return list(self.frames)

    def data(self) -> bytes:
        return b"".join(p for kind, sid, _, p in self.seen() if kind == "data" and sid == DATA)

    def wait_for(self, frame: tuple[str, int, int, bytes], timeout: float = 10) -> None:
        eventually(
            self.seen, timeout, 0.02, f"{frame!r} received", until=lambda seen: frame in seen
        )


@dataclass
class Wiring:
    pump: Any
    client: ssl.SSLSocket  # the tunnel's TLS socket, handed to the pump
    peer: Peer
    app: socket.socket  # the local client
    local: socket.socket  # the tunnel's accepted local socket, handed to the pump
    result: list[tuple[str, str]] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self, inbound: bytes = b"", outbound: bytes = b"", local_eof: bool = False) -> None:
        args = (
            self.client._sslobj,  # type: ignore[attr-defined]
            self.client.fileno(),
            self.local.fileno(),
            DATA,
            ERROR,
            inbound,
            outbound,
            local_eof,
        )
        self.thread = threading.Thread(
            target=lambda: self.result.append(self.pump.run(*args)), daemon=True
        )
        self.thread.start()

    def outcome(self, timeout: float = 10) -> tuple[str, str]:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the pump did not return"
        return self.result[0]

    def app_reads_all(self, timeout: float = 10) -> bytes:
        self.app.settimeout(timeout)
        out = bytearray()
        while chunk := self.app.recv(1 << 20):
            out += chunk
        return bytes(out)


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = CertificateAuthority()
    return ca.server_context(), ssl.create_default_context(cadata=ca.ca_pem.decode())


@pytest.fixture
def wiring(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[Wiring]:
    server_ctx, client_ctx = contexts
    with socket.create_server(("127.0.0.1", 0)) as listener:
        raw = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        app = socket.create_connection(listener.getsockname())
        local, _ = listener.accept()
    server = server_ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    handshake = threading.Thread(target=server.do_handshake)  # the server's half...
    handshake.start()
    client = client_ctx.wrap_socket(raw, server_hostname="127.0.0.1")  # ...and ours
    handshake.join(10)
    client.setblocking(False)  # as the tunnel hands it over
    local.setblocking(False)
    w = Wiring(_pump.Pump(), client, Peer(server), app, local)
    try:
        yield w
    finally:
        if w.thread is not None and w.thread.is_alive():
            w.pump.stop()
            w.thread.join(5)
        w.peer.stop()
        for s in (app, local, client, server):
            s.close()


def test_data_reaches_the_local_socket_exactly_and_fin_half_closes_it(wiring: Wiring) -> None:
    chunks = [os.urandom(n) for n in (1, 7, 16_384, 300_000, 2_000_000, 5)]
    wiring.start(inbound=data_frame(DATA, b"early "))
    for chunk in chunks:
        wiring.peer.send(data_frame(DATA, chunk))
    wiring.peer.send(data_frame(9, b"a stream we did not open") + data_frame(DATA, b"", fin=True))
    assert wiring.app_reads_all() == b"early " + b"".join(chunks)  # then EOF: the FIN
    wiring.app.shutdown(socket.SHUT_WR)  # our side ends too: the pump sends FIN, returns
    assert wiring.outcome() == ("done", "")
    wiring.peer.wait_for(("data", DATA, FIN, b""))


def test_local_bytes_go_out_as_data_frames_of_at_most_a_mebibyte(wiring: Wiring) -> None:
    payload = os.urandom(5 * 1024 * 1024 + 3)
    wiring.start(outbound=b"sent before the pump ran ")
    wiring.app.sendall(payload)
    wiring.app.shutdown(socket.SHUT_WR)
    wiring.peer.wait_for(("data", DATA, FIN, b""), 20)
    frames = [f for f in wiring.peer.seen() if f[0] == "data"]
    assert all(sid == DATA for _, sid, _, _ in frames)
    assert max(len(p) for *_, p in frames) <= 1024 * 1024
    assert wiring.peer.data() == b"sent before the pump ran " + payload
    assert frames[-1] == ("data", DATA, FIN, b"")


def test_pings_are_answered_among_thousands_of_control_frames(wiring: Wiring) -> None:
    # 30,000 pings are more than the pump's inbound buffer: it must make room as it goes
    wiring.start()
    burst = b"".join(ping(2 * i) for i in range(30_000))
    wiring.peer.send(burst + data_frame(DATA, b"after the pings", fin=True))
    assert wiring.app_reads_all() == b"after the pings"
    answers = settled(
        lambda: [f for f in wiring.peer.seen() if f[0] == "control" and f[1] == 6],
        10,
        until=lambda answers: len(answers) == 30_000,
    )
    assert [struct.unpack(">I", p)[0] for *_, p in answers] == [2 * i for i in range(30_000)]


def test_our_pings_use_odd_ids_and_answers_are_counted(wiring: Wiring) -> None:
    wiring.start()
    wiring.pump.ping()
    wiring.pump.ping()
    deadline = time.monotonic() + 5  # for both waits
    settled(wiring.peer.seen, 5, 0.02, until=lambda seen: len(seen) >= 2)
    ids = [struct.unpack(">I", p)[0] for kind, t, _, p in wiring.peer.seen() if t == 6]
    assert ids == [1, 3]
    for ping_id in ids:
        wiring.peer.send(ping(ping_id))
    left = max(0.0, deadline - time.monotonic())
    assert settled(lambda: wiring.pump.pongs, left, 0.02, until=lambda n: n >= 2) == 2


def test_error_stream_text_fails_the_connection_with_that_text(wiring: Wiring) -> None:
    wiring.start()
    reason = "error forwarding port 7999 to pod x: connection refused \xe9"
    wiring.peer.send(data_frame(ERROR, reason.encode() + b"\xff", fin=True))
    outcome, message = wiring.outcome()
    assert outcome == "failed"
    assert message.startswith(reason)  # the invalid byte is replaced, not an exception


def test_a_reset_stream_fails_the_connection(wiring: Wiring) -> None:
    wiring.start()
    wiring.peer.send(control_frame(3, struct.pack(">II", DATA, 5)))
    assert wiring.outcome() == ("failed", "the API server reset the stream (status 5)")


def test_a_connection_dropped_mid_stream_is_reported_as_dropped(wiring: Wiring) -> None:
    wiring.start()
    wiring.peer.send(data_frame(DATA, b"x" * 1000))
    wiring.peer.close_after_sending()
    outcome, message = wiring.outcome()
    assert outcome == "dropped" and "dropped" in message


def test_a_local_client_that_resets_ends_the_pump(wiring: Wiring) -> None:
    wiring.start()
    wiring.app.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wiring.app.close()
    for _ in range(50):  # the pump notices on its next write to the local socket
        wiring.peer.send(data_frame(DATA, b"y" * 65536))
        if wiring.result:
            break
        time.sleep(0.02)
    assert wiring.outcome()[0] == "local_closed"


def test_stop_returns_at_once(wiring: Wiring) -> None:
    wiring.start()
    wiring.peer.send(data_frame(DATA, b"up"))
    wiring.app.settimeout(10)
    assert wiring.app.recv(16) == b"up"  # the pump is in its loop
    started = time.monotonic()
    wiring.pump.stop()
    assert wiring.outcome()[0] == "stopped"
    assert time.monotonic() - started < 1


def test_refuses_what_is_not_a_finished_tls_socket_of_that_descriptor(wiring: Wiring) -> None:
    fd, local = wiring.client.fileno(), wiring.local.fileno()
    with pytest.raises(TypeError):
        wiring.pump.run(object(), fd, local, DATA, ERROR, b"", b"", False)
    with pytest.raises(ValueError, match="does not belong"):
        wiring.pump.run(wiring.client._sslobj, local, local, DATA, ERROR, b"", b"", False)  # type: ignore[attr-defined]


def test_is_linked_to_the_ssl_modules_own_libssl() -> None:
    import _ssl

    assert _pump.compatible(_ssl.__file__)
    assert not _pump.compatible("/nonexistent/_ssl.so")
