"""Stand-in Arkouda server for the sandbox: NumPy arrays behind Arkouda's wire protocol.

Not Arkouda. It honours ``arkouda_server``'s start contract as far as the sandbox needs
(flags, the token file, memMax, banner, self-registration of a Service + Endpoints
with ``--ExternalIntegration.systemType=SystemType.KUBERNETES`` and the INTEGRATION
daemon, exit when that fails) and answers the v2023 JSON and the 2020 text messages over one
command set on one ZeroMQ REP socket; its banner and ``getconfig`` say it is a stand-in.
Details: docs/internals.md, "Stand-in Arkouda server". Standalone::

    python -m arkouda_k8s.sandbox.arkouda_server --ServerPort=5555 -nl 2 --authenticate=false
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import zmq

from arkouda_k8s.sandbox import segstrings
from arkouda_k8s.sandbox.segstrings import SegString

DEFAULT_RELEASE = "v2023.05.05"
STAND_IN_NOTE = "arkouda-k8s sandbox stand-in: NumPy in one process, not Arkouda"
BINARY_PAYLOAD = b"BINARY_PAYLOAD"

log = logging.getLogger("arkouda_server")

DTYPES: dict[str, type] = {
    "int64": np.int64,
    "float64": np.float64,
    "bool": np.bool_,
    "uint8": np.uint8,
    "uint64": np.uint64,
}

_LOG_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


class ArkoudaError(Exception):
    """A command failed; ``str(exc)`` is the reply text (it starts with ``Error:``)."""


class Halted(Exception):
    """Self-registration failed: like the real server (the error escapes its main),
    the stand-in exits."""


# ----------------------------------------------------------------------------- options


@dataclass
class Options:
    port: int = 5555
    num_locales: int = 1
    authenticate: bool = False
    mem_max: int = 0
    mem_track: bool = False
    log_level: str = "INFO"
    release: str = DEFAULT_RELEASE
    host: str = "127.0.0.1"
    system_type: str = "NONE"
    daemon_types: tuple[str, ...] = ("DEFAULT",)
    ignored: list[str] = field(default_factory=list)

    @property
    def registers(self) -> bool:
        """ExternalIntegration registers only for Kubernetes with the INTEGRATION daemon."""
        return self.system_type == "KUBERNETES" and "INTEGRATION" in self.daemon_types


def _chapel_bool(value: str | None, flag: str) -> bool:
    if value is None:
        return True  # a bare `--flag` sets a Chapel bool config to true
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise SystemExit(f"arkouda_server: {flag}: invalid boolean {value!r}; use true or false")


def _release_from_env(env: dict[str, str]) -> str:
    if env.get("ARKOUDA_RELEASE"):
        return env["ARKOUDA_RELEASE"]
    image = env.get("SANDBOX_IMAGE", "")
    tail = image.rsplit("/", 1)[-1].split("@", 1)[0]  # a digest names no release
    if ":" in tail:
        return tail.split(":", 1)[1]
    return DEFAULT_RELEASE


def parse_options(argv: list[str], env: dict[str, str]) -> Options:
    """Parse arkouda_server's Chapel-style flags (``--Name=value``, ``-nl N``)."""
    opts = Options(release=_release_from_env(env), host=env.get("SANDBOX_POD_IP") or "127.0.0.1")
    if env.get("NUMLOCALES", "").isdigit():
        opts.num_locales = int(env["NUMLOCALES"])
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in ("-nl", "--numLocales") and i < len(args):
            value: str | None = args[i]
            i += 1
            name = "numLocales"
        elif arg.startswith("-nl") and arg[3:].lstrip("=").isdigit():
            name, value = "numLocales", arg[3:].lstrip("=")
        elif arg.startswith("--"):
            name, _, rest = arg[2:].partition("=")
            value = rest if "=" in arg else None
            name = name.rsplit(".", 1)[-1]  # --ServerConfig.memMax=... -> memMax
        else:
            opts.ignored.append(arg)
            continue
        try:
            if name == "numLocales":
                opts.num_locales = int(value or "")
            elif name == "ServerPort":
                opts.port = int(value or "")
            elif name == "authenticate":
                opts.authenticate = _chapel_bool(value, "--authenticate")
            elif name == "memMax":
                opts.mem_max = int(value or "0")
            elif name == "memTrack":
                opts.mem_track = _chapel_bool(value, "--memTrack")
            elif name == "logLevel":
                level = (value or "").rsplit(".", 1)[-1].upper()
                if level not in _LOG_LEVELS:
                    raise SystemExit(
                        f"arkouda_server: --logLevel: unknown level {value!r}; "
                        f"use LogLevel.{'|'.join(_LOG_LEVELS)}"
                    )
                opts.log_level = level
            elif name == "arkoudaVersion":
                opts.release = value or DEFAULT_RELEASE
            elif name == "systemType":
                opts.system_type = (value or "").rsplit(".", 1)[-1].upper()
            elif name == "daemonTypes":
                opts.daemon_types = tuple(
                    t.strip().rsplit(".", 1)[-1].upper() for t in (value or "").split(",")
                )
            else:
                opts.ignored.append(arg)  # real flags the stand-in has no use for
        except ValueError:
            raise SystemExit(f"arkouda_server: {arg}: invalid value") from None
    if opts.num_locales < 1:
        raise SystemExit("arkouda_server: -nl: the number of locales must be at least 1")
    return opts


# ----------------------------------------------------------------------- symbol table


@dataclass
class GroupByEntry:
    length: int
    ngroups: int


class SymbolTable:
    """Named server-side objects; counts array bytes against the memory limit."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.arrays: dict[str, np.ndarray] = {}
        self.groupbys: dict[str, GroupByEntry] = {}
        self.strings: dict[str, SegString] = {}  # v2023 Strings entries (one name each)
        self._nid = 0

    def next_name(self) -> str:
        self._nid += 1
        return f"id_{self._nid}"

    @property
    def bytes_used(self) -> int:
        arrays = sum(a.nbytes for a in self.arrays.values())
        return arrays + sum(s.offsets.nbytes + s.nbytes for s in self.strings.values())

    def mem_limit(self) -> int:
        """Per-locale limit: memMax, else 90% of physical memory (as Arkouda's getMemLimit)."""
        if self.opts.mem_max > 0:
            return self.opts.mem_max
        return int(0.9 * _physical_memory())

    def check_memory(self, additional: int) -> None:
        """Arkouda's overMemLimit: per-locale usage plus this locale's share of the new bytes."""
        # Chapel's runtime turns memory tracking on when memMax is set.
        if not (self.opts.mem_track or self.opts.mem_max > 0):
            return
        nl = self.opts.num_locales
        total = self.bytes_used // nl + additional // nl
        limit = self.mem_limit()
        if total > limit:
            msg = f"Error: Operation would exceed memory limit ({total},{limit})"
            log.error(msg)
            raise ArkoudaError(msg)

    def add(self, arr: np.ndarray, checked: bool = False) -> str:
        if not checked:
            self.check_memory(arr.nbytes)
        name = self.next_name()
        self.arrays[name] = np.ascontiguousarray(arr)
        return name

    def get(self, name: str, cmd: str) -> np.ndarray:
        try:
            return self.arrays[name]
        except KeyError:
            raise ArkoudaError(f"Error: {cmd}: unknown symbol: {name}") from None

    def delete(self, name: str) -> bool:
        found = self.arrays.pop(name, None) is not None
        found = self.groupbys.pop(name, None) is not None or found
        return self.strings.pop(name, None) is not None or found


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


# ------------------------------------------------------------------------------ args


class Args:
    """Command arguments by name, whichever wire format they came in."""

    def __init__(self, cmd: str, values: dict[str, Any]) -> None:
        self.cmd = cmd
        self.values = values

    def has(self, key: str) -> bool:
        return key in self.values

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.values:
            if default is not None:
                return default
            raise ArkoudaError(f"Error: {self.cmd}: missing argument {key}")
        value = self.values[key]
        return value if isinstance(value, str) else json.dumps(value)

    def integer(self, key: str, default: int | None = None) -> int:
        raw = self.text(key, None if default is None else str(default))
        try:
            return int(raw)
        except ValueError:
            try:
                return int(float(raw))
            except ValueError:
                raise ArkoudaError(
                    f"Error: {self.cmd}: argument {key}={raw!r} is not an integer"
                ) from None

    def flag(self, key: str, default: bool | None = None) -> bool:
        raw = self.text(key, None if default is None else str(default)).strip().lower()
        if raw in ("true", "1"):
            return True
        if raw in ("false", "0"):
            return False
        raise ArkoudaError(f"Error: {self.cmd}: argument {key}={raw!r} is not a boolean")

    def names(self, key: str) -> list[str]:
        value = self.values.get(key)
        if isinstance(value, list):
            return [str(v) for v in value]
        raw = self.text(key)
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return raw.split()
        return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


def _scalar(dtype: str, text: str, cmd: str) -> Any:
    try:
        if dtype == "bool":
            return np.bool_(text.strip().lower() in ("true", "1"))
        if dtype == "float64":
            return np.float64(float(text))
        if dtype == "uint64":
            return np.uint64(int(float(text)) if "." in text else int(text))
        if dtype in ("int64", "int"):
            return np.int64(int(float(text)) if "." in text else int(text))
        if dtype == "float":
            return np.float64(float(text))
    except ValueError:
        pass
    raise ArkoudaError(f"Error: {cmd}: cannot read {text!r} as {dtype}")


def _format_scalar(value: Any) -> str:
    """A scalar as '<dtype> <value>', what the clients' parse_single_value reads."""
    if isinstance(value, np.bool_ | bool):
        return f"bool {bool(value)}"
    if isinstance(value, np.floating | float):
        return f"float64 {float(value)!r}"
    if isinstance(value, np.unsignedinteger):
        return f"uint64 {int(value)}"
    return f"int64 {int(value)}"


# ---------------------------------------------------------------------------- commands

_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "//": np.floor_divide,
    "%": np.mod,
    "**": np.power,
    "<": np.less,
    ">": np.greater,
    "<=": np.less_equal,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
    "&": np.bitwise_and,
    "|": np.bitwise_or,
    "^": np.bitwise_xor,
    "<<": np.left_shift,
    ">>": np.right_shift,
}


class StringCommands:
    """Strings, ``in1d`` and ``histogram``: what the tutorials use beyond plain pdarrays.

    A 2020 client names a Strings array by its two pdarrays (``offsets+bytes``) and gets
    two pdarrays back; a v2023 client names one Strings entry and gets
    ``created <name> str ...+created bytes.size N``. Both reach the same kernels in
    ``segstrings.py``. Mixed into ``Commands``.
    """

    st: SymbolTable
    dialect: str

    def created(self, arr: np.ndarray, checked: bool = False) -> str:
        raise NotImplementedError  # Commands.created

    # ------------------------------------------------------------ helpers
    def _strings(self, a: Args, key: str, cmd: str) -> SegString:
        name = a.text(key)
        if name in self.st.strings:
            return self.st.strings[name]
        off, plus, vals = name.partition("+")
        if not plus:
            raise ArkoudaError(f"Error: {cmd}: unknown symbol: {name}")
        try:
            return segstrings.from_parts(self.st.get(off, cmd), self.st.get(vals, cmd))
        except segstrings.StringsError as exc:
            raise ArkoudaError(f"Error: {cmd}: {exc}") from None

    def created_strings(self, s: SegString) -> str:
        if self.dialect == "2020":
            return f"{self.created(s.offsets)}+{self.created(s.values)}"
        self.st.check_memory(s.offsets.nbytes + s.nbytes)
        name = self.st.next_name()
        self.st.strings[name] = s
        return f"created {name} str {s.size} 1 ({s.size},) 8+created bytes.size {s.nbytes}"

    # ------------------------------------------------------------ creation
    def upload_strings(self, payload: bytes) -> str:
        """v2023 ``array`` with seg_string: the offsets and bytes as two pdarrays."""
        try:
            s = segstrings.from_values(np.frombuffer(payload, dtype=np.uint8))
        except segstrings.StringsError as exc:
            raise ArkoudaError(f"Error: array: {exc}") from None
        self.st.check_memory(s.offsets.nbytes + s.nbytes)
        return f"{self.created(s.offsets, checked=True)}+{self.created(s.values.copy(), True)}"

    def assemble_strings(self, a: Args) -> str:  # segStr-assemble
        offsets = self.st.get(a.text("offsets"), "segStr-assemble")
        values = self.st.get(a.text("values"), "segStr-assemble")
        try:
            return self.created_strings(segstrings.from_parts(offsets, values))
        except segstrings.StringsError as exc:
            raise ArkoudaError(f"Error: segStr-assemble: {exc}") from None

    def strings_tondarray(self, a: Args) -> bytes:  # segStr-tondarray
        s = self._strings(a, "obj", "segStr-tondarray")
        comp = a.text("comp")
        if comp not in ("offsets", "values"):
            raise ArkoudaError(f"Error: segStr-tondarray: unknown component {comp}")
        return (s.offsets if comp == "offsets" else s.values).tobytes()

    # ---------------------------------------------------------- operations
    def segmented_binop_vs(self, a: Args) -> str:
        s = self._strings(a, "obj", "segmentedBinopvs")
        op = a.text("op")
        if op not in ("==", "!="):
            raise ArkoudaError(f"Error: segmentedBinopvs: unsupported operator {op}")
        equal = segstrings.equals_scalar(s, a.text("other"))
        return self.created(equal if op == "==" else ~equal)

    def segmented_binop_vv(self, a: Args) -> str:
        s = self._strings(a, "obj", "segmentedBinopvv")
        t = self._strings(a, "other", "segmentedBinopvv")
        op = a.text("op")
        if op not in ("==", "!="):
            raise ArkoudaError(f"Error: segmentedBinopvv: {op} not supported by the stand-in")
        if s.size != t.size:
            raise ArkoudaError(f"Error: segmentedBinopvv: size mismatch {s.size} {t.size}")
        equal = segstrings.equals(s, t)
        return self.created(equal if op == "==" else ~equal)

    def segmented_efunc(self, a: Args) -> str:  # 2020 contains / startswith / endswith
        s = self._strings(a, "obj", "segmentedEfunc")
        funcs = {
            "contains": segstrings.contains,
            "startswith": segstrings.startswith,
            "endswith": segstrings.endswith,
        }
        subcmd = a.text("subcmd")
        if subcmd not in funcs:
            raise ArkoudaError(f"Error: segmentedEfunc: {subcmd} not supported by the stand-in")
        return self.created(funcs[subcmd](s, a.text("val")))

    def segmented_search(self, a: Args) -> str:  # v2023 contains / startswith / endswith
        s = self._strings(a, "obj", "segmentedSearch")
        try:
            return self.created(segstrings.search(s, a.text("val")))
        except segstrings.StringsError as exc:
            raise ArkoudaError(f"Error: segmentedSearch: {exc}") from None

    def segment_lengths(self, a: Args) -> str:
        return self.created(self._strings(a, "obj", "segmentLengths").lengths())

    def segmented_index(self, a: Args) -> str:
        s = self._strings(a, "obj", "segmentedIndex")
        subcmd = a.text("subcmd")
        if subcmd == "intIndex":
            i = a.integer("key")
            if i < 0:
                i += s.size
            if not 0 <= i < s.size:
                raise ArkoudaError(f"Error: segmentedIndex: index {i} out of bounds {s.size}")
            value = s.values[s.offsets[i] : s.offsets[i] + s.lengths()[i]].tobytes().decode()
            return f'item str "{value}"'
        if subcmd == "sliceIndex":
            start, stop, stride = (int(v) for v in a.names("key"))
            return self.created_strings(segstrings.take(s, np.arange(start, stop, stride)))
        if subcmd == "pdarrayIndex":
            idx = self.st.get(a.text("key"), "segmentedIndex")
            if idx.dtype == np.bool_:
                if idx.size != s.size:
                    raise ArkoudaError(f"Error: segmentedIndex: size mismatch {s.size} {idx.size}")
            elif idx.dtype.kind not in "iu":
                raise ArkoudaError(f"Error: segmentedIndex: {idx.dtype.name} index")
            elif idx.size and (idx.min() < -s.size or idx.max() >= s.size):
                raise ArkoudaError(f"Error: segmentedIndex: index out of bounds for {s.size}")
            else:
                idx = np.where(idx < 0, idx + s.size, idx)
            return self.created_strings(segstrings.take(s, idx))
        raise ArkoudaError(f"Error: segmentedIndex: unknown subcommand {subcmd}")

    def segmented_hash(self, a: Args) -> str:
        h1, h2 = segstrings.hash128(self._strings(a, "obj", "segmentedHash"))
        return f"{self.created(h1)}+{self.created(h2)}"

    def segmented_group(self, a: Args) -> str:
        return self.created(segstrings.argsort(self._strings(a, "obj", "segmentedGroup")))

    def segmented_in1d(self, a: Args) -> str:
        s = self._strings(a, "obj", "segmentedIn1d")
        t = self._strings(a, "other", "segmentedIn1d")
        found = segstrings.in1d(s, t)
        return self.created(~found if a.flag("invert", False) else found)

    def unique_strings(self, a: Args) -> str:  # 2020: values+counts (v2023 groups by keys)
        values, counts = segstrings.unique(self._strings(a, "name", "unique"))
        if a.text("returnCounts", "False") == "True":
            return f"{self.created_strings(values)}+{self.created(counts)}"
        return self.created_strings(values)

    def argsort_strings(self, a: Args) -> str:
        return self.created(segstrings.argsort(self._strings(a, "name", "argsort")))

    def string_keys(self, name: str, cmd: str) -> list[np.ndarray]:
        """A Strings grouping key as integer columns that sort and group like the strings."""
        s = self._strings(Args(cmd, {"name": name}), "name", cmd)
        return segstrings.sort_words(s)

    # ------------------------------------------------------------ set ops, histogram
    def in1d(self, a: Args) -> str:
        left = self.st.get(a.text("pda1"), "in1d")
        right = self.st.get(a.text("pda2"), "in1d")
        return self.created(np.isin(left, right, invert=a.flag("invert", False)))

    def histogram(self, a: Args) -> str:
        arr = self.st.get(a.text("array"), "histogram")
        bins = a.integer("bins")
        if bins < 1:
            raise ArkoudaError("Error: histogram: bins must be at least 1")
        if arr.size == 0:
            return self.created(np.zeros(bins, dtype=np.int64))
        # Arkouda's binning: bins equal steps over [min, max], max in the last bin
        lo, hi = float(arr.min()), float(arr.max())
        width = (hi - lo) / bins
        if width == 0:
            index = np.zeros(arr.size, dtype=np.int64)
        else:
            index = ((arr.astype(np.float64) - lo) / width).astype(np.int64)
            np.minimum(index, bins - 1, out=index)
        return self.created(np.bincount(index, minlength=bins).astype(np.int64))


class Commands(StringCommands):
    """The command set, over normalized arguments; ``dialect`` is "2020" or "2023"."""

    def __init__(self, opts: Options, table: SymbolTable) -> None:
        self.opts = opts
        self.st = table
        self.dialect = "2023"
        self.user = ""

    # ------------------------------------------------------------------ helpers
    def attrib(self, name: str) -> str:
        arr = self.st.arrays[name]
        # The 2020 client parses the shape "(n)"; later servers print Chapel's "(n,)".
        shape = f"({arr.size})" if self.dialect == "2020" else f"({arr.size},)"
        return f"{name} {arr.dtype.name} {arr.size} 1 {shape} {arr.itemsize}"

    def created(self, arr: np.ndarray, checked: bool = False) -> str:
        return "created " + self.attrib(self.st.add(arr, checked=checked))

    def _dtype(self, name: str, cmd: str) -> np.dtype:
        if name not in DTYPES:
            raise ArkoudaError(f"Error: {cmd}: unrecognized type: {name}")
        return np.dtype(DTYPES[name])

    # ---------------------------------------------------------------- session
    def connect(self, a: Args) -> str:
        text = f"connected to arkouda server tcp://*:{self.opts.port}"
        if self.opts.authenticate and self.dialect == "2023":
            # The real server echoes the token here; clients print this line, so mask it.
            text += f" as user {self.user} with token ********"
        return text

    def disconnect(self, a: Args) -> str:
        return f"disconnected from arkouda server tcp://*:{self.opts.port}"

    def noop(self, a: Args) -> str:
        return "noop"

    def ruok(self, a: Args) -> str:
        return "imok"

    def getconfig(self, a: Args) -> str:
        return json.dumps(self.config())

    def config(self) -> dict[str, Any]:
        nl = self.opts.num_locales
        hostname = os.environ.get("HOSTNAME") or socket.gethostname()
        pus = os.cpu_count() or 1
        tasks = int(os.environ.get("CHPL_RT_NUM_THREADS_PER_LOCALE") or pus)
        mem = _physical_memory()
        return {
            "arkoudaVersion": self.opts.release,
            "standIn": True,
            "standInNote": STAND_IN_NOTE,
            "chplVersion": "none (stand-in)",
            "ZMQVersion": zmq.zmq_version(),
            "HDF5Version": "none (stand-in)",
            "serverHostname": hostname,
            "ServerPort": self.opts.port,
            "numLocales": nl,
            "numPUs": pus,
            "maxTaskPar": tasks,
            "physicalMemory": mem,
            "distributionType": "domain(1,int(64),false)",
            "LocaleConfigs": [
                {
                    "id": i,
                    "name": f"{hostname}-locale{i}",
                    "numPUs": pus,
                    "maxTaskPar": tasks,
                    "physicalMemory": mem,
                }
                for i in range(nl)
            ],
            "authenticate": self.opts.authenticate,
            "logLevel": f"LogLevel.{self.opts.log_level}",
            "logChannel": "LogChannel.CONSOLE",
            "regexMaxCaptures": 20,
            "byteorder": sys.byteorder,
            "autoShutdown": False,
            "serverInfoNoSplash": False,
            "memMax": self.opts.mem_max,
        }

    def getmemused(self, a: Args) -> str:
        used = self.st.bytes_used
        if self.dialect == "2020":
            return str(used)
        if a.flag("as_percent", False):
            limit = self.st.mem_limit() * self.opts.num_locales
            return str(round(used / limit * 100))
        return str(round(used / max(1, a.integer("factor", 1))))

    # -------------------------------------------------------------- creation
    def array(self, a: Args, payload: bytes) -> str:
        if a.flag("seg_string", False):
            return self.upload_strings(payload)
        dt = self._dtype(a.text("dtype"), "array")
        size = a.integer("size")
        expected = size * dt.itemsize
        if len(payload) != expected:
            raise ArkoudaError(
                f"Error: array: expected {expected} bytes for {size} {dt.name} but got "
                f"{len(payload)}"
            )
        self.st.check_memory(expected)
        # 2020 clients pack big-endian; v2023 clients send native byte order.
        wire = dt.newbyteorder(">") if self.dialect == "2020" else dt
        arr = np.frombuffer(payload, dtype=wire).astype(dt, copy=True)
        return self.created(arr, checked=True)

    def create(self, a: Args) -> str:
        dt = self._dtype(a.text("dtype"), "create")
        size = a.integer("size")
        self.st.check_memory(size * dt.itemsize)
        return self.created(np.zeros(size, dtype=dt), checked=True)

    def set(self, a: Args) -> str:
        arr = self.st.get(a.text("array"), "set")
        arr[:] = _scalar(arr.dtype.name, a.text("val"), "set")
        return f"set {a.text('array')} to {a.text('val')}"

    def arange(self, a: Args) -> str:
        start, stop, stride = a.integer("start"), a.integer("stop"), a.integer("stride")
        if stride == 0:
            raise ArkoudaError("Error: arange: stride must not be zero")
        n = max(0, -(-(stop - start) // stride))
        self.st.check_memory(n * 8)
        return self.created(np.arange(start, stop, stride, dtype=np.int64), checked=True)

    def randint(self, a: Args) -> str:
        size = a.integer("size")
        dt = self._dtype(a.text("dtype"), "randint")
        seed_text = a.text("seed", "None")
        seed = None if seed_text in ("None", "", "null") else int(seed_text)
        self.st.check_memory(size * dt.itemsize)
        rng = np.random.default_rng(seed)
        low, high = a.text("low"), a.text("high")
        if dt.name == "float64":
            arr = rng.uniform(float(low), float(high), size)
        elif dt.name == "bool":
            arr = rng.integers(0, 2, size).astype(np.bool_)
        else:
            lo, hi = int(float(low)), int(float(high))
            if hi <= lo:
                raise ArkoudaError(f"Error: randint: low ({lo}) must be below high ({hi})")
            arr = rng.integers(lo, hi, size, dtype=dt)
        return self.created(arr, checked=True)

    # ------------------------------------------------------------ arithmetic
    def _binop(self, op: str, left: Any, right: Any, cmd: str) -> str:
        fn = _BINOPS.get(op)
        if fn is None:
            raise ArkoudaError(f"Error: {cmd}: unsupported operator {op}")
        with np.errstate(all="ignore"):
            try:
                result = fn(left, right)
            except (TypeError, ValueError) as exc:
                ld = getattr(left, "dtype", type(left)).name
                rd = getattr(right, "dtype", type(right)).name
                raise ArkoudaError(f"Error: {cmd}: {ld} {op} {rd} not implemented") from exc
        return self.created(np.asarray(result))

    def binopvv(self, a: Args) -> str:
        left = self.st.get(a.text("a"), "binopvv")
        right = self.st.get(a.text("b"), "binopvv")
        if left.size != right.size:
            raise ArkoudaError(f"Error: binopvv: size mismatch {left.size} {right.size}")
        return self._binop(a.text("op"), left, right, "binopvv")

    def binopvs(self, a: Args) -> str:
        left = self.st.get(a.text("a"), "binopvs")
        value = _scalar(a.text("dtype"), a.text("value"), "binopvs")
        return self._binop(a.text("op"), left, value, "binopvs")

    def binopsv(self, a: Args) -> str:
        right = self.st.get(a.text("a"), "binopsv")
        value = _scalar(a.text("dtype"), a.text("value"), "binopsv")
        return self._binop(a.text("op"), value, right, "binopsv")

    def reduction(self, a: Args) -> str:
        op = a.text("op")
        arr = self.st.get(a.text("array"), "reduction")
        if arr.size == 0 and op in ("min", "max", "argmin", "argmax"):
            raise ArkoudaError(f"Error: reduction: {op} of an empty array")
        is_bool = arr.dtype == np.bool_
        funcs: dict[str, Callable[[np.ndarray], Any]] = {
            "sum": lambda x: np.sum(x, dtype=np.int64) if is_bool else np.sum(x),
            "prod": lambda x: np.prod(x, dtype=np.int64) if is_bool else np.prod(x),
            "min": np.min,
            "max": np.max,
            "any": lambda x: np.bool_(np.any(x)),
            "all": lambda x: np.bool_(np.all(x)),
            "argmin": lambda x: np.int64(np.argmin(x)),
            "argmax": lambda x: np.int64(np.argmax(x)),
            "is_sorted": lambda x: np.bool_(x.size < 2 or bool(np.all(x[:-1] <= x[1:]))),
        }
        if op not in funcs:
            raise ArkoudaError(f"Error: reduction: {op} {arr.dtype.name} not implemented")
        with np.errstate(all="ignore"):
            return _format_scalar(funcs[op](arr))

    # ------------------------------------------------------------- ordering
    def argsort(self, a: Args) -> str:
        if a.text("objType", "pdarray") in ("str", "Strings"):
            return self.argsort_strings(a)
        arr = self.st.get(a.text("name"), "argsort")
        return self.created(np.argsort(arr, kind="stable").astype(np.int64))

    def sort(self, a: Args) -> str:
        arr = self.st.get(a.text("array"), "sort")
        return self.created(np.sort(arr, kind="stable"))

    def _segments(self, perm: np.ndarray, keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Group boundaries of the permuted keys, and each group's first original index."""
        n = perm.size
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        step = np.zeros(n, dtype=bool)
        step[0] = True
        for key in keys:
            permuted = key[perm]
            step[1:] |= permuted[1:] != permuted[:-1]
        segments = np.flatnonzero(step).astype(np.int64)
        return segments, perm[segments].astype(np.int64)

    def _keys(self, names: list[str], types: list[str], cmd: str) -> list[np.ndarray]:
        keys = []
        for name, objtype in zip(names, types, strict=False):
            if objtype in ("str", "Strings"):
                keys.extend(self.string_keys(name, cmd))  # columns that group like the strings
                continue
            if objtype.lower() not in ("pdarray", "pdarrays"):
                raise ArkoudaError(
                    f"Error: {cmd}: {objtype} keys are not supported by the stand-in server"
                )
            keys.append(self.st.get(name, cmd))
        if not keys:
            raise ArkoudaError(f"Error: {cmd}: no keys given")
        if any(k.size != keys[0].size for k in keys):
            raise ArkoudaError(f"Error: {cmd}: key arrays must all be the same size")
        return keys

    def _group(self, keys: list[np.ndarray], assume_sorted: bool) -> np.ndarray:
        if assume_sorted:
            return np.arange(keys[0].size, dtype=np.int64)
        # lexsort sorts by the last key first; Arkouda's coargsort treats the first as major.
        return np.lexsort(keys[::-1]).astype(np.int64)

    def findSegments(self, a: Args) -> str:  # noqa: N802 - the wire name
        perm = self.st.get(a.text("perm"), "findSegments")
        keys = self._keys(a.names("keynames"), a.names("keytypes"), "findSegments")
        segments, ukeyidx = self._segments(perm, keys)
        return f"{self.created(segments)} +{self.created(ukeyidx)}"

    def createGroupBy(self, a: Args) -> str:  # noqa: N802 - the wire name
        keys = self._keys(a.names("keynames"), a.names("keytypes"), "createGroupBy")
        perm = self._group(keys, a.flag("assumeSortedStr", False))
        segments, ukeyidx = self._segments(perm, keys)
        name = self.st.next_name()
        self.st.groupbys[name] = GroupByEntry(length=perm.size, ngroups=segments.size)
        return json.dumps(
            {
                "groupby": f"created {name} {perm.size} {segments.size}",
                "permutation": self.created(perm),
                "segments": self.created(segments),
                "uniqueKeyIdx": self.created(ukeyidx),
            }
        )

    def unique(self, a: Args) -> str:
        if a.has("keynames"):  # v2023: grouping keys in, key indices (+ grouping) out
            keys = self._keys(a.names("keynames"), a.names("keytypes"), "unique")
            perm = self._group(keys, a.flag("assumeSortedStr", False))
            segments, ukeyidx = self._segments(perm, keys)
            if a.flag("returnGroupStr", False):
                return "+".join([self.created(perm), self.created(segments), self.created(ukeyidx)])
            return self.created(ukeyidx)
        # 2020: `unique pdarray <name> True|False` -> values [+ counts]
        if a.text("objType", "pdarray") == "str":
            return self.unique_strings(a)
        if a.text("objType", "pdarray") != "pdarray":
            raise ArkoudaError(f"Error: unique: {a.text('objType')} is not supported")
        arr = self.st.get(a.text("name"), "unique")
        flag = a.text("returnCounts", "False")
        if flag not in ("True", "False"):
            raise ArkoudaError(f"Error: uniqueMsg: {flag}")
        if flag == "True":
            values, counts = np.unique(arr, return_counts=True)
            return f"{self.created(values)}+{self.created(counts.astype(np.int64))}"
        return self.created(np.unique(arr))

    def countReduction(self, a: Args) -> str:  # noqa: N802 - the wire name
        segments = self.st.get(a.text("segments"), "countReduction")
        size = a.integer("size")
        bounds = np.append(segments, size)
        return self.created(np.diff(bounds).astype(np.int64))

    def segmentedReduction(self, a: Args) -> str:  # noqa: N802 - the wire name
        values = self.st.get(a.text("values"), "segmentedReduction")
        segments = self.st.get(a.text("segments"), "segmentedReduction")
        op = a.text("op")
        if segments.size == 0:
            return self.created(np.zeros(0, dtype=values.dtype))
        counts = np.diff(np.append(segments, values.size))
        if np.any(counts <= 0):
            raise ArkoudaError("Error: segmentedReduction: empty segments are not supported")
        is_bool = values.dtype == np.bool_
        with np.errstate(all="ignore"):
            if op == "sum":
                src = values.astype(np.int64) if is_bool else values
                result = np.add.reduceat(src, segments)
            elif op == "prod" and not is_bool:
                result = np.multiply.reduceat(values, segments)
            elif op == "min" and not is_bool:
                result = np.minimum.reduceat(values, segments)
            elif op == "max" and not is_bool:
                result = np.maximum.reduceat(values, segments)
            elif op == "mean":
                result = np.add.reduceat(values.astype(np.float64), segments) / counts
            elif op == "any":
                result = np.logical_or.reduceat(values.astype(bool), segments)
            elif op == "all":
                result = np.logical_and.reduceat(values.astype(bool), segments)
            else:
                raise ArkoudaError(
                    f"Error: segmentedReduction: {op} {values.dtype.name} not implemented"
                )
        return self.created(np.asarray(result))

    # ------------------------------------------------------------- indexing
    def index_pdarray(self, a: Args) -> str:
        arr = self.st.get(a.text("array"), "[pdarray]")
        idx = self.st.get(a.text("idx"), "[pdarray]")
        if idx.dtype == np.bool_:
            if idx.size != arr.size:
                raise ArkoudaError(f"Error: [pdarray]: size mismatch {arr.size} {idx.size}")
            return self.created(arr[idx])
        if idx.dtype.kind not in "iu":
            raise ArkoudaError(f"Error: [pdarray]: {idx.dtype.name} index not implemented")
        if idx.size and (idx.min() < 0 or idx.max() >= arr.size):
            raise ArkoudaError(f"Error: [pdarray]: index out of bounds for size {arr.size}")
        return self.created(arr[idx])

    def index_int(self, a: Args) -> str:
        arr = self.st.get(a.text("array"), "[int]")
        i = a.integer("idx")
        if i < 0:
            i += arr.size
        if not 0 <= i < arr.size:
            raise ArkoudaError(f"Error: [int]: index {a.integer('idx')} out of bounds {arr.size}")
        return "item " + _format_scalar(arr[i])

    def index_slice(self, a: Args) -> str:
        arr = self.st.get(a.text("array"), "[slice]")
        return self.created(
            arr[a.integer("start") : a.integer("stop") : a.integer("stride")].copy()
        )

    # ------------------------------------------------------------- transfer
    def tondarray(self, a: Args) -> bytes:
        arr = self.st.get(a.text("array"), "tondarray")
        if self.dialect == "2020":
            return arr.astype(arr.dtype.newbyteorder(">"), copy=False).tobytes()
        return arr.tobytes()

    # ------------------------------------------------------------ inspection
    def info(self, a: Args) -> str:
        raw = a.text("names")
        if raw == "__AllSymbols__":
            names = list(self.st.arrays)
        elif raw.startswith("["):
            names = [str(n) for n in json.loads(raw)]
        else:
            names = [raw]
        for n in names:
            self.st.get(n, "info")
        if self.dialect == "2020":
            return "".join(
                f'name:"{n}" dtype:"{arr.dtype.name}" size:{arr.size} ndim:1 '
                f"shape:({arr.size}) itemsize:{arr.itemsize}\n"
                for n in names
                for arr in [self.st.arrays[n]]
            )
        return json.dumps(
            [
                {
                    "name": n,
                    "dtype": arr.dtype.name,
                    "size": arr.size,
                    "ndim": 1,
                    "shape": [arr.size],
                    "itemsize": arr.itemsize,
                    "registered": False,
                }
                for n in names
                for arr in [self.st.arrays[n]]
            ]
        )

    def _text(self, a: Args, repr_form: bool) -> str:
        arr = self.st.get(a.text("array"), "repr" if repr_form else "str")
        thresh = a.integer("printThresh", 100)
        fmt: Callable[[Any], str]
        if arr.dtype == np.bool_:
            fmt = lambda v: str(bool(v))  # noqa: E731
        elif arr.dtype.kind == "f":
            fmt = lambda v: repr(float(v))  # noqa: E731
        else:
            fmt = lambda v: str(int(v))  # noqa: E731
        sep = ", " if repr_form else " "
        if arr.size == 0:
            body = ""
        elif arr.size < thresh or arr.size <= 6:
            body = sep.join(fmt(v) for v in arr)
        else:
            head = sep.join(fmt(v) for v in arr[:3])
            tail = sep.join(fmt(v) for v in arr[-3:])
            body = f"{head}{sep}...{sep}{tail}"
        return f"array([{body}])" if repr_form else f"[{body}]"

    def str_(self, a: Args) -> str:
        return self._text(a, repr_form=False)

    def repr_(self, a: Args) -> str:
        return self._text(a, repr_form=True)

    def delete(self, a: Args) -> str:
        name = a.text("name")
        self.st.delete(name)
        return f"deleted {name}"


# Command name -> method; shared by both wire formats.
_HANDLERS: dict[str, str] = {
    "connect": "connect",
    "disconnect": "disconnect",
    "noop": "noop",
    "ruok": "ruok",
    "getconfig": "getconfig",
    "getmemused": "getmemused",
    "create": "create",
    "set": "set",
    "arange": "arange",
    "randint": "randint",
    "binopvv": "binopvv",
    "binopvs": "binopvs",
    "binopsv": "binopsv",
    "reduction": "reduction",
    "argsort": "argsort",
    "sort": "sort",
    "unique": "unique",
    "findSegments": "findSegments",
    "createGroupBy": "createGroupBy",
    "countReduction": "countReduction",
    "segmentedReduction": "segmentedReduction",
    "[pdarray]": "index_pdarray",
    "[int]": "index_int",
    "[slice]": "index_slice",
    "info": "info",
    "str": "str_",
    "repr": "repr_",
    "delete": "delete",
    # Strings, in1d, histogram (StringCommands)
    "segmentedBinopvs": "segmented_binop_vs",
    "segmentedBinopvv": "segmented_binop_vv",
    "segmentedEfunc": "segmented_efunc",
    "segmentedSearch": "segmented_search",
    "segmentLengths": "segment_lengths",
    "segmentedIndex": "segmented_index",
    "segmentedHash": "segmented_hash",
    "segmentedGroup": "segmented_group",
    "segmentedIn1d": "segmented_in1d",
    "segStr-assemble": "assemble_strings",
    "in1d": "in1d",
    "histogram": "histogram",
}

# 2020 text messages: positional argument names, in wire order.
_TEXT_ARGS: dict[str, list[str]] = {
    "connect": [],
    "disconnect": [],
    "noop": [],
    "getconfig": [],
    "getmemused": [],
    "create": ["dtype", "size"],
    "set": ["array", "dtype", "val"],
    "arange": ["start", "stop", "stride"],
    "randint": ["size", "dtype", "low", "high"],
    "binopvv": ["op", "a", "b"],
    "binopvs": ["op", "a", "dtype", "value"],
    "binopsv": ["op", "dtype", "value", "a"],
    "reduction": ["op", "array"],
    "argsort": ["objType", "name"],
    "sort": ["array"],
    "unique": ["objType", "name", "returnCounts"],
    "countReduction": ["segments", "size"],
    "segmentedReduction": ["values", "segments", "op"],
    "[pdarray]": ["array", "idx"],
    "[int]": ["array", "idx"],
    "[slice]": ["array", "start", "stop", "stride"],
    "tondarray": ["array"],
    "info": ["names"],
    "str": ["array", "printThresh"],
    "repr": ["array", "printThresh"],
    "delete": ["name"],
    "in1d": ["pda1", "pda2", "invert"],
    "histogram": ["array", "bins"],
}


def _strings_text_args(cmd: str, text: str) -> Args:
    """2020 Strings messages name an array by ``<objType> <offsets> <bytes>`` and carry
    string values as a JSON list (which may hold spaces): read them into v2023 names."""
    f = text.split(maxsplit=6)
    try:
        if cmd == "segmentedBinopvv":
            f = text.split()
            values = {"op": f[1], "obj": f"{f[3]}+{f[4]}", "other": f"{f[6]}+{f[7]}"}
        elif cmd == "segmentedBinopvs":
            values = {"op": f[1], "obj": f"{f[3]}+{f[4]}", "other": json.loads(f[6])[0]}
        elif cmd == "segmentedEfunc":
            values = {"subcmd": f[1], "obj": f"{f[3]}+{f[4]}"}
            if f[1] in ("contains", "startswith", "endswith"):
                values["val"] = json.loads(f[6])[0]
        elif cmd == "segmentedIndex":
            f = text.split()
            key: Any = f[5:8] if f[1] == "sliceIndex" else f[5]
            values = {"subcmd": f[1], "obj": f"{f[3]}+{f[4]}", "key": key}
        elif cmd == "segmentedIn1d":
            f = text.split()
            values = {"obj": f"{f[2]}+{f[3]}", "other": f"{f[5]}+{f[6]}", "invert": f[7]}
        else:  # segmentLengths, segmentedHash, segmentedGroup: <objType> <offsets> <bytes>
            values = {"obj": f"{f[2]}+{f[3]}"}
    except (IndexError, ValueError, TypeError):
        raise ArkoudaError(f"Error: {cmd}: malformed message") from None
    return Args(cmd, values)


_STRINGS_TEXT = {
    "segmentedBinopvs",
    "segmentedBinopvv",
    "segmentedEfunc",
    "segmentLengths",
    "segmentedIndex",
    "segmentedHash",
    "segmentedGroup",
    "segmentedIn1d",
}


# ---------------------------------------------------------------------------- server


class StandInServer:
    """One REP socket, both wire formats, one command set."""

    def __init__(self, opts: Options, token: str | None) -> None:
        self.opts = opts
        self._token = token
        self.table = SymbolTable(opts)
        self.commands = Commands(opts, self.table)
        self.requests = 0
        self.replies = 0
        self.stopping = False
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(f"tcp://{opts.host}:{opts.port}")
        if opts.port == 0:
            endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
            opts.port = int(endpoint.rsplit(":", 1)[1])

    def __repr__(self) -> str:
        return f"StandInServer(port={self.opts.port}, authenticate={self.opts.authenticate})"

    # ------------------------------------------------------------------ loop
    def serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self.stopping:
            if not poller.poll(500):
                continue
            frames = self.socket.recv_multipart()
            self.requests += 1
            reply = self.handle(frames)
            self.replies += 1
            self.socket.send(reply)

    def close(self) -> None:
        # Linger so that the reply to `shutdown` still reaches the client.
        self.socket.close(linger=2000)
        self.context.term()

    def handle(self, frames: list[bytes]) -> bytes:
        head = frames[0]
        if head.lstrip()[:1] == b"{":
            return self._handle_json(frames)
        return self._handle_text(head)

    # --------------------------------------------------------- v2023 format
    def _reply(self, msg: str, msg_type: str = "NORMAL", user: str = "") -> bytes:
        return json.dumps({"msg": msg, "msgType": msg_type, "user": user}).encode()

    def _check_token(self, token: str) -> None:
        if not token or token == "None":
            raise ArkoudaError("Error: access to arkouda requires a token")
        # The real server repeats the submitted token in this error; the stand-in does not.
        if self._token is None or not hmac.compare_digest(token.encode(), self._token.encode()):
            raise ArkoudaError("Error: token does not match server token, check with server owner")

    def _handle_json(self, frames: list[bytes]) -> bytes:
        raw = frames[0]
        payload = b""
        if raw.endswith(BINARY_PAYLOAD):
            raw = raw[: -len(BINARY_PAYLOAD)]
            payload = frames[1] if len(frames) > 1 else b""
        user = "Unknown"
        cmd = ""
        self.commands.dialect = "2023"
        t0 = time.monotonic()
        try:
            try:
                request = json.loads(raw.decode())
                user = str(request.get("user", ""))
                cmd = str(request["cmd"])
                token = str(request.get("token") or "")
                size = int(request.get("size", -1))
                args = self._parse_json_args(cmd, request.get("args") or "", size)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                raise ArkoudaError(f"Error: malformed request message: {exc}") from None
            self.commands.user = user
            if self.opts.authenticate:
                self._check_token(token)
            log.info(">>> %s", cmd if cmd == "array" else f"{cmd} {self._loggable(args)}")
            if cmd == "shutdown":
                self.stopping = True
                return self._reply(f"shutdown server ({self.replies + 1} req)", user=user)
            result = self._dispatch(cmd, args, payload)
            if isinstance(result, bytes):
                return result
            return self._reply(result, user=user)
        except ArkoudaError as exc:
            log.error("<<< %s resulted in error %s", cmd, exc)
            if cmd in ("tondarray", "segStr-tondarray"):
                return str(exc).encode()
            return self._reply(str(exc), "ERROR", user)
        except UnrecognizedCommand:
            msg = f"Unrecognized command: {cmd}"
            log.error(msg)
            return self._reply(msg, "ERROR", user)
        except MemoryError:
            msg = "Error: out of memory in the stand-in server"
            log.error("<<< %s: %s", cmd, msg)
            return self._reply(msg, "ERROR", user)
        finally:
            log.debug("<<< %s took %.6f sec", cmd, time.monotonic() - t0)

    @staticmethod
    def _parse_json_args(cmd: str, args: Any, size: int) -> Args:
        values: dict[str, Any] = {}
        if size > 0 and args:
            items = json.loads(args) if isinstance(args, str) else args
            for item in items:
                obj = json.loads(item) if isinstance(item, str) else item
                values[str(obj["key"])] = obj.get("val")
        return Args(cmd, values)

    @staticmethod
    def _loggable(args: Args) -> str:
        return " ".join(f"{k}={v}" for k, v in args.values.items())[:500]

    def _dispatch(self, cmd: str, args: Args, payload: bytes) -> str | bytes:
        if cmd == "array":
            return self.commands.array(args, payload)
        if cmd == "tondarray":
            return self.commands.tondarray(args)
        if cmd == "segStr-tondarray":
            return self.commands.strings_tondarray(args)
        method = _HANDLERS.get(cmd)
        if method is None:
            raise UnrecognizedCommand(cmd)
        result: str = getattr(self.commands, method)(args)
        return result

    # ---------------------------------------------------------- 2020 format
    def _handle_text(self, raw: bytes) -> bytes:
        self.commands.dialect = "2020"
        self.commands.user = ""
        cmd = raw.split(b" ", 1)[0].decode(errors="replace")
        t0 = time.monotonic()
        try:
            if self.opts.authenticate:
                # 2020 text messages carry no token at all: refuse them all.
                raise ArkoudaError("Error: access to arkouda requires a token")
            if raw == b"shutdown":
                log.info(">>> shutdown")
                self.stopping = True
                return f"shutdown server ({self.replies + 1} req)".encode()
            if cmd == "array":
                log.info(">>> array [binary data]")
                parts = raw.split(b" ", 3)
                if len(parts) < 4:
                    raise ArkoudaError("Error: array: malformed message")
                args = Args("array", {"dtype": parts[1].decode(), "size": parts[2].decode()})
                return self.commands.array(args, parts[3]).encode()
            text = raw.decode()
            log.info(">>> %s", text[:500])
            fields = text.split()
            if cmd == "findSegments":
                args = self._find_segments_args(fields)
            elif cmd in _STRINGS_TEXT:
                args = _strings_text_args(cmd, text)
            elif cmd in _TEXT_ARGS:
                names = _TEXT_ARGS[cmd]
                args = Args(cmd, dict(zip(names, fields[1:], strict=False)))
            else:
                raise ArkoudaError(f"Error: unrecognized command: {text}")
            if cmd == "tondarray":
                return self.commands.tondarray(args)
            return str(getattr(self.commands, _HANDLERS[cmd])(args)).encode()
        except ArkoudaError as exc:
            log.error("<<< %s resulted in error %s", cmd, exc)
            return str(exc).encode()
        except UnicodeDecodeError:
            return b"Error: : unexpected error"
        except MemoryError:
            return b"Error: out of memory in the stand-in server"
        finally:
            log.debug("<<< %s took %.6f sec", cmd, time.monotonic() - t0)

    @staticmethod
    def _find_segments_args(fields: list[str]) -> Args:
        # findSegments <perm> <nkeys> <name>... <type>...
        if len(fields) < 3 or not fields[2].isdigit():
            raise ArkoudaError("Error: findSegments: malformed message")
        n = int(fields[2])
        return Args(
            "findSegments",
            {
                "perm": fields[1],
                "keynames": fields[3 : 3 + n],
                "keytypes": fields[3 + n : 3 + 2 * n],
            },
        )


class UnrecognizedCommand(Exception):
    pass


# ------------------------------------------------------------------ self-registration


class KubernetesRegistration:
    """Registers a selector-less Service + Endpoints the way ExternalIntegration does:
    EXTERNAL_SERVICE_NAME for the client port, then, with the METRICS daemon,
    METRICS_SERVICE_NAME for the metrics port (ServerDaemon.chpl)."""

    def __init__(self, env: dict[str, str], port: int, host: str, metrics: bool = False) -> None:
        self.env = env
        self.namespace = env.get("NAMESPACE") or "default"
        self.service = env.get("EXTERNAL_SERVICE_NAME") or "arkouda"
        self.service_port = int(env.get("EXTERNAL_SERVICE_PORT") or 5555)
        self.target_port = int(env.get("EXTERNAL_SERVICE_TARGET_PORT") or port)
        self.endpoints = [(self.service, self.service_port, self.target_port)]
        if metrics:
            self.endpoints.append(
                (
                    env.get("METRICS_SERVICE_NAME", ""),
                    int(env.get("METRICS_SERVICE_PORT") or 5556),
                    int(env.get("METRICS_SERVICE_TARGET_PORT") or 5556),
                )
            )
        self.ip = env.get("MY_IP") or env.get("SANDBOX_POD_IP") or host
        url = urlsplit(env.get("K8S_HOST") or "")
        self.api_host = url.hostname or "kubernetes.default.svc"
        self.api_port = url.port or 443
        self.created: list[str] = []

    def _address(self) -> tuple[str, int]:
        """The pod's "DNS": SANDBOX_HOST_ALIASES maps host:port to a loopback address."""
        for entry in self.env.get("SANDBOX_HOST_ALIASES", "").replace(";", ",").split(","):
            if "=" not in entry:
                continue
            src, dst = entry.strip().split("=", 1)
            shost, _, sport = src.rpartition(":")
            dhost, _, dport = dst.rpartition(":")
            if shost == self.api_host and int(sport or 443) == self.api_port:
                return dhost, int(dport)
        return self.api_host, self.api_port

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, str]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # As the real server (CURLOPT_SSL_VERIFYPEER 0): no verification of the API server.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(self.env["CERT_FILE"], self.env["KEY_FILE"])
        host, port = self._address()
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=15)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Accept": "application/json", "Host": f"{self.api_host}:{self.api_port}"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def _create(self, kind: str, resource: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        path = f"/api/v1/namespaces/{self.namespace}/{resource}"
        try:
            status, text = self._request("POST", path, body)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise Halted(
                f"ExternalSystemError: request to register {kind} {name} at "
                f"{self.env.get('K8S_HOST')} failed: {exc}"
            ) from None
        if status >= 400:
            try:
                reason = json.loads(text).get("message", text)
            except ValueError:
                reason = text.strip()
            raise Halted(
                f"ExternalSystemError: registering {kind} {name} returned HTTP {status}: "
                f"{reason}. Delete the existing entry first or grant the certificate's user "
                f"create on {resource}"
            )
        self.created.append(f"{path}/{name}")
        log.info("registered %s %s/%s", kind, self.namespace, name)

    def register(self) -> None:
        for name, port, target in self.endpoints:
            self._create(
                "Service",
                "services",
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name},
                    "spec": {"ports": [{"port": port, "protocol": "TCP", "targetPort": target}]},
                },
            )
            self._create(
                "Endpoints",
                "endpoints",
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": name},
                    "subsets": [
                        {
                            "addresses": [{"ip": self.ip}],
                            "ports": [{"port": target, "protocol": "TCP"}],
                        }
                    ],
                },
            )

    def deregister(self) -> None:
        for path in reversed(self.created):
            try:
                status, text = self._request("DELETE", path, None)
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                log.error("deregistering %s failed: %s", path, exc)
                continue
            if status >= 400 and status != 404:
                log.error("deregistering %s returned HTTP %s", path, status)
            else:
                log.info("deregistered %s", path)
        self.created.clear()


# ----------------------------------------------------------------- child process


class StandInProcess:
    """The stand-in as a child process on a free loopback port, for tests and benchmarks.

    ``with StandInProcess("-nl", "2", "--authenticate=false") as srv: srv.port`` starts
    it, waits (with a deadline) for its banner and stops it on exit. ``wait_for(text)``
    waits for a line of its log; ``output`` is everything it printed so far. It runs in
    ``cwd`` (default: a private temporary directory, removed at stop), where it keeps
    ``.arkouda/tokens.txt`` as the real server does.
    """

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        wait_banner: bool = True,
        startup_timeout: float = 30.0,
        cwd: str | None = None,
    ) -> None:
        self.args = list(args)
        self.cwd = cwd
        self._own_cwd: str | None = None
        self.env = env
        self.host = host
        self.wait_banner = wait_banner
        self.startup_timeout = startup_timeout
        self.port = 0
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"StandInProcess(host={self.host!r}, port={self.port})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def output(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def start(self) -> StandInProcess:
        if self.env is None:
            # The parent's own pod settings (in-cluster runs) must not leak in.
            skip = ("K8S_HOST", "SANDBOX_IMAGE", "ARKOUDA_RELEASE", "SANDBOX_POD_IP")
            env = {k: v for k, v in os.environ.items() if k not in skip}
        else:
            env = dict(self.env)
        env.setdefault("SANDBOX_POD_IP", self.host)
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [sys.executable, "-m", "arkouda_k8s.sandbox.arkouda_server", "--ServerPort=0"]
        if self.cwd is None:
            self._own_cwd = tempfile.mkdtemp(prefix="arkouda-stand-in-")
        # The package must import from any working directory.
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            cmd + self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=self.cwd or self._own_cwd,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_for("socket bound to tcp://", self.startup_timeout)
        self.port = int(line.split("tcp://", 1)[1].split()[0].rsplit(":", 1)[1])
        if self.wait_banner:
            self.wait_for("server listening on tcp://", self.startup_timeout)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The first output line containing ``text``; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    if text in line:
                        return line
                exited = self._proc is not None and self._proc.poll() is not None
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (exited and not self._reader_alive()):
                    raise TimeoutError(
                        f"stand-in server: no line with {text!r} within {timeout:.0f}s; "
                        f"output so far:\n{''.join(self._lines)[-2000:]}"
                    )
                self._cond.wait(min(remaining, 0.5))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit by itself; its exit code."""
        assert self._proc is not None
        return self._proc.wait(timeout)

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        if self._own_cwd is not None:
            shutil.rmtree(self._own_cwd, ignore_errors=True)
            self._own_cwd = None

    def __enter__(self) -> StandInProcess:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------ main


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s [arkouda_server] %(funcName)s Line %(lineno)d %(levelname)s "
            "[stand-in] %(message)s",
            datefmt="%Y-%m-%d:%H:%M:%S",
        )
    )
    log.handlers[:] = [handler]
    log.setLevel(_LOG_LEVELS[level])
    log.propagate = False


def _banner(server: StandInServer) -> str:
    opts = server.opts
    url = f"tcp://{opts.host}:{opts.port}"
    if opts.authenticate:
        # The real banner shows the token; pod logs are readable by many, so the
        # stand-in names where the token lives instead.
        url += f"?token=<in {TOKENS_FILE}>"
    lines = [
        f"server listening on {url}",
        f"arkouda server version = {opts.release}",
        STAND_IN_NOTE,
        f"number of locales = {opts.num_locales}",
    ]
    if opts.mem_track or opts.mem_max:
        lines.append(f"memory limit = {server.table.mem_limit()}")
        lines.append(f"bytes of memory used = {server.table.bytes_used}")
    width = max(len(s) for s in lines) + 4
    border = "*" * (width + 2)
    body = [f"* {s.center(width - 2)} *" for s in lines]
    return "\n".join(["", border, *body, border, ""])


TOKENS_FILE = os.path.join(".arkouda", "tokens.txt")


def server_token(env: dict[str, str]) -> str:
    """The token the real server uses (Security.chpl): the last line of
    ``<cwd>/.arkouda/tokens.txt`` if it has one, else ARKOUDA_SERVER_TOKEN, else a new
    one; the last two are appended to the file. Opened read-write as the real server
    does (FileIO.chpl), so a read-only file fails here as it would there."""
    os.makedirs(".arkouda", exist_ok=True)
    if os.path.exists(TOKENS_FILE):
        with open(TOKENS_FILE, "r+") as f:
            lines = f.read().splitlines()
        if lines and lines[-1].strip():
            return lines[-1].strip()
    token = env.get("ARKOUDA_SERVER_TOKEN") or secrets.token_urlsafe(24)
    with open(TOKENS_FILE, "a") as f:
        f.write(token + "\n")
    return token


def main(argv: list[str] | None = None) -> int:
    env = dict(os.environ)
    opts = parse_options(list(sys.argv[1:] if argv is None else argv), env)
    _setup_logging(opts.log_level)
    if opts.ignored:
        log.debug("flags without effect in the stand-in: %s", " ".join(opts.ignored))

    token: str | None = None
    if opts.authenticate:
        try:
            token = server_token(env)
        except OSError as exc:
            log.error("cannot use %s: %s", TOKENS_FILE, exc)
            return 1

    stop = {"requested": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["requested"] = True
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        server = StandInServer(opts, token)
    except zmq.ZMQError as exc:
        log.error("cannot bind tcp://%s:%s: %s", opts.host, opts.port, exc)
        return 1
    # Logged whatever the level: the port is bound from here on, answered or not.
    print(f"socket bound to tcp://{opts.host}:{opts.port}", flush=True)
    registration: KubernetesRegistration | None = None
    try:
        if opts.registers:
            registration = KubernetesRegistration(
                env, opts.port, opts.host, metrics="METRICS" in opts.daemon_types
            )
            try:
                registration.register()
            except Halted as exc:
                # The real server's ExternalSystemError escapes its main: it exits.
                log.error("%s", exc)
                log.error("arkouda server exited: self-registration failed")
                return 1
        print(_banner(server), flush=True)
        server.serve()
        log.info("requests = %d responseCount = %d; shutting down", server.requests, server.replies)
        if registration is not None:
            registration.deregister()
        return 0
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        with contextlib.suppress(Exception):
            server.close()


if __name__ == "__main__":
    sys.exit(main())
