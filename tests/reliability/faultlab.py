"""Seeded fault runs against the sandbox, shared by tests/reliability and
benchmarks/reliability.py (the tests run them short, the benchmark long).

Every run records each fault it injected in a Ledger: its kind, whether the product
survived it (the operation ended within its bound, succeeded or failed with a reason,
and left nothing behind), the time to detect it and the time to recover from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _support import settled
from _support.echo import ECHO, ECHO_PORT

from arkouda_k8s.errors import ArkoudaK8sError
from arkouda_k8s.kube import Kube
from arkouda_k8s.tunnel import Tunnel

# The API server restarted: every connection cut, the port closed for a moment, then the
# same store served again. Injected at a random point of an operation (never before it).
RESTART = "api-restart"

# A request of the soak: id (8 bytes), payload length (4), payload, sha256 of id+payload.
HEADER = struct.Struct("!QI")
DIGEST = 32


@dataclass
class Fault:
    kind: str
    survived: bool
    detect_s: float = 0.0
    recover_s: float = 0.0
    reason: str = ""


@dataclass
class Ledger:
    seed: int
    faults: list[Fault] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    orphans: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def failures(self) -> list[Fault]:
        return [f for f in self.faults if not f.survived]

    def table(self) -> str:
        kinds: dict[str, list[Fault]] = {}
        for f in self.faults:
            kinds.setdefault(f.kind, []).append(f)
        rows = [
            f"{'fault':<28}{'injected':>9}{'survived':>9}{'max detect s':>14}{'max recover s':>15}"
        ]
        for kind, fs in sorted(kinds.items()):
            rows.append(
                f"{kind:<28}{len(fs):>9}{sum(f.survived for f in fs):>9}"
                f"{max(f.detect_s for f in fs):>14.3f}{max(f.recover_s for f in fs):>15.3f}"
            )
        return "\n".join(rows)

    def summary(self) -> str:
        detect = max((f.detect_s for f in self.faults), default=0.0)
        recover = max((f.recover_s for f in self.faults), default=0.0)
        return (
            f"faults={len(self.faults)} survived={sum(f.survived for f in self.faults)} "
            f"lost={self.lost + self.duplicated} orphans={len(self.orphans)} "
            f"max_detect_s={detect:.3f} max_recover_s={recover:.3f}"
        )


def make_rng(seed: int | None) -> tuple[random.Random, int]:
    """A seeded generator; the seed is printed so that a failing run can be replayed."""
    if seed is None:
        seed = random.SystemRandom().randrange(1, 2**31)
    print(f"reliability seed={seed}", file=sys.stderr, flush=True)
    return random.Random(seed), seed


# -- the echo pod and the soak ---------------------------------------------------------------


def echo_pod(kube: Kube, name: str, timeout: float = 60) -> str:
    """An echo server in a Ready pod of the sandbox."""
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {
                "containers": [
                    {
                        "name": "echo",
                        "image": "example/echo:1",
                        "command": [sys.executable, "-c", ECHO],
                        "readinessProbe": {"tcpSocket": {"port": ECHO_PORT}, "periodSeconds": 1},
                    }
                ]
            },
        }
    )
    kube.wait_for(
        "Pod",
        lambda objs: (
            True
            if any(
                {c["type"]: c["status"] for c in (o.get("status") or {}).get("conditions", [])}.get(
                    "Ready"
                )
                == "True"
                for o in objs.values()
            )
            else None
        ),
        "default",
        field_selector=f"metadata.name={name}",
        deadline=time.monotonic() + timeout,
    )
    return name


def _frame(rid: int, payload: bytes) -> bytes:
    head = HEADER.pack(rid, len(payload))
    return head + payload + hashlib.sha256(head + payload).digest()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("the tunnel closed the connection")
        buf.extend(chunk)
    return bytes(buf)


def soak(
    kube: Kube,
    sb: Any,
    pod: str,
    ledger: Ledger,
    rng: random.Random,
    *,
    requests: int,
    workers: int = 4,
    drop_every: tuple[int, int] = (20, 120),
    bound_s: float = 20.0,
    kind: str = "portforward-drop",
) -> dict[str, float]:
    """``requests`` echo requests over ``workers`` kept-open connections through one
    tunnel, while every ``drop_every`` (a random count in that range) completed requests
    every port-forward stream is dropped (``kind`` "portforward-drop") or the API server
    restarts (RESTART: it cuts the streams and refuses new ones for a moment). A request
    whose connection drops is sent again on a new connection; each answer must carry its
    own id and checksum, exactly once."""
    tunnel = Tunnel(kube.endpoint, "default", pod, ECHO_PORT).start()
    answered: dict[int, int] = {}
    lock = threading.Lock()
    next_id = iter(range(requests))
    done = threading.Event()
    drops: list[float] = []  # monotonic time of each drop that hit a stream
    detect: list[float] = []
    recover: list[float] = []
    problems: list[str] = []
    payload_sizes = [rng.randrange(1, 4096) for _ in range(64)]

    def worker(index: int) -> None:
        sizes = random.Random(rng.random() + index)
        sock: socket.socket | None = None
        pending: int | None = None
        broken_at: float | None = None
        while True:
            if pending is None:
                with lock:
                    pending = next(next_id, None)
                if pending is None:
                    break
            rid = pending
            payload = sizes.randbytes(sizes.choice(payload_sizes))
            frame = _frame(rid, payload)
            try:
                if sock is None:
                    sock = socket.create_connection(tunnel.local_address, timeout=bound_s)
                sock.sendall(frame)
                got = _recv_exactly(sock, len(frame))
            except OSError:
                now = time.monotonic()
                if sock is not None:
                    sock.close()
                sock = None
                if broken_at is None:
                    broken_at = now
                    with lock:
                        if drops:
                            detect.append(now - drops[-1])
                if now - broken_at > bound_s:
                    problems.append(f"worker {index}: no answer for {bound_s}s after a drop")
                    break
                continue
            head = got[: HEADER.size]
            got_id, size = HEADER.unpack(head)
            ok = got == frame and got_id == rid and size == len(payload)
            with lock:
                if not ok:
                    problems.append(f"request {rid}: answer {got_id} does not match")
                answered[rid] = answered.get(rid, 0) + 1
                if broken_at is not None and drops:
                    recover.append(time.monotonic() - drops[-1])
            broken_at = None
            pending = None
        if sock is not None:
            sock.close()
        done.set()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    try:
        threshold = rng.randrange(*drop_every)
        while any(t.is_alive() for t in threads):
            with lock:
                count = len(answered)
            if count >= threshold:
                threshold = count + rng.randrange(*drop_every)
                if kind == RESTART:
                    with lock:
                        drops.append(time.monotonic())
                    sb.faults.restart_api(rng.uniform(0.1, 0.5))
                elif sb.faults.drop_portforward_streams():
                    with lock:
                        drops.append(time.monotonic())
            time.sleep(0.002)  # polls the count; the workers do the waiting
        for t in threads:
            t.join(bound_s)
    finally:
        tunnel.stop()
    took = time.monotonic() - start
    lost = sum(1 for rid in range(requests) if rid not in answered)
    twice = sum(1 for n in answered.values() if n > 1)
    ledger.lost += lost
    ledger.duplicated += twice
    ledger.notes += problems
    max_detect = max(detect, default=0.0)
    max_recover = max(recover, default=0.0)
    ok = lost == 0 and twice == 0 and not problems
    for _ in drops:
        ledger.add(
            Fault(f"{kind} (tunnel)" if kind == RESTART else kind, ok, max_detect, max_recover)
        )
    return {"requests": requests, "drops": len(drops), "lost": lost, "twice": twice, "s": took}


# -- API faults around one operation -----------------------------------------------------------

API_FAULTS = ("api-500", "api-503", "api-reset-before", "api-reset-after")


def arm(sb: Any, kind: str, n: int) -> threading.Thread | None:
    """Arm fault ``kind`` (``n`` requests; a restart: down for ``n`` tenths of a second,
    in a thread of its own, returned so the caller can wait for the server to be back)."""
    if kind == RESTART:
        t = threading.Thread(target=sb.faults.restart_api, args=(n / 10,), daemon=True)
        t.start()
        return t
    if kind == "api-500":
        sb.faults.fail_requests(n, 500)
    elif kind == "api-503":
        sb.faults.fail_requests(n, 503)
    elif kind == "api-reset-before":
        sb.faults.reset_connections(n, "before")
    elif kind == "api-reset-after":
        sb.faults.reset_connections(n, "after")
    else:
        raise ValueError(kind)
    return None


class _Later:
    """A fault armed ``delay`` seconds from now (a random point of the operation)."""

    def __init__(self, sb: Any, kind: str, n: int, delay: float) -> None:
        self.restart: threading.Thread | None = None
        self._timer = threading.Timer(delay, self._fire, (sb, kind, n))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, sb: Any, kind: str, n: int) -> None:
        self.restart = arm(sb, kind, n)

    def cancel(self) -> None:
        """Not armed yet: never; a restart under way: wait until the server is back."""
        self._timer.cancel()
        self._timer.join()
        if self.restart is not None:
            self.restart.join(60)


def arm_later(sb: Any, kind: str, n: int, delay: float) -> _Later:
    return _Later(sb, kind, n, delay)


def under_fault(
    sb: Any,
    ledger: Ledger,
    kind: str,
    operation: Callable[[], Any],
    check: Callable[[Any], bool],
    *,
    label: str,
    n: int,
    delay: float = 0.0,
    bound_s: float,
) -> Any:
    """Run ``operation`` with fault ``kind`` armed (now, or ``delay`` seconds in). It
    survives when it returns within ``bound_s`` a result ``check`` accepts, or raises an
    arkouda-k8s error with a reason (and ``check`` accepts that too)."""
    timer = arm_later(sb, kind, n, delay) if delay or kind == RESTART else None
    if timer is None:
        arm(sb, kind, n)
    start = time.monotonic()
    result: Any
    try:
        result = operation()
    except ArkoudaK8sError as exc:
        result = exc
    finally:
        if timer is not None:
            timer.cancel()
        sb.faults.clear()
    took = time.monotonic() - start
    if kind == RESTART and timer is not None and timer.restart is None:
        return result  # done before the restart came: nothing was injected
    ok = took < bound_s and check(result)
    reason = f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else "ok"
    ledger.add(Fault(f"{kind} ({label})", ok, took, took, reason))
    if not ok:
        ledger.notes.append(f"{kind} during {label}: {reason} after {took:.1f}s")
    return result


# -- load ------------------------------------------------------------------------------------


def latencies(
    address: tuple[str, int], token: str, clients: int, seconds: float
) -> dict[str, float]:
    """``clients`` Arkouda clients (each its own ZeroMQ REQ socket) asking the server
    ``getconfig`` back to back for ``seconds``: requests/s, p50 and p99 in ms."""
    from arkouda_k8s.protocol import ArkoudaProbe

    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        # one REQ socket kept open, like the arkouda client's
        import zmq

        mine: list[float] = []
        probe = ArkoudaProbe(address[0], address[1], token=token, timeout=10)
        message = probe._message("getconfig", None)
        ctx = zmq.Context()
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)
        sock.connect(f"tcp://{address[0]}:{address[1]}")
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                sock.send_string(message)
                try:
                    reply = sock.recv_string()
                except zmq.Again:
                    errors.append("no answer within 10s")
                    break
                if '"msgType": "NORMAL"' not in reply and '"msgType":"NORMAL"' not in reply:
                    errors.append(reply[:80])
                mine.append(time.perf_counter() - t0)
        finally:
            sock.close(0)
            ctx.term()
            probe.close()
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    times.sort()
    n = len(times)
    return {
        "requests": n,
        "errors": len(errors),
        "per_s": n / seconds,
        "p50_ms": 1000 * statistics.median(times) if n else float("nan"),
        "p99_ms": 1000 * times[min(n - 1, int(n * 0.99))] if n else float("nan"),
    }


def load(sb: Any, clients: int, seconds: float, name: str = "rel-load") -> dict[str, Any]:
    """The same stand-in server, through one tunnel and directly (its pod address), each
    for ``seconds`` with ``clients`` clients (``latencies``)."""
    from _support.lifecycle import FAST, admin, cluster, spec

    kube = admin(sb)
    c = cluster(sb, spec(name, locales=1), timeouts=FAST).deploy()
    try:  # explicit teardown: the benchmark calls this too, outside any test
        pod = kube.get("Pod", c.names.server_pod, "default") or {}
        direct = (pod["status"]["podIP"], c.spec.server_port)
        with Tunnel(kube.endpoint, "default", c.names.server_pod, c.spec.server_port) as t:
            tunnel = latencies(t.local_address, c.token(), clients, seconds)
        plain = latencies(direct, c.token(), clients, seconds)
    finally:
        c.teardown()
    return {"tunnel": tunnel, "direct": plain}


# -- scenarios on deployments --------------------------------------------------------------


def stray_processes(sb: Any, name: str) -> list[int]:
    """Pod processes alive that belong to no pod other than ``name``'s (the echo pod and
    other tests' pods keep theirs): those of its pods, and any whose pod is gone."""
    kubelet = sb.kubelet

    def pids() -> list[int]:
        others = {
            rt.pid
            for w in list(kubelet.workers.values())
            if not w.name.startswith(f"{name}-")
            for rt in w.runtimes
            if rt.pid
        }
        return sorted(set(kubelet.processes()) - others)

    return list(sb.call(pids))


def orphans_of(sb: Any, kube: Kube, name: str, wait_s: float = 15.0) -> list[str]:
    """Objects of ``name`` and pod processes still there after up to ``wait_s`` seconds."""
    from _support.lifecycle import labelled

    end = time.monotonic() + wait_s  # one deadline for both
    left = settled(lambda: labelled(kube, name), wait_s, 0.1)
    procs = settled(lambda: stray_processes(sb, name), max(0.0, end - time.monotonic()), 0.1)
    return left + [f"process/{pid}" for pid in procs]


def has_reason(result: Any) -> bool:
    """A failure reported with its reason: a typed error with a message and a hint."""
    return (
        isinstance(result, ArkoudaK8sError)
        and bool(str(result))
        and bool(getattr(result, "hint", "") or getattr(result, "reason", ""))
    )


def status_faults(sb: Any, cluster: Any, ledger: Ledger, rng: random.Random, rounds: int) -> None:
    """API faults while a status is taken: the retries hide them, the answer is Ready."""
    for _ in range(rounds):
        kind = rng.choice(API_FAULTS)
        under_fault(
            sb,
            ledger,
            kind,
            lambda: cluster.status(),
            lambda r: getattr(r, "stage", None) == "Ready",
            label="status",
            n=rng.randint(1, 3),
            bound_s=30,
        )


def tunnel_faults(
    sb: Any, kube: Kube, pod: str, ledger: Ledger, rng: random.Random, rounds: int
) -> None:
    """API faults while a tunnel starts and carries its first request."""

    def once() -> bool:
        with Tunnel(kube.endpoint, "default", pod, ECHO_PORT, connect_timeout=10) as t:
            frame = _frame(1, b"hello")
            with socket.create_connection(t.local_address, timeout=20) as s:
                s.sendall(frame)
                return _recv_exactly(s, len(frame)) == frame

    for _ in range(rounds):
        kind = rng.choice(API_FAULTS)
        under_fault(
            sb,
            ledger,
            kind,
            once,
            lambda r: r is True or has_reason(r),
            label="tunnel",
            n=rng.randint(1, 2),
            bound_s=40,
        )


def deploy_teardown_faults(
    sb: Any,
    kube: Kube,
    ledger: Ledger,
    rng: random.Random,
    rounds: int,
    prefix: str = "rel-d",
    kinds: tuple[str, ...] = API_FAULTS,
) -> None:
    """A fault of ``kinds`` at a random point of a deploy, then of a status and of its
    teardown: the deploy ends Ready or with a reason (rolled back), the status says
    Ready, the teardown leaves nothing."""
    from _support.lifecycle import FAST, cluster, spec

    from arkouda_k8s.cluster import ArkoudaCluster

    for i in range(rounds):
        name = f"{prefix}{i}"
        c = cluster(sb, spec(name, locales=1), timeouts=FAST)
        kind = rng.choice(kinds)
        result = under_fault(
            sb,
            ledger,
            kind,
            c.deploy,
            lambda r: isinstance(r, ArkoudaCluster) or has_reason(r),
            label="deploy",
            n=rng.randint(1, 3),
            delay=rng.uniform(0.05, 3.0),
            bound_s=120,
        )
        if not isinstance(result, ArkoudaCluster):
            left = orphans_of(sb, kube, name)
            if left:  # a failed deploy rolls back
                ledger.orphans += left
                ledger.notes.append(f"failed deploy {name} left {left}")
                c.teardown()
            continue
        kind = rng.choice(kinds)
        under_fault(
            sb,
            ledger,
            kind,
            result.status,
            lambda r: getattr(r, "stage", None) == "Ready",
            label="status",
            n=rng.randint(1, 3),
            delay=rng.uniform(0.0, 0.03),
            bound_s=30,
        )
        kind = rng.choice(kinds)
        under_fault(
            sb,
            ledger,
            kind,
            c.teardown,
            lambda r: not isinstance(r, BaseException) or has_reason(r),
            label="teardown",
            n=rng.randint(1, 3),
            delay=rng.uniform(0.0, 0.5),
            bound_s=60,
        )
        left = orphans_of(sb, kube, name)
        if left:
            # a teardown that failed with its reason is run again, as the user would
            with_retry = cluster(sb, spec(name, locales=1), timeouts=FAST)
            with contextlib.suppress(ArkoudaK8sError):
                with_retry.teardown()
            left = orphans_of(sb, kube, name)
        if left:
            ledger.orphans += left
            ledger.notes.append(f"teardown of {name} left {left}")


class _Computation:
    """A client computing (getmemused back to back) until it fails or is stopped."""

    def __init__(self, cluster: Any) -> None:
        from arkouda_k8s.protocol import ArkoudaProbe

        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        host, port = cluster.address
        self._probe = ArkoudaProbe(host, port, token=cluster.token(), timeout=5)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._probe as probe:
            while not self._stop.is_set():
                try:
                    probe.getmemused()
                except ArkoudaK8sError as exc:
                    self.errors.append(exc)
                    return

    def stop(self, wait_s: float) -> bool:
        """Wait up to ``wait_s`` for it to fail, then stop it; whether it ended."""
        self._thread.join(wait_s)
        self._stop.set()
        self._thread.join(10)
        return not self._thread.is_alive()


def _reported(cluster: Any, since: float, bound_s: float = 30.0) -> tuple[Any, float]:
    """The first status that is no longer Ready (or the last one), and when it came."""
    st = settled(
        lambda: cluster.status(probe=False), bound_s, 0.1, until=lambda st: st.stage != "Ready"
    )
    return st, time.monotonic() - since


def server_pod_killed(sb: Any, kube: Kube, ledger: Ledger, name: str) -> None:
    """The server pod deleted while a computation runs: the computation fails with a
    reason within its bound and status reports the missing server (not Ready)."""
    from _support.lifecycle import FAST, cluster, spec

    c = cluster(sb, spec(name, locales=1), timeouts=FAST).deploy()
    # An explicit teardown, not _support.lifecycle.deployment: what it leaves is counted
    # in the ledger (orphans_of), a figure of the benchmark, instead of failing at once.
    try:
        work = _Computation(c)
        pod = kube.get("Pod", c.names.server_pod, "default")
        killed = time.monotonic()
        kube.delete("Pod", c.names.server_pod, "default", uid=pod["metadata"]["uid"])
        ended = work.stop(30)
        detect = time.monotonic() - killed
        st, reported = _reported(c, killed)
        ok = (
            ended
            and bool(work.errors)
            and st.stage == "Failed"
            and f"{c.names.server_pod}: deleted" in st.message
        )
        ledger.add(Fault("server-pod-killed", ok, detect, reported, f"{st.stage}: {st.message}"))
        if not ok:
            ledger.notes.append(
                f"server pod killed: computation errors={work.errors!r} status={st.stage} "
                f"{st.message!r}"
            )
    finally:
        c.teardown()
    ledger.orphans += orphans_of(sb, kube, name)


def pods_evicted(sb: Any, kube: Kube, ledger: Ledger, name: str, component: str) -> None:
    """The node evicts the server pod or a locale pod (memory pressure) while a
    computation runs: status says Failed with the pod's name and the node's reason, even
    when the Deployment's replacement locale is Ready (the server lost a locale); an
    evicted server fails the computation with a reason. Teardown leaves nothing."""
    from _support.lifecycle import FAST, cluster, spec

    c = cluster(sb, spec(name, locales=2), timeouts=FAST).deploy()
    try:  # explicit teardown: what it leaves is a ledger figure (as in server_pod_killed)
        work = _Computation(c)
        evicted_at = time.monotonic()
        selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/component={component}"
        evicted = sb.faults.evict("default", selector)
        ended = work.stop(30 if component == "server" else 0.5)
        detect = time.monotonic() - evicted_at
        st, reported = _reported(c, evicted_at)
        ok = (
            len(evicted) == 1
            and st.stage == "Failed"
            and f"{evicted[0]}: Evicted: The node was low on resource: memory" in st.message
            and (component != "server" or (ended and bool(work.errors)))
        )
        ledger.add(
            Fault(f"pod-evicted ({component})", ok, detect, reported, f"{st.stage}: {st.message}")
        )
        if not ok:
            ledger.notes.append(
                f"{component} pod evicted ({evicted}): computation errors={work.errors!r} "
                f"status={st.stage} {st.message!r}"
            )
    finally:
        c.teardown()
    ledger.orphans += orphans_of(sb, kube, name)


def evicted_during_deploy(sb: Any, kube: Kube, ledger: Ledger, name: str) -> None:
    """The instance's pods evicted while the deploy waits for them (the server's start
    held back), the server pod among them: the deploy fails within its bound naming the
    pod and the node's reason (not its containers' exit code 137), and rolls back:
    nothing left, no process. (A locale pod alone is replaced by its ReplicaSet and the
    deploy goes on: tests/test_cluster_faults.py.)"""
    from _support.lifecycle import FAST, cluster, spec

    from arkouda_k8s.errors import DeployError

    hold = {"sandbox.arkouda-k8s.dev/start-delay-seconds": "30"}
    c = cluster(sb, spec(name, locales=2, annotations=hold), timeouts=FAST)
    failure: list[BaseException] = []

    def deploy() -> None:
        try:
            c.deploy()
        except BaseException as exc:  # noqa: BLE001 - judged below
            failure.append(exc)

    t = threading.Thread(target=deploy, daemon=True)
    t.start()
    # evicted once the deploy has created its pods (while it waits for them), until the
    # bare server pod is: a locale pod's eviction alone is not the deploy's end
    gone: set[str] = set()

    def evict() -> bool:
        gone.update(sb.faults.evict("default", f"app.kubernetes.io/instance={name}"))
        return c.names.server_pod in gone

    settled(evict, 30, until=lambda server_evicted: server_evicted or not t.is_alive())
    evicted = sorted(gone)
    start = time.monotonic()
    t.join(30)
    took = time.monotonic() - start
    line = failure[0].one_line() if failure and isinstance(failure[0], DeployError) else ""
    left = orphans_of(sb, kube, name)
    ok = (
        c.names.server_pod in evicted
        and not t.is_alive()
        and took < 20
        and "Evicted" in line
        and "The node was low on resource: memory" in line
        and "exit code" not in line
        and not left
    )
    ledger.add(Fault("pod-evicted (deploy)", ok, took, took, line or repr(failure)))
    ledger.orphans += left
    if not ok:
        ledger.notes.append(f"evicted during deploy ({evicted}): {failure!r} after {took:.1f}s")


def cli(sb: Any, *argv: str, **kw: Any) -> Any:
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "arkouda_k8s.cli", *argv, "--kubeconfig", sb.kubeconfig_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def cli_killed(
    sb: Any, kube: Kube, ledger: Ledger, rng: random.Random, rounds: int, prefix: str = "rel-k"
) -> None:
    """The CLI SIGKILLed at a random point of a deploy (or of a teardown), then
    ``teardown`` from a new process: nothing left, objects nor processes."""
    for i in range(rounds):
        name = f"{prefix}{i}"
        during = "deploy" if i % 2 == 0 else "teardown"
        if during == "teardown":
            first = cli(sb, "deploy", name, "--locales", "1", "--cpu", "100m", "--memory", "256Mi")
            first.communicate(timeout=180)
            proc = cli(sb, "teardown", name)
            delay = rng.uniform(0.2, 1.5)
        else:
            proc = cli(sb, "deploy", name, "--locales", "1", "--cpu", "100m", "--memory", "256Mi")
            delay = rng.uniform(0.5, 6.0)
        try:
            proc.wait(delay)
        except Exception:
            proc.kill()
        proc.communicate(timeout=30)
        killed = time.monotonic()
        again = cli(sb, "teardown", name)
        out, err = again.communicate(timeout=120)
        took = time.monotonic() - killed
        left = orphans_of(sb, kube, name)
        # exit 0 (torn down) or 1 with "no deployment" (the kill came before anything)
        ok = not left and (again.returncode == 0 or "no arkouda-k8s deployment" in err)
        ledger.add(Fault(f"cli-sigkill ({during})", ok, 0.0, took, err.strip()[-200:]))
        if left:
            ledger.orphans += left
        if not ok:
            ledger.notes.append(
                f"cli killed during {during} of {name}: rc={again.returncode} {err!r}"
            )
