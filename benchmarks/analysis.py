"""The analysis tutorial's steps at 10 million rows: the stand-in server against NumPy.

notebooks/02-analysis.ipynb runs each step below through the 2020.7.7 ``arkouda`` client
against the sandbox's stand-in server. This times the same steps on the same data (the
notebook's generator and seed) two ways: through the client and the stand-in (wire
protocol, client packing and the stand-in's NumPy kernels), and as plain NumPy in this
process. The stand-in is NumPy in one process behind Arkouda's wire protocol, **not
Arkouda**: the figures show what the tutorial costs on the stand-in (and where its time
goes), nothing about Arkouda's speed, which comes from many locales working in parallel.

    python benchmarks/analysis.py [--rows 10000000]

Each step runs once (10 million rows is long enough to time); the stand-in and NumPy
results are compared, and a difference fails the run (exit 1). Results the notebook
keeps on the server (a sorted column, a permutation) are fetched for that comparison
outside the timing; small results (counts, group sums) are fetched inside it, as the
notebook does. On a shared machine the figures move with its load: compare ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from arkouda_k8s.sandbox.arkouda_server import StandInProcess  # noqa: E402

CHANNELS = np.array(
    ["web", "mobile-ios", "mobile-android", "api", "email", "partner-eu", "partner-us", "kiosk"]
)
NOTE = (
    "stand-in = the 2020.7.7 client + the sandbox's stand-in server (NumPy in one process "
    "behind Arkouda's wire protocol); it is NOT Arkouda and says nothing about Arkouda's speed"
)


def make_events(n: int, seed: int = 2026) -> dict[str, np.ndarray]:
    """The notebook's synthetic events (same generator, same seed)."""
    rng = np.random.default_rng(seed)
    user_id = rng.integers(0, 250_000, n)
    code = rng.choice(CHANNELS.size, n, p=[0.30, 0.20, 0.18, 0.12, 0.08, 0.05, 0.05, 0.02])
    start = np.datetime64("2026-11-01T00:00:00", "s").astype(np.int64)
    busy = 1.2 + np.sin((np.arange(24) - 9) * np.pi / 12)
    hour = rng.choice(24, n, p=busy / busy.sum())
    ts = start + rng.integers(0, 30, n) * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)
    amount = np.round(rng.gamma(2.0, 12.5, n), 2)
    watch = rng.choice(250_000, 500, replace=False)
    return {"user_id": user_id, "code": code, "ts": ts, "amount": amount, "watch": watch}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    n = parser.parse_args().rows
    try:
        import arkouda as ak
    except ImportError:
        print("needs the 2020.7.7 client: python scripts/install_arkouda_client.py")
        return 1
    d = make_events(n)
    rows: list[tuple[str, float, float | None, bool]] = []

    def step(name: str, on_standin: Callable[[], Any], on_numpy: Callable[[], Any] | None,
             same: Callable[[Any, Any], bool] | None = None,
             fetch: Callable[[Any], Any] | None = None) -> Any:  # fmt: skip
        # fetch: brings a result back for the comparison, outside the timing (the
        # notebook keeps such results on the server)
        t_ak, got = timed(on_standin)
        t_np, want = timed(on_numpy) if on_numpy else (None, None)
        if fetch is not None:
            got = fetch(got)
        ok = True if same is None else bool(same(got, want))
        rows.append((name, t_ak, t_np, ok))
        return got

    with StandInProcess("-nl", "2", "--authenticate=false", "--logLevel=LogLevel.ERROR") as srv:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ak.connect(srv.host, srv.port, timeout=600)
        try:
            ev = step(
                "upload 4 columns (ak.array)",
                lambda: {k: ak.array(d[k]) for k in ("user_id", "code", "ts", "amount")},
                None,
            )
            names = np.asarray(CHANNELS)
            channel = step(
                "strings from codes (names[codes])",
                lambda: ak.array(names)[ev["code"]],
                lambda: names[d["code"]],
            )
            np_channel = names[d["code"]]
            step(
                "filter: amount > 100, & channel == 'web'",
                lambda: (
                    int((ev["amount"] > 100).sum()),
                    int(((ev["amount"] > 100) & (channel == "web")).sum()),
                ),
                lambda: (
                    int((d["amount"] > 100).sum()),
                    int(((d["amount"] > 100) & (np_channel == "web")).sum()),
                ),
                lambda a, b: a == b,
            )

            def np_groupby(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                unique, inverse = np.unique(keys, return_inverse=True)
                return unique, np.bincount(inverse), np.bincount(inverse, d["amount"])

            def ak_groupby(keys: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                g = ak.GroupBy(keys)
                unique, sums = g.sum(ev["amount"])
                _, counts = g.count()
                return unique.to_ndarray(), counts.to_ndarray(), sums.to_ndarray()

            def same_groups(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
                return (
                    np.array_equal(a[0], b[0])
                    and np.array_equal(a[1], b[1])
                    and np.allclose(a[2], b[2], rtol=1e-9)
                )

            step(
                "GroupBy(user_id): sum + count",
                lambda: ak_groupby(ev["user_id"]),
                lambda: np_groupby(d["user_id"]),
                same_groups,
            )
            step(
                "GroupBy(channel) on strings",
                lambda: ak_groupby(channel),
                lambda: np_groupby(np_channel),
                same_groups,
            )
            step(
                "argsort(ts)",
                lambda: ak.argsort(ev["ts"]),
                lambda: np.argsort(d["ts"], kind="stable"),
                np.array_equal,
                fetch=lambda perm: perm.to_ndarray(),
            )
            step(
                "sort(ts)",
                lambda: ak.sort(ev["ts"]),
                lambda: np.sort(d["ts"]),
                np.array_equal,
                fetch=lambda ordered: ordered.to_ndarray(),
            )
            step(
                "unique(hour of day, counts)",
                lambda: tuple(
                    x.to_ndarray() for x in ak.unique((ev["ts"] // 3600) % 24, return_counts=True)
                ),
                lambda: np.unique((d["ts"] // 3600) % 24, return_counts=True),
                lambda a, b: all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)),
            )
            step(
                "in1d(user_id, 500 watched)",
                lambda: int(ak.in1d(ev["user_id"], ak.array(d["watch"])).sum()),
                lambda: int(np.isin(d["user_id"], d["watch"]).sum()),
                lambda a, b: a == b,
            )
            partners = np.array(["partner-eu", "partner-us"])
            step(
                "in1d(channel, 2 strings)",
                lambda: int(ak.in1d(channel, ak.array(partners)).sum()),
                lambda: int(np.isin(np_channel, partners).sum()),
                lambda a, b: a == b,
            )
            step(
                "Strings: startswith, endswith, contains, ==",
                lambda: [
                    int(m.sum())
                    for m in (
                        channel.startswith("mobile"),
                        channel.endswith("-eu"),
                        channel.contains("partner"),
                        channel == "api",
                    )
                ],
                lambda: [
                    int(m.sum())
                    for m in (
                        np.char.startswith(np_channel, "mobile"),
                        np.char.endswith(np_channel, "-eu"),
                        np.char.find(np_channel, "partner") >= 0,
                        np_channel == "api",
                    )
                ],
                lambda a, b: a == b,
            )
            step(
                "histogram(amount, 40)",
                lambda: ak.histogram(ev["amount"], 40).to_ndarray(),
                lambda: np.histogram(d["amount"], 40)[0],
                np.array_equal,
            )
        finally:
            ak.disconnect()

    print(f"analysis tutorial steps, {n:,} rows, one run each")
    print(f"  ({NOTE})")
    print(f"  {'step':<44}{'stand-in':>10}{'NumPy':>10}{'ratio':>8}  same result")
    for name, t_ak, t_np, ok in rows:
        np_text = f"{t_np:9.2f}s" if t_np is not None else f"{'-':>10}"
        ratio = f"{t_ak / t_np:7.1f}x" if t_np else f"{'-':>8}"
        print(f"  {name:<44}{t_ak:9.2f}s{np_text}{ratio}  {'yes' if ok else 'NO'}")
    total_ak = sum(r[1] for r in rows)
    total_np = sum(r[2] or 0.0 for r in rows)
    print(f"  {'total':<44}{total_ak:9.2f}s{total_np:9.2f}s")
    print(f"  ({NOTE})")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
