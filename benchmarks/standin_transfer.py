"""Stand-in server transfer speed: 10^6-element uploads and downloads, both wire formats.

Starts the stand-in (``StandInProcess``) and times, for int64 / float64 / bool arrays of
10^6 elements, the server-side part of ``array`` and ``tondarray`` in the v2023 format
(hand-built messages, native byte order, BINARY_PAYLOAD upload) and the whole round
trip through the real 2020.7.7 client (big-endian; the client's own struct packing
included, reported separately because it is client time).

    python benchmarks/standin_transfer.py [--runs 5]

Budget: the v2023 upload and download of 10^6 elements each take under 0.2 s (median);
exit status 1 when they do not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from arkouda_k8s.sandbox.arkouda_server import StandInProcess  # noqa: E402

N = 10**6
BUDGET = 0.2


def _args(**kw: tuple[str, str, str]) -> str:
    return json.dumps(
        [json.dumps({"key": k, "objType": o, "dtype": d, "val": v}) for k, (o, d, v) in kw.items()]
    )


def _msg(cmd: str, args: str, size: int, fmt: str = "STRING") -> bytes:
    body = {"user": "bench", "token": "", "cmd": cmd, "format": fmt, "args": args, "size": size}
    return json.dumps(body).encode()


def v2023_round_trip(sock: zmq.Socket, data: np.ndarray) -> tuple[float, float]:
    t0 = time.perf_counter()
    args = _args(
        dtype=("VALUE", "str", data.dtype.name),
        size=("VALUE", "int", str(data.size)),
        seg_string=("VALUE", "bool", "False"),
    )
    sock.send(_msg("array", args, 3, "BINARY") + b"BINARY_PAYLOAD", flags=zmq.SNDMORE)
    sock.send(memoryview(data), copy=False)
    name = json.loads(sock.recv_string())["msg"].split()[1]
    t1 = time.perf_counter()
    sock.send(_msg("tondarray", _args(array=("PDARRAY", data.dtype.name, name)), 1))
    back = np.frombuffer(sock.recv(copy=False).buffer, dtype=data.dtype)
    t2 = time.perf_counter()
    assert np.array_equal(back, data)
    sock.send(_msg("delete", _args(name=("VALUE", "str", name)), 1))
    sock.recv()
    return t1 - t0, t2 - t1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    rng = np.random.default_rng(0)
    arrays = {
        "int64": rng.integers(-(2**40), 2**40, N),
        "float64": rng.normal(size=N),
        "bool": rng.integers(0, 2, N).astype(bool),
    }
    ok = True
    with StandInProcess("--authenticate=false", "--logLevel=LogLevel.ERROR") as srv:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://{srv.host}:{srv.port}")
        print(f"v2023 messages, {N:,} elements, median of {runs}")
        for dtype, data in arrays.items():
            times = [v2023_round_trip(sock, data) for _ in range(runs)]
            up = statistics.median(t[0] for t in times)
            down = statistics.median(t[1] for t in times)
            flag = "ok" if max(up, down) < BUDGET else "OVER BUDGET"
            ok &= max(up, down) < BUDGET
            print(
                f"  {dtype:8s} upload {up * 1000:7.1f} ms  download {down * 1000:7.1f} ms  {flag}"
            )
        sock.close(0)
        ctx.term()

        try:
            import arkouda as ak
        except ImportError:
            print("2020 client: not installed (scripts/install_arkouda_client.py)")
            return 0 if ok else 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ak.connect(srv.host, srv.port)
        print(f"2020.7.7 client (struct packing on the client included), {N:,} elements")
        for dtype, data in arrays.items():
            t0 = time.perf_counter()
            pda = ak.array(data)
            t1 = time.perf_counter()
            back = pda.to_ndarray()
            t2 = time.perf_counter()
            assert np.array_equal(back, data)
            print(
                f"  {dtype:8s} upload {(t1 - t0) * 1000:7.1f} ms  download {(t2 - t1) * 1000:7.1f} ms"
            )
        ak.disconnect()
    print("within budget" if ok else f"over the {BUDGET * 1000:.0f} ms budget")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
