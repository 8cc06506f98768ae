"""SPDY/3.1 framing for Kubernetes port-forward: the parser, frame builders, header blocks.

Kubernetes' port-forward (kubectl and the kubelet) still speaks SPDY/3.1, either raw
after an HTTP upgrade or inside websocket messages. Both ends of this project use it:
the tunnel (client) and the sandbox's API server. Only the framing lives here; the
sessions (which stream carries what) live with each end. Data frames are handed on as
slices of the received buffer so that no payload byte is copied or touched in Python.

The zlib dictionary for header blocks is the SPDY/3 one, taken from PyPI ``spdy-py``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from spdy.dictionary import zdict as _SPDY3_DICTIONARY

VERSION = 3
CONTROL_BIT = 0x8000

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes (SPDY/3 section 2.6.3)
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6

MAX_DATA_FRAME = 0xFFFFFF  # 24-bit length field
# A header block decompresses at most to this: port-forward headers are a few dozen
# bytes, and a 16 MiB control frame of zeros would otherwise inflate to gigabytes.
MAX_HEADER_BLOCK = 256 * 1024

_HEAD = struct.Struct(">II")
_CONTROL_HEAD = struct.Struct(">HHI")
_U32 = struct.Struct(">I")
_SYN_STREAM_HEAD = struct.Struct(">IIBB")


class SpdyProtocolError(Exception):
    """The peer sent bytes that are not valid SPDY/3.1."""


def data_header(stream_id: int, length: int, fin: bool = False) -> bytes:
    """The 8-byte head of a DATA frame; the payload follows it on the wire unchanged."""
    return _HEAD.pack(stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | length)


def pack_data_header(buffer: bytearray | memoryview, stream_id: int, length: int) -> None:
    """Write a DATA frame head (no flags) into the first 8 bytes of ``buffer``."""
    _HEAD.pack_into(buffer, 0, stream_id & 0x7FFFFFFF, length)


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    return _CONTROL_HEAD.pack(CONTROL_BIT | VERSION, kind, (flags << 24) | len(payload)) + payload


def syn_stream(stream_id: int, header_block: bytes, *, fin: bool = False) -> bytes:
    payload = _SYN_STREAM_HEAD.pack(stream_id, 0, 0, 0) + header_block
    return control_frame(SYN_STREAM, FLAG_FIN if fin else 0, payload)


def syn_reply(stream_id: int, header_block: bytes, *, fin: bool = False) -> bytes:
    return control_frame(SYN_REPLY, FLAG_FIN if fin else 0, _U32.pack(stream_id) + header_block)


def rst_stream(stream_id: int, status: int = CANCEL) -> bytes:
    return control_frame(RST_STREAM, 0, _HEAD.pack(stream_id, status))


def ping(ping_id: int) -> bytes:
    return control_frame(PING, 0, _U32.pack(ping_id))


def goaway(last_good_stream: int, status: int = 0) -> bytes:
    return control_frame(GOAWAY, 0, _HEAD.pack(last_good_stream, status))


class HeaderCodec:
    """One direction pair of header compression state: SPDY shares it across a connection."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zdict=_SPDY3_DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=_SPDY3_DICTIONARY)

    def encode(self, headers: dict[str, str]) -> bytes:
        parts = [_U32.pack(len(headers))]
        for name, value in headers.items():
            raw_name, raw_value = name.lower().encode(), value.encode()
            parts += [_U32.pack(len(raw_name)), raw_name, _U32.pack(len(raw_value)), raw_value]
        block = b"".join(parts)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, block: bytes) -> dict[str, str]:
        if not block:
            return {}
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyProtocolError(f"bad header block: {exc}") from None
        if self._inflate.unconsumed_tail:
            raise SpdyProtocolError(f"header block inflates to more than {MAX_HEADER_BLOCK} bytes")
        try:
            (count,) = _U32.unpack_from(raw, 0)
            pos, headers = 4, {}
            for _ in range(count):
                (n,) = _U32.unpack_from(raw, pos)
                name = raw[pos + 4 : pos + 4 + n].decode()
                pos += 4 + n
                (n,) = _U32.unpack_from(raw, pos)
                value = raw[pos + 4 : pos + 4 + n].decode()
                pos += 4 + n
                headers[name] = value
        except (struct.error, UnicodeDecodeError) as exc:
            raise SpdyProtocolError(f"bad header block: {exc}") from None
        return headers


ControlHandler = Callable[[int, int, bytes], None]
"""on_control(frame_type, flags, payload)"""
DataHandler = Callable[[int, memoryview, bool], None]
"""on_data(stream_id, payload_slice, fin): slices of the fed buffer, possibly empty"""


class FrameParser:
    """Incremental SPDY frame parser over an arbitrary chunking of the byte stream.

    Control frames are collected whole (they are small); DATA payloads are delivered as
    memoryview slices of the fed chunk as soon as they arrive, never buffered here.
    """

    __slots__ = (
        "_on_control",
        "_on_data",
        "_head",
        "_ctl_left",
        "_ctl",
        "_data_left",
        "_sid",
        "_fin",
        "_ctl_type",
        "_ctl_flags",
    )

    def __init__(self, on_control: ControlHandler, on_data: DataHandler) -> None:
        self._on_control = on_control
        self._on_data = on_data
        self._head = bytearray()  # a partial 8-byte frame head
        self._ctl: bytearray | None = None  # a partial control frame payload
        self._ctl_left = 0
        self._ctl_type = 0
        self._ctl_flags = 0
        self._data_left = 0
        self._sid = 0
        self._fin = False

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        mv = memoryview(chunk)
        n = len(mv)
        pos = 0
        while pos < n:
            if self._data_left:
                take = min(self._data_left, n - pos)
                self._data_left -= take
                self._on_data(self._sid, mv[pos : pos + take], self._fin and not self._data_left)
                pos += take
                continue
            if self._ctl is not None:
                take = min(self._ctl_left, n - pos)
                self._ctl += mv[pos : pos + take]
                self._ctl_left -= take
                pos += take
                if not self._ctl_left:
                    payload, self._ctl = bytes(self._ctl), None
                    self._on_control(self._ctl_type, self._ctl_flags, payload)
                continue
            if self._head or n - pos < 8:
                take = min(8 - len(self._head), n - pos)
                self._head += mv[pos : pos + take]
                pos += take
                if len(self._head) < 8:
                    return
                word0, word1 = _HEAD.unpack(self._head)
                self._head.clear()
            else:
                word0, word1 = _HEAD.unpack_from(mv, pos)
                pos += 8
            flags, length = word1 >> 24, word1 & 0xFFFFFF
            if word0 & 0x80000000:
                version, kind = (word0 >> 16) & 0x7FFF, word0 & 0xFFFF
                if version != VERSION:
                    raise SpdyProtocolError(f"unsupported SPDY version {version}")
                if n - pos >= length:  # the whole control frame is here: no buffering
                    payload = bytes(mv[pos : pos + length])
                    pos += length
                    self._on_control(kind, flags, payload)
                else:
                    self._ctl, self._ctl_left = bytearray(), length
                    self._ctl_type, self._ctl_flags = kind, flags
            else:
                self._sid, self._fin = word0, bool(flags & FLAG_FIN)
                if length == 0:
                    self._on_data(word0, mv[pos:pos], self._fin)
                else:
                    self._data_left = length


def parse_syn_stream(payload: bytes) -> tuple[int, bytes]:
    """(stream id, header block) of a SYN_STREAM payload."""
    if len(payload) < 10:
        raise SpdyProtocolError("SYN_STREAM frame too short")
    return _U32.unpack_from(payload, 0)[0] & 0x7FFFFFFF, payload[10:]


def parse_stream_id(payload: bytes) -> int:
    """The stream id that starts SYN_REPLY, RST_STREAM, HEADERS and WINDOW_UPDATE payloads."""
    if len(payload) < 4:
        raise SpdyProtocolError("control frame too short")
    return int(_U32.unpack_from(payload, 0)[0] & 0x7FFFFFFF)


def parse_u32_pair(payload: bytes) -> tuple[int, int]:
    """The two 32-bit words of RST_STREAM (id, status) and GOAWAY (last id, status)."""
    if len(payload) < 8:
        return (parse_stream_id(payload), 0) if len(payload) >= 4 else (0, 0)
    a, b = _HEAD.unpack_from(payload, 0)
    return a & 0x7FFFFFFF, b
