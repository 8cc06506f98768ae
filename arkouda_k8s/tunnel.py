"""The supervised port-forward tunnel to the Arkouda server pod.

``Tunnel`` listens on 127.0.0.1 and carries each accepted connection over its own
port-forward stream through the Kubernetes API server. It speaks raw SPDY/3.1 (the
fastest form for a client: no websocket masking, half-close supported) and falls back
to the websocket ``v4.channel.k8s.io`` form when a server refuses the SPDY upgrade.
Over TLS the bytes of a SPDY connection are moved by the native pump (``_pump.c``, in a
thread of its own, GIL released) once Python has set the connection up; without it
(not built, or ARKOUDA_K8S_TUNNEL_PUMP=asyncio) and for websocket, asyncio
buffered-protocol callbacks move them in large chunks (local reads land behind room for
the SPDY frame head; DATA payloads go on as slices of the decrypted buffer) into
recycled buffers: no per-byte Python work, no copies in Python.

It runs its own event loop in a daemon thread (a sync facade over an async core),
follows the server pod when it is replaced (``pod`` may be a resolver), reports its
state (starting, ready, reconnecting, failed, closed) and runs an optional health
check. Only ``kube.py`` imports ``kubernetes``; the tunnel talks HTTP itself.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

from . import spdy
from .errors import TunnelError
from .kube import ApiEndpoint

try:  # the native byte pump (setup.py builds it when a C compiler and libssl-dev are there)
    from . import _pump as _native
except ImportError:  # pragma: no cover - exercised on machines without a compiler
    _native = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import aiohttp  # the websocket form only: imported when first used

log = logging.getLogger(__name__)

STARTING = "starting"
READY = "ready"
RECONNECTING = "reconnecting"
FAILED = "failed"
CLOSED = "closed"

PROTOCOLS = ("auto", "spdy", "websocket")
WS_V4 = "v4.channel.k8s.io"

# One forwarded connection uses SPDY stream 1 for errors and 3 for data, like kubectl's
# first request (the server pairs them by the requestid header).
_ERROR_STREAM = 1
_DATA_STREAM = 3
# Room for a SPDY DATA frame head before each local read: the frame goes out whole in one
# TLS write (one record run, one socket send) without joining head and payload.
_HEAD_ROOM = 8
# Pause the reading side when the other side holds this much unsent.
_BUFFER_LIMIT = 4 * 1024 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)
# Upstream reads: uvloop's TLS transport reads at most 256 KiB from its socket at once.
_READ_SIZE = 256 * 1024
# Local reads: the fixed cost per chunk (syscalls, a TLS write, Python calls) is large
# next to the per-byte cost: measured 2.2 s/GiB at 64 KiB, ~1.65 at 256 KiB, ~1.55 at
# 1 MiB, no better beyond (benchmarks/tunnel.py figures, busy 2-core machine).
_LOCAL_READ_SIZE = 1024 * 1024

StateCallback = Callable[[str, "BaseException | None"], None]
HealthCheck = Callable[[str, int], Any]


class _Refused(Exception):
    """The API server answered the port-forward request with an HTTP error."""

    def __init__(self, status: int, message: str, protocol: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.protocol = protocol

    @property
    def pod_problem(self) -> bool:
        """The pod is missing or not running (wait/re-resolve), not a protocol refusal."""
        text = self.message.lower()
        return (
            self.status == 404 or "not found" in text or "not running" in text or self.status >= 500
        )

    @property
    def permission_problem(self) -> bool:
        return self.status in (401, 403)


def _status_message(body: bytes, fallback: str) -> str:
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])
    except ValueError:
        pass
    text = body.decode(errors="replace").strip()
    return " ".join(text.split())[:300] or fallback


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, lower-cased headers) of an HTTP response head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise _Refused(
            502, f"the API server sent no HTTP status line: {lines[0][:80]!r}", "spdy"
        ) from None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def _open_streams(remote_port: int) -> bytes:
    """The SYN_STREAMs of one forwarded connection: error stream, then data stream.

    We never write on the error stream: it opens half-closed, like kubectl's.
    """
    codec = spdy.HeaderCodec()  # a fresh compression context per SPDY connection
    port = str(remote_port)
    error = codec.encode({"streamtype": "error", "port": port, "requestid": "0"})
    data = codec.encode({"streamtype": "data", "port": port, "requestid": "0"})
    return spdy.syn_stream(_ERROR_STREAM, error, fin=True) + spdy.syn_stream(_DATA_STREAM, data)


def native_pump_status() -> tuple[bool, str]:
    """(usable, why): whether the SPDY-over-TLS tunnel moves bytes with the native pump,
    and the reason in a user's words (``arkouda-k8s doctor`` shows it)."""
    if _native is None:
        return False, (
            "not built: the install found no C compiler or no OpenSSL headers, so the "
            "tunnel moves bytes with its asyncio path (slower, more CPU per GiB)"
        )
    if os.environ.get("ARKOUDA_K8S_TUNNEL_PUMP", "native") == "asyncio":
        return False, "built, but turned off by ARKOUDA_K8S_TUNNEL_PUMP=asyncio"
    if not _native_pump_usable():
        return False, (
            "built against another libssl than the one Python's ssl module uses: the "
            "tunnel uses its asyncio path"
        )
    return True, "built (_pump.c): SPDY connections over TLS use the native byte pump"


def _native_pump_usable() -> bool:
    """Is the native pump built, wanted and linked to the ssl module's own libssl?

    ARKOUDA_K8S_TUNNEL_PUMP=asyncio forces the asyncio path (buffered protocols).
    """
    if _native is None or os.environ.get("ARKOUDA_K8S_TUNNEL_PUMP", "native") == "asyncio":
        return False
    import _ssl

    return bool(_native.compatible(_ssl.__file__))


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (measured: about a third less CPU per GiB forwarded, see
    benchmarks/tunnel.py); ARKOUDA_K8S_TUNNEL_LOOP=asyncio forces the stdlib loop."""
    if os.environ.get("ARKOUDA_K8S_TUNNEL_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return cast(asyncio.AbstractEventLoop, uvloop.new_event_loop())
    return asyncio.new_event_loop()


class _Buffers:
    """Read buffers handed to a transport that may still reference them after write().

    uvloop queues what a socket does not take at once as a view of the given buffer, no
    copy; the next read then goes to another buffer. Once the transport holds nothing,
    every buffer lent to it is free again: recycled rather than allocated (a fresh
    bytearray costs zero-filling and page faults on every swap).
    """

    __slots__ = ("size", "current", "lent", "spare")

    def __init__(self, size: int) -> None:
        self.size = size
        self.current = memoryview(bytearray(size))
        self.lent: list[memoryview] = []
        self.spare: list[memoryview] = []

    def written(self, transport: asyncio.Transport, held: bool | None = None) -> None:
        """``current`` was just written to ``transport``: keep it or swap it out.

        ``held``: does the transport still reference it? None: whenever it holds bytes.
        """
        queued = transport.get_write_buffer_size()
        if queued if held is None else held:
            self.lent.append(self.current)
            self.current = self.spare.pop() if self.spare else memoryview(bytearray(self.size))
        elif self.lent and not queued:
            self.spare += self.lent
            self.lent.clear()


def _reset(transport: asyncio.Transport | None) -> None:
    """Close a local socket so the peer sees a reset (an error), never a clean end."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class _Local(asyncio.BufferedProtocol):
    """One accepted client connection on the loopback listener.

    A buffered protocol: the socket is read straight into ``frames.current`` after
    ``_HEAD_ROOM`` bytes, so the SPDY upstream writes the frame head in front and hands
    head and payload to TLS as one buffer: no bytes object per read, no join, no separate
    8-byte TLS record per frame.
    """

    def __init__(self, core: _Core) -> None:
        self.core = core
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.frames = _Buffers(_HEAD_ROOM + _LOCAL_READ_SIZE)
        self.early: list[bytes] = []
        self.early_size = 0
        self.local_eof = False
        self.remote_eof = False
        self.closed = False
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        transport.set_write_buffer_limits(high=_BUFFER_LIMIT)
        self.core.locals.add(self)
        self.task = asyncio.get_running_loop().create_task(self.core.attach(self))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.frames.current[_HEAD_ROOM:]

    def buffer_updated(self, nbytes: int) -> None:
        if self.upstream is not None:
            self.upstream.send_read(self, nbytes)
            return
        self.early.append(bytes(self.frames.current[_HEAD_ROOM : _HEAD_ROOM + nbytes]))
        self.early_size += nbytes
        if self.early_size > _BUFFER_LIMIT and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.local_eof = True
        if self.upstream is not None:
            self.upstream.send_eof()
            if self.remote_eof:
                self.finish()
        return True  # keep our write side open: the answer may still be coming

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.core.locals.discard(self)
        if self.upstream is not None:
            self.upstream.close()
        elif self.task is not None and not self.task.done():
            self.task.cancel()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # called by the upstream
    def attached(self, upstream: _Upstream) -> None:
        self.upstream = upstream
        if isinstance(upstream, _NativeUpstream):
            early = b"".join(self.early)
            self.early.clear()
            upstream.start(early, self.local_eof)
            return
        for chunk in self.early:
            upstream.send(chunk)
        self.early.clear()
        if self.local_eof:
            upstream.send_eof()
        elif self.transport is not None:
            self.transport.resume_reading()

    def deliver(self, data: bytes | memoryview) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def end_of_remote(self) -> None:
        self.remote_eof = True
        if self.transport is None or self.transport.is_closing():
            return
        if self.local_eof:
            self.finish()
        elif self.transport.can_write_eof():
            self.transport.write_eof()

    def finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.upstream is not None:
            self.upstream.close()

    def fail(self) -> None:
        _reset(self.transport)
        if self.upstream is not None:
            self.upstream.close()


class _Upstream:
    """One port-forward stream carrying one local connection."""

    protocol = ""

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def send_read(self, local: _Local, nbytes: int) -> None:
        """Send the nbytes just read into ``local.frames.current`` after its head room."""
        self.send(bytes(local.frames.current[_HEAD_ROOM : _HEAD_ROOM + nbytes]))

    def send_eof(self) -> None:
        raise NotImplementedError

    def pause_reading(self) -> None:
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _SpdyUpstream(_Upstream, asyncio.BufferedProtocol):
    """Raw SPDY/3.1 after ``POST .../portforward`` with ``Upgrade: SPDY/3.1``.

    A buffered protocol: TLS decrypts straight into a buffer and DATA payloads go to the
    local socket as slices of it; the buffer is reused unless the local socket still
    holds queued bytes (uvloop queues slices without copying them).
    """

    protocol = "spdy"

    def __init__(
        self, core: _Core, local: _Local, request: bytes, remote_port: int, probe: bool = False
    ) -> None:
        self.core = core
        self.probe = probe
        self.local = local
        self.request = request
        self.remote_port = remote_port
        self.transport: asyncio.Transport | None = None
        self.upgraded = asyncio.get_running_loop().create_future()
        # a refusal may land after the dialer gave up waiting: never an unretrieved error
        self.upgraded.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.head = bytearray()
        self.status = 0
        self.body_left = -1
        self.body = bytearray()
        self.parser = spdy.FrameParser(self._on_control, self._on_data)
        self.error_text = bytearray()
        self.done = False
        self.buffers = _Buffers(_READ_SIZE)
        self.pings = 0

    def ping(self) -> None:
        """A SPDY PING: keeps idle-timeout proxies and load balancers from cutting us."""
        if self.upgraded.done() and not self.done and self.transport is not None:
            self.pings += 1
            self.transport.write(spdy.ping(2 * self.pings - 1))  # clients ping with odd ids

    # asyncio.BufferedProtocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_BUFFER_LIMIT)
        transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffers.current

    def buffer_updated(self, nbytes: int) -> None:
        if self.upgraded.done():
            try:
                self.parser.feed(self.buffers.current[:nbytes])
            except spdy.SpdyProtocolError as exc:
                self.core.stream_failed(f"port-forward stream broke: {exc}")
                self._broken()
            local = self.local.transport
            if local is not None:
                # DATA payloads went to the local socket as slices of this buffer
                self.buffers.written(local)
        else:
            self.data_received(bytes(self.buffers.current[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self.upgraded.done():
            try:
                self.parser.feed(data)
            except spdy.SpdyProtocolError as exc:
                self.core.stream_failed(f"port-forward stream broke: {exc}")
                self._broken()
            return
        if self.status:
            self._read_body(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > 65536:
                self._refuse(502, "the API server sent an oversized response head")
            return
        head, rest = bytes(self.head[:end]), bytes(self.head[end + 4 :])
        self.head.clear()
        try:
            self.status, headers = _parse_head(head)
        except _Refused as exc:
            self._refuse(exc.status, exc.message)
            return
        if self.status == 101:
            if headers.get("upgrade", "").lower() != "spdy/3.1":
                self._refuse(502, f"upgrade answered with {headers.get('upgrade')!r}")
                return
            self._start_streams()
            if rest:
                self.data_received(rest)
            return
        length = headers.get("content-length")
        self.body_left = int(length) if length and length.isdigit() else -1
        self._read_body(rest)

    def _read_body(self, data: bytes) -> None:
        self.body += data
        if 0 <= self.body_left <= len(self.body) or len(self.body) > 65536:
            self._refuse(self.status, _status_message(bytes(self.body), f"HTTP {self.status}"))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.upgraded.done():
            if self.status and self.status != 101:
                message = _status_message(bytes(self.body), f"HTTP {self.status}")
                self.upgraded.set_exception(_Refused(self.status, message, self.protocol))
            else:
                self.upgraded.set_exception(
                    ConnectionResetError(f"the API server closed the connection: {exc or 'EOF'}")
                )
            return
        if self.done:
            return
        if self.local.remote_eof:
            # the pod had finished sending: a clean end, the local side closes when done
            self.done = True
            if self.local.local_eof:
                self.local.finish()
            return
        # dropped under a live stream: the local client must see an error, not an end
        self.core.stream_failed("the port-forward stream was dropped by the API server")
        self._broken()

    def pause_writing(self) -> None:
        if self.local.transport is not None:
            self.local.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.local.transport is not None and not self.local.closed:
            self.local.transport.resume_reading()

    def _refuse(self, status: int, message: str) -> None:
        # No stream ever lived on a refused upgrade: its connection_lost is no drop. (It
        # runs after the dialer has recorded the refusal on 3.12+, whose wait_for takes
        # fewer loop turns, and would replace the API's reason by "dropped".)
        self.done = True
        if not self.upgraded.done():
            self.upgraded.set_exception(_Refused(status, message, self.protocol))
        if self.transport is not None:
            self.transport.abort()

    def _start_streams(self) -> None:
        assert self.transport is not None
        if self.probe:
            self.upgraded.set_result(None)
            return
        self.transport.write(_open_streams(self.remote_port))
        self.upgraded.set_result(None)

    # SPDY input
    def _on_control(self, kind: int, flags: int, payload: bytes) -> None:
        if kind == spdy.PING:
            if spdy.parse_stream_id(payload) % 2:
                self.core.pongs += 1  # odd: the answer to one of ours
            elif self.transport is not None:
                self.transport.write(spdy.control_frame(spdy.PING, 0, payload[:4]))
        elif kind == spdy.RST_STREAM:
            stream_id, status = spdy.parse_u32_pair(payload)
            if stream_id in (_DATA_STREAM, _ERROR_STREAM) and not self.done:
                self.core.stream_failed(f"the API server reset the stream (status {status})")
                self._broken()
        elif kind == spdy.GOAWAY and not self.local.remote_eof:
            # no new streams will be accepted; ours may still complete
            pass

    def _on_data(self, stream_id: int, payload: memoryview, fin: bool) -> None:
        if stream_id == _DATA_STREAM:
            if payload:
                self.local.deliver(payload)
            if fin and not self.error_text:
                self.local.end_of_remote()
        elif stream_id == _ERROR_STREAM:
            if payload:
                self.error_text += payload
            if fin and self.error_text:
                self.core.stream_failed(self.error_text.decode(errors="replace"))
                self._broken()

    def _broken(self) -> None:
        self.done = True
        self.local.fail()
        if self.transport is not None:
            self.transport.abort()

    # _Upstream
    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        # (only the early bytes of a connection come here, each under _LOCAL_READ_SIZE)
        transport.write(spdy.data_header(_DATA_STREAM, len(data)) + data)

    def send_read(self, local: _Local, nbytes: int) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        frame = local.frames.current
        spdy.pack_data_header(frame, _DATA_STREAM, nbytes)
        size = _HEAD_ROOM + nbytes
        before = transport.get_write_buffer_size()
        transport.write(frame[:size])
        held = None
        if self.core.tls:
            # asyncio's and uvloop's SSL transports encrypt app data into their outgoing
            # buffer within write(), so the frame buffer is free again at once, queued
            # ciphertext or not (measured: ~0.2 s/GiB less than swapping buffers whenever
            # ciphertext is queued). They keep the buffer itself only when TLS refuses
            # it: then the queued size grows by exactly the plaintext length (ciphertext
            # is always longer).
            held = transport.get_write_buffer_size() - before == size
        local.frames.written(transport, held)

    def send_eof(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(spdy.data_header(_DATA_STREAM, 0, fin=True))

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self) -> None:
        self.done = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class _NativeUpstream(_Upstream):
    """Raw SPDY/3.1 moved by the native pump (``_pump.c``) in a thread of its own.

    The connection was set up here (TLS handshake, upgrade, SYN_STREAMs on a non-blocking
    ``ssl.SSLSocket``); ``start`` pauses the local transport and hands both sockets to
    ``Pump.run``, which releases the GIL and moves bytes until the connection ends, then
    reports how it ended back on the event loop. Until then nothing else touches either
    socket: closing asks the pump to stop and the sockets are closed after it returned.
    """

    protocol = "spdy"

    def __init__(self, core: _Core, local: _Local, sock: ssl.SSLSocket, inbound: bytes) -> None:
        assert _native is not None
        self.core = core
        self.local = local
        self.sock = sock
        self.inbound = inbound
        self.pump = _native.Pump()
        self.thread: threading.Thread | None = None
        self.finished: asyncio.Future[None] = core.loop.create_future()
        self.done = False
        self.pongs_seen = 0

    def start(self, early: bytes, local_eof: bool) -> None:
        transport = self.local.transport
        if transport is None or transport.is_closing():
            self.close()
            return
        transport.pause_reading()  # from here on the pump alone reads the local socket
        local_fd = transport.get_extra_info("socket").fileno()
        sslobj = self.sock._sslobj  # type: ignore[attr-defined]
        args = (sslobj, self.sock.fileno(), local_fd, _DATA_STREAM, _ERROR_STREAM)
        self.thread = threading.Thread(
            target=self._run,
            args=(*args, self.inbound, early, local_eof),
            name="arkouda-k8s-pump",
            daemon=True,
        )
        self.inbound = b""
        self.thread.start()

    def _run(self, *args: Any) -> None:
        try:
            outcome, message = self.pump.run(*args)
        except Exception as exc:  # the SSL object was not the expected one
            outcome, message = "failed", f"the native pump could not start: {exc}"
        with contextlib.suppress(RuntimeError):  # the loop is gone: nothing left to tell
            self.core.loop.call_soon_threadsafe(self._ended, outcome, message)

    def _ended(self, outcome: str, message: str) -> None:
        self.done = True
        self.count_pongs()
        self.sock.close()
        local = self.local
        if outcome == "done":
            # the pod finished and so did the client (or the API server closed after the
            # pod's end): the local socket's write side is already shut; close it cleanly
            local.remote_eof = True
            if local.transport is not None:
                local.transport.close()
        else:
            if outcome in ("dropped", "failed"):
                self.core.stream_failed(message)
            _reset(local.transport)  # stopped, or the local client went away
        if not self.finished.done():
            self.finished.set_result(None)

    def count_pongs(self) -> None:
        pongs = self.pump.pongs
        self.core.pongs += pongs - self.pongs_seen
        self.pongs_seen = pongs

    def ping(self) -> None:
        if self.thread is not None and not self.done:
            self.count_pongs()
            self.pump.ping()

    # _Upstream: the local transport is paused while the pump runs; nothing comes here
    def send(self, data: bytes) -> None:
        pass

    def send_read(self, local: _Local, nbytes: int) -> None:
        pass

    def send_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        if self.done:
            return
        if self.thread is None:  # never started: the sockets are still ours
            self.done = True
            self.sock.close()
            if not self.finished.done():
                self.finished.set_result(None)
            return
        self.pump.stop()  # the pump returns at once; _ended closes the sockets


class _WsUpstream(_Upstream):
    """Websocket ``v4.channel.k8s.io``: channel 0 data, channel 1 errors, no half-close."""

    protocol = "websocket"

    def __init__(self, core: _Core, local: _Local, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.core = core
        self.local = local
        self.ws = ws
        self.pending: list[bytes] = [b"\x00"]
        self.pending_size = 0
        self.wake = asyncio.Event()
        self.readable = asyncio.Event()
        self.readable.set()
        self.done = False
        self.eof = False
        loop = asyncio.get_running_loop()
        self.sender = loop.create_task(self._send_loop())
        self.receiver = loop.create_task(self._receive_loop())

    def send(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_size += len(data)
        self.wake.set()
        if self.pending_size > _BUFFER_LIMIT and self.local.transport is not None:
            self.local.transport.pause_reading()

    def send_eof(self) -> None:
        # v4 cannot half-close: like the official helper, the local EOF ends the stream
        # (after what is pending); keeping it open would hold the pod connection forever
        self.eof = True
        self.wake.set()

    async def _send_loop(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                if len(self.pending) > 1:
                    message = b"".join(self.pending)
                    self.pending = [b"\x00"]
                    self.pending_size = 0
                    if self.local.transport is not None and not self.local.closed:
                        self.local.transport.resume_reading()
                    await self.ws.send_bytes(message)
                if self.eof and len(self.pending) == 1:
                    # closed from a task of its own: our receiver cancels this sender
                    self.core._spawn(self.ws.close())
                    return
        except (ConnectionError, RuntimeError):
            pass

    async def _receive_loop(self) -> None:
        import aiohttp

        seen = [False, False]
        error = bytearray()
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                    continue
                data = msg.data
                channel = data[0]
                if channel > 1:
                    continue
                if not seen[channel]:  # the initial frame on each channel names the port
                    seen[channel] = True
                    continue
                if channel == 0:
                    self.local.deliver(memoryview(data)[1:])
                    if not self.readable.is_set():
                        await self.readable.wait()
                else:
                    error += data[1:]
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        if self.done:
            return
        self.done = True
        if error:
            self.core.stream_failed(error.decode(errors="replace"))
            self.local.fail()
        elif self.ws.close_code not in (None, aiohttp.WSCloseCode.OK) or self.ws.exception():
            self.core.stream_failed("the port-forward stream was dropped by the API server")
            self.local.fail()
        else:
            self.local.end_of_remote()
            self.local.finish()
        self.sender.cancel()

    def pause_reading(self) -> None:
        self.readable.clear()

    def resume_reading(self) -> None:
        self.readable.set()

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.sender.cancel()
            self.core._spawn(self.ws.close())


class _Core:
    """The async half of a Tunnel; lives on the tunnel's own event loop."""

    def __init__(self, tunnel: Tunnel) -> None:
        self.t = tunnel
        self.loop = asyncio.get_running_loop()
        self.locals: set[_Local] = set()
        self.server: asyncio.AbstractServer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.pod: str | None = None
        self.resolving: asyncio.Task[str] | None = None
        self.recovering: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.protocol = "spdy" if tunnel.protocol in ("auto", "spdy") else "websocket"
        self.stopping = asyncio.Event()
        self.pongs = 0
        url = urlsplit(tunnel.endpoint.server)
        self.tls = url.scheme == "https"
        # the native pump for data connections (TLS only; probes keep the asyncio path)
        self.native = self.tls and _native_pump_usable()
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if self.tls else 80)
        self.base_path = url.path.rstrip("/")
        self.host_header = url.netloc

    @property
    def server_name(self) -> str:
        """What the API server's certificate is checked against on every dial: the
        kubeconfig's tls-server-name, else the server's host (read at each dial: the
        endpoint is replaced when credentials are refreshed)."""
        return self.t.endpoint.server_name or self.host

    # lifecycle
    async def serve(self, started: threading.Event) -> None:
        t = self.t
        try:
            self.server = await self.loop.create_server(
                lambda: _Local(self), "127.0.0.1", t.local_port, reuse_address=True
            )
        except OSError as exc:
            t._set_state(
                FAILED,
                TunnelError(
                    f"local_port: cannot listen on 127.0.0.1:{t.local_port}: {exc.strerror}",
                    "choose another local port, or 0 for any free port",
                ),
            )
            started.set()
            await self.shutdown()
            return
        t._address = self.server.sockets[0].getsockname()[:2]
        started.set()
        if t.ping_interval:
            self._spawn(self.ping_loop())
        # the first pod resolution + probe: ready when the API accepts a forward to the pod
        self.recover()
        await self.stopping.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.close()
        for local in list(self.locals):
            if local.upstream is not None:
                local.upstream.close()
        # native pumps still hold their sockets until they return (at once, once asked)
        pumps = [
            local.upstream for local in self.locals if isinstance(local.upstream, _NativeUpstream)
        ]
        if pumps:
            await asyncio.wait([pump.finished for pump in pumps], timeout=5.0)
            for pump in pumps:  # past run() already: these joins take microseconds
                if pump.thread is not None:
                    pump.thread.join(1.0)
        for local in list(self.locals):
            _reset(local.transport)
        tasks = list(self.tasks)
        if self.recovering is not None:
            tasks.append(self.recovering)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        await asyncio.sleep(0)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def ping_loop(self) -> None:
        interval = self.t.ping_interval
        assert interval is not None
        while not self.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), interval)
            for local in list(self.locals):
                if isinstance(local.upstream, _SpdyUpstream | _NativeUpstream):
                    local.upstream.ping()

    # the server pod
    async def resolve(self) -> str:
        """The current server pod name (asks the resolver when none is cached)."""
        if self.pod is not None:
            return self.pod
        task = self.resolving
        if task is None:
            task = self.resolving = self.loop.create_task(self._resolve_once())
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self.resolving is task:
                self.resolving = None

    async def _resolve_once(self) -> str:
        pod = self.t._pod
        name = await asyncio.to_thread(pod) if callable(pod) else pod
        if not isinstance(name, str) or not name:
            raise TunnelError(
                f"pod resolver returned {name!r}",
                "the resolver must return the name of a pod, or raise",
            )
        self.pod = name
        return name

    def forget_pod(self) -> None:
        """The cached pod looks gone: ask the resolver again next time (if there is one)."""
        if self.t._resolver is not None:
            self.pod = None

    # one accepted connection
    async def attach(self, local: _Local) -> None:
        t = self.t
        deadline = self.loop.time() + t.connect_timeout
        delay = 0.05
        last: BaseException | None = None
        while not local.closed:
            try:
                pod = await self.resolve()
                upstream = await self.dial(pod, local)
            except _Refused as exc:
                last = exc
                if exc.permission_problem:
                    t._set_state(FAILED, _as_tunnel_error(exc, f"port-forward to pod {self.pod}"))
                    break
                if exc.pod_problem:
                    self.forget_pod()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                last = exc
            else:
                if local.closed:
                    upstream.close()
                    return
                local.attached(upstream)
                if t.state in (RECONNECTING, FAILED) and t.health_check is None:
                    t._set_state(READY, None)
                return
            if self.loop.time() + delay > deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        if local.closed:
            return
        error = _as_tunnel_error(last, f"port-forward to pod {self.pod}")
        if t.state != FAILED:
            t._set_state(RECONNECTING, error)
            self.recover()
        else:
            t.last_error = error
        local.fail()

    async def dial(self, pod: str, local: _Local, probe: bool = False) -> _Upstream:
        try:
            return await self._dial(pod, local, probe)
        except _Refused as exc:
            if exc.status != 401 or self.t._endpoint_source is None:
                raise
        # 401: credentials expire (exec plugins, OIDC); ask for fresh ones once
        source = self.t._endpoint_source
        self.t.endpoint = await asyncio.to_thread(source)
        if self.session is not None:
            await self.session.close()
            self.session = None
        return await self._dial(pod, local, probe)

    async def _dial(self, pod: str, local: _Local, probe: bool) -> _Upstream:
        if self.protocol == "spdy":
            try:
                if self.native and not probe:
                    return await self.dial_native(pod, local)
                return await self.dial_spdy(pod, local, probe)
            except _Refused as exc:
                if self.t.protocol != "auto" or exc.pod_problem or exc.permission_problem:
                    raise
                log.info("SPDY port-forward refused (%s); trying websocket", exc)
                upstream = await self.dial_ws(pod, local)
                self.protocol = "websocket"
                return upstream
        return await self.dial_ws(pod, local)

    def _path(self, pod: str) -> str:
        ns = quote(self.t.namespace, safe="")
        return f"{self.base_path}/api/v1/namespaces/{ns}/pods/{quote(pod, safe='')}/portforward"

    def _spdy_request(self, pod: str) -> bytes:
        lines = [
            f"POST {self._path(pod)} HTTP/1.1",
            f"Host: {self.host_header}",
            "User-Agent: arkouda-k8s-tunnel",
            "Connection: Upgrade",
            "Upgrade: SPDY/3.1",
            "X-Stream-Protocol-Version: portforward.k8s.io",
            "Content-Length: 0",
        ]
        lines += [f"{k}: {v}" for k, v in self.t.endpoint.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def dial_spdy(self, pod: str, local: _Local, probe: bool = False) -> _Upstream:
        request = self._spdy_request(pod)
        upstream = _SpdyUpstream(self, local, request, self.t.remote_port, probe)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: upstream,
                    self.host,
                    self.port,
                    ssl=self.t.endpoint.ssl_context if self.tls else None,
                    server_hostname=self.server_name if self.tls else None,
                ),
                self.t.connect_timeout,
            )
            await asyncio.wait_for(asyncio.shield(upstream.upgraded), self.t.connect_timeout)
        except BaseException:
            if upstream.transport is not None:
                upstream.transport.abort()
            raise
        return upstream

    async def dial_native(self, pod: str, local: _Local) -> _Upstream:
        """The SPDY upgrade on a non-blocking SSLSocket, handed to the native pump."""
        sock: socket.socket | None = None
        try:
            async with asyncio.timeout(self.t.connect_timeout):
                infos = await self.loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                family, kind, proto, _, address = infos[0]
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await self.loop.sock_connect(sock, address)
                context = self.t.endpoint.ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(
                    sock, server_hostname=self.server_name, do_handshake_on_connect=False
                )
                tls = cast(ssl.SSLSocket, sock)
                await self._tls(tls, tls.do_handshake)
                await self._tls_send(tls, self._spdy_request(pod))
                head = bytearray()
                while (end := head.find(b"\r\n\r\n")) < 0:
                    if len(head) > 65536:
                        raise _Refused(
                            502, "the API server sent an oversized response head", "spdy"
                        )
                    chunk = await self._tls(tls, tls.recv, 65536)
                    if not chunk:
                        raise ConnectionResetError("the API server closed the connection: EOF")
                    head += chunk
                status, headers = _parse_head(bytes(head[:end]))
                rest = bytes(head[end + 4 :])
                if status != 101:
                    length = headers.get("content-length", "")
                    size = int(length) if length.isdigit() else 65536
                    while len(rest) < min(size, 65536):
                        chunk = await self._tls(tls, tls.recv, 65536)
                        if not chunk:
                            break
                        rest += chunk
                    message = _status_message(rest, f"HTTP {status}")
                    raise _Refused(status, message, "spdy")
                if headers.get("upgrade", "").lower() != "spdy/3.1":
                    message = f"upgrade answered with {headers.get('upgrade')!r}"
                    raise _Refused(502, message, "spdy")
                await self._tls_send(tls, _open_streams(self.t.remote_port))
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        return _NativeUpstream(self, local, tls, rest)

    async def _tls(self, sock: ssl.SSLSocket, call: Callable[..., Any], *args: Any) -> Any:
        """A non-blocking SSLSocket call, repeated when the socket is ready for it."""
        while True:
            try:
                return call(*args)
            except ssl.SSLWantReadError:
                await self._wait_ready(sock, write=False)
            except ssl.SSLWantWriteError:
                await self._wait_ready(sock, write=True)

    async def _tls_send(self, sock: ssl.SSLSocket, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[await self._tls(sock, sock.send, view) :]

    async def _wait_ready(self, sock: ssl.SSLSocket, write: bool) -> None:
        ready = self.loop.create_future()
        fd = sock.fileno()
        add, remove = (
            (self.loop.add_writer, self.loop.remove_writer)
            if write
            else (self.loop.add_reader, self.loop.remove_reader)
        )

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        add(fd, wake)
        try:
            await ready
        finally:
            remove(fd)

    async def dial_ws(self, pod: str, local: _Local) -> _Upstream:
        import aiohttp

        if self.session is None:
            scheme = "https" if self.tls else "http"
            context = self.t.endpoint.ssl_context
            connector = aiohttp.TCPConnector(
                ssl=context if (self.tls and context is not None) else self.tls,
                force_close=True,
            )
            self.session = aiohttp.ClientSession(
                f"{scheme}://{self.host_header}", connector=connector
            )
        try:
            ws = await self.session.ws_connect(
                self._path(pod),
                params={"ports": str(self.t.remote_port)},
                protocols=(WS_V4,),
                headers=self.t.endpoint.headers,
                max_msg_size=0,
                compress=0,
                server_hostname=self.server_name if self.tls else None,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                heartbeat=self.t.ping_interval,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise _Refused(exc.status, exc.message or f"HTTP {exc.status}", "websocket") from None
        if ws.protocol != WS_V4:
            await ws.close()
            raise _Refused(
                502, f"websocket subprotocol {ws.protocol!r} is not {WS_V4}", "websocket"
            )
        return _WsUpstream(self, local, ws)

    # supervision
    def stream_failed(self, message: str) -> None:
        """A live stream failed: its own connection is reset; the tunnel stays up."""
        self.t.last_error = TunnelError(message)
        log.info("tunnel: %s", message)

    def recover(self) -> None:
        if self.recovering is None or self.recovering.done():
            self.recovering = self.loop.create_task(self.recover_loop())

    async def recover_loop(self) -> None:
        """Resolve the pod and probe it until it answers, then report ready."""
        t = self.t
        delay = 0.2
        started = self.loop.time()
        while not self.stopping.is_set():
            try:
                pod = await self.resolve()
                if t.health_check is not None:
                    await self.run_health_check()
                else:
                    await self.probe(pod)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = _as_tunnel_error(exc, f"port-forward to pod {self.pod or '?'}")
                if isinstance(exc, _Refused) and exc.permission_problem:
                    t._set_state(FAILED, error)
                    return
                if t.reconnect_timeout is not None and (
                    self.loop.time() - started > t.reconnect_timeout
                ):
                    t._set_state(FAILED, error)
                    return
                if t.state == READY:
                    t._set_state(RECONNECTING, error)
                else:
                    t.last_error = error
                self.forget_pod()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            t._set_state(READY, None)
            if t.health_check is not None and not any(
                getattr(task.get_coro(), "__name__", "") == "health_loop" for task in self.tasks
            ):
                self._spawn(self.health_loop())
            return

    async def probe(self, pod: str) -> None:
        """Does the API server accept a port-forward to the pod? Opens no stream."""
        local = _Local(self)
        upstream = await self.dial(pod, local, probe=True)
        upstream.close()

    async def run_health_check(self) -> None:
        assert self.t.health_check is not None and self.t._address is not None
        host, port = self.t._address
        await asyncio.wait_for(
            asyncio.to_thread(self.t.health_check, host, port), self.t.health_timeout
        )

    async def health_loop(self) -> None:
        t = self.t
        failing_since: float | None = None
        while not self.stopping.is_set():
            try:
                await self.run_health_check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = _as_tunnel_error(exc, "health check")
                now = self.loop.time()
                failing_since = now if failing_since is None else failing_since
                if t.state == READY:
                    t._set_state(RECONNECTING, error)
                elif (
                    t.state == RECONNECTING
                    and t.reconnect_timeout is not None
                    and now - failing_since > t.reconnect_timeout
                ):
                    t._set_state(FAILED, error)
                else:
                    t.last_error = error
                self.forget_pod()
            else:
                failing_since = None
                if t.state != READY:
                    t._set_state(READY, None)
            interval = t.health_interval if t.state == READY else min(t.health_interval, 1.0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), interval)


_LIVE: weakref.WeakSet[Tunnel] = weakref.WeakSet()


@atexit.register
def _stop_live_tunnels() -> None:
    """Tunnels still open at interpreter exit are stopped first: their pump threads hold
    sockets and OpenSSL objects that must not outlive the interpreter and libssl."""
    for tunnel in list(_LIVE):
        with contextlib.suppress(Exception):
            tunnel.stop(timeout=2.0)


def _as_tunnel_error(exc: BaseException | None, what: str) -> TunnelError:
    if isinstance(exc, TunnelError):
        return exc
    if isinstance(exc, _Refused):
        hint = None
        if exc.permission_problem:
            hint = "the user needs 'create' on pods/portforward in this namespace"
        elif exc.pod_problem:
            hint = "check that the server pod exists and is Running"
        return TunnelError(f"{what}: the API server refused: {exc.message}", hint)
    if isinstance(exc, asyncio.TimeoutError):
        return TunnelError(f"{what}: timed out", "check that the API server is reachable")
    if exc is None:
        return TunnelError(f"{what}: failed")
    return TunnelError(f"{what}: {exc}")


class Tunnel:
    """A local port on 127.0.0.1 forwarded to a port of a pod, kept alive.

    The listener binds the loopback interface only: nothing on the network can use it.
    Each accepted connection gets its own port-forward stream; a dropped stream resets
    only its own connection and the next connection opens a fresh one.

    As a context manager::

        with Tunnel(kube.endpoint(), "arkouda", "arkouda-server") as tunnel:
            host, port = tunnel.local_address      # ("127.0.0.1", <free port>)

    Started and stopped explicitly::

        tunnel = Tunnel(endpoint, "arkouda", "arkouda-server", remote_port=5555)
        tunnel.start()
        ...
        tunnel.stop()

    ``endpoint`` may also be a callable such as ``kube.endpoint``: it is called again for
    fresh credentials when the API server answers 401 (expired exec-plugin tokens).

    With options: a resolver that finds the current server pod (called in a worker
    thread, so it may block), a fixed local port, a state callback and a health check
    run every ``health_interval`` seconds against the local address (open connections
    also send a keepalive ping every ``ping_interval`` seconds)::

        tunnel = Tunnel(
            endpoint, "arkouda", lambda: find_server_pod(),
            local_port=5555,
            on_state=lambda state, error: print(state, error),
            health_check=lambda host, port: ArkoudaProbe(host, port).handshake(),
            health_interval=10.0,
        )

    States: ``starting``, ``ready``, ``reconnecting`` (a connection or a health check
    failed; the pod is being re-resolved), ``failed`` (a permission error, or
    ``reconnect_timeout`` passed; new connections still try), ``closed``.
    ``protocol`` is ``"auto"`` (raw SPDY, websocket if refused), ``"spdy"`` or
    ``"websocket"``.
    """

    def __init__(
        self,
        endpoint: ApiEndpoint | Callable[[], ApiEndpoint],
        namespace: str,
        pod: str | Callable[[], str],
        remote_port: int = 5555,
        local_port: int = 0,
        *,
        on_state: StateCallback | None = None,
        health_check: HealthCheck | None = None,
        health_interval: float = 10.0,
        health_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        reconnect_timeout: float | None = None,
        ping_interval: float | None = 30.0,
        protocol: str = "auto",
    ) -> None:
        if protocol not in PROTOCOLS:
            raise TunnelError(f"protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if not 0 < remote_port < 65536:
            raise TunnelError(f"remote_port: {remote_port} is not a port number (1-65535)")
        if not 0 <= local_port < 65536:
            raise TunnelError(f"local_port: {local_port} is not a port number (0-65535)")
        # a callable gives fresh credentials when the API answers 401 (it may block)
        self._endpoint_source = endpoint if callable(endpoint) else None
        self.endpoint: ApiEndpoint = endpoint() if callable(endpoint) else endpoint
        self.namespace = namespace
        self._pod = pod
        self._resolver = pod if callable(pod) else None
        self.remote_port = remote_port
        self.local_port = local_port
        self.on_state = on_state
        self.health_check = health_check
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.ping_interval = ping_interval
        self.protocol = protocol
        self.state = CLOSED
        self.last_error: TunnelError | None = None
        self._address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._core: _Core | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = f"{self._address[0]}:{self._address[1]}" if self._address else "-"
        return (
            f"Tunnel({where} -> {self.namespace}/{self.pod_name or '?'}:{self.remote_port}, "
            f"state={self.state})"
        )

    @property
    def local_address(self) -> tuple[str, int]:
        """(host, port) of the loopback listener."""
        if self._address is None:
            raise TunnelError("the tunnel is not started", "call start() or use it in a with block")
        return (str(self._address[0]), int(self._address[1]))

    @property
    def pod_name(self) -> str | None:
        """The pod the tunnel currently forwards to."""
        core = self._core
        if core is not None and core.pod:
            return core.pod
        return self._pod if isinstance(self._pod, str) else None

    @property
    def pings_answered(self) -> int:
        """Keepalive pings the API server answered (SPDY connections; a liveness sign)."""
        return self._core.pongs if self._core is not None else 0

    @property
    def pump(self) -> str | None:
        """What moves the bytes of SPDY connections: ``native`` (the compiled pump,
        ``_pump.c``) or ``asyncio`` (no compiler at install, plain HTTP, or
        ARKOUDA_K8S_TUNNEL_PUMP=asyncio). None before the tunnel starts."""
        core = self._core
        if core is None:
            return None
        return "native" if core.native and core.protocol == "spdy" else "asyncio"

    @property
    def wire_protocol(self) -> str | None:
        """``spdy`` or ``websocket``: what the tunnel speaks to the API server now."""
        return self._core.protocol if self._core is not None else None

    def _set_state(self, state: str, error: BaseException | None) -> None:
        with self._lock:
            if self.state == CLOSED and state != STARTING:
                return
            changed = state != self.state
            self.state = state
            if error is not None:
                self.last_error = (
                    error if isinstance(error, TunnelError) else TunnelError(str(error))
                )
            if state in (READY, FAILED):
                self._ready.set()
        if changed and self.on_state is not None:
            try:
                self.on_state(state, error)
            except Exception:  # a broken callback must not break the tunnel
                log.exception("tunnel on_state callback failed")

    def start(self, timeout: float = 30.0) -> Tunnel:
        """Bind the listener and wait until the tunnel is ready (or raise TunnelError)."""
        if self._thread is not None:
            raise TunnelError("the tunnel is already started")
        self._ready.clear()
        self.last_error = None
        self._set_state(STARTING, None)
        _LIVE.add(self)
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="arkouda-k8s-tunnel", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout) or self.state == FAILED:
            error = self.last_error or TunnelError(
                f"tunnel: not ready within {timeout:.0f}s", "check the pod and the health check"
            )
            self.stop()
            raise error
        return self

    def _run(self, started: threading.Event) -> None:
        loop = _new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(started))
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self, started: threading.Event) -> None:
        self._core = _Core(self)
        await self._core.serve(started)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every forwarded connection; idempotent."""
        thread, loop, core = self._thread, self._loop, self._core
        _LIVE.discard(self)
        if thread is None:
            return
        if loop is not None and core is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(core.stopping.set)
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        self._loop = None
        self._set_state(CLOSED, None)
        self._address = None

    def __enter__(self) -> Tunnel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m arkouda_k8s.tunnel``: forward a pod port until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m arkouda_k8s.tunnel",
        description="Forward 127.0.0.1:LOCAL to a pod port through the Kubernetes API.",
    )
    parser.add_argument("pod")
    parser.add_argument("remote_port", type=int)
    parser.add_argument("--local-port", type=int, default=0)
    parser.add_argument("--namespace", "-n")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="auto")
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds to wait for the first forward"
    )
    args = parser.parse_args(argv)
    from .errors import ArkoudaK8sError
    from .kube import Kube

    try:
        kube = Kube.from_kubeconfig(args.kubeconfig, args.context, args.namespace)
        tunnel = Tunnel(
            kube.endpoint(),
            kube.namespace,
            args.pod,
            args.remote_port,
            args.local_port,
            protocol=args.protocol,
        )
        tunnel.start(timeout=args.timeout)
    except ArkoudaK8sError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    host, port = tunnel.local_address
    print(f"Forwarding from {host}:{port} -> {args.remote_port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        tunnel.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
