"""The session's TimedSocket costs nothing measurable on large transfers.

Binds a Session (real 2020.7.7 client) to the stand-in server and times uploads and
downloads of a 10^6-element int64 array, alternately with the client's socket wrapped
(as while bound) and bare, so machine load affects both alike.

    python benchmarks/timed_socket.py [--runs 7]

Budget: the wrapped median within 10 % (+ 5 ms) of the bare one; exit status 1 if not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from arkouda_k8s.sandbox.arkouda_server import StandInProcess  # noqa: E402
from arkouda_k8s.session import Session  # noqa: E402

N = 10**6


def _round_trip(ak: object, data: np.ndarray) -> float:
    started = time.perf_counter()
    back = ak.array(data).to_ndarray()  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    assert back[-1] == data[-1]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    data = np.arange(N, dtype=np.int64)
    wrapped: list[float] = []
    bare: list[float] = []
    with StandInProcess("--authenticate=false", "--arkoudaVersion=2020.07.07") as server:
        session = Session.bind(server.host, server.port, timeout=5)
        try:
            _round_trip(session.ak, data)  # warm up
            for _ in range(args.runs):
                session._time_socket()
                wrapped.append(_round_trip(session.ak, data))
                session._untime_socket()
                bare.append(_round_trip(session.ak, data))
            requests, seconds = session.server_time()
        finally:
            session.close()
    w, b = statistics.median(wrapped), statistics.median(bare)
    print(f"10^6 int64 up and down: wrapped {w:.3f} s, bare {b:.3f} s (median of {args.runs})")
    print(f"counted while wrapped: {requests} requests, {seconds:.3f} s waiting")
    ok = w <= b * 1.10 + 0.005
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
