"""Arkouda's segmented strings for the stand-in server, as vectorised NumPy.

A ``SegString`` is what Arkouda keeps on the server for a ``Strings`` array: one
``uint8`` buffer holding every string followed by a NUL byte, and the ``int64`` offset
where each string starts. Every operation here works on those two arrays without a
Python loop per string (ten million rows must stay in seconds on a small machine),
except a regular expression that is not a plain literal, which falls back to ``re``.

Ordering: strings sort by their UTF-8 bytes (what Arkouda's sort on Strings does), so
grouping, ``unique`` and ``argsort`` all agree with NumPy's ``np.unique`` / ``np.argsort``
on the same strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Rows handled at once where a step needs one index per byte (bounded temporary memory).
_CHUNK_ROWS = 1 << 20


@dataclass(frozen=True)
class SegString:
    offsets: np.ndarray  # int64: where each string starts in ``values``
    values: np.ndarray  # uint8: the strings, each followed by a NUL byte

    @property
    def size(self) -> int:
        return int(self.offsets.size)

    @property
    def nbytes(self) -> int:
        return int(self.values.size)

    def lengths(self) -> np.ndarray:
        """Bytes of each string, without its NUL terminator."""
        ends = np.empty(self.size, dtype=np.int64)
        ends[:-1] = self.offsets[1:]
        if self.size:
            ends[-1] = self.values.size
        return ends - self.offsets - 1


class StringsError(ValueError):
    """Malformed segmented-string data; ``str(exc)`` says what is wrong."""


def from_values(values: np.ndarray) -> SegString:
    """The strings in a NUL-terminated byte buffer (what clients upload)."""
    values = np.ascontiguousarray(values, dtype=np.uint8)
    if values.size and values[-1] != 0:
        raise StringsError("the string bytes must end with a NUL terminator")
    ends = np.flatnonzero(values == 0)
    offsets = np.zeros(ends.size, dtype=np.int64)
    offsets[1:] = ends[:-1] + 1
    return SegString(offsets, values)


def from_parts(offsets: np.ndarray, values: np.ndarray) -> SegString:
    """Offsets and bytes uploaded separately (they must describe the same strings)."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    values = np.ascontiguousarray(values, dtype=np.uint8)
    if offsets.size:
        if offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or offsets[-1] >= values.size:
            raise StringsError("offsets must start at 0, increase, and stay inside the bytes")
        if values[-1] != 0 or np.any(values[offsets[1:] - 1] != 0):
            raise StringsError("every string must end with a NUL terminator")
    elif values.size:
        raise StringsError("bytes without offsets")
    return SegString(offsets, values)


def from_list(strings: list[str]) -> SegString:
    """Strings from Python (tests and small arrays)."""
    return from_values(np.frombuffer(b"".join(s.encode() + b"\0" for s in strings), np.uint8))


def to_list(s: SegString) -> list[str]:
    data = s.values.tobytes()
    bounds = zip(s.offsets.tolist(), s.lengths().tolist(), strict=True)
    return [data[o : o + n].decode() for o, n in bounds]


# -------------------------------------------------------------------- gathering


def take(s: SegString, index: np.ndarray) -> SegString:
    """The strings at ``index`` (int positions, or a bool mask of ``s.size``)."""
    if index.dtype == np.bool_:
        index = np.flatnonzero(index)
    index = index.astype(np.int64, copy=False)
    sizes = s.lengths()[index] + 1  # with the terminator
    offsets = np.zeros(index.size, dtype=np.int64)
    np.cumsum(sizes[:-1], out=offsets[1:])
    total = int(sizes.sum())
    values = np.empty(total, dtype=np.uint8)
    starts = s.offsets[index]
    for lo in range(0, index.size, _CHUNK_ROWS):
        hi = min(lo + _CHUNK_ROWS, index.size)
        out_lo = int(offsets[lo])
        out_hi = int(offsets[hi]) if hi < index.size else total
        # source position of every output byte: its row's start shifted by the row's move
        shift = np.repeat(starts[lo:hi] - offsets[lo:hi], sizes[lo:hi])
        values[out_lo:out_hi] = s.values[shift + np.arange(out_lo, out_hi)]
    return SegString(offsets, values)


def concatenate(parts: list[SegString]) -> SegString:
    shifts = np.cumsum([0] + [p.nbytes for p in parts[:-1]])
    offsets = np.concatenate([p.offsets + shift for p, shift in zip(parts, shifts, strict=True)])
    return SegString(offsets.astype(np.int64), np.concatenate([p.values for p in parts]))


# ------------------------------------------------------------------ comparisons


def _byte_at(s: SegString, rows: np.ndarray, pos: np.ndarray | int) -> np.ndarray:
    return s.values[s.offsets[rows] + pos]


def equals_scalar(s: SegString, text: str) -> np.ndarray:
    """``s == text`` element-wise."""
    return _match_at(s, text.encode(), "full")


def equals(s: SegString, t: SegString) -> np.ndarray:
    """``s == t`` element-wise (same size)."""
    ls, lt = s.lengths(), t.lengths()
    rows = np.flatnonzero(ls == lt)
    result = np.zeros(s.size, dtype=np.bool_)
    k = 0
    while rows.size:
        finished = ls[rows] <= k  # every byte compared equal
        result[rows[finished]] = True
        rows = rows[~finished]
        rows = rows[_byte_at(s, rows, k) == _byte_at(t, rows, k)]
        k += 1
    return result


def _match_at(s: SegString, pattern: bytes, where: str) -> np.ndarray:
    """Rows whose bytes equal ``pattern`` at the start, end, or as the whole string."""
    m = len(pattern)
    lengths = s.lengths()
    rows = np.flatnonzero(lengths == m if where == "full" else lengths >= m)
    base = s.offsets[rows] + (lengths[rows] - m if where == "end" else 0)
    for k, byte in enumerate(pattern):
        keep = s.values[base + k] == byte
        rows, base = rows[keep], base[keep]
    result = np.zeros(s.size, dtype=np.bool_)
    result[rows] = True
    return result


def contains(s: SegString, text: str) -> np.ndarray:
    """Rows that contain ``text`` anywhere."""
    pattern = np.frombuffer(text.encode(), dtype=np.uint8)
    m = pattern.size
    if m == 0:
        return np.ones(s.size, dtype=np.bool_)
    if s.nbytes < m:
        return np.zeros(s.size, dtype=np.bool_)
    # every position of the whole buffer at once; a match cannot span two strings
    # because the pattern holds no NUL and a NUL ends every string
    hits = s.values[: s.nbytes - m + 1] == pattern[0]
    for k in range(1, m):
        hits &= s.values[k : s.nbytes - m + 1 + k] == pattern[k]
    positions = np.flatnonzero(hits)
    result = np.zeros(s.size, dtype=np.bool_)
    result[np.searchsorted(s.offsets, positions, side="right") - 1] = True
    return result


def startswith(s: SegString, text: str) -> np.ndarray:
    return _match_at(s, text.encode(), "start")


def endswith(s: SegString, text: str) -> np.ndarray:
    return _match_at(s, text.encode(), "end")


_LITERAL = re.compile(r"(?:[^\\.^$*+?{}\[\]|()]|\\[^A-Za-z0-9])*")


def search(s: SegString, pattern: str) -> np.ndarray:
    """``re.search`` per row; what v2023 clients send for contains/startswith/endswith.

    Those clients escape a plain substring and add ``^`` or ``$``: such a pattern is a
    literal and runs vectorised. Any other regular expression runs row by row.
    """
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    body = pattern[1 if start else 0 : len(pattern) - 1 if end else len(pattern)]
    if "\0" not in body and _LITERAL.fullmatch(body):
        literal = re.sub(r"\\(.)", r"\1", body)
        if start and end:
            return equals_scalar(s, literal)
        if start:
            return startswith(s, literal)
        if end:
            return endswith(s, literal)
        return contains(s, literal)
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise StringsError(f"invalid regular expression {pattern!r}: {exc}") from None
    return np.fromiter((compiled.search(v) is not None for v in to_list(s)), np.bool_, s.size)


# --------------------------------------------------------------- ordering keys


def sort_words(s: SegString) -> list[np.ndarray]:
    """Big-endian ``uint64`` words of each string, NUL-padded: lexicographic order as ints.

    Strings hold no NUL, so two rows have equal words exactly when they are equal.
    """
    lengths = s.lengths()
    width = int(lengths.max()) if s.size else 0
    words = [np.zeros(s.size, dtype=np.uint64) for _ in range(max(1, -(-width // 8)))]
    rows = np.arange(s.size)
    for k in range(width):
        rows = rows[lengths[rows] > k]  # the rows still long enough shrink as k grows
        byte = s.values[s.offsets[rows] + k].astype(np.uint64)
        words[k // 8][rows] |= byte << np.uint64(8 * (7 - k % 8))
    return words


def _order(words: list[np.ndarray]) -> np.ndarray:
    if len(words) == 1:
        return np.argsort(words[0], kind="stable").astype(np.int64)
    return np.lexsort(words[::-1]).astype(np.int64)


def argsort(s: SegString) -> np.ndarray:
    """Stable lexicographic order of the rows."""
    return _order(sort_words(s))


def group_ids(s: SegString) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, segment starts in that order, each row's group number) of equal strings."""
    words = sort_words(s)
    order = _order(words)
    step = np.zeros(s.size, dtype=np.bool_)
    if s.size:
        step[0] = True
        for word in words:
            permuted = word[order]
            step[1:] |= permuted[1:] != permuted[:-1]
    segments = np.flatnonzero(step).astype(np.int64)
    ids = np.empty(s.size, dtype=np.int64)
    ids[order] = np.cumsum(step) - 1
    return order, segments, ids


def unique(s: SegString) -> tuple[SegString, np.ndarray]:
    """The distinct strings in sorted order and how often each occurs."""
    order, segments, _ = group_ids(s)
    counts = np.diff(np.append(segments, s.size)).astype(np.int64)
    return take(s, order[segments]), counts


# Up to this many distinct strings on the right, in1d compares each one (a pass over the
# left per string) instead of sorting both sides together.
_IN1D_SCAN = 32


def in1d(s: SegString, t: SegString) -> np.ndarray:
    """Rows of ``s`` that equal some row of ``t``."""
    if t.size <= 4 * _IN1D_SCAN:
        wanted = set(to_list(t))
        if len(wanted) <= _IN1D_SCAN:
            found = np.zeros(s.size, dtype=np.bool_)
            for text in wanted:
                found |= equals_scalar(s, text)
            return found
    _, _, ids = group_ids(concatenate([s, t]))
    return np.isin(ids[: s.size], ids[s.size :])


_MIX = np.uint64(0x9E3779B97F4A7C15)


def hash128(s: SegString) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes per row (equal strings, equal hashes), as Arkouda's segmentedHash."""
    h1 = s.lengths().astype(np.uint64) * _MIX
    h2 = ~h1
    with np.errstate(over="ignore"):
        for i, word in enumerate(sort_words(s)):
            h1 = _splitmix(h1 ^ word ^ np.uint64(i))
            h2 = _splitmix(h2 + word * _MIX)
    return h1.view(np.int64), h2.view(np.int64)


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + _MIX
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
