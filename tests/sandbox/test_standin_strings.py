"""Strings, in1d and histogram on the stand-in server, checked against NumPy.

The 2020.7.7 client runs unmodified (what the tutorials use); the v2023 messages a
modern client sends for the same operations are built by hand over pyzmq.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import zmq

from arkouda_k8s.sandbox.arkouda_server import StandInProcess

ak = pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")

# empty, spaces, prefixes of one another, longer than one 8-byte word; ASCII because the
# 2020 client counts characters as bytes when it uploads (the v2023 test adds UTF-8)
WORDS = np.array(["web", "mobile-ios", "mobile-android", "", "a b", "api", "ap", "partner-feed-eu"])
UTF8_WORDS = np.append(WORDS, ["épée", "straße"])


@pytest.fixture(scope="module")
def server():
    with StandInProcess("-nl", "2", "--authenticate=false") as srv:
        yield srv


@pytest.fixture
def client(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 2020 client vs v2023.05.05 server
        ak.connect(server.host, server.port, timeout=30)
    yield ak
    ak.disconnect()


def test_strings_with_the_2020_client_match_numpy(client):
    rng = np.random.default_rng(3)
    codes = rng.integers(0, WORDS.size, 5000)
    want = WORDS[codes]
    words = ak.array(WORDS)  # upload
    assert words.to_ndarray().tolist() == WORDS.tolist()
    s = words[ak.array(codes)]  # gather on the server
    np.testing.assert_array_equal(s.to_ndarray(), want)
    assert s[4] == want[4] and s[-1] == want[-1]
    np.testing.assert_array_equal(s[10:40:3].to_ndarray(), want[10:40:3])
    np.testing.assert_array_equal(s[s == "api"].to_ndarray(), want[want == "api"])

    for got, expected in [
        (s == "api", want == "api"),
        (s != "a b", want != "a b"),
        (s == "", want == ""),
        (s.contains("mobile"), np.char.find(want, "mobile") >= 0),
        (s.contains("b"), np.char.find(want, "b") >= 0),
        (s.startswith("ap"), np.char.startswith(want, "ap")),
        (s.endswith("-eu"), np.char.endswith(want, "-eu")),
        (s.get_lengths(), np.array([len(w.encode()) for w in want])),
    ]:
        np.testing.assert_array_equal(got.to_ndarray(), expected)

    shuffled = rng.permutation(want)
    np.testing.assert_array_equal((s == ak.array(shuffled)).to_ndarray(), want == shuffled)

    values, counts = ak.unique(s, return_counts=True)
    nvalues, ncounts = np.unique(want, return_counts=True)
    assert values.to_ndarray().tolist() == nvalues.tolist()
    np.testing.assert_array_equal(counts.to_ndarray(), ncounts)

    perm = ak.argsort(s).to_ndarray()
    byte_order = sorted(range(want.size), key=lambda i: want[i].encode())
    np.testing.assert_array_equal(perm, byte_order)

    g = ak.GroupBy(s)  # the client hashes the strings, then groups by the two hashes
    keys, cnt = g.count()
    assert keys.to_ndarray().tolist() == nvalues.tolist()
    np.testing.assert_array_equal(cnt.to_ndarray(), ncounts)
    amounts = np.arange(want.size) * 2
    keys, sums = g.sum(ak.array(amounts))
    want_sums = [amounts[want == k].sum() for k in nvalues]
    np.testing.assert_array_equal(sums.to_ndarray(), want_sums)

    wanted = np.array(["api", "a b", "nowhere"])  # a few strings: compared one by one
    np.testing.assert_array_equal(ak.in1d(s, ak.array(wanted)).to_ndarray(), np.isin(want, wanted))
    many = np.array([f"w{i}" for i in range(200)] + ["web", "ap"])  # many: sorted together
    np.testing.assert_array_equal(ak.in1d(s, ak.array(many)).to_ndarray(), np.isin(want, many))


def test_in1d_and_histogram_with_the_2020_client_match_numpy(client):
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 10_000, 20_000)
    vip = rng.choice(10_000, 300, replace=False)
    a = ak.array(ids)
    np.testing.assert_array_equal(ak.in1d(a, ak.array(vip)).to_ndarray(), np.isin(ids, vip))
    for data in (rng.normal(50, 12, 20_000), ids, np.arange(0, 1000)):
        counts = ak.histogram(ak.array(data), 17).to_ndarray()
        np.testing.assert_array_equal(counts, np.histogram(data, 17)[0])
    assert ak.histogram(ak.array(np.full(10, 3.0)), 4).to_ndarray().tolist() == [10, 0, 0, 0]


def test_bad_strings_requests_answer_with_one_error_and_keep_serving(client):
    s = ak.array(WORDS)
    with pytest.raises(RuntimeError, match=r"^Error: segmentedBinopvs: unsupported operator <"):
        ak.client.generic_msg(
            f"segmentedBinopvs < str {s.offsets.name} {s.bytes.name} str " + json.dumps(["x"])
        )
    with pytest.raises(RuntimeError, match=r"^Error: segmentedIndex: unknown symbol: nope"):
        ak.client.generic_msg(f"segmentedIndex intIndex str nope {s.bytes.name} 0")
    with pytest.raises(RuntimeError, match=r"^Error: segmentedIndex: index 99 out of bounds"):
        ak.client.generic_msg(f"segmentedIndex intIndex str {s.offsets.name} {s.bytes.name} 99")
    assert s.to_ndarray().tolist() == WORDS.tolist()


# ------------------------------------------------------------------ v2023 messages


@pytest.fixture
def sock(server):
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 20000)
    s.connect(f"tcp://{server.host}:{server.port}")
    yield s
    s.close(0)
    ctx.term()


def _call(sock, cmd, payload=None, binary_reply=False, **args):
    items = [
        json.dumps({"key": k, "objType": "VALUE", "dtype": "str", "val": v})
        for k, v in args.items()
    ]
    msg = {
        "user": "tester",
        "token": "",
        "cmd": cmd,
        "format": "BINARY" if payload is not None else "STRING",
        "args": json.dumps(items),
        "size": len(items),
    }
    if payload is not None:
        sock.send(json.dumps(msg).encode() + b"BINARY_PAYLOAD", flags=zmq.SNDMORE)
        sock.send(payload)
    else:
        sock.send_string(json.dumps(msg))
    if binary_reply:
        return sock.recv()
    reply = json.loads(sock.recv_string())
    assert reply["msgType"] == "NORMAL", reply
    return reply["msg"]


def _fetch(sock, name, dtype):
    return np.frombuffer(_call(sock, "tondarray", binary_reply=True, array=name), dtype=dtype)


def _fetch_strings(sock, entry):
    offsets = np.frombuffer(
        _call(sock, "segStr-tondarray", binary_reply=True, obj=entry, comp="offsets"), np.int64
    )
    values = _call(sock, "segStr-tondarray", binary_reply=True, obj=entry, comp="values")
    ends = list(offsets[1:]) + [len(values)]
    return [values[o : e - 1].decode() for o, e in zip(offsets, ends, strict=True)]


def test_v2023_strings_conversation(sock):
    rng = np.random.default_rng(5)
    want = UTF8_WORDS[rng.integers(0, UTF8_WORDS.size, 3000)]
    payload = b"".join(w.encode() + b"\0" for w in want)
    parts = _call(
        sock, "array", payload=payload, dtype="uint8", size=str(len(payload)), seg_string="True"
    ).split("+")
    assert parts[0].split()[2:4] == ["int64", "3000"] and parts[1].split()[2] == "uint8"
    rep = _call(sock, "segStr-assemble", offsets=parts[0].split()[1], values=parts[1].split()[1])
    head, tail = rep.split("+")
    assert head.split()[2:4] == ["str", "3000"] and tail == f"created bytes.size {len(payload)}"
    entry = head.split()[1]
    assert _fetch_strings(sock, entry) == want.tolist()

    def mask(cmd, **args):
        return _fetch(sock, _call(sock, cmd, objType="str", obj=entry, **args).split()[1], bool)

    # what a v2023 client sends for contains, startswith, endswith (escaped literal + anchor)
    np.testing.assert_array_equal(
        mask("segmentedSearch", valType="str", val="mobile\\-"),
        np.char.find(want, "mobile-") >= 0,
    )
    np.testing.assert_array_equal(
        mask("segmentedSearch", valType="str", val="^ap"), np.char.startswith(want, "ap")
    )
    np.testing.assert_array_equal(
        mask("segmentedSearch", valType="str", val="b$"), np.char.endswith(want, "b")
    )
    np.testing.assert_array_equal(
        mask("segmentedSearch", valType="str", val="pée$"), np.char.endswith(want, "pée")
    )
    np.testing.assert_array_equal(  # a real regular expression: row by row
        mask("segmentedSearch", valType="str", val="^[a-z]+-(ios|eu)$"),
        [w in ("mobile-ios",) or w.endswith("-eu") and w.count("-") == 1 for w in want],
    )
    np.testing.assert_array_equal(
        mask("segmentedBinopvs", op="==", otherType="str", other="a b"), want == "a b"
    )

    lengths = _call(sock, "segmentLengths", objType="str", obj=entry).split()[1]
    np.testing.assert_array_equal(_fetch(sock, lengths, np.int64), [len(w.encode()) for w in want])

    rep = json.loads(
        _call(
            sock,
            "createGroupBy",
            assumeSortedStr="False",
            nkeys="1",
            keynames=json.dumps([entry]),
            keytypes=json.dumps(["str"]),
        )
    )
    segments = rep["segments"].split()[1]
    counts = _call(sock, "countReduction", segments=segments, size="3000").split()[1]
    nvalues, ncounts = np.unique(want, return_counts=True)
    np.testing.assert_array_equal(_fetch(sock, counts, np.int64), ncounts)
    first = rep["uniqueKeyIdx"].split()[1]
    keys = _call(
        sock,
        "segmentedIndex",
        subcmd="pdarrayIndex",
        objType="str",
        dtype="str",
        obj=entry,
        key=first,
    )
    assert _fetch_strings(sock, keys.split()[1]) == nvalues.tolist()

    wanted = b"api\0web\0"
    parts = _call(sock, "array", payload=wanted, dtype="uint8", size="8", seg_string="True").split(
        "+"
    )
    other = _call(
        sock, "segStr-assemble", offsets=parts[0].split()[1], values=parts[1].split()[1]
    ).split()[1]
    found = _call(
        sock,
        "segmentedIn1d",
        objType="str",
        obj=entry,
        otherType="str",
        other=other,
        invert="False",
    ).split()[1]
    np.testing.assert_array_equal(_fetch(sock, found, bool), np.isin(want, ["api", "web"]))

    data = rng.normal(size=1000)
    name = _call(
        sock, "array", payload=data.tobytes(), dtype="float64", size="1000", seg_string="False"
    ).split()[1]
    hist = _call(sock, "histogram", array=name, bins="9").split()[1]
    np.testing.assert_array_equal(_fetch(sock, hist, np.int64), np.histogram(data, 9)[0])
    used = int(_call(sock, "getmemused", factor="1"))
    _call(sock, "delete", name=entry)
    assert int(_call(sock, "getmemused", factor="1")) == used - 3000 * 8 - len(payload)
