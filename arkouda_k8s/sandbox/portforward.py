"""The sandbox API server's pod port-forward: every wire form real clients use.

``handle_portforward`` serves ``GET``/``POST .../pods/{name}/portforward`` once the API
server has authenticated the request and checked that the pod is Running. It speaks:

- websocket ``v4.channel.k8s.io`` (the official Python client): a channel byte per
  message, initial port frames, error-channel text when the pod port cannot be reached;
- websocket ``SPDY/3.1+portforward.k8s.io`` (kubectl 1.32's first choice): SPDY frames
  carried as a byte stream inside binary websocket messages;
- raw ``Upgrade: SPDY/3.1`` with ``X-Stream-Protocol-Version: portforward.k8s.io``
  (kubectl's fallback, and the tunnel's fast path): after the 101 the connection's
  transport is taken over from aiohttp and carries SPDY directly.

In the SPDY forms a client opens an error stream and a data stream per forwarded
connection, paired by the ``requestid`` header. ``PortForwardRegistry`` tracks every
open forward so that a fault can drop them all at once.

Like the kubelet, a pod connection that fails (cannot be made, or is reset later) puts
its error on the error stream/channel before the data stream ends; only a pod that
closes its side ends the stream cleanly. A client tells the two apart that way: a reset
must not reach the user as a complete answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import cast

from aiohttp import WSMsgType, web

from .. import spdy

log = logging.getLogger(__name__)

Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

WS_V4 = "v4.channel.k8s.io"
WS_SPDY = "SPDY/3.1+portforward.k8s.io"
SPDY_UPGRADE = "SPDY/3.1"
PORTFORWARD_PROTOCOL = "portforward.k8s.io"

# Large reads keep Python work per byte negligible; the pod socket is loopback TCP.
READ_SIZE = 256 * 1024
# Pause the client side while a pod socket holds more than this unsent.
POD_WRITE_LIMIT = 1024 * 1024
# Pause reading the pods while the client connection holds more than this unsent.
CLIENT_WRITE_LIMIT = 4 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
PAIR_TIMEOUT = 30.0


class _Forward:
    """One upgraded client connection (any protocol); what the registry can drop."""

    def __init__(self, registry: PortForwardRegistry) -> None:
        self.registry = registry
        self.done = asyncio.get_running_loop().create_future()
        self.pod_transports: set[asyncio.BaseTransport] = set()

    def streams(self) -> int:
        return len(self.pod_transports)

    def abort(self) -> None:
        """Drop the connection like a reset in the network: no goodbye to either side."""
        self._abort_pods()
        self._abort_client()

    def _abort_pods(self) -> None:
        for transport in list(self.pod_transports):
            cast(asyncio.Transport, transport).abort()
        self.pod_transports.clear()

    def _abort_client(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        self._abort_pods()
        self.registry._discard(self)
        if not self.done.done():
            self.done.set_result(None)


class PortForwardRegistry:
    """Every open port-forward of one API server, for shutdown and fault injection.

    ``drop_all()`` may be called from any thread (the sandbox's fault API runs in the
    caller's thread while the server runs its own loop). ``opened`` counts the forwards
    accepted since start (``sandbox.portforward_registry.opened``).
    """

    def __init__(self) -> None:
        self._forwards: set[_Forward] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.dropped = 0
        # upgraded client connections accepted since start (what a tunnel costs the API
        # server: tests count the port-forwards a front end opens)
        self.opened = 0

    def _add(self, forward: _Forward) -> bool:
        """Track a new forward; False (and the forward dropped) after close()."""
        self._loop = asyncio.get_running_loop()
        if self._closed:
            forward.abort()
            forward.finish()
            return False
        self._forwards.add(forward)
        self.opened += 1
        return True

    def _discard(self, forward: _Forward) -> None:
        self._forwards.discard(forward)

    @property
    def open_forwards(self) -> int:
        """Upgraded client connections currently open."""
        return len(self._forwards)

    @property
    def open_streams(self) -> int:
        """Forwarded pod connections currently open, across all client connections."""
        return sum(f.streams() for f in list(self._forwards))

    def _drop_here(self) -> int:
        forwards, self._forwards = list(self._forwards), set()
        count = sum(f.streams() for f in forwards)
        for forward in forwards:
            forward.abort()
            forward.finish()
        self.dropped += count
        return count

    def drop_all(self) -> int:
        """Close every open forward stream now; returns how many pod streams were open."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return 0
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return self._drop_here()
        if not loop.is_running():
            return 0  # a stopped server carries nothing
        future = asyncio.run_coroutine_threadsafe(self._drop_async(), loop)
        return future.result(timeout=10)

    async def _drop_async(self) -> int:
        return self._drop_here()

    async def close(self) -> None:
        """At server shutdown: drop everything and refuse new forwards."""
        self._closed = True
        forwards = list(self._forwards)
        self._drop_here()
        if forwards:
            await asyncio.wait([f.done for f in forwards], timeout=5)


_POD_PATH = re.compile(r"/namespaces/([^/]+)/pods/([^/]+)/portforward")


def _pod_label(request: web.Request) -> str:
    """``namespace/name`` of the pod, from the request path (whatever the routing)."""
    match = _POD_PATH.search(request.path)
    return f"{match.group(1)}/{match.group(2)}" if match else "?"


def _connect_error(
    port: int, request: web.Request, exc: BaseException, during: str = "dial tcp"
) -> str:
    """The error-stream text of a pod connection that could not be made (``dial``) or
    failed later (``read``/``write``), worded like the kubelet's."""
    if isinstance(exc, asyncio.TimeoutError):
        reason = f"timed out after {CONNECT_TIMEOUT:.0f}s"
    elif isinstance(exc, OSError) and exc.errno:
        reason = os.strerror(exc.errno).lower()
    else:
        reason = str(exc) or type(exc).__name__
    step = f"dial tcp :{port}: connect" if during == "dial tcp" else f"{during} :{port}"
    return f"error forwarding port {port} to pod {_pod_label(request)}: {step}: {reason}"


async def handle_portforward(
    request: web.Request, connect: Connect, registry: PortForwardRegistry
) -> web.StreamResponse:
    """Serve one port-forward request in whichever protocol the client asked for."""
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade == "websocket":
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if WS_SPDY in offered:
            return await _serve_ws_spdy(request, connect, registry)
        if WS_V4 in offered:
            return await _serve_ws_v4(request, connect, registry)
        return _status(
            request,
            400,
            f"unsupported websocket subprotocols {offered}; "
            f"this server speaks {WS_V4} and {WS_SPDY}",
        )
    if upgrade == SPDY_UPGRADE.lower():
        versions = request.headers.getall("X-Stream-Protocol-Version", [])
        if PORTFORWARD_PROTOCOL not in ",".join(versions):
            return _status(
                request,
                403,
                f"X-Stream-Protocol-Version must include {PORTFORWARD_PROTOCOL}",
            )
        return await _serve_raw_spdy(request, connect, registry)
    return _status(request, 400, "Upgrade request required")


def _status(request: web.Request, code: int, message: str) -> web.Response:
    reason = {400: "BadRequest", 403: "Forbidden"}.get(code, "BadRequest")
    return web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status=code,
    )


# --- websocket v4.channel.k8s.io --------------------------------------------------------


class _WsForward(_Forward):
    def __init__(self, registry: PortForwardRegistry, request: web.Request) -> None:
        super().__init__(registry)
        self.request = request

    def _abort_client(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()


def _ports_of(request: web.Request) -> list[int]:
    ports: list[int] = []
    for raw in request.query.getall("ports", []):
        for item in raw.split(","):
            if item.strip():
                ports.append(int(item))
    return ports


async def _serve_ws_v4(
    request: web.Request, connect: Connect, registry: PortForwardRegistry
) -> web.StreamResponse:
    try:
        ports = _ports_of(request)
        if not ports or not all(0 < p < 65536 for p in ports):
            raise ValueError
    except ValueError:
        return _status(request, 400, "query parameter ports: give one or more ports 1-65535")
    ws = web.WebSocketResponse(protocols=(WS_V4,), max_msg_size=0, compress=False)
    await ws.prepare(request)
    forward = _WsForward(registry, request)
    if not registry._add(forward):
        return ws
    writers: list[asyncio.StreamWriter | None] = [None] * len(ports)
    pending: list[list[bytes]] = [[] for _ in ports]
    finished = [False] * len(ports)

    async def pump(index: int, port: int) -> None:
        channel = bytes((2 * index,))
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns the connection when a
            # cancel lands as it completes, and the pump would then read from it forever
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await connect(port)
        except Exception as exc:
            message = _connect_error(port, request, exc)
            with contextlib.suppress(ConnectionError):
                await ws.send_bytes(bytes((2 * index + 1,)) + message.encode())
            finished[index] = True
            return
        forward.pod_transports.add(writer.transport)
        writers[index] = writer
        for chunk in pending[index]:
            writer.write(chunk)
        pending[index].clear()
        try:
            while True:
                try:
                    chunk = await reader.read(READ_SIZE)
                except ConnectionError as exc:
                    # the pod reset the connection: say so on the error channel, as the
                    # kubelet does, so the client does not take it for a clean end
                    message = _connect_error(port, request, exc, "read tcp")
                    await ws.send_bytes(bytes((2 * index + 1,)) + message.encode())
                    break
                if not chunk:
                    break
                await ws.send_bytes(channel + chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client's websocket went away
        finally:
            finished[index] = True

    try:
        for index, port in enumerate(ports):
            head = port.to_bytes(2, "little")
            await ws.send_bytes(bytes((2 * index,)) + head)
            await ws.send_bytes(bytes((2 * index + 1,)) + head)
        tasks = [asyncio.create_task(pump(i, p)) for i, p in enumerate(ports)]

        async def close_when_pumps_end() -> None:
            # every pod connection ended or failed: the websocket has nothing left to carry
            await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()

        closer = asyncio.create_task(close_when_pumps_end())
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            data = msg.data
            channel = data[0]
            if channel % 2 or channel // 2 >= len(ports):
                continue  # clients never write error channels; ignore like the kubelet
            index = channel // 2
            payload = memoryview(data)[1:]
            writer = writers[index]
            if writer is None:
                if not finished[index]:
                    pending[index].append(bytes(payload))
                continue
            if writer.transport.is_closing():
                continue
            writer.write(payload)
            if writer.transport.get_write_buffer_size() > POD_WRITE_LIMIT:
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        for task in tasks:
            task.cancel()
        closer.cancel()
        await asyncio.gather(closer, *tasks, return_exceptions=True)
    finally:
        forward.finish()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


# --- SPDY sessions (raw and inside websocket) --------------------------------------------


class _Pair:
    """The data + error streams of one forwarded connection, keyed by ``requestid``."""

    def __init__(self, request_id: str, port: int) -> None:
        self.request_id = request_id
        self.port = port
        self.data_id = 0
        self.error_id = 0
        self.link: _PodLink | None = None
        self.pending: list[bytes] = []
        self.client_fin = False
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None


class _PodLink(asyncio.Protocol):
    """The pod side of one forwarded connection: callbacks, no task per chunk.

    Installed on the connection ``connect()`` opened, in place of its StreamReader, so
    each chunk the pod sends becomes one DATA frame at once.
    """

    def __init__(self, session: _SpdyForward, pair: _Pair) -> None:
        self.session = session
        self.pair = pair
        self.transport: asyncio.Transport | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.write_blocked = False
        self.read_paused = False

    async def take_over(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[bytes, bool]:
        """Become the connection's protocol; returns what the reader had buffered and
        whether the pod had already closed its side."""
        transport = cast(asyncio.Transport, writer.transport)
        # StreamReader has no public "EOF seen" flag; _eof has been stable since 3.4
        eof = bool(getattr(reader, "_eof", False))
        transport.set_protocol(self)
        # room for a few large frames before asking the client side to pause: small
        # limits turn a bulk transfer into stop-and-go
        transport.set_write_buffer_limits(high=POD_WRITE_LIMIT)
        self.transport = transport
        # a StreamWriter closes its transport when collected: keep it for our lifetime
        self.writer = writer
        reader.feed_eof()
        # read() on a reader at EOF returns its buffer without suspending, so no pod
        # bytes can reach this protocol before the buffered ones are handed on
        buffered = await reader.read()
        return buffered, eof

    def data_received(self, data: bytes) -> None:
        self.session.pod_data(self, data)

    def eof_received(self) -> bool:
        self.session.pod_closed(self.pair)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:  # reset or broken, not closed: the client must see an error
            self.session.pod_failed(self.pair, exc)
        else:
            self.session.pod_closed(self.pair)

    def pause_writing(self) -> None:
        self.write_blocked = True
        self.session.block(self)

    def resume_writing(self) -> None:
        self.write_blocked = False
        self.session.unblock(self)

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = False
            self.transport.resume_reading()


class _SpdyForward(_Forward):
    """One SPDY session; subclasses provide ordered, non-blocking output."""

    def __init__(self, registry: PortForwardRegistry, request: web.Request, connect: Connect):
        super().__init__(registry)
        self.request = request
        self.connect = connect
        self.codec = spdy.HeaderCodec()
        self.parser = spdy.FrameParser(self._on_control, self._on_data)
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, _Pair] = {}
        self.blocked: set[_PodLink] = set()  # pods that cannot take more client bytes
        self.paused_links: set[_PodLink] = set()  # pods we stopped reading (output full)
        self.going_away = False

    # output, provided by the transport-specific subclass
    def writelines(self, parts: Iterable[bytes | memoryview]) -> None:
        raise NotImplementedError

    @property
    def output_blocked(self) -> bool:
        raise NotImplementedError

    def pause_reading(self) -> None:
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes | memoryview) -> None:
        self.writelines((data,))

    def output_ready(self) -> None:
        """The client can take more: read from the pods again."""
        links, self.paused_links = self.paused_links, set()
        for link in links:
            link.resume_reading()

    def streams(self) -> int:
        return sum(1 for p in self.pairs.values() if p.link is not None and not p.closed)

    # client -> pod
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.parser.feed(data)
        except spdy.SpdyProtocolError as exc:
            log.info("port-forward: closing SPDY session: %s", exc)
            self.write(spdy.goaway(0, spdy.PROTOCOL_ERROR))
            self.abort()

    def _on_control(self, kind: int, flags: int, payload: bytes) -> None:
        if kind == spdy.SYN_STREAM:
            self._syn_stream(flags, payload)
        elif kind == spdy.PING and spdy.parse_stream_id(payload) % 2:
            # odd ids are the client's pings: echo them (even ones would be our answers)
            self.write(spdy.control_frame(spdy.PING, 0, payload[:4]))
        elif kind == spdy.RST_STREAM:
            stream_id, _status = spdy.parse_u32_pair(payload)
            pair = self.by_stream.get(stream_id)
            if pair is not None:
                self._close_pair(pair, reset=False)
        elif kind == spdy.GOAWAY:
            self.going_away = True
        # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do (no flow control enforced)

    def _syn_stream(self, flags: int, payload: bytes) -> None:
        stream_id, block = spdy.parse_syn_stream(payload)
        headers = self.codec.decode(block)
        self.write(spdy.syn_reply(stream_id, self.codec.encode({})))
        kind = headers.get("streamtype", "")
        # clients older than requestid pair streams by id (the kubelet does the same)
        request_id = headers.get("requestid") or str(
            stream_id if kind == "error" else stream_id - 2
        )
        try:
            port = int(headers.get("port", ""))
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            self._stream_error(
                stream_id,
                f'"port" header is required and must be 1-65535, got {headers.get("port")!r}',
            )
            return
        if kind not in ("error", "data"):
            self._stream_error(stream_id, f"invalid stream type {kind!r}")
            return
        pair = self.pairs.get(request_id)
        if pair is None:
            pair = self.pairs[request_id] = _Pair(request_id, port)
            pair.timer = asyncio.get_running_loop().call_later(
                PAIR_TIMEOUT, self._pair_timeout, pair
            )
        if kind == "error":
            pair.error_id = stream_id
        else:
            pair.data_id = stream_id
            if flags & spdy.FLAG_FIN:
                pair.client_fin = True
        self.by_stream[stream_id] = pair
        if pair.data_id and pair.error_id and pair.task is None:
            if pair.timer is not None:
                pair.timer.cancel()
            pair.task = asyncio.create_task(self._forward(pair))

    def _stream_error(self, stream_id: int, message: str) -> None:
        body = message.encode()
        self.writelines((spdy.data_header(stream_id, len(body), fin=True), body))

    def _pair_timeout(self, pair: _Pair) -> None:
        if pair.task is None and not pair.closed:
            stream = pair.error_id or pair.data_id
            self._stream_error(
                stream, f"timed out waiting for streams of request {pair.request_id}"
            )
            self._close_pair(pair, reset=True)

    def _on_data(self, stream_id: int, payload: memoryview, fin: bool) -> None:
        pair = self.by_stream.get(stream_id)
        if pair is None or stream_id != pair.data_id or pair.closed:
            return  # the error stream carries nothing from clients
        link = pair.link
        if payload:
            if link is None:
                pair.pending.append(bytes(payload))
            elif link.transport is not None and not link.transport.is_closing():
                link.transport.write(payload)  # pause_writing fires from here when full
        if fin:
            pair.client_fin = True
            if link is not None and link.transport is not None:
                with contextlib.suppress(OSError, RuntimeError):
                    if link.transport.can_write_eof() and not link.transport.is_closing():
                        link.transport.write_eof()

    def block(self, link: _PodLink) -> None:
        self.blocked.add(link)
        if len(self.blocked) == 1:
            self.pause_reading()

    def unblock(self, link: _PodLink) -> None:
        self.blocked.discard(link)
        if not self.blocked:
            self.resume_reading()

    # pod -> client
    def pod_data(self, link: _PodLink, data: bytes) -> None:
        pair = link.pair
        if pair.closed:
            return
        if len(data) <= spdy.MAX_DATA_FRAME:
            self.writelines((spdy.data_header(pair.data_id, len(data)), data))
        else:
            view = memoryview(data)
            for start in range(0, len(data), spdy.MAX_DATA_FRAME):
                piece = view[start : start + spdy.MAX_DATA_FRAME]
                self.writelines((spdy.data_header(pair.data_id, len(piece)), piece))
        if self.output_blocked:
            link.pause_reading()
            self.paused_links.add(link)

    def pod_closed(self, pair: _Pair) -> None:
        """The pod ended the connection: end both streams, as the kubelet does."""
        if pair.closed:
            return
        self.writelines(
            (
                spdy.data_header(pair.data_id, 0, fin=True),
                spdy.data_header(pair.error_id, 0, fin=True),
            )
        )
        self._close_pair(pair, reset=False)

    def pod_failed(self, pair: _Pair, exc: Exception) -> None:
        """The pod's connection failed (a reset): the error stream says so before both
        streams end, as the kubelet does, so the client fails its local connection
        instead of ending it cleanly."""
        if pair.closed:
            return
        self._stream_error(pair.error_id, _connect_error(pair.port, self.request, exc, "read tcp"))
        self.write(spdy.data_header(pair.data_id, 0, fin=True))
        self._close_pair(pair, reset=False)

    async def _forward(self, pair: _Pair) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):  # not wait_for: see _serve_ws_v4
                reader, writer = await self.connect(pair.port)
        except Exception as exc:
            if not pair.closed:
                self._stream_error(pair.error_id, _connect_error(pair.port, self.request, exc))
                self.write(spdy.data_header(pair.data_id, 0, fin=True))
                self._close_pair(pair, reset=False)
            return
        if pair.closed:
            writer.transport.abort()
            return
        link = _PodLink(self, pair)
        buffered, eof = await link.take_over(reader, writer)
        pair.link = link
        self.pod_transports.add(writer.transport)
        transport = link.transport
        assert transport is not None
        for chunk in pair.pending:
            transport.write(chunk)
        pair.pending.clear()
        if pair.client_fin and transport.can_write_eof():
            transport.write_eof()
        if buffered:
            self.pod_data(link, buffered)
        if eof:
            self.pod_closed(pair)

    def _close_pair(self, pair: _Pair, *, reset: bool) -> None:
        if pair.closed:
            return
        pair.closed = True
        if pair.timer is not None:
            pair.timer.cancel()
        if reset:
            for stream_id in (pair.data_id, pair.error_id):
                if stream_id:
                    self.write(spdy.rst_stream(stream_id, spdy.CANCEL))
        link = pair.link
        if link is not None and link.transport is not None:
            self.pod_transports.discard(link.transport)
            self.paused_links.discard(link)
            link.transport.close()
            if link in self.blocked:
                self.unblock(link)
        self.pairs.pop(pair.request_id, None)
        for stream_id in (pair.data_id, pair.error_id):
            self.by_stream.pop(stream_id, None)

    def session_ended(self) -> None:
        for pair in list(self.pairs.values()):
            pair.closed = True
            if pair.timer is not None:
                pair.timer.cancel()
            if pair.task is not None and not pair.task.done():
                pair.task.cancel()
        self.pairs.clear()
        self.by_stream.clear()
        self.finish()


class _WsSpdyForward(_SpdyForward):
    """SPDY inside binary websocket messages (kubectl 1.32's first choice)."""

    def __init__(
        self,
        registry: PortForwardRegistry,
        request: web.Request,
        connect: Connect,
        ws: web.WebSocketResponse,
    ) -> None:
        super().__init__(registry, request, connect)
        self.ws = ws
        self.out: list[bytes | memoryview] = []
        self.out_size = 0
        self.sending = False
        self.wake = asyncio.Event()
        self.readable = asyncio.Event()
        self.readable.set()
        self.flusher = asyncio.create_task(self._flush_loop())

    def writelines(self, parts: Iterable[bytes | memoryview]) -> None:
        for part in parts:
            self.out.append(part)
            self.out_size += len(part)
        self.wake.set()

    @property
    def output_blocked(self) -> bool:
        return self.sending or self.out_size > POD_WRITE_LIMIT

    async def _flush_loop(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.out:
                    data = b"".join(self.out)
                    self.out.clear()
                    self.out_size = 0
                    self.sending = True
                    await self.ws.send_bytes(data)
                    self.sending = False
                self.output_ready()
        except (ConnectionError, RuntimeError):
            self.abort()

    def pause_reading(self) -> None:
        self.readable.clear()

    def resume_reading(self) -> None:
        self.readable.set()

    def _abort_client(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def session_ended(self) -> None:
        self.flusher.cancel()
        super().session_ended()


async def _serve_ws_spdy(
    request: web.Request, connect: Connect, registry: PortForwardRegistry
) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=(WS_SPDY,), max_msg_size=0, compress=False)
    await ws.prepare(request)
    session = _WsSpdyForward(registry, request, connect, ws)
    if not registry._add(session):
        session.session_ended()
        return ws
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                session.feed(msg.data)
                if not session.readable.is_set():
                    await session.readable.wait()
            if session.done.done():
                break
    except (ConnectionError, RuntimeError):
        pass
    finally:
        session.session_ended()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


class _RawSpdyForward(_SpdyForward, asyncio.BufferedProtocol):
    """SPDY directly on the upgraded connection; the transport is taken from aiohttp.

    A buffered protocol: TLS decrypts into one reused buffer and DATA payloads go to
    the pod sockets as slices of it.
    """

    def __init__(
        self,
        registry: PortForwardRegistry,
        request: web.Request,
        connect: Connect,
        transport: asyncio.Transport,
    ) -> None:
        super().__init__(registry, request, connect)
        self.transport = transport
        self.previous = transport.get_protocol()
        self.write_paused = False
        self.read_paused = False
        self.buffer = memoryview(bytearray(READ_SIZE))

    def writelines(self, parts: Iterable[bytes | memoryview]) -> None:
        # one TLS write (one record batch, one send) for a frame head and its payload
        if not self.transport.is_closing():
            self.transport.writelines(parts)

    @property
    def output_blocked(self) -> bool:
        return self.write_paused

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.output_ready()

    def pause_reading(self) -> None:
        if not self.read_paused and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.transport.is_closing():
            self.read_paused = False
            self.transport.resume_reading()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.feed(self.buffer[:nbytes])
        for pair in self.pairs.values():
            link = pair.link
            if (
                link is not None
                and link.transport is not None
                and link.transport.get_write_buffer_size()
            ):
                # a transport may hold our slice instead of copying it (uvloop does):
                # never overwrite bytes still queued for a pod
                self.buffer = memoryview(bytearray(READ_SIZE))
                break

    def eof_received(self) -> bool | None:
        return False  # close: a client that half-closes the session is leaving

    def connection_lost(self, exc: Exception | None) -> None:
        self.session_ended()
        # aiohttp's request handler still owns the request object; let it clean up
        with contextlib.suppress(Exception):
            self.previous.connection_lost(exc)

    def _abort_client(self) -> None:
        self.transport.abort()


async def _serve_raw_spdy(
    request: web.Request, connect: Connect, registry: PortForwardRegistry
) -> web.StreamResponse:
    transport = request.transport
    if transport is None:
        raise web.HTTPBadRequest(text="connection already closed")
    response = web.StreamResponse(
        status=101,
        reason="Switching Protocols",
        headers={
            "Connection": "Upgrade",
            "Upgrade": SPDY_UPGRADE,
            "X-Stream-Protocol-Version": PORTFORWARD_PROTOCOL,
        },
    )
    # Take the transport before the 101 leaves: the client may answer at once, and those
    # bytes must reach the SPDY session, not aiohttp's HTTP parser.
    session = _RawSpdyForward(registry, request, connect, cast(asyncio.Transport, transport))
    if not registry._add(session):
        return response
    transport.set_protocol(session)
    transport.set_write_buffer_limits(high=CLIENT_WRITE_LIMIT)
    try:
        await response.prepare(request)
    except ConnectionError:
        session.session_ended()
        return response
    await asyncio.shield(session.done)
    transport.close()
    return response
