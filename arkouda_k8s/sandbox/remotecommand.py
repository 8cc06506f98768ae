"""``pods/exec`` for the sandbox API server: the websocket remote-command protocol.

kubectl 1.32 (``v5.channel.k8s.io``) and the official Python client's ``stream()``
(``v4.channel.k8s.io``) speak it: every binary message starts with a channel byte,
0 stdin (client to server), 1 stdout, 2 stderr, 3 the final ``Status`` (JSON; exit code
in ``details.causes``), 4 terminal resize (ignored: no TTYs here); ``v5`` adds 255 for
"close this stream" so a client can end stdin. The command runs as a local process in
the pod's context, started by the kubelet (``kubelet.exec_in_pod``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from .store import ApiError

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
READ_SIZE = 64 * 1024

Start = Callable[[list[str]], Awaitable[asyncio.subprocess.Process]]


def _status(code: int | None, command: list[str], error: ApiError | None = None) -> bytes:
    if error is not None:
        doc: dict[str, Any] = {
            "metadata": {},
            "status": "Failure",
            "message": error.message,
            "reason": error.reason,
            "code": error.status,
        }
    elif code == 0:
        doc = {"metadata": {}, "status": "Success"}
    else:
        doc = {
            "metadata": {},
            "status": "Failure",
            "message": (
                f"command terminated with non-zero exit code: error executing command "
                f"{command}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    return bytes([ERROR]) + json.dumps(doc).encode()


def offered_protocol(request: web.Request) -> str | None:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    for proto in (V5, V4):
        if proto in offered:
            return proto
    return None


async def serve_exec(request: web.Request, command: list[str], start: Start) -> web.StreamResponse:
    """Run ``command`` through ``start`` and relay it over the websocket of ``request``."""
    proto = offered_protocol(request)
    if request.headers.get("Upgrade", "").lower() != "websocket" or proto is None:
        raise ApiError(
            400,
            "BadRequest",
            f"exec needs a websocket upgrade with subprotocol {V5} or {V4} (the sandbox "
            "does not serve the SPDY form)",
        )
    q = request.query
    want_stdin = q.get("stdin") in ("true", "1")
    want_stdout = q.get("stdout", "true") in ("true", "1")
    want_stderr = q.get("stderr", "true") in ("true", "1")
    ws = web.WebSocketResponse(protocols=(proto,), autoping=True, max_msg_size=0)
    await ws.prepare(request)
    try:
        proc = await start(command)
    except ApiError as exc:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(_status(None, command, exc))
            await ws.close()
        return ws

    async def pump(stream: asyncio.StreamReader | None, channel: int, wanted: bool) -> None:
        if stream is None:
            return
        while chunk := await stream.read(READ_SIZE):
            if wanted and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_bytes(bytes([channel]) + chunk)

    async def feed() -> None:
        stdin = proc.stdin
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:  # the Python client sends stdin as text frames
                data = msg.data.encode()
            elif msg.type == WSMsgType.BINARY:
                data = msg.data
            else:
                continue
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and stdin is not None and want_stdin:
                with contextlib.suppress(ConnectionError):
                    stdin.write(payload)
                    await stdin.drain()
            elif channel == CLOSE and payload[:1] == bytes([STDIN]) and stdin is not None:
                stdin.close()
        # the client went away: the command goes too
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    if not want_stdin and proc.stdin is not None:
        proc.stdin.close()
    feeder = asyncio.ensure_future(feed())
    try:
        await asyncio.gather(
            pump(proc.stdout, STDOUT, want_stdout), pump(proc.stderr, STDERR, want_stderr)
        )
        code = await proc.wait()
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(_status(code, command))
                await ws.close()
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feeder
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return ws
