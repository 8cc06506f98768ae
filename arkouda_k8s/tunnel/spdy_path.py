"""The SPDY/3.1 path to the API server: the upgrade request and the one parser of its
reply, the SYN_STREAM pair of a forwarded connection, the asyncio pump (a buffered
protocol) and the native pump (``_pump.c``, a thread of its own over a non-blocking
``ssl.SSLSocket``), and the TLS calls that set the latter up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .. import spdy
from .local import Buffers, Local, reset
from .upstream import BUFFER_LIMIT, HEAD_ROOM, Refused, Upstream, status_message

try:  # the native byte pump (setup.py builds it when a C compiler and libssl-dev are there)
    from .. import _pump as _native
except ImportError:  # pragma: no cover - exercised on machines without a compiler
    _native = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .supervisor import Supervisor

# One forwarded connection uses SPDY stream 1 for errors and 3 for data, like kubectl's
# first request (the server pairs them by the requestid header).
ERROR_STREAM = 1
DATA_STREAM = 3
# Upstream reads: uvloop's TLS transport reads at most 256 KiB from its socket at once.
READ_SIZE = 256 * 1024
# The most of a response head, or of a refusal's body, read before giving up on it.
_REPLY_LIMIT = 65536


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, lower-cased headers) of an HTTP response head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise Refused(
            502, f"the API server sent no HTTP status line: {lines[0][:80]!r}", "spdy"
        ) from None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class UpgradeReply:
    """The API server's answer to the upgrade request, fed as it arrives (both pumps).

    ``feed`` returns None while more is needed, the bytes after the head once a
    ``101 Switching Protocols`` to SPDY/3.1 is complete, and raises ``Refused`` for any
    other answer once its body is in (or too long), for an oversized head, a missing
    status line or another upgrade.
    """

    def __init__(self) -> None:
        self.head = bytearray()
        self.status = 0
        self.body_left = -1
        self.body = bytearray()

    def feed(self, data: bytes) -> bytes | None:
        if self.status:  # the body of a refusal
            self.body += data
            if 0 <= self.body_left <= len(self.body) or len(self.body) > _REPLY_LIMIT:
                raise self._refused()
            return None
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > _REPLY_LIMIT:
                raise Refused(502, "the API server sent an oversized response head", "spdy")
            return None
        head, rest = bytes(self.head[:end]), bytes(self.head[end + 4 :])
        self.head.clear()
        self.status, headers = _parse_head(head)
        if self.status == 101:
            if headers.get("upgrade", "").lower() != "spdy/3.1":
                raise Refused(502, f"upgrade answered with {headers.get('upgrade')!r}", "spdy")
            return rest
        length = headers.get("content-length")
        self.body_left = int(length) if length and length.isdigit() else -1
        return self.feed(rest)

    def refusal(self) -> Refused | None:
        """At the connection's end: the refusal read so far, if the answer was one."""
        return self._refused() if self.status and self.status != 101 else None

    def _refused(self) -> Refused:
        return Refused(self.status, status_message(bytes(self.body), f"HTTP {self.status}"), "spdy")


def open_streams(remote_port: int) -> bytes:
    """The SYN_STREAMs of one forwarded connection: error stream, then data stream.

    We never write on the error stream: it opens half-closed, like kubectl's.
    """
    codec = spdy.HeaderCodec()  # a fresh compression context per SPDY connection
    port = str(remote_port)
    error = codec.encode({"streamtype": "error", "port": port, "requestid": "0"})
    data = codec.encode({"streamtype": "data", "port": port, "requestid": "0"})
    return spdy.syn_stream(ERROR_STREAM, error, fin=True) + spdy.syn_stream(DATA_STREAM, data)


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
    if not native_pump_usable():
        return False, (
            "built against another libssl than the one Python's ssl module uses: the "
            "tunnel uses its asyncio path"
        )
    return True, "built (_pump.c): SPDY connections over TLS use the native byte pump"


def native_pump_usable() -> bool:
    """Is the native pump built, wanted and linked to the ssl module's own libssl?

    ARKOUDA_K8S_TUNNEL_PUMP=asyncio forces the asyncio path (buffered protocols).
    """
    if _native is None or os.environ.get("ARKOUDA_K8S_TUNNEL_PUMP", "native") == "asyncio":
        return False
    import _ssl

    return bool(_native.compatible(_ssl.__file__))


def spdy_request(core: Supervisor, pod: str) -> bytes:
    lines = [
        f"POST {core.path(pod)} HTTP/1.1",
        f"Host: {core.host_header}",
        "User-Agent: arkouda-k8s-tunnel",
        "Connection: Upgrade",
        "Upgrade: SPDY/3.1",
        "X-Stream-Protocol-Version: portforward.k8s.io",
        "Content-Length: 0",
    ]
    lines += [f"{k}: {v}" for k, v in core.t.endpoint.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def dial_spdy(core: Supervisor, pod: str, local: Local, probe: bool = False) -> Upstream:
    request = spdy_request(core, pod)
    upstream = SpdyUpstream(core, local, request, core.t.remote_port, probe)
    try:
        await asyncio.wait_for(
            core.loop.create_connection(
                lambda: upstream,
                core.host,
                core.port,
                ssl=core.t.endpoint.ssl_context if core.tls else None,
                server_hostname=core.server_name if core.tls else None,
            ),
            core.t.connect_timeout,
        )
        await asyncio.wait_for(asyncio.shield(upstream.upgraded), core.t.connect_timeout)
    except BaseException:
        if upstream.transport is not None:
            upstream.transport.abort()
        raise
    return upstream


async def dial_native(core: Supervisor, pod: str, local: Local) -> Upstream:
    """The SPDY upgrade on a non-blocking SSLSocket, handed to the native pump."""
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(core.t.connect_timeout):
            infos = await core.loop.getaddrinfo(core.host, core.port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await core.loop.sock_connect(sock, address)
            context = core.t.endpoint.ssl_context or ssl.create_default_context()
            sock = context.wrap_socket(
                sock, server_hostname=core.server_name, do_handshake_on_connect=False
            )
            tls = cast(ssl.SSLSocket, sock)
            await tls_call(core.loop, tls, tls.do_handshake)
            await tls_send(core.loop, tls, spdy_request(core, pod))
            reply = UpgradeReply()
            rest: bytes | None = None
            while rest is None:
                chunk = await tls_call(core.loop, tls, tls.recv, 65536)
                if not chunk:
                    refused = reply.refusal()
                    if refused is not None:
                        raise refused
                    raise ConnectionResetError("the API server closed the connection: EOF")
                rest = reply.feed(chunk)
            await tls_send(core.loop, tls, open_streams(core.t.remote_port))
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    return NativeUpstream(core, local, tls, rest)


async def tls_call(
    loop: asyncio.AbstractEventLoop, sock: ssl.SSLSocket, call: Callable[..., Any], *args: Any
) -> Any:
    """A non-blocking SSLSocket call, repeated when the socket is ready for it."""
    while True:
        try:
            return call(*args)
        except ssl.SSLWantReadError:
            await wait_ready(loop, sock, write=False)
        except ssl.SSLWantWriteError:
            await wait_ready(loop, sock, write=True)


async def tls_send(loop: asyncio.AbstractEventLoop, sock: ssl.SSLSocket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[await tls_call(loop, sock, sock.send, view) :]


async def wait_ready(loop: asyncio.AbstractEventLoop, sock: ssl.SSLSocket, write: bool) -> None:
    ready = loop.create_future()
    fd = sock.fileno()
    add, remove = (
        (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
    )

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add(fd, wake)
    try:
        await ready
    finally:
        remove(fd)


class SpdyUpstream(Upstream, asyncio.BufferedProtocol):
    """Raw SPDY/3.1 after ``POST .../portforward`` with ``Upgrade: SPDY/3.1``.

    A buffered protocol: TLS decrypts straight into a buffer and DATA payloads go to the
    local socket as slices of it; the buffer is reused unless the local socket still
    holds queued bytes (uvloop queues slices without copying them).
    """

    protocol = "spdy"

    def __init__(
        self, core: Supervisor, local: Local, request: bytes, remote_port: int, probe: bool = False
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
        self.reply = UpgradeReply()
        self.parser = spdy.FrameParser(self._on_control, self._on_data)
        self.error_text = bytearray()
        self.done = False
        self.buffers = Buffers(READ_SIZE)
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
        transport.set_write_buffer_limits(high=BUFFER_LIMIT)
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
        try:
            rest = self.reply.feed(data)
        except Refused as exc:
            self._refuse(exc.status, exc.message)
            return
        if rest is not None:
            self._start_streams()
            if rest:
                self.data_received(rest)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.upgraded.done():
            refused = self.reply.refusal()
            if refused is not None:
                self.upgraded.set_exception(refused)
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
            self.upgraded.set_exception(Refused(status, message, self.protocol))
        if self.transport is not None:
            self.transport.abort()

    def _start_streams(self) -> None:
        assert self.transport is not None
        if self.probe:
            self.upgraded.set_result(None)
            return
        self.transport.write(open_streams(self.remote_port))
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
            if stream_id in (DATA_STREAM, ERROR_STREAM) and not self.done:
                self.core.stream_failed(f"the API server reset the stream (status {status})")
                self._broken()
        elif kind == spdy.GOAWAY and not self.local.remote_eof:
            # no new streams will be accepted; ours may still complete
            pass

    def _on_data(self, stream_id: int, payload: memoryview, fin: bool) -> None:
        if stream_id == DATA_STREAM:
            if payload:
                self.local.deliver(payload)
            if fin and not self.error_text:
                self.local.end_of_remote()
        elif stream_id == ERROR_STREAM:
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

    # Upstream
    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        # (only the early bytes of a connection come here, each under LOCAL_READ_SIZE)
        transport.write(spdy.data_header(DATA_STREAM, len(data)) + data)

    def send_read(self, local: Local, nbytes: int) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        frame = local.frames.current
        spdy.pack_data_header(frame, DATA_STREAM, nbytes)
        size = HEAD_ROOM + nbytes
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
            self.transport.write(spdy.data_header(DATA_STREAM, 0, fin=True))

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


class NativeUpstream(Upstream):
    """Raw SPDY/3.1 moved by the native pump (``_pump.c``) in a thread of its own.

    The connection was set up here (TLS handshake, upgrade, SYN_STREAMs on a non-blocking
    ``ssl.SSLSocket``); ``start`` pauses the local transport and hands both sockets to
    ``Pump.run``, which releases the GIL and moves bytes until the connection ends, then
    reports how it ended back on the event loop. Until then nothing else touches either
    socket: closing asks the pump to stop and the sockets are closed after it returned.
    """

    protocol = "spdy"
    takes_socket = True

    def __init__(self, core: Supervisor, local: Local, sock: ssl.SSLSocket, inbound: bytes) -> None:
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
        args = (sslobj, self.sock.fileno(), local_fd, DATA_STREAM, ERROR_STREAM)
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
            reset(local.transport)  # stopped, or the local client went away
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

    # Upstream: the local transport is paused while the pump runs; nothing comes here
    def send(self, data: bytes) -> None:
        pass

    def send_read(self, local: Local, nbytes: int) -> None:
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
