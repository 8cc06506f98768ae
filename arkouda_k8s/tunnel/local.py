"""The local side of the tunnel: each client connection accepted on 127.0.0.1, read
straight into recycled buffers with room for a SPDY frame head in front."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING, cast

from .upstream import BUFFER_LIMIT, HEAD_ROOM, LOCAL_READ_SIZE, Upstream

if TYPE_CHECKING:
    from .supervisor import Supervisor

LINGER_RESET = struct.pack("ii", 1, 0)


class Buffers:
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


def reset(transport: asyncio.Transport | None) -> None:
    """Close a local socket so the peer sees a reset (an error), never a clean end."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    transport.abort()


class Local(asyncio.BufferedProtocol):
    """One accepted client connection on the loopback listener.

    A buffered protocol: the socket is read straight into ``frames.current`` after
    ``HEAD_ROOM`` bytes, so the SPDY upstream writes the frame head in front and hands
    head and payload to TLS as one buffer: no bytes object per read, no join, no separate
    8-byte TLS record per frame.
    """

    def __init__(self, core: Supervisor) -> None:
        self.core = core
        self.transport: asyncio.Transport | None = None
        self.upstream: Upstream | None = None
        self.frames = Buffers(HEAD_ROOM + LOCAL_READ_SIZE)
        self.early: list[bytes] = []
        self.early_size = 0
        self.local_eof = False
        self.remote_eof = False
        self.closed = False
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        transport.set_write_buffer_limits(high=BUFFER_LIMIT)
        self.core.locals.add(self)
        self.task = asyncio.get_running_loop().create_task(self.core.attach(self))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.frames.current[HEAD_ROOM:]

    def buffer_updated(self, nbytes: int) -> None:
        if self.upstream is not None:
            self.upstream.send_read(self, nbytes)
            return
        self.early.append(bytes(self.frames.current[HEAD_ROOM : HEAD_ROOM + nbytes]))
        self.early_size += nbytes
        if self.early_size > BUFFER_LIMIT and self.transport is not None:
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
    def attached(self, upstream: Upstream) -> None:
        self.upstream = upstream
        if upstream.takes_socket:
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
        reset(self.transport)
        if self.upstream is not None:
            self.upstream.close()
