"""The sandbox's simulated kubelet: the containers of bound pods run as local processes.

It owns everything between "the scheduler set ``spec.nodeName``" and "the pod object is
gone": a loopback pod IP (127.x.y.z, where the pod's processes bind), a private pod
directory on tmpfs holding mounted Secrets/ConfigMaps, the container processes (own
process group, output captured into per-container log rings), probes, restarts with
back-off, pod status and events, fault injection through pod annotations, and graceful
deletion. Idle containers (Arkouda locale images, images without a command) are not
processes at all: their declared TCP ports are asyncio listeners inside the kubelet, so
a few hundred locale pods cost almost nothing (numbers in docs/internals.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import images
from .container_init import find_program, secure_join
from .primitives import EventRecorder, parse_quantity, qos_class
from .pulls import Pulls
from .store import ApiError, match_labels

log = logging.getLogger(__name__)

FAULT_PREFIX = "sandbox.arkouda-k8s.dev/"
FAULTS = ("ImagePullBackOff", "Unschedulable", "OOMKilled", "CrashLoopBackOff", "NeverReady")

# Sandbox-short versions of the kubelet's timings (real: back-off 10 s doubling to 5 min).
BACKOFF_START = 1.0
BACKOFF_CAP = 10.0
BACKOFF_RESET_AFTER = 20.0  # a run this long forgets earlier crashes
GRACE_CAP = 5.0  # terminationGracePeriodSeconds is honoured up to this
OOM_AFTER = 1.0  # how long an OOMKilled-fault container lives
MOUNT_RETRY = 1.0
NEVER_READY_PERIOD = 2.0
LOG_RING_BYTES = 1 << 20
# How long a stop waits for the helper tasks it cancelled (probe loops, log readers) to
# end: a cancelled exec probe still kills and reaps its process, which takes a moment.
CANCEL_DEADLINE = 2.0
SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"

_SERVER_IMAGE = re.compile(r"(^|/)arkouda-(udp|smp)-server(:|@|$)")
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
_CONTAINER_INIT = str(Path(__file__).with_name("container_init.py"))
ISOLATION_ENV = "ARKOUDA_K8S_SANDBOX_ISOLATION"  # "off": run containers as before

_support_lock = threading.Lock()
_support: list[str | None] = []  # [reason] once known; None: containers are isolated


def container_support() -> str | None:
    """None when every container can get its own mount namespace here, else why not.

    Needs root (mount namespaces, overlay mounts, binding sshd to port 22), overlayfs,
    and the image models' programs from this machine: sshd and sudo. Checked once per
    process; the reason is logged once (the sandbox then runs containers as before).
    """
    with _support_lock:
        if not _support:
            _support.append(_check_support())
            if _support[0] is not None:
                log.warning(
                    "sandbox: containers run without their own filesystem view (%s); the "
                    "Arkouda images' scripts are replaced by the stand-in server, as before",
                    _support[0],
                )
        return _support[0]


def reserve_service_address() -> str | None:
    """An address for the API's in-cluster service (``kubernetes.default.svc:443``), for
    the API server's certificate and the kubelet's forwarder; None without isolation."""
    return _allocate_ip([443]) if container_support() is None else None


def _check_support() -> str | None:
    if os.environ.get(ISOLATION_ENV, "").lower() in ("0", "off", "no", "false"):
        return f"{ISOLATION_ENV}={os.environ[ISOLATION_ENV]}"
    if os.geteuid() != 0:
        return "not root: mount namespaces and overlay mounts need root"
    with contextlib.suppress(OSError):
        if "overlay" not in Path("/proc/filesystems").read_text():
            return "the kernel has no overlay filesystem"
    missing = [
        p for p in ("/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/sudo") if not os.path.exists(p)
    ]
    if missing:
        return f"{', '.join(missing)} missing (apt-get install openssh-server openssh-client sudo)"
    # The mounts container_init.py makes, once: an overlay of this machine's root with its
    # writable layer where the pod directories go (not every filesystem can hold one).
    scratch = Path(tempfile.mkdtemp(prefix="arkouda-k8s-probe-", dir=_tmpfs()))
    try:
        for d in ("layer", "upper", "work", "root"):
            (scratch / d).mkdir()
        options = f"lowerdir={scratch}/layer:/,upperdir={scratch}/upper,workdir={scratch}/work"
        probe = subprocess.run(
            ["unshare", "--mount", "--uts", "--propagation", "private"]
            + ["mount", "-t", "overlay", "overlay", "-o", options, str(scratch / "root")],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if probe.returncode != 0:
        return (
            f"no overlay mount in a new mount namespace: {probe.stderr.strip() or probe.returncode}"
        )
    return None


# Pod IPs come from 127.<base>.0.0 upward; the base is random per process so that two
# test processes on one machine rarely hand out the same address.
_ip_lock = threading.Lock()
_ips_in_use: set[str] = set()
_ip_next = int(ipaddress.IPv4Address(f"127.{random.randint(10, 200)}.0.1"))


def _allocate_ip(ports: list[int]) -> str:
    """A loopback address no other pod uses, with every declared port free on it."""
    global _ip_next
    with _ip_lock:
        for _ in range(1 << 16):
            addr = ipaddress.IPv4Address(_ip_next)
            _ip_next += 1
            if _ip_next >= int(ipaddress.IPv4Address("127.255.255.254")):
                _ip_next = int(ipaddress.IPv4Address("127.10.0.1"))
            ip = str(addr)
            if ip.endswith((".0", ".255")) or ip in _ips_in_use:
                continue
            if all(_port_free(ip, p) for p in ports):
                _ips_in_use.add(ip)
                return ip
    raise RuntimeError("no free loopback pod IP left")


def _release_ip(ip: str) -> None:
    with _ip_lock:
        _ips_in_use.discard(ip)


def _port_free(ip: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((ip, port))
        except PermissionError:
            return True  # a privileged port without root: nobody else holds it either
        except OSError:
            return False
    return True


# containerd's default capability set (what a container gets when its securityContext
# drops or adds nothing), by number (linux/capability.h).
CAPABILITY_NUMBERS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}  # fmt: skip
RUNTIME_DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)  # fmt: skip


def container_privileges(sc: dict[str, Any]) -> dict[str, Any]:
    """What a container's securityContext leaves it: the capability bounding set (by
    number) and no_new_privs (allowPrivilegeEscalation defaults to true: only an explicit
    false sets it)."""
    if sc.get("privileged"):
        return {"capabilities": sorted(CAPABILITY_NUMBERS.values()), "no_new_privs": False}
    caps = sc.get("capabilities") or {}
    drop = {str(x).upper().removeprefix("CAP_") for x in caps.get("drop") or []}
    add = {str(x).upper().removeprefix("CAP_") for x in caps.get("add") or []}
    keep = set() if "ALL" in drop else set(RUNTIME_DEFAULT_CAPABILITIES) - drop
    keep |= set(CAPABILITY_NUMBERS) if "ALL" in add else add
    return {
        "capabilities": sorted(CAPABILITY_NUMBERS[k] for k in keep if k in CAPABILITY_NUMBERS),
        "no_new_privs": sc.get("allowPrivilegeEscalation") is False,
    }


def rfc3339(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def rfc3339_nano(t: float) -> str:
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}000Z"


def normalise_image(image: str) -> str:
    """The fully qualified reference containerd reports: docker.io/library/x:latest."""
    name, sep, digest = image.partition("@")
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif "." not in first and ":" not in first and first != "localhost":
        name = "docker.io/" + name
    if not sep and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + (sep + digest if sep else "")


def image_id(image: str) -> str:
    full = normalise_image(image)
    repo = full.split("@")[0].rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(full.encode()).hexdigest()}"


def log_unavailable(message: str) -> ApiError:
    """A log read the real API answers with 400 Bad Request (the message says why)."""
    return ApiError(400, "BadRequest", message)


# ---------------------------------------------------------------------------------------
# Logs


class LogBuffer:
    """The output of one container run: timestamped pieces in a byte-bounded ring.

    A piece is a whole line or, when a process has written no newline yet, the partial
    tail (shown at once, as the CRI log format does); a timestamp starts each line.
    """

    def __init__(self, max_bytes: int = LOG_RING_BYTES) -> None:
        self._pieces: deque[tuple[float, bytes]] = deque()
        self._size = 0
        self._max = max_bytes
        self._seq = 0  # pieces ever appended
        self.closed = False
        self._waiters: list[asyncio.Future[None]] = []

    def write(self, data: bytes) -> None:
        now = time.time()
        for piece in data.splitlines(keepends=True):
            self._pieces.append((now, piece))
            self._size += len(piece)
            self._seq += 1
        while self._size > self._max and self._pieces:
            self._size -= len(self._pieces.popleft()[1])
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        for w in self._waiters:
            if not w.done():
                w.set_result(None)
        self._waiters.clear()

    def _select(self, tail_lines: int | None, since: float | None) -> list[tuple[float, bytes]]:
        pieces = list(self._pieces)
        if since is not None:
            pieces = [x for x in pieces if x[0] >= since]
        if tail_lines is not None:
            if tail_lines <= 0:
                return []
            ends = 0
            for i in range(len(pieces) - 1, -1, -1):
                if pieces[i][1].endswith(b"\n") and i != len(pieces) - 1:
                    ends += 1
                    if ends == tail_lines:
                        return pieces[i + 1 :]
        return pieces

    @staticmethod
    def _render(
        pieces: list[tuple[float, bytes]], timestamps: bool, at_start: bool = True
    ) -> bytes:
        if not timestamps:
            return b"".join(p for _, p in pieces)
        out = []
        for t, p in pieces:
            if at_start:
                out.append(rfc3339_nano(t).encode() + b" ")
            out.append(p)
            at_start = p.endswith(b"\n")
        return b"".join(out)

    def read(
        self,
        tail_lines: int | None = None,
        timestamps: bool = False,
        since: float | None = None,
        limit_bytes: int | None = None,
    ) -> bytes:
        out = self._render(self._select(tail_lines, since), timestamps)
        return out[:limit_bytes] if limit_bytes is not None else out

    async def follow(
        self, tail_lines: int | None = None, timestamps: bool = False, since: float | None = None
    ) -> AsyncIterator[bytes]:
        pieces = self._select(tail_lines, since)
        seen = self._seq
        at_start = True
        if pieces:
            yield self._render(pieces, timestamps)
            at_start = pieces[-1][1].endswith(b"\n")
        while True:
            if self._seq > seen:
                fresh = min(self._seq - seen, len(self._pieces))
                chunk = list(self._pieces)[-fresh:] if fresh else []
                seen = self._seq
                if chunk:
                    yield self._render(chunk, timestamps, at_start)
                    at_start = chunk[-1][1].endswith(b"\n")
                continue
            if self.closed:
                return
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut


# ---------------------------------------------------------------------------------------
# What a container runs


@dataclass
class Plan:
    """How the kubelet runs one container: ``argv`` for a process, None for idle."""

    argv: list[str] | None
    why: str


def plan_container(container: dict[str, Any], env: dict[str, str]) -> Plan:
    """The image table (docs/internals.md): stand-in server, idle, or the given command."""
    image = container.get("image") or ""
    command = [str(x) for x in container.get("command") or []]
    args = [str(x) for x in container.get("args") or []]
    words = command + args
    if _SERVER_IMAGE.search(image):
        if any(
            "start-arkouda-server.sh" in w
            or w.endswith(("/arkouda_server", "/arkouda_server_real"))
            for w in words
        ):
            nl = env.get("NUMLOCALES") or "1"
            return Plan(
                [sys.executable, "-m", "arkouda_k8s.sandbox.arkouda_server", "-nl", nl, *args],
                "stand-in Arkouda server",
            )
        if any("start-arkouda-locale.sh" in w for w in words) or not command:
            return Plan(None, "Arkouda locale (idle)")
    if not command:
        return Plan(None, "image without a command (idle)")
    return Plan(words, "command")


def _hand_over_token(env: dict[str, str], cwd: Path) -> None:
    """What the launch script does before it starts the server, for as long as the
    stand-in replaces the script: the token file copied where the server reads it."""
    source = env.get("ARKOUDA_K8S_TOKEN_FILE")
    if env.get("AUTHENTICATE") != "true" or not source or not os.path.isfile(source):
        return
    target = cwd / ".arkouda" / "tokens.txt"
    target.parent.mkdir(mode=0o700, exist_ok=True)
    _write_file(target, Path(source).read_bytes(), 0o600)


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


async def cancel_and_wait(
    tasks: Iterable[asyncio.Future[Any]], deadline: float = CANCEL_DEADLINE
) -> None:
    """Cancel ``tasks`` and wait (up to ``deadline``) until they have ended.

    A task only cancelled is still pending: if the loop stops before it has run to its
    end, Python reports "Task was destroyed but it is pending" and the subprocess it was
    reaping is left to a closed loop ("Event loop is closed"). Never raises for the
    tasks; a cancel of the caller still goes through.
    """
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=deadline)


def close_process(proc: asyncio.subprocess.Process) -> None:
    """Let go of a reaped process's pipes now, on the loop, not when it is collected:
    a subprocess transport collected after its loop closed fails with "Event loop is
    closed". asyncio.subprocess.Process has no public close, hence the transport."""
    transport = getattr(proc, "_transport", None)
    if transport is not None and proc.returncode is not None:
        transport.close()


def expand_vars(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names expand, ``$$`` escapes, others stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_REF.sub(sub, value)


class ConfigError(Exception):
    """A container cannot be configured yet (CreateContainerConfigError / FailedMount)."""


def confined_path(root: Path, path: str | Path) -> Path:
    """``path`` taken relative to ``root``, refused unless it stays strictly inside ``root``.

    The sandbox kubelet runs as root, and mount paths, ``subPath`` and volume item paths
    come from pod specs: a ``..`` or a link planted in a volume must not make it delete or
    write outside the pod's directory. ``..`` is folded first, then every directory on the
    way is resolved through its symlinks; the last component is kept as it is (a mount
    target is itself a link, to be replaced rather than followed). Callers act on the
    returned path, never on the one they passed in.
    """
    base = root.resolve()
    joined = Path(os.path.normpath(base / str(path).lstrip("/")))
    if joined == base or not joined.is_relative_to(base):
        raise ConfigError(f"path {str(path)!r} is outside the pod directory")
    full = joined.parent.resolve() / joined.name
    if not full.is_relative_to(base) or full == base:
        raise ConfigError(f"path {str(path)!r} is outside the pod directory")
    return full


# ---------------------------------------------------------------------------------------
# Runtimes: a real process, or an idle container made of asyncio listeners


async def spawn(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    pass_fds: tuple[int, ...] = (),
    *,
    interactive: bool = False,
) -> asyncio.subprocess.Process:
    """Start ``argv`` in its own process group: stdin closed, stdout and stderr piped as
    one stream (a container's log); ``interactive`` (an exec session): stdin, stdout and
    stderr each a pipe of its own.

    A cancel can land after the fork (the pod deleted, the exec's client gone); then the
    whole group is killed before the cancel goes on, so no process outlives the pod or
    the request that asked for it.
    """
    pipe = asyncio.subprocess.PIPE
    started = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=cwd,
            stdin=pipe if interactive else asyncio.subprocess.DEVNULL,
            stdout=pipe,
            stderr=pipe if interactive else asyncio.subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    )
    try:
        return await asyncio.shield(started)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            late = await started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(late.pid, signal.SIGKILL)
            await late.wait()
        raise


class ProcessRuntime:
    """One container process in its own process group, output into a LogBuffer."""

    def __init__(self, proc: asyncio.subprocess.Process, logbuf: LogBuffer) -> None:
        self.proc = proc
        self.pid: int | None = proc.pid
        self._reader = asyncio.ensure_future(self._pump(logbuf))

    @classmethod
    async def start(
        cls, argv: list[str], env: dict[str, str], cwd: str, logbuf: LogBuffer
    ) -> ProcessRuntime:
        return cls(await spawn(argv, env, cwd), logbuf)

    async def _pump(self, logbuf: LogBuffer) -> None:
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(65536):
            logbuf.write(chunk)

    def signal(self, sig: int) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def wait(self) -> int:
        code = await self.proc.wait()
        # Whatever the leader left behind in its group goes with it, like a container.
        self.signal(signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
        await cancel_and_wait([self._reader])  # a pipe a stray process kept open
        close_process(self.proc)
        return 128 - code if code < 0 else code


@dataclass(frozen=True)
class ExecCommand:
    """A process to start in a container: argv, environment, cwd, descriptors to pass."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    pass_fds: tuple[int, ...] = ()


class ContainerStartError(Exception):
    """The runtime could not start the container (the message is the runtime's)."""


async def _read_status(sock: socket.socket) -> tuple[bytes, list[int]]:
    """Everything container_init.py says on its status socket, and the descriptors it sent."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    data, fds = b"", []
    while True:
        try:
            msg, got, _, _ = socket.recv_fds(sock, 65536, 4)
        except BlockingIOError:
            readable: asyncio.Future[None] = loop.create_future()

            def wake(fut: asyncio.Future[None] = readable) -> None:
                if not fut.done():
                    fut.set_result(None)

            loop.add_reader(sock.fileno(), wake)
            try:
                await readable
            finally:
                loop.remove_reader(sock.fileno())
            continue
        fds += got
        if not msg and not got:
            return data, fds
        data += msg


def _mount_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def kill_namespace(ns: str) -> int:
    """SIGKILL every process in mount namespace ``ns`` (daemons that left the group)."""
    killed = 0
    for _ in range(5):
        found = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if _mount_namespace(pid) == ns:
                found += 1
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        killed += found
        if not found:
            break
    return killed


_reaping: set[asyncio.Future[int]] = set()


@contextlib.contextmanager
def plan_pipe(plan: dict[str, Any]) -> Iterator[int]:
    """A pipe's read end holding ``plan`` for container_init.py (closed on leaving).

    A pipe, not the command line: the plan holds the container's environment, which may
    carry a Secret's value.
    """
    data = json.dumps(plan).encode()
    plan_r, plan_w = os.pipe()
    try:
        try:
            if len(data) > 65536:
                fcntl.fcntl(plan_w, 1031, min(len(data) + 4096, 1 << 20))  # F_SETPIPE_SZ
            os.write(plan_w, data)
        finally:
            os.close(plan_w)
        yield plan_r
    finally:
        os.close(plan_r)


def container_init_argv(*fds: int) -> list[str]:
    return [sys.executable, "-I", "-S", _CONTAINER_INIT, *(str(fd) for fd in fds)]


# container_init.py's own environment (the container's is in its plan).
_INIT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


class NamespaceRuntime(ProcessRuntime):
    """A container process in its own mount namespace over its image (container_init.py).

    The container is everything in that namespace: when its main process ends, the
    rest (an sshd that daemonized, its sessions) is killed with it, as a runtime does.
    """

    namespace: str | None = None
    _ns_fd: int | None = None

    @classmethod
    async def start_in_namespace(cls, plan: dict[str, Any], logbuf: LogBuffer) -> NamespaceRuntime:
        ours, theirs = socket.socketpair()
        fd = theirs.fileno()
        try:
            with plan_pipe(plan) as plan_r:
                proc = await spawn(container_init_argv(plan_r, fd), _INIT_ENV, "/", (plan_r, fd))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self = cls(proc, logbuf)
        try:
            said, fds = await _read_status(ours)
        except BaseException:
            self.signal(signal.SIGKILL)
            _reaping.add(reaper := asyncio.ensure_future(self.wait()))  # no zombie left
            reaper.add_done_callback(_reaping.discard)
            raise
        finally:
            ours.close()
        if fds:
            self._ns_fd = fds[0]
            for extra in fds[1:]:
                os.close(extra)
            self.namespace = f"mnt:[{os.fstat(self._ns_fd).st_ino}]"
        failure = said.removeprefix(b"n").decode(errors="replace")
        if failure:
            await self.wait()
            raise ContainerStartError(failure)
        return self

    async def wait(self) -> int:
        code = await super().wait()
        fd, self._ns_fd = self._ns_fd, None  # one waiter sweeps and lets go
        if fd is not None:
            try:
                if self.namespace:
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(None, kill_namespace, self.namespace)
            finally:
                os.close(fd)
        return code


class IdleRuntime:
    """An idle container: TCP listeners on its declared ports at the pod IP, no process."""

    pid = None

    def __init__(self) -> None:
        self._servers: list[asyncio.Server] = []
        self.serving: set[tuple[str, int]] = set()
        self._done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(
        cls, ip: str, ports: list[int], logbuf: LogBuffer, banner: bytes
    ) -> IdleRuntime:
        self = cls()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if banner:
                    writer.write(banner)
                await reader.read()  # until the peer closes
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        virtual = []
        try:
            for port in ports:
                try:
                    self._servers.append(await asyncio.start_server(on_connect, ip, port))
                except PermissionError:
                    # Port 22 of a locale as non-root: no socket, but probes see it served.
                    virtual.append(port)
                self.serving.add((ip, port))
        except BaseException:
            for server in self._servers:  # cancelled or failed midway: no stray listener
                server.close()
            raise
        where = ", ".join(f"{ip}:{p}" for p in ports if p not in virtual) or "no ports"
        note = f"; ports {virtual} need root, served to probes only" if virtual else ""
        logbuf.write(f"sandbox: idle container started (listening on {where}{note})\n".encode())
        return self

    def signal(self, sig: int) -> None:
        if not self._done.done():
            self.serving.clear()
            for s in self._servers:
                s.close()
            self._done.set_result(128 + sig)

    async def wait(self) -> int:
        code = await asyncio.shield(self._done)  # a cancelled waiter must not end the container
        for s in self._servers:
            s.close()
        return code


Runtime = ProcessRuntime | NamespaceRuntime | IdleRuntime


# ---------------------------------------------------------------------------------------
# Containers and pods


@dataclass
class Container:
    spec: dict[str, Any]
    name: str
    image: str
    restart_count: int = 0
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    container_id: str | None = None
    log: LogBuffer | None = None
    previous_log: LogBuffer | None = None
    runtime: Runtime | None = None
    env: dict[str, str] = field(default_factory=dict)
    oom: bool = False
    killed_for_liveness: bool = False
    init: bool = False
    model: images.ImageModel = field(default_factory=lambda: images.ImageModel("generic", ""))

    def __post_init__(self) -> None:
        self.model = images.model_for(self.image)

    def ports(self) -> list[int]:
        return [
            int(p["containerPort"])
            for p in self.spec.get("ports") or []
            if p.get("containerPort") and (p.get("protocol") or "TCP") == "TCP"
        ]

    def resolve_port(self, port: Any) -> int:
        if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            return int(port)
        for p in self.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"port {port!r} is not a declared container port")


class PodWorker:
    """Runs one pod from bound to gone; all its state lives here, on the loop."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.pod = pod
        md = pod["metadata"]
        self.uid: str = md["uid"]
        self.namespace: str = md.get("namespace") or "default"
        self.name: str = md["name"]
        self.node: str = pod["spec"]["nodeName"]
        ann = md.get("annotations") or {}
        self.fault = ann.get(FAULT_PREFIX + "fault") or ""
        # fault-selector: the fault hits only the pods it selects (one component).
        only = ann.get(FAULT_PREFIX + "fault-selector")
        if only and not match_labels(only, md.get("labels")):
            self.fault = ""
        self.start_delay = _float(ann.get(FAULT_PREFIX + "start-delay-seconds"))
        self.kill_after = _float(ann.get(FAULT_PREFIX + "kill-after-seconds"))
        self.init_containers = {
            c["name"]: Container(c, c["name"], c.get("image") or "", init=True)
            for c in pod["spec"].get("initContainers") or []
        }
        self.containers = {
            c["name"]: Container(c, c["name"], c.get("image") or "")
            for c in pod["spec"].get("containers") or []
        }
        if self.init_containers:
            for c in self.containers.values():
                c.state = {"waiting": {"reason": "PodInitializing"}}
        self.init_failed = False
        ports = [p for c in self.containers.values() for p in c.ports()]
        self.ip = _allocate_ip(ports)
        self.dir = kubelet.root / self.uid
        self.mounts: list[tuple[str, Path]] = []  # (mount path, host path), longest first
        # Containers in their own mount namespaces (else: as before, see container_support).
        self.isolated = kubelet.isolated
        self.container_mounts: dict[str, list[dict[str, Any]]] = {}
        self.start_time = rfc3339()
        self.phase = "Pending"
        self.sandbox_ready = False
        self.stopping = False
        self.gone = False
        self._conditions: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._tasks: list[asyncio.Task[Any]] = []
        # Probe loops and fault timers of running containers: stop() awaits them too.
        self._helpers: set[asyncio.Future[Any]] = set()
        self.runtimes: set[Runtime] = set()  # started and not yet seen to end
        self.execs: set[asyncio.subprocess.Process] = set()  # `kubectl exec` sessions
        self._main = asyncio.ensure_future(self._run())

    # -- status ------------------------------------------------------------------------

    def mark_dirty(self) -> None:
        """Coalesce status writes: one store update per loop turn per pod."""
        if not self._dirty and not self.gone:
            self._dirty = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._dirty = False
        if self.gone:
            return
        store = self.kubelet.store
        cur = store.get("pods", self.namespace, self.name)
        if cur is None or cur["metadata"]["uid"] != self.uid:
            return
        cur["status"] = self._status(cur.get("status") or {})
        cur["metadata"].pop("resourceVersion", None)
        try:
            store.update("pods", cur, subresource="status")
        except Exception as exc:  # the pod may be gone between get and update
            log.debug("status update of %s/%s failed: %s", self.namespace, self.name, exc)

    def _compute_phase(self) -> str:
        policy = self.pod["spec"].get("restartPolicy") or "Always"
        if self.init_failed:
            return "Failed"
        if any(not c.ready for c in self.init_containers.values()):
            return "Pending"
        waiting = running = stopped = succeeded = 0
        for c in self.containers.values():
            if "running" in c.state:
                running += 1
            elif "terminated" in c.state:
                stopped += 1
                succeeded += c.state["terminated"]["exitCode"] == 0
            elif "terminated" in c.last_state:
                stopped += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if stopped:
            if policy == "Always":
                return "Running"
            if stopped == succeeded:
                return "Succeeded"
            return "Failed" if policy == "Never" else "Running"
        return "Pending"

    def _condition(
        self, ctype: str, ok: bool, reason: str | None = None, message: str | None = None
    ) -> dict[str, Any]:
        status = "True" if ok else "False"
        prev = self._conditions.get(ctype)
        cond: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None}
        cond["lastTransitionTime"] = (
            prev["lastTransitionTime"] if prev and prev["status"] == status else rfc3339()
        )
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self._conditions[ctype] = cond
        return cond

    def _status(self, old: dict[str, Any]) -> dict[str, Any]:
        phase = self.phase = self._compute_phase()
        unready = [c.name for c in self.containers.values() if not c.ready]
        if phase == "Succeeded":
            ready_args: tuple[bool, str | None, str | None] = (False, "PodCompleted", None)
        elif unready:
            ready_args = (
                False,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            )
        else:
            ready_args = (True, None, None)
        scheduled = [c for c in old.get("conditions") or [] if c.get("type") == "PodScheduled"]
        uninit = [c.name for c in self.init_containers.values() if not c.ready]
        conditions = [
            self._condition("PodReadyToStartContainers", self.sandbox_ready),
            self._condition("Initialized", not uninit, *self._init_reason(uninit)),
            self._condition("Ready", *ready_args),
            self._condition("ContainersReady", *ready_args),
            *scheduled,
        ]
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.kubelet.host_ip,
            "hostIPs": [{"ip": self.kubelet.host_ip}],
            "startTime": self.start_time,
            "containerStatuses": self._container_statuses(self.containers),
            "qosClass": old.get("qosClass") or qos_class(self.pod),
        }
        if self.init_containers:
            status["initContainerStatuses"] = self._container_statuses(self.init_containers)
        if self.sandbox_ready:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        return status

    @staticmethod
    def _init_reason(uninit: list[str]) -> tuple[str | None, str | None]:
        if not uninit:
            return None, None
        return (
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(uninit)}]",
        )

    @staticmethod
    def _container_statuses(containers: dict[str, Container]) -> list[dict[str, Any]]:
        statuses = []
        for c in containers.values():
            cs: dict[str, Any] = {
                "name": c.name,
                "image": normalise_image(c.image),
                "imageID": image_id(c.image) if c.container_id else "",
                "ready": c.ready,
                "started": c.started,
                "restartCount": c.restart_count,
                "state": copy.deepcopy(c.state),
                "lastState": copy.deepcopy(c.last_state),
            }
            if c.container_id:
                cs["containerID"] = c.container_id
            statuses.append(cs)
        return statuses

    def event(
        self, reason: str, message: str, *, warning: bool = False, container: str | None = None
    ) -> None:
        self.kubelet.events.record(
            self.pod,
            reason,
            message,
            warning=warning,
            field_path=(
                f"spec.{'initContainers' if container in self.init_containers else 'containers'}"
                f"{{{container}}}"
                if container
                else None
            ),
            component="kubelet",
            host=self.node,
        )

    # -- the pod's life ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._prepare()
            self.sandbox_ready = True
            self.mark_dirty()
            for c in self.init_containers.values():
                # One at a time, each to success, before any app container starts.
                await self._container_loop(c)
                if not c.ready:
                    self.init_failed = True
                    for main in self.containers.values():
                        main.state = {"waiting": {"reason": "PodInitializing"}}
                    self.mark_dirty()
                    return
            for c in self.containers.values():
                self._tasks.append(asyncio.ensure_future(self._container_loop(c)))
            await asyncio.gather(*self._tasks)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("pod %s/%s: kubelet worker failed", self.namespace, self.name)

    async def _prepare(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        if self.isolated:
            self._write_pod_files()
        self.mark_dirty()
        while True:
            try:
                self._mount_volumes()
                return
            except ConfigError as exc:
                self.event("FailedMount", str(exc), warning=True)
                await asyncio.sleep(MOUNT_RETRY)

    def _mount_volumes(self) -> None:
        """Write every volume into the pod dir; map mount paths onto it (or plan the mounts)."""
        store = self.kubelet.store
        vols: dict[str, Path] = {}
        for vol in self.pod["spec"].get("volumes") or []:
            name = vol["name"]
            where = confined_path(self.dir, f"volumes/{name}")
            if "hostPath" in vol and self.isolated:
                vols[name] = self._host_path(vol["hostPath"], name)
                continue
            if where.exists():
                shutil.rmtree(where)
            where.mkdir(parents=True, mode=0o700)
            if self.isolated:
                # What a runtime shows: emptyDir world-writable, the others root's 0755.
                os.chmod(where, 0o777 if "emptyDir" in vol else 0o755)
            vols[name] = where
            for kind, resource, key in (
                ("secret", "secrets", "secretName"),
                ("configMap", "configmaps", "name"),
            ):
                if kind in vol:
                    self._write_source(vol[kind], resource, key, where, name, store)
            if "projected" in vol and name.startswith("kube-api-access"):
                self._write_service_account(where)
            elif "projected" in vol:
                for src in vol["projected"].get("sources") or []:
                    for kind, resource in (("secret", "secrets"), ("configMap", "configmaps")):
                        if kind in src:
                            self._write_source(src[kind], resource, "name", where, name, store)
            if "downwardAPI" in vol:
                for item in vol["downwardAPI"].get("items") or []:
                    value = self._field_ref(item.get("fieldRef") or {})
                    _write_file(confined_path(where, item["path"]), value.encode(), 0o644)
        mounts: list[tuple[str, Path]] = []
        injected = any(n.startswith("kube-api-access") for n in vols)
        sa_dir: Path | None = None
        if not injected and self.pod["spec"].get("automountServiceAccountToken") is not False:
            sa_dir = self.dir / SA_PATH.lstrip("/")
            self._write_service_account(sa_dir)
            mounts.append((SA_PATH, sa_dir))
        if self.isolated:
            self._plan_mounts(vols, sa_dir)
            return
        for c in self.containers.values():
            for vm in c.spec.get("volumeMounts") or []:
                src = vols.get(vm.get("name", ""))
                if src is None:
                    continue  # e.g. the service-account token volume: nothing to offer
                if vm.get("subPath"):
                    src = confined_path(src, vm["subPath"])
                mount_path = "/" + vm["mountPath"].strip("/")
                target = confined_path(self.dir, mount_path)
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.is_dir():
                    shutil.rmtree(target)
                target.symlink_to(src)
                mounts.append((mount_path, target))
        self.mounts = sorted(set(mounts), key=lambda m: -len(m[0]))

    def _host_path(self, source: dict[str, Any], vol: str) -> Path:
        """A hostPath on the sandbox's node: a directory tree the kubelet keeps, shared by
        the node's pods (never this machine's own files)."""
        path = str(source.get("path") or "/")
        kind = source.get("type") or ""
        node_root = self.kubelet.root / "node"
        node_root.mkdir(mode=0o755, exist_ok=True)
        where = Path(secure_join(str(node_root), path))
        if not where.exists():
            if kind in ("", "DirectoryOrCreate"):
                # As the kubelet (or, untyped, containerd) creates it: root's, 0755, so
                # the image's user cannot write there.
                where.mkdir(parents=True, mode=0o755)
            elif kind == "FileOrCreate":
                where.parent.mkdir(parents=True, exist_ok=True)
                _write_file(where, b"", 0o644)
            else:
                what = "directory" if kind == "Directory" else kind.lower()
                raise ConfigError(
                    f'MountVolume.SetUp failed for volume "{vol}" : hostPath type check failed: '
                    f"{path} is not a {what}"
                )
        return where

    def _plan_mounts(self, vols: dict[str, Path], sa_dir: Path | None) -> None:
        """Each container's bind mounts, parents before children (container_init.py)."""
        pod_files: list[dict[str, Any]] = [
            {"path": d, "source": d, "readOnly": True} for d in images.host_dirs()
        ]
        pod_files += [
            {"path": "/etc/hosts", "source": str(self.dir / "etc-hosts")},
            {"path": "/etc/hostname", "source": str(self.dir / "etc-hostname")},
        ]
        if sa_dir is not None:
            pod_files.append({"path": SA_PATH, "source": str(sa_dir), "readOnly": True})
        self.container_mounts = {}
        for c in self.all_containers():
            mounts = list(pod_files)
            if c.model.sshd:
                mounts.append(
                    {
                        "path": "/etc/ssh/sshd_config",
                        "source": str(self.dir / "sshd_config"),
                        "readOnly": True,
                    }
                )
            for vm in c.spec.get("volumeMounts") or []:
                src = vols.get(vm.get("name", ""))
                if src is None:
                    continue
                if vm.get("subPath"):
                    # Never outside the volume, however its files are linked (a bind
                    # mount follows a link in its source).
                    confined_path(src, str(vm["subPath"]))
                    src = Path(secure_join(str(src), str(vm["subPath"])))
                    if not src.exists():
                        src.mkdir(parents=True, mode=0o755)  # as the kubelet does
                # The same refusal as without isolation (container_init.py also keeps
                # every mount inside the container's root).
                confined_path(self.dir, str(vm["mountPath"]))
                mounts.append(
                    {
                        "path": "/" + str(vm["mountPath"]).strip("/"),
                        "source": str(src),
                        "readOnly": bool(vm.get("readOnly")),
                    }
                )
            # Stable: a later mount at the same path wins, as in the runtime's list.
            mounts.sort(key=lambda m: m["path"].count("/") if m["path"] != "/" else 0)
            self.container_mounts[c.name] = mounts

    def _write_pod_files(self) -> None:
        """/etc/hosts, /etc/hostname (and sshd's configuration) of this pod."""
        vip = self.kubelet.api_vip or "127.0.0.1"
        hosts = (
            "# Kubernetes-managed hosts file (sandbox: the pod's address serves localhost).\n"
            f"{self.ip}\tlocalhost\n"
            f"{self.ip}\t{self.name}\n"
            f"{vip}\tkubernetes kubernetes.default kubernetes.default.svc "
            "kubernetes.default.svc.cluster.local\n"
        )
        _write_file(self.dir / "etc-hosts", hosts.encode(), 0o644)
        _write_file(self.dir / "etc-hostname", f"{self.name}\n".encode(), 0o644)
        if any(c.model.sshd for c in self.all_containers()):
            _write_file(self.dir / "sshd_config", images.sshd_config(self.ip).encode(), 0o644)

    def _write_service_account(self, where: Path) -> None:
        """The token, CA and namespace files a real pod finds under SA_PATH."""
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.isolated:
            os.chmod(where, 0o755)  # as mounted in a real pod: any user of the image reads it
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        token_for = getattr(self.kubelet.sandbox, "service_account_token", None)
        if token_for is not None:
            # 0644 as the real projected volume (defaultMode 420): any user of the image reads it.
            _write_file(where / "token", token_for(self.namespace, sa).encode(), 0o644)
        ca = getattr(self.kubelet.sandbox, "ca_pem", None)
        if ca:
            _write_file(where / "ca.crt", ca if isinstance(ca, bytes) else str(ca).encode(), 0o644)
        _write_file(where / "namespace", self.namespace.encode(), 0o644)

    def _write_source(
        self, src: dict[str, Any], resource: str, key: str, where: Path, vol: str, store: Any
    ) -> None:
        obj_name = src.get(key) or ""
        obj = store.get(resource, self.namespace, obj_name)
        kind = "secret" if resource == "secrets" else "configmap"
        if obj is None:
            if src.get("optional"):
                return
            raise ConfigError(
                f'MountVolume.SetUp failed for volume "{vol}" : {kind} "{obj_name}" not found'
            )
        data = _object_data(obj)
        mode = int(src.get("defaultMode", 0o644))
        items = src.get("items")
        if items:
            for item in items:
                if item["key"] not in data:
                    if src.get("optional"):
                        continue
                    raise ConfigError(
                        f'MountVolume.SetUp failed for volume "{vol}" : {kind} references '
                        f"non-existent config key: {item['key']}"
                    )
                _write_file(
                    confined_path(where, item["path"]),
                    data[item["key"]],
                    int(item.get("mode", mode)),
                )
        else:
            for k, v in data.items():
                _write_file(confined_path(where, k), v, mode)

    def map_path(self, value: str) -> str:
        """A container path under a mount, rewritten into the pod dir."""
        for mount, target in self.mounts:
            if value == mount or value.startswith(mount + "/"):
                return str(target) + value[len(mount) :]
        return value

    def map_words(self, value: str) -> str:
        """Every mount path inside a command word (``sh -c 'cat /etc/x/y'``) rewritten."""
        if not self.mounts:
            return value
        alternatives = "|".join(re.escape(m) for m, _ in self.mounts)
        targets = dict((m, str(t)) for m, t in self.mounts)
        pattern = re.compile(rf"(?<![\w./-])({alternatives})(?=/|$|[^\w.-])")
        return pattern.sub(lambda m: targets[m.group(1)], value)

    def _field_ref(self, ref: dict[str, Any]) -> str:
        path = ref.get("fieldPath") or ""
        md = self.pod["metadata"]
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node,
            "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName") or "default",
            "status.podIP": self.ip,
            "status.podIPs": self.ip,
            "status.hostIP": self.kubelet.host_ip,
            "status.hostIPs": self.kubelet.host_ip,
        }
        if path in simple:
            return simple[path]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
        if m:
            return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
        if path in ("metadata.labels", "metadata.annotations"):
            return "\n".join(f'{k}="{v}"' for k, v in sorted((md.get(path[9:]) or {}).items()))
        raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")

    def _resource_ref(self, c: Container, ref: dict[str, Any]) -> str:
        res = ref.get("resource") or ""
        target = self.containers.get(ref.get("containerName") or c.name, c)
        kind, _, what = res.partition(".")
        value = ((target.spec.get("resources") or {}).get(kind) or {}).get(what)
        if value is None:
            # Unset limits read as the node's allocatable, like the real downward API.
            value = self.kubelet.node_allocatable(self.node).get(what, "0")
        divisor = parse_quantity(str(ref.get("divisor") or "1"))
        q = parse_quantity(str(value)) / (divisor or 1)
        return str(int(-(-q // 1)))  # ceiling, as the real one does

    def _build_env(self, c: Container) -> dict[str, str]:
        store = self.kubelet.store
        env: dict[str, str] = {}
        for src in c.spec.get("envFrom") or []:
            prefix = src.get("prefix") or ""
            for kind, resource in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                if kind not in src:
                    continue
                ref = src[kind]
                obj = store.get(resource, self.namespace, ref.get("name") or "")
                if obj is None:
                    if ref.get("optional"):
                        continue
                    what = "configmap" if resource == "configmaps" else "secret"
                    raise ConfigError(f'{what} "{ref.get("name")}" not found')
                for k, v in _object_data(obj).items():
                    env[prefix + k] = v.decode(errors="replace")
        for item in c.spec.get("env") or []:
            name = item["name"]
            if "value" in item or "valueFrom" not in item:
                env[name] = expand_vars(str(item.get("value") or ""), env)
                continue
            vf = item["valueFrom"]
            if "fieldRef" in vf:
                env[name] = self._field_ref(vf["fieldRef"])
            elif "resourceFieldRef" in vf:
                env[name] = self._resource_ref(c, vf["resourceFieldRef"])
            else:
                for kind, resource, what in (
                    ("secretKeyRef", "secrets", "secret"),
                    ("configMapKeyRef", "configmaps", "configmap"),
                ):
                    if kind not in vf:
                        continue
                    ref = vf[kind]
                    obj = store.get(resource, self.namespace, ref.get("name") or "")
                    data = _object_data(obj) if obj is not None else None
                    if data is None or ref.get("key") not in data:
                        if ref.get("optional"):
                            break
                        if data is None:
                            raise ConfigError(f'{what} "{ref.get("name")}" not found')
                        raise ConfigError(
                            f"couldn't find key {ref.get('key')} in {what.capitalize()} "
                            f"{self.namespace}/{ref.get('name')}"
                        )
                    env[name] = data[ref["key"]].decode(errors="replace")
        env = {k: self.map_path(v) for k, v in env.items()}
        return env

    def _process_env(self, c: Container) -> dict[str, str]:
        """The container's environment plus what a process needs on this machine."""
        base = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.dir),
            "TMPDIR": str(self.dir / "tmp"),
            "HOSTNAME": self.name,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.kubelet.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.kubelet.api_port),
        }
        base.update(c.env)
        pp = [_PROJECT_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
        base["PYTHONPATH"] = os.pathsep.join(
            pp + ([c.env["PYTHONPATH"]] if "PYTHONPATH" in c.env else [])
        )
        base["SANDBOX_POD_IP"] = self.ip
        base["SANDBOX_IMAGE"] = c.image
        base["SANDBOX_ROOT"] = str(self.dir)
        base["SANDBOX_HOST_ALIASES"] = (
            f"kubernetes.default.svc:443=127.0.0.1:{self.kubelet.api_port},"
            f"kubernetes.default.svc.cluster.local:443=127.0.0.1:{self.kubelet.api_port},"
            f"kubernetes.default:443=127.0.0.1:{self.kubelet.api_port}"
        )
        return base

    async def _pull(self, c: Container) -> None:
        """Image pull events; the ImagePullBackOff fault loops here until deletion."""
        image = c.image
        policy = c.spec.get("imagePullPolicy") or (
            "Always"
            if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
            else "IfNotPresent"
        )
        if self.fault == "ImagePullBackOff":
            full = normalise_image(image)
            err = (
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{full}": '
                f'failed to resolve reference "{full}": {full}: not found'
            )
            attempt = 0
            while True:
                self.event("Pulling", f'Pulling image "{image}"', container=c.name)
                await asyncio.sleep(0.2 + self.start_delay)
                c.state = {"waiting": {"reason": "ErrImagePull", "message": err}}
                self.mark_dirty()
                self.event(
                    "Failed",
                    f'Failed to pull image "{image}": {err}',
                    warning=True,
                    container=c.name,
                )
                self.event("Failed", "Error: ErrImagePull", warning=True, container=c.name)
                await asyncio.sleep(BACKOFF_START)
                msg = f'Back-off pulling image "{image}"'
                c.state = {"waiting": {"reason": "ImagePullBackOff", "message": msg}}
                self.mark_dirty()
                self.event("BackOff", msg, container=c.name)
                self.event("Failed", "Error: ImagePullBackOff", warning=True, container=c.name)
                await asyncio.sleep(min(BACKOFF_CAP, BACKOFF_START * 2**attempt))
                attempt += 1
        pulls = self.kubelet.pulls
        present = pulls.present(self.node, image)
        if present and policy != "Always" and not self.start_delay:
            self.event(
                "Pulled", f'Container image "{image}" already present on machine', container=c.name
            )
            return
        self.event("Pulling", f'Pulling image "{image}"', container=c.name)
        t0 = time.monotonic()
        if self.start_delay:  # the per-pod annotation: this pod's pull takes that long
            await asyncio.sleep(self.start_delay)
            took = time.monotonic() - t0
        else:  # the node's cache: a pull costs time once per node and image
            took = await pulls.pull(self.node, image)
        size = 2_000_000 + int(hashlib.sha256(image.encode()).hexdigest()[:6], 16) * 8
        self.event(
            "Pulled",
            f'Successfully pulled image "{image}" in {took:.3f}s ({took:.3f}s including waiting). '
            f"Image size: {size} bytes.",
            container=c.name,
        )

    async def _container_loop(self, c: Container) -> None:
        policy = self.pod["spec"].get("restartPolicy") or "Always"
        if c.init:  # init containers run to success: Always means OnFailure for them
            policy = "Never" if policy == "Never" else "OnFailure"
        crashes = 0
        pulled = False
        while not self.stopping:
            # Configuration errors (a missing Secret behind an env var) block the start.
            try:
                self._check_non_root(c)
                c.env = self._build_env(c)
            except ConfigError as exc:
                c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
                self.mark_dirty()
                self.event("Failed", f"Error: {exc}", warning=True, container=c.name)
                await asyncio.sleep(MOUNT_RETRY)
                continue
            if not pulled:
                await self._pull(c)
                pulled = True
            if self.stopping:
                return
            started_at = time.time()
            code, reason, message = await self._run_once(c)
            finished = {
                "exitCode": code,
                "reason": reason,
                "startedAt": rfc3339(started_at),
                "finishedAt": rfc3339(),
            }
            if message:
                finished["message"] = message
            if c.container_id:
                finished["containerID"] = c.container_id
            c.state = {"terminated": finished}
            c.ready = False
            c.started = False
            if c.log is not None:
                c.log.close()
            self.mark_dirty()
            if self.stopping:
                return
            if c.init and code == 0:
                c.ready = True
                self.mark_dirty()
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                return
            if time.time() - started_at > BACKOFF_RESET_AFTER:
                crashes = 0
            crashes += 1
            if crashes > 1:
                delay = min(BACKOFF_CAP, BACKOFF_START * 2 ** (crashes - 2))
                pretty = f"{delay:g}s"
                c.last_state = {"terminated": finished}
                c.state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {pretty} restarting failed container={c.name} "
                        f"pod={self.name}_{self.namespace}({self.uid})",
                    }
                }
                self.mark_dirty()
                self.event(
                    "BackOff",
                    f"Back-off restarting failed container {c.name} in pod "
                    f"{self.name}_{self.namespace}({self.uid})",
                    warning=True,
                    container=c.name,
                )
                await asyncio.sleep(delay)
            c.last_state = {"terminated": finished}
            c.restart_count += 1
            c.previous_log = c.log

    def _isolated_env(self, c: Container) -> dict[str, str]:
        """What the process sees: the image's environment, then the container's (as runc)."""
        model = c.model
        env = {
            "HOSTNAME": self.name,
            **model.env,
            "KUBERNETES_SERVICE_HOST": self.kubelet.api_vip or "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            # The sandbox's one addition: a process that binds "every address" of its
            # pod must bind this one (pods share this machine's network).
            "SANDBOX_POD_IP": self.ip,
        }
        if model.kind == "generic":
            env["PYTHONPATH"] = os.pathsep.join(
                [_PROJECT_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
            )
            env["PYTHONUNBUFFERED"] = "1"
        env.update(c.env)
        env.setdefault("HOME", model.home)
        return env

    def _container_plan(self, c: Container, argv: list[str]) -> dict[str, Any]:
        model = c.model
        run = self.dir / "containers" / f"{c.name}-{c.restart_count}"
        if run.exists():
            shutil.rmtree(run, ignore_errors=True)
        for d in ("upper", "work", "root"):
            (run / d).mkdir(parents=True, mode=0o755)
        return {
            "root": str(run / "root"),
            "upper": str(run / "upper"),
            "work": str(run / "work"),
            "layers": [str(self.kubelet.layers.layer(model))],
            "mounts": self.container_mounts.get(c.name, []),
            "hostname": self.name[:63],
            **self._process_spec(c, argv),
        }

    def _process_spec(self, c: Container, argv: list[str]) -> dict[str, Any]:
        """What runc's process spec holds for container ``c``: its main process and every
        ``runc exec`` into it get the same working directory, user and groups,
        capabilities, no_new_privs and environment."""
        model = c.model
        uid, gid = self._run_as(c)
        return {
            "cwd": c.spec.get("workingDir") or model.workdir,
            "uid": uid,
            "gid": gid,
            "groups": list(model.groups) if (uid, gid) == (model.uid, model.gid) else [gid],
            **container_privileges(c.spec.get("securityContext") or {}),
            "argv": argv,
            "env": self._isolated_env(c),
        }

    def _check_non_root(self, c: Container) -> None:
        """runAsNonRoot (container over pod) refuses a container that would run as uid 0,
        as the kubelet does before it creates the container."""
        pod_sc = self.pod["spec"].get("securityContext") or {}
        sc = c.spec.get("securityContext") or {}
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and self._run_as(c)[0] == 0:
            raise ConfigError(
                "container has runAsNonRoot and image will run as root "
                f'(pod: "{self.name}_{self.namespace}({self.uid})", container: {c.name})'
            )

    def _run_as(self, c: Container) -> tuple[int, int]:
        """securityContext runAsUser/runAsGroup (container over pod) over the image's USER."""
        pod_sc = self.pod["spec"].get("securityContext") or {}
        sc = c.spec.get("securityContext") or {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser", c.model.uid))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", c.model.gid))
        return int(uid), int(gid)

    @contextlib.contextmanager
    def exec_command(self, c: Container, command: list[str]) -> Iterator[ExecCommand]:
        """How to start ``command`` in running container ``c``, as ``runc exec`` does:
        inside its namespaces and root with its process spec (``_process_spec``, the one
        its main process got). Without isolation: a local process in the pod's dir."""
        words = [str(x) for x in command]
        if not self.isolated or not isinstance(c.runtime, NamespaceRuntime):
            cwd = self.dir / (c.spec.get("workingDir") or "").lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
            yield ExecCommand([self.map_words(w) for w in words], self._process_env(c), str(cwd))
            return
        plan = {**self._process_spec(c, words), "enter": c.runtime.pid}
        with plan_pipe(plan) as fd:
            yield ExecCommand(container_init_argv(fd), _INIT_ENV, "/", (fd,))

    def exec_env(self, c: Container) -> dict[str, str]:
        return self._isolated_env(c) if self.isolated else self._process_env(c)

    def exec_program(self, c: Container, name: str) -> str | None:
        """Where ``name`` is found in container ``c`` (None: not found, as runc says)."""
        env = self.exec_env(c)
        if not self.isolated or not isinstance(c.runtime, NamespaceRuntime):
            return shutil.which(name, path=env.get("PATH"))
        root = f"/proc/{c.runtime.pid}/root"
        dirs = [root + d for d in env.get("PATH", "").split(":") if d.startswith("/")]
        found = find_program(root + name if "/" in name else name, ":".join(dirs))
        return found

    def _plan_argv(self, c: Container) -> Plan:
        if not self.isolated:
            return plan_container(c.spec, c.env)
        # Docker's rules: a command replaces ENTRYPOINT and CMD; args replace CMD.
        given = [str(x) for x in c.spec.get("command") or []]
        args = [str(x) for x in c.spec.get("args") or []]
        image = list(c.model.entrypoint) + (args or list(c.model.cmd))
        words = given + args if given else image
        if not words:
            return Plan(None, "image without a command (idle)")
        return Plan(words, "command")

    async def _run_once(self, c: Container) -> tuple[int, str, str | None]:
        """Start the container, probe it, and wait for it to end: (exitCode, reason, message)."""
        plan = self._plan_argv(c)
        if self.fault == "CrashLoopBackOff":
            plan = Plan(
                [
                    "sh",
                    "-c",
                    'echo "sandbox fault CrashLoopBackOff: the container exits with code 1"; exit 1',
                ],
                "fault",
            )
        argv = [self.map_words(expand_vars(a, c.env)) for a in plan.argv] if plan.argv else None
        if argv is not None and self.isolated:
            argv = [expand_vars(a, c.env) for a in plan.argv or []]
        c.container_id = (
            "containerd://"
            + hashlib.sha256(
                f"{self.uid}/{c.name}/{c.restart_count}/{time.time()}".encode()
            ).hexdigest()
        )
        c.log = LogBuffer()
        c.oom = c.killed_for_liveness = False
        self.event("Created", f"Created container: {c.name}", container=c.name)
        try:
            if argv is None:
                banner = b"SSH-2.0-sandbox-idle-locale\r\n" if 22 in c.ports() else b""
                c.runtime = await IdleRuntime.start(self.ip, c.ports(), c.log, banner)
                self.runtimes.add(c.runtime)
                self.kubelet.live.add(c.runtime)
            elif self.isolated:
                c.runtime = await NamespaceRuntime.start_in_namespace(
                    self._container_plan(c, argv), c.log
                )
                self.runtimes.add(c.runtime)
                self.kubelet.live.add(c.runtime)
                self.kubelet.pids.add(c.runtime.pid or 0)
            else:
                if not shutil.which(argv[0], path=c.env.get("PATH") or os.environ.get("PATH")):
                    raise FileNotFoundError(argv[0])
                cwd = self.dir / (c.spec.get("workingDir") or "").lstrip("/")
                cwd.mkdir(parents=True, exist_ok=True)
                if plan.why == "stand-in Arkouda server":
                    _hand_over_token(c.env, cwd)
                c.runtime = await ProcessRuntime.start(argv, self._process_env(c), str(cwd), c.log)
                self.runtimes.add(c.runtime)
                self.kubelet.live.add(c.runtime)
                self.kubelet.pids.add(c.runtime.pid or 0)
        except ContainerStartError as exc:
            msg = (
                "failed to create containerd task: failed to create shim task: OCI runtime "
                f"create failed: {exc}"
            )
            self.event("Failed", f"Error: {msg}", warning=True, container=c.name)
            return 128, "StartError", msg
        except (FileNotFoundError, PermissionError, OSError) as exc:
            what = argv[0] if argv else "listener"
            msg = (
                "failed to create containerd task: failed to create shim task: OCI runtime "
                f'create failed: runc create failed: unable to start container process: exec: "{what}": '
                f"executable file not found in $PATH: unknown"
                if isinstance(exc, FileNotFoundError)
                else f"failed to start container: {exc}"
            )
            self.event("Failed", f"Error: {msg}", warning=True, container=c.name)
            return 128, "StartError", msg
        runtime = c.runtime
        self.event("Started", f"Started container {c.name}", container=c.name)
        c.state = {"running": {"startedAt": rfc3339()}}
        c.started = not c.spec.get("startupProbe") or c.init
        self.mark_dirty()
        helpers = [] if c.init else [asyncio.ensure_future(self._probe_loops(c))]
        if self.fault == "OOMKilled":
            helpers.append(asyncio.ensure_future(self._oom_after(c, self.kill_after or OOM_AFTER)))
        elif self.kill_after:
            helpers.append(asyncio.ensure_future(self._kill_after(c, self.kill_after)))
        self._helpers.update(helpers)
        try:
            code = await runtime.wait()
        finally:
            # Awaited, not only cancelled: a probe still running when the loop stops is
            # "Task was destroyed but it is pending" (stop() waits for what is left).
            await cancel_and_wait(helpers)
            self._helpers.difference_update(helpers)
        # Only an ended runtime is forgotten: on cancellation stop() still owns it.
        self._forget(runtime)
        c.runtime = None
        if c.oom:
            return 137, "OOMKilled", None
        return code, ("Completed" if code == 0 else "Error"), None

    async def _oom_after(self, c: Container, after: float) -> None:
        await asyncio.sleep(after)
        if c.runtime is None:
            return
        c.oom = True
        pid = c.runtime.pid or random.randint(1000, 60000)
        comm = (c.spec.get("command") or ["sleep"])[0].rsplit("/", 1)[-1]
        self.kubelet.events.record(
            self.kubelet.node_object(self.node),
            "OOMKilling",
            f"Memory cgroup out of memory: Killed process {pid} ({comm}) total-vm:1048576kB, "
            f"anon-rss:{1 << 20}kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:2048kB oom_score_adj:984",
            warning=True,
            component="kernel-monitor",
            host=self.node,
        )
        c.runtime.signal(signal.SIGKILL)

    async def _kill_after(self, c: Container, after: float) -> None:
        await asyncio.sleep(after)
        if c.runtime is not None:
            c.runtime.signal(signal.SIGKILL)

    # -- probes --------------------------------------------------------------------------

    async def _probe_loops(self, c: Container) -> None:
        startup = c.spec.get("startupProbe")
        if startup and not await self._probe_loop(c, startup, "Startup"):
            return  # failed: the container is being restarted
        c.started = True
        self.mark_dirty()
        readiness = c.spec.get("readinessProbe")
        liveness = c.spec.get("livenessProbe")
        loops: list[Coroutine[Any, Any, Any]] = []
        if self.fault == "NeverReady":
            loops.append(self._never_ready(c, readiness))
        elif readiness:
            loops.append(self._probe_loop(c, readiness, "Readiness"))
        else:
            c.ready = True
            self.mark_dirty()
        if liveness and self.fault != "NeverReady":
            loops.append(self._probe_loop(c, liveness, "Liveness"))
        if loops:
            # A gather cancelled ends at the first child that has ended, not the last: a
            # readiness probe reaping its exec would outlive the stop that cancelled it.
            tasks = [asyncio.ensure_future(coro) for coro in loops]
            try:
                await asyncio.gather(*tasks)
            finally:
                await cancel_and_wait(tasks)

    async def _never_ready(self, c: Container, probe: dict[str, Any] | None) -> None:
        period = min(
            float((probe or {}).get("periodSeconds") or NEVER_READY_PERIOD), NEVER_READY_PERIOD
        )
        await asyncio.sleep(float((probe or {}).get("initialDelaySeconds") or 0))
        while True:
            if probe and "tcpSocket" in probe:
                port = c.resolve_port(probe["tcpSocket"].get("port"))
                detail = f"dial tcp {self.ip}:{port}: connect: connection refused"
            elif probe and "httpGet" in probe:
                hg = probe["httpGet"]
                port = c.resolve_port(hg.get("port"))
                detail = (
                    f'Get "http://{self.ip}:{port}{hg.get("path") or "/"}": dial tcp '
                    f"{self.ip}:{port}: connect: connection refused"
                )
            else:
                detail = "sandbox fault NeverReady: the container never reports ready"
            self.event(
                "Unhealthy", f"Readiness probe failed: {detail}", warning=True, container=c.name
            )
            await asyncio.sleep(period)

    async def _probe_loop(self, c: Container, probe: dict[str, Any], kind: str) -> bool:
        """Probe until the container ends; a startup probe returns True at its first success."""
        initial = float(probe.get("initialDelaySeconds") or 0)
        period = float(probe.get("periodSeconds") or 10)
        timeout = float(probe.get("timeoutSeconds") or 1)
        need_ok = int(probe.get("successThreshold") or 1)
        need_fail = int(probe.get("failureThreshold") or 3)
        oks = fails = 0
        await asyncio.sleep(initial)
        while c.runtime is not None:
            ok, detail = await self._probe_once(c, probe, timeout)
            if ok:
                oks, fails = oks + 1, 0
                if kind == "Startup":
                    return True
                if kind == "Readiness" and oks >= need_ok and not c.ready:
                    c.ready = True
                    self.mark_dirty()
            else:
                oks, fails = 0, fails + 1
                self.event(
                    "Unhealthy", f"{kind} probe failed: {detail}", warning=True, container=c.name
                )
                if kind == "Readiness" and fails >= need_fail and c.ready:
                    c.ready = False
                    self.mark_dirty()
                if kind != "Readiness" and fails >= need_fail and c.runtime is not None:
                    self.event(
                        "Killing",
                        f"Container {c.name} failed {kind.lower()} probe, will be restarted",
                        container=c.name,
                    )
                    c.killed_for_liveness = True
                    await self._stop_runtime(c.runtime, self._grace())
                    return False
            await asyncio.sleep(period)
        return False

    async def _probe_once(
        self, c: Container, probe: dict[str, Any], timeout: float
    ) -> tuple[bool, str]:
        try:
            if "tcpSocket" in probe:
                ts = probe["tcpSocket"]
                port = c.resolve_port(ts.get("port"))
                host = ts.get("host") or self.ip
                rt = c.runtime
                if isinstance(rt, IdleRuntime) and (host, port) in rt.serving:
                    # The kubelet's own listener: a connect would only measure asyncio
                    # overhead (a quarter of a core for 256 locales probed every 2 s).
                    return True, ""
                try:
                    async with asyncio.timeout(timeout):  # wait_for can swallow a cancel
                        _, w = await asyncio.open_connection(host, port)
                except TimeoutError:
                    return False, f"dial tcp {host}:{port}: i/o timeout"
                except OSError:
                    return False, f"dial tcp {host}:{port}: connect: connection refused"
                w.close()
                return True, ""
            if "httpGet" in probe:
                import aiohttp

                hg = probe["httpGet"]
                port = c.resolve_port(hg.get("port"))
                host = hg.get("host") or self.ip
                scheme = (hg.get("scheme") or "HTTP").lower()
                url = f"{scheme}://{host}:{port}{hg.get('path') or '/'}"
                headers = {h["name"]: h["value"] for h in hg.get("httpHeaders") or []}
                try:
                    async with (
                        aiohttp.ClientSession() as session,
                        session.get(
                            url,
                            headers=headers,
                            ssl=False,
                            timeout=aiohttp.ClientTimeout(total=timeout),
                        ) as resp,
                    ):
                        if 200 <= resp.status < 400:
                            return True, ""
                        return False, f"HTTP probe failed with statuscode: {resp.status}"
                except TimeoutError:
                    return False, f'Get "{url}": context deadline exceeded'
                except aiohttp.ClientError:
                    return (
                        False,
                        f'Get "{url}": dial tcp {host}:{port}: connect: connection refused',
                    )
            if "exec" in probe:
                cmd = [str(x) for x in probe["exec"].get("command") or []]
                with self.exec_command(c, cmd) as run:
                    proc = await spawn(run.argv, run.env, run.cwd, run.pass_fds)
                try:
                    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
                except (TimeoutError, asyncio.CancelledError) as exc:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    return False, f"command {shlex.join(cmd)!r} timed out"
                finally:
                    close_process(proc)
                if proc.returncode == 0:
                    return True, ""
                return False, out.decode(errors="replace").strip() or (
                    f"command {shlex.join(cmd)!r} exited with {proc.returncode}"
                )
        except (ValueError, FileNotFoundError) as exc:
            return False, str(exc)
        return True, ""  # grpc and unknown handlers: not simulated, treated as passing

    # -- stopping ------------------------------------------------------------------------

    def _grace(self) -> float:
        md = self.pod["metadata"]
        grace = md.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return max(0.0, min(float(grace), GRACE_CAP))

    @staticmethod
    async def _stop_runtime(runtime: Runtime, grace: float) -> None:
        runtime.signal(signal.SIGTERM)
        waiter = asyncio.ensure_future(runtime.wait())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=grace)
            if not done:
                runtime.signal(signal.SIGKILL)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(waiter, 5.0)
        finally:
            await cancel_and_wait([waiter])

    async def stop(
        self, grace: float | None, *, remove_object: bool, announce: bool = True
    ) -> None:
        """Kill the containers (SIGTERM, grace, SIGKILL), clean up, maybe delete the pod."""
        if self.stopping:
            return
        self.stopping = True
        grace = self._grace() if grace is None else grace
        if announce:
            for c in self.all_containers():
                if c.runtime is not None:
                    self.event("Killing", f"Stopping container {c.name}", container=c.name)
        # First stop the container loops (no new start can slip in), then the runtimes
        # they started, each with its grace period.
        self._main.cancel()
        for t in self._tasks:
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(
                asyncio.gather(self._main, *self._tasks, return_exceptions=True), 5.0
            )
        runtimes = list(self.runtimes)
        await asyncio.gather(*(self._stop_runtime(rt, grace) for rt in runtimes))
        # Whatever a container loop did not get to await before the deadline above.
        await cancel_and_wait(self._helpers)
        self.kill_execs()
        for rt in runtimes:
            self._forget(rt)
        for c in self.all_containers():
            if c.log is not None:
                c.log.close()
        if remove_object:
            self._flush()
            with contextlib.suppress(Exception):
                cur = self.kubelet.store.get("pods", self.namespace, self.name)
                if cur is not None and cur["metadata"]["uid"] == self.uid:
                    self.kubelet.store.delete("pods", self.namespace, self.name)
        self.gone = True
        shutil.rmtree(self.dir, ignore_errors=True)
        _release_ip(self.ip)

    async def evict(self, message: str) -> None:
        """Node-pressure eviction, as a real kubelet does it: an Evicted warning, every
        container killed at once (hard eviction: no grace), and the pod object kept,
        phase Failed with reason Evicted and a DisruptionTarget condition (a bare pod is
        never restarted; a ReplicaSet makes another)."""
        self.event("Evicted", message, warning=True)
        await self.stop(0.0, remove_object=False)
        store = self.kubelet.store
        cur = store.get("pods", self.namespace, self.name)
        if cur is None or cur["metadata"]["uid"] != self.uid:
            return
        now = rfc3339()
        status = cur.get("status") or {}
        for cs in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
            running = (cs.get("state") or {}).get("running")
            if running is not None:
                cs["state"] = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "Error",
                        "startedAt": running.get("startedAt"),
                        "finishedAt": now,
                        "containerID": cs.get("containerID"),
                    }
                }
            cs["ready"] = False
            cs["started"] = False
        conditions = [
            {**c, "status": "False", "lastTransitionTime": now}
            if c.get("type") in ("Ready", "ContainersReady")
            else c
            for c in status.get("conditions") or []
            if c.get("type") != "DisruptionTarget"
        ]
        conditions.append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "TerminationByKubelet",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
        )
        status.update(phase="Failed", reason="Evicted", message=message, conditions=conditions)
        cur["status"] = status
        cur["metadata"].pop("resourceVersion", None)
        with contextlib.suppress(Exception):  # deleted meanwhile: nothing to report
            store.update("pods", cur, subresource="status")

    def kill_execs(self) -> None:
        """Exec sessions end with their container, as on a real node."""
        for proc in list(self.execs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _forget(self, runtime: Runtime) -> None:
        self.runtimes.discard(runtime)
        self.kubelet.live.discard(runtime)
        if runtime.pid:
            self.kubelet.pids.discard(runtime.pid)

    def processes(self) -> list[int]:
        return [rt.pid for rt in self.runtimes if rt.pid]

    def all_containers(self) -> list[Container]:
        return [*self.init_containers.values(), *self.containers.values()]


def _float(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def _object_data(obj: dict[str, Any]) -> dict[str, bytes]:
    """The decoded key -> bytes of a Secret (base64 ``data``) or ConfigMap (text ``data``)."""
    if obj.get("kind") == "ConfigMap":
        out = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return out
    out = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    for k, v in (obj.get("stringData") or {}).items():
        out[k] = str(v).encode()
    return out


def _write_file(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: a link planted at the file's own name is not written through.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode & 0o777)


# ---------------------------------------------------------------------------------------
# The kubelet


class Kubelet:
    """Runs the pods bound to the sandbox's node(s) (see the module docstring)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.host_ip = "127.0.0.1"
        self.events = EventRecorder(self.store)
        # Each node's image cache and the time a pull takes (pulls.py).
        self.pulls: Pulls = getattr(sandbox, "pulls", None) or Pulls()
        self.pids: set[int] = set()
        self.live: set[Runtime] = set()  # every started runtime not yet seen to end
        self.workers: dict[str, PodWorker] = {}
        self._finished: set[str] = set()  # pod uids whose worker ended (never restarted)
        self._unsubscribe: Callable[[], None] | None = None
        self.root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=_tmpfs()))
        os.chmod(self.root, 0o700)
        (self.root / OWNER_FILE).write_text(_process_identity(os.getpid()))
        self._stop_tasks: set[asyncio.Task[Any]] = set()
        # Containers in their own mount namespaces over image models, or (no root) as before.
        self.isolated = container_support() is None
        if self.isolated:
            remove_orphans(self.root.parent)
        self.layers = images.Layers(self.root / "images")
        # The in-cluster API address (kubernetes.default.svc:443 in every pod's /etc/hosts).
        self.api_vip: str | None = None
        self._vip_server: asyncio.Server | None = None

    @property
    def api_port(self) -> int:
        port = getattr(self.sandbox, "port", None)
        if port:
            return int(port)
        url = getattr(self.sandbox, "url", "") or ""
        m = re.search(r":(\d+)/?$", url)
        return int(m.group(1)) if m else 443

    def _serves(self, node: str | None) -> bool:
        if not node:
            return False
        names = getattr(self.sandbox, "node_names", None)
        return node in names if names else self.store.get("nodes", None, node) is not None

    def node_object(self, node: str) -> dict[str, Any]:
        obj = self.store.get("nodes", None, node)
        return obj or {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "uid": node}}

    def node_allocatable(self, node: str) -> dict[str, str]:
        obj = self.store.get("nodes", None, node) or {}
        return dict((obj.get("status") or {}).get("allocatable") or {})

    async def start(self) -> None:
        if self.isolated:
            self.api_vip = getattr(self.sandbox, "api_service_ip", None) or _allocate_ip([443])
            self._vip_server = await asyncio.start_server(self._to_api, self.api_vip, 443)
        self._unsubscribe = self.store.subscribe(self._on_change)
        pods, _ = self.store.list("pods")
        for pod in pods:
            self._sync(pod)

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        try:
            await self.shutdown()
        finally:
            if self._vip_server is not None:
                self._vip_server.close()
                self._vip_server = None
            if self.api_vip:
                _release_ip(self.api_vip)

    async def _to_api(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The API's service address: bytes both ways to the API server's own port."""
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.api_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def shutdown(self) -> None:
        """Stop every container now (short grace), remove every pod dir; objects stay."""
        workers = list(self.workers.values())
        self.workers.clear()
        try:
            await asyncio.gather(
                *(w.stop(1.0, remove_object=False, announce=False) for w in workers)
            )
            if self._stop_tasks:
                await asyncio.gather(*self._stop_tasks, return_exceptions=True)
            # Reapers of containers that failed to start (killed): let them reap first.
            if _reaping:
                await asyncio.wait(list(_reaping), timeout=CANCEL_DEADLINE)
                await cancel_and_wait(list(_reaping))
        finally:
            # Even when the caller's deadline cancels the orderly stop: nothing survives,
            # not even what left a container's process group (a daemonized sshd).
            for runtime in list(self.live):
                runtime.signal(signal.SIGKILL)
                if isinstance(runtime, NamespaceRuntime) and runtime.namespace:
                    kill_namespace(runtime.namespace)
            for w in workers:
                w.kill_execs()
            shutil.rmtree(self.root, ignore_errors=True)

    def _on_change(self, kind: str, resource: str, obj: dict[str, Any]) -> None:
        if resource != "pods":
            return
        # The store calls back inside its write: act on the next loop turn.
        asyncio.get_running_loop().call_soon(self._sync, obj, kind == "DELETED")

    def _sync(self, pod: dict[str, Any], deleted: bool = False) -> None:
        md = pod["metadata"]
        uid = md["uid"]
        worker = self.workers.get(uid)
        if worker is None:
            if deleted or uid in self._finished or not self._serves(pod["spec"].get("nodeName")):
                return
            if md.get("deletionTimestamp"):
                self._spawn(self._delete_unstarted(pod))
                return
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            self.workers[uid] = PodWorker(self, pod)
            return
        worker.pod = pod
        if deleted:
            # Removed at once (the store has no graceful pod deletion): the processes
            # still get their grace period, as a real kubelet gives them on force delete.
            self._stop(worker, None, remove=False)
            return
        if md.get("deletionTimestamp") and not worker.stopping:
            grace = md.get("deletionGracePeriodSeconds")
            self._stop(worker, None if grace is None else min(float(grace), GRACE_CAP), remove=True)

    def _stop(self, worker: PodWorker, grace: float | None, remove: bool) -> None:
        self.workers.pop(worker.uid, None)
        self._finished.add(worker.uid)
        self._spawn(worker.stop(grace, remove_object=remove))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._stop_tasks.add(task)
        task.add_done_callback(self._stop_tasks.discard)

    async def _delete_unstarted(self, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        with contextlib.suppress(Exception):
            cur = self.store.get("pods", md.get("namespace"), md["name"])
            if cur is not None and cur["metadata"]["uid"] == md["uid"]:
                self.store.delete("pods", md.get("namespace"), md["name"])

    def evict(
        self, namespace: str, label_selector: str | None = None, resource: str = "memory"
    ) -> list[str]:
        """Evict the running pods of ``namespace`` (those ``label_selector`` selects) as
        a node under ``resource`` pressure does; returns their names. The sandbox's pods
        share its node(s), so a test picks its own pods rather than the whole node."""
        message = f"The node was low on resource: {resource}. "
        picked = [
            w
            for w in list(self.workers.values())
            if w.namespace == namespace
            and not w.stopping
            and match_labels(label_selector, w.pod["metadata"].get("labels"))
        ]
        for w in picked:
            self.workers.pop(w.uid, None)
            self._finished.add(w.uid)
            self._spawn(w.evict(message))
        return sorted(w.name for w in picked)

    # -- what the API server asks ---------------------------------------------------------

    def _worker(self, namespace: str, name: str) -> PodWorker | None:
        for w in self.workers.values():
            if w.namespace == namespace and w.name == name:
                return w
        return None

    def pod_ip(self, namespace: str, name: str) -> str | None:
        w = self._worker(namespace, name)
        return w.ip if w is not None and w.sandbox_ready else None

    def processes(self) -> list[int]:
        return sorted(self.pids)

    async def exec_in_pod(
        self, namespace: str, name: str, container: str, command: list[str]
    ) -> asyncio.subprocess.Process:
        """Run ``command`` in a running container's context (env, pod dir, mounts).

        stdin/stdout/stderr are pipes; the process gets its own group and is killed when
        the container stops. Errors are the API's 400/500 with the real runtime's words.
        """
        w = self._worker(namespace, name)
        c = None if w is None else (w.containers.get(container) or w.init_containers.get(container))
        if w is None or c is None or c.runtime is None:
            raise ApiError(
                400,
                "BadRequest",
                f'unable to upgrade connection: container not found ("{container}")',
            )
        if not command or not w.exec_program(c, str(command[0])):
            what = str(command[0]) if command else ""
            raise ApiError(
                500,
                "InternalError",
                "Internal error occurred: error executing command in container: failed to exec "
                "in container: OCI runtime exec failed: exec failed: unable to start container "
                f'process: exec: "{what}": executable file not found in $PATH: unknown',
            )
        with w.exec_command(c, command) as run:
            # spawn: a cancel (the client gone) right after the fork kills the group
            proc = await spawn(run.argv, run.env, run.cwd, run.pass_fds, interactive=True)
        w.execs.add(proc)
        self.pids.add(proc.pid)

        async def reap() -> None:
            try:
                await proc.wait()
            finally:
                w.execs.discard(proc)
                self.pids.discard(proc.pid)

        self._spawn(reap())
        if w.stopping:  # the container went away while the command started
            w.kill_execs()
        return proc

    pod_processes = processes

    def container_processes(self, namespace: str, name: str, container: str) -> list[list[str]]:
        """The command lines of every process in a running container (``ps`` inside it):
        its own, and what came in over its sshd. Empty when containers are not isolated."""
        w = self._worker(namespace, name)
        c = None if w is None else (w.containers.get(container) or w.init_containers.get(container))
        ns = getattr(c.runtime, "namespace", None) if c is not None else None
        if not ns:
            return []
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and _mount_namespace(int(entry.name)) == ns:
                with contextlib.suppress(OSError):
                    raw = Path(f"/proc/{entry.name}/cmdline").read_bytes()
                    if raw:
                        found.append([a.decode(errors="replace") for a in raw.split(b"\0")[:-1]])
        return found

    def _log_for(
        self, namespace: str, name: str, container: str | None, previous: bool
    ) -> LogBuffer:
        w = self._worker(namespace, name)
        if w is None:
            raise log_unavailable(f'pod "{name}" is not running on this node')
        if container is None:
            if len(w.containers) != 1:
                names = " ".join(w.containers)
                raise log_unavailable(
                    f"a container name must be specified for pod {name}, choose one of: [{names}]"
                )
            container = next(iter(w.containers))
        c = w.containers.get(container) or w.init_containers.get(container)
        if c is None:
            raise log_unavailable(f"container {container} is not valid for pod {name}")
        if previous:
            if c.previous_log is None:
                raise log_unavailable(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            return c.previous_log
        if c.log is None:
            reason = (c.state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise log_unavailable(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        return c.log

    def read_log(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        tail_lines: int | None = None,
        previous: bool = False,
        timestamps: bool = False,
        since_seconds: float | None = None,
        limit_bytes: int | None = None,
    ) -> bytes:
        buf = self._log_for(namespace, name, container, previous)
        since = time.time() - since_seconds if since_seconds is not None else None
        return buf.read(tail_lines, timestamps, since, limit_bytes)

    async def follow_log(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        tail_lines: int | None = None,
        previous: bool = False,
        timestamps: bool = False,
        since_seconds: float | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        buf = self._log_for(namespace, name, container, previous)
        since = time.time() - since_seconds if since_seconds is not None else None
        sent = 0
        async for chunk in buf.follow(tail_lines, timestamps, since):
            if limit_bytes is not None:
                chunk = chunk[: max(0, limit_bytes - sent)]
            sent += len(chunk)
            if chunk:
                yield chunk
            if limit_bytes is not None and sent >= limit_bytes:
                return


ROOT_PREFIX = "arkouda-k8s-sandbox-"
OWNER_FILE = "kubelet"


def _process_identity(pid: int) -> str:
    """``pid`` and its start time: a pid alone may have been reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"


def remove_orphans(parent: Path) -> int:
    """Kill the containers of kubelets that died without stopping them, remove their dirs.

    A kubelet killed outright cannot sweep its containers' namespaces, and their
    daemons (sshd) outlive it. Each kubelet's root names its process; a root whose
    process is gone is an orphan: every process whose root directory lies inside it is
    one of its containers. Roots without that file are left alone. Returns the count.
    """
    killed = 0
    for root in parent.glob(ROOT_PREFIX + "*"):
        try:
            owner = (root / OWNER_FILE).read_text()
        except OSError:
            continue
        pid = owner.split()[0] if owner.split() else ""
        if not pid.isdigit() or _process_identity(int(pid)) == owner:
            continue  # alive (or unreadable): not ours to touch
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry.name}/root").startswith(str(root) + "/"):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
        shutil.rmtree(root, ignore_errors=True)
    return killed


def _tmpfs() -> str | None:
    """A memory-backed directory for pod dirs (they hold Secret files), if there is one."""
    for candidate in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR")):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return candidate
    log.warning(
        "sandbox: no tmpfs (/dev/shm, $XDG_RUNTIME_DIR) found; pod dirs, including mounted "
        "Secrets, go to the temp directory %s",
        tempfile.gettempdir(),
    )
    return None
