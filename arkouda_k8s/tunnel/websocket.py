"""The websocket path to the API server (``v4.channel.k8s.io``): the fallback when a
server refuses the SPDY upgrade; channel 0 carries data, channel 1 errors, no half-close."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .local import Local
from .upstream import BUFFER_LIMIT, Refused, Upstream

if TYPE_CHECKING:
    import aiohttp  # imported when first used

    from .supervisor import Supervisor

WS_V4 = "v4.channel.k8s.io"


async def dial_ws(core: Supervisor, pod: str, local: Local) -> Upstream:
    import aiohttp

    if core.session is None:
        scheme = "https" if core.tls else "http"
        context = core.t.endpoint.ssl_context
        connector = aiohttp.TCPConnector(
            ssl=context if (core.tls and context is not None) else core.tls,
            force_close=True,
        )
        core.session = aiohttp.ClientSession(f"{scheme}://{core.host_header}", connector=connector)
    try:
        ws = await core.session.ws_connect(
            core.path(pod),
            params={"ports": str(core.t.remote_port)},
            protocols=(WS_V4,),
            headers=core.t.endpoint.headers,
            max_msg_size=0,
            compress=0,
            server_hostname=core.server_name if core.tls else None,
            timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            heartbeat=core.t.ping_interval,
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise Refused(exc.status, exc.message or f"HTTP {exc.status}", "websocket") from None
    if ws.protocol != WS_V4:
        await ws.close()
        raise Refused(502, f"websocket subprotocol {ws.protocol!r} is not {WS_V4}", "websocket")
    return WsUpstream(core, local, ws)


class WsUpstream(Upstream):
    """Websocket ``v4.channel.k8s.io``: channel 0 data, channel 1 errors, no half-close."""

    protocol = "websocket"

    def __init__(self, core: Supervisor, local: Local, ws: aiohttp.ClientWebSocketResponse) -> None:
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
        if self.pending_size > BUFFER_LIMIT and self.local.transport is not None:
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
