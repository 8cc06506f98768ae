"""SPDY/3.1 framing: frames survive any chunking of the byte stream, header blocks
round-trip through the shared zlib state, and malformed input is refused."""

from __future__ import annotations

import os
import random
import zlib

import pytest

from arkouda_k8s import spdy


def _collect() -> tuple[
    list[tuple[int, int, bytes]], dict[int, bytearray], list[int], spdy.FrameParser
]:
    controls: list[tuple[int, int, bytes]] = []
    data: dict[int, bytearray] = {}
    fins: list[int] = []

    def on_control(kind: int, flags: int, payload: bytes) -> None:
        controls.append((kind, flags, payload))

    def on_data(stream_id: int, payload: memoryview, fin: bool) -> None:
        data.setdefault(stream_id, bytearray()).extend(payload)
        if fin:
            fins.append(stream_id)

    return controls, data, fins, spdy.FrameParser(on_control, on_data)


def _session_bytes(codec: spdy.HeaderCodec, payload_1: bytes, payload_3: bytes) -> bytes:
    error = codec.encode({"streamtype": "error", "port": "5555", "requestid": "0"})
    data = codec.encode({"streamtype": "data", "port": "5555", "requestid": "0"})
    return b"".join(
        [
            spdy.syn_stream(1, error, fin=True),
            spdy.syn_stream(3, data),
            spdy.data_header(3, len(payload_3)),
            payload_3,
            spdy.ping(7),
            spdy.data_header(1, len(payload_1), fin=True),
            payload_1,
            spdy.data_header(3, 0, fin=True),
            spdy.goaway(3),
        ]
    )


@pytest.mark.parametrize("seed", range(6))
def test_frames_survive_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    payload_3 = os.urandom(rng.randrange(0, 200_000))
    payload_1 = b"error text"
    wire = _session_bytes(spdy.HeaderCodec(), payload_1, payload_3)
    controls, data, fins, parser = _collect()
    pos = 0
    while pos < len(wire):  # 1-byte slivers up to big chunks
        step = rng.choice([1, 2, 7, 8, 9, 100, 4096, 70_000])
        parser.feed(wire[pos : pos + step])
        pos += step
    assert bytes(data.get(3, b"")) == payload_3
    assert bytes(data[1]) == payload_1
    assert fins == [1, 3]
    kinds = [kind for kind, _, _ in controls]
    assert kinds == [spdy.SYN_STREAM, spdy.SYN_STREAM, spdy.PING, spdy.GOAWAY]
    decoder = spdy.HeaderCodec()  # the peer's decoder: shared state across frames
    headers = [decoder.decode(spdy.parse_syn_stream(p)[1]) for k, _, p in controls[:2]]
    assert headers[0] == {"streamtype": "error", "port": "5555", "requestid": "0"}
    assert headers[1]["streamtype"] == "data"
    assert controls[0][1] & spdy.FLAG_FIN and not controls[1][1] & spdy.FLAG_FIN
    assert spdy.parse_stream_id(controls[2][2]) == 7


def test_header_blocks_use_the_spdy3_dictionary() -> None:
    block = spdy.HeaderCodec().encode({"port": "80"})
    with pytest.raises(zlib.error):  # not decodable without the dictionary
        zlib.decompressobj().decompress(block)
    from spdy.dictionary import zdict

    raw = zlib.decompressobj(zdict=zdict).decompress(block)
    assert raw == b"\x00\x00\x00\x01\x00\x00\x00\x04port\x00\x00\x00\x0280"


def test_wrong_version_is_refused() -> None:
    _, _, _, parser = _collect()
    frame = bytearray(spdy.ping(1))
    frame[1] = 2  # SPDY/2
    with pytest.raises(spdy.SpdyProtocolError, match="version 2"):
        parser.feed(bytes(frame))


def test_corrupt_header_block_is_refused() -> None:
    with pytest.raises(spdy.SpdyProtocolError, match="header block"):
        spdy.HeaderCodec().decode(b"\x78\x00garbage")


def test_a_header_block_that_inflates_too_far_is_refused() -> None:
    # 64 MiB of one header value compresses to ~64 KiB: a zip bomb in one control frame.
    bomb = spdy.HeaderCodec().encode({"port": "a" * (64 << 20)})
    assert len(bomb) < spdy.MAX_DATA_FRAME
    codec = spdy.HeaderCodec()
    with pytest.raises(spdy.SpdyProtocolError, match="inflates to more than"):
        codec.decode(bomb)
    ok = spdy.HeaderCodec()
    assert ok.decode(spdy.HeaderCodec().encode({"port": "5555"})) == {"port": "5555"}
