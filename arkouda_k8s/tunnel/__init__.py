"""The supervised port-forward tunnel to the Arkouda server pod.

``Tunnel`` listens on 127.0.0.1 and carries each accepted connection over its own
port-forward stream through the Kubernetes API server. It speaks raw SPDY/3.1 (the
fastest form for a client: no websocket masking, half-close supported) and falls back
to the websocket ``v4.channel.k8s.io`` form when a server refuses the SPDY upgrade.
Over TLS the bytes of a SPDY connection are moved by the native pump (``_pump.c``, in a
thread of its own, GIL released) once Python has set the connection up; without it
(not built, or ARKOUDA_K8S_TUNNEL_PUMP=asyncio) and for websocket, asyncio
buffered-protocol callbacks move them in large chunks (local reads land behind room for
the SPDY frame head; DATA payloads go on as slices of the decrypted buffer) into
recycled buffers: no per-byte Python work, no copies in Python.

It runs its own event loop in a daemon thread (a sync facade over an async core),
follows the server pod when it is replaced (``pod`` may be a resolver), reports its
state (``TunnelState``) and runs an optional health check. Only ``kube.py`` imports
``kubernetes``; the tunnel talks HTTP itself.

The package, one concern a module:

- here: ``Tunnel``, the public sync facade (thread, event loop, state, start/stop);
- ``state``: ``TunnelState``;
- ``supervisor``: the async core (listener, pod resolution, dialing, probe, pings,
  health check, recovery);
- ``spdy_path``: the SPDY upgrade and its one reply parser, both pumps, TLS calls;
- ``websocket``: the ``v4.channel.k8s.io`` fallback;
- ``local``: the accepted loopback connections and their buffers;
- ``upstream``: what the paths share (``Upstream``, ``Refused``, buffer sizes);
- ``__main__``: ``python -m arkouda_k8s.tunnel POD PORT``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, cast

from ..errors import TunnelError
from ..kube import ApiEndpoint
from .spdy_path import native_pump_status
from .state import TunnelState
from .supervisor import Supervisor

__all__ = [
    "PROTOCOLS",
    "HealthCheck",
    "StateCallback",
    "Tunnel",
    "TunnelState",
    "native_pump_status",
]

log = logging.getLogger(__name__)

PROTOCOLS = ("auto", "spdy", "websocket")

StateCallback = Callable[[TunnelState, "BaseException | None"], None]
HealthCheck = Callable[[str, int], Any]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (measured: about a third less CPU per GiB forwarded, see
    benchmarks/tunnel.py); ARKOUDA_K8S_TUNNEL_LOOP=asyncio forces the stdlib loop."""
    if os.environ.get("ARKOUDA_K8S_TUNNEL_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return cast(asyncio.AbstractEventLoop, uvloop.new_event_loop())
    return asyncio.new_event_loop()


_LIVE: weakref.WeakSet[Tunnel] = weakref.WeakSet()


@atexit.register
def _stop_live_tunnels() -> None:
    """Tunnels still open at interpreter exit are stopped first: their pump threads hold
    sockets and OpenSSL objects that must not outlive the interpreter and libssl."""
    for tunnel in list(_LIVE):
        with contextlib.suppress(Exception):
            tunnel.stop(timeout=2.0)


class Tunnel:
    """A local port on 127.0.0.1 forwarded to a port of a pod, kept alive.

    The listener binds the loopback interface only: nothing on the network can use it.
    Each accepted connection gets its own port-forward stream; a dropped stream resets
    only its own connection and the next connection opens a fresh one.

    As a context manager::

        with Tunnel(kube.endpoint(), "arkouda", "arkouda-server") as tunnel:
            host, port = tunnel.local_address      # ("127.0.0.1", <free port>)

    Started and stopped explicitly::

        tunnel = Tunnel(endpoint, "arkouda", "arkouda-server", remote_port=5555)
        tunnel.start()
        ...
        tunnel.stop()

    ``endpoint`` may also be a callable such as ``kube.endpoint``: it is called again for
    fresh credentials when the API server answers 401 (expired exec-plugin tokens).

    With options: a resolver that finds the current server pod (called in a worker
    thread, so it may block), a fixed local port, a state callback and a health check
    run every ``health_interval`` seconds against the local address (open connections
    also send a keepalive ping every ``ping_interval`` seconds)::

        tunnel = Tunnel(
            endpoint, "arkouda", lambda: find_server_pod(),
            local_port=5555,
            on_state=lambda state, error: print(state, error),
            health_check=lambda host, port: ArkoudaProbe(host, port).handshake(),
            health_interval=10.0,
        )

    ``check_on_start=False``: ``start()`` returns once the listener is bound, without
    first checking that the API server accepts a port-forward to the pod (that check is
    a port-forward of its own): for a caller whose first connection follows at once and
    proves as much (a short-lived status read). The state stays ``starting`` until a
    connection is forwarded (``ready``); a refusal shows as ``failed`` with its error,
    set before the refused connection is reset.

    States: ``starting``, ``ready``, ``reconnecting`` (a connection or a health check
    failed; the pod is being re-resolved), ``failed`` (a permission error, or
    ``reconnect_timeout`` passed; new connections still try), ``closed``.
    ``protocol`` is ``"auto"`` (raw SPDY, websocket if refused), ``"spdy"`` or
    ``"websocket"``.
    """

    def __init__(
        self,
        endpoint: ApiEndpoint | Callable[[], ApiEndpoint],
        namespace: str,
        pod: str | Callable[[], str],
        remote_port: int = 5555,
        local_port: int = 0,
        *,
        on_state: StateCallback | None = None,
        health_check: HealthCheck | None = None,
        health_interval: float = 10.0,
        health_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        reconnect_timeout: float | None = None,
        ping_interval: float | None = 30.0,
        protocol: str = "auto",
        check_on_start: bool = True,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise TunnelError(f"protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if not 0 < remote_port < 65536:
            raise TunnelError(f"remote_port: {remote_port} is not a port number (1-65535)")
        if not 0 <= local_port < 65536:
            raise TunnelError(f"local_port: {local_port} is not a port number (0-65535)")
        # a callable gives fresh credentials when the API answers 401 (it may block)
        self._endpoint_source = endpoint if callable(endpoint) else None
        self.endpoint: ApiEndpoint = endpoint() if callable(endpoint) else endpoint
        self.namespace = namespace
        self._pod = pod
        self._resolver = pod if callable(pod) else None
        self.remote_port = remote_port
        self.local_port = local_port
        self.on_state = on_state
        self.health_check = health_check
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.ping_interval = ping_interval
        self.protocol = protocol
        self.check_on_start = check_on_start
        self.state: TunnelState = TunnelState.CLOSED
        self.last_error: TunnelError | None = None
        self._address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._core: Supervisor | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = f"{self._address[0]}:{self._address[1]}" if self._address else "-"
        return (
            f"Tunnel({where} -> {self.namespace}/{self.pod_name or '?'}:{self.remote_port}, "
            f"state={self.state})"
        )

    @property
    def local_address(self) -> tuple[str, int]:
        """(host, port) of the loopback listener."""
        if self._address is None:
            raise TunnelError("the tunnel is not started", "call start() or use it in a with block")
        return (str(self._address[0]), int(self._address[1]))

    @property
    def pod_name(self) -> str | None:
        """The pod the tunnel currently forwards to."""
        core = self._core
        if core is not None and core.pod:
            return core.pod
        return self._pod if isinstance(self._pod, str) else None

    @property
    def pings_answered(self) -> int:
        """Keepalive pings the API server answered (SPDY connections; a liveness sign)."""
        return self._core.pongs if self._core is not None else 0

    @property
    def pump(self) -> str | None:
        """What moves the bytes of SPDY connections: ``native`` (the compiled pump,
        ``_pump.c``) or ``asyncio`` (no compiler at install, plain HTTP, or
        ARKOUDA_K8S_TUNNEL_PUMP=asyncio). None before the tunnel starts."""
        core = self._core
        if core is None:
            return None
        return "native" if core.native and core.protocol == "spdy" else "asyncio"

    @property
    def wire_protocol(self) -> str | None:
        """``spdy`` or ``websocket``: what the tunnel speaks to the API server now."""
        return self._core.protocol if self._core is not None else None

    def _set_state(self, state: TunnelState, error: BaseException | None) -> None:
        with self._lock:
            if self.state == TunnelState.CLOSED and state != TunnelState.STARTING:
                return
            changed = state != self.state
            self.state = state
            if error is not None:
                self.last_error = (
                    error if isinstance(error, TunnelError) else TunnelError(str(error))
                )
            if state in (TunnelState.READY, TunnelState.FAILED):
                self._ready.set()
        if changed and self.on_state is not None:
            try:
                self.on_state(state, error)
            except Exception:  # a broken callback must not break the tunnel
                log.exception("tunnel on_state callback failed")

    def start(self, timeout: float = 30.0) -> Tunnel:
        """Bind the listener and wait until the tunnel is ready (or raise TunnelError);
        with ``check_on_start=False`` only until the listener is bound."""
        if self._thread is not None:
            raise TunnelError("the tunnel is already started")
        self._ready.clear()
        self.last_error = None
        self._set_state(TunnelState.STARTING, None)
        _LIVE.add(self)
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="arkouda-k8s-tunnel", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout) or self.state == TunnelState.FAILED:
            error = self.last_error or TunnelError(
                f"tunnel: not ready within {timeout:.0f}s", "check the pod and the health check"
            )
            self.stop()
            raise error
        return self

    def _run(self, started: threading.Event) -> None:
        loop = new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(started))
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self, started: threading.Event) -> None:
        self._core = Supervisor(self)
        await self._core.serve(started)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every forwarded connection; idempotent."""
        thread, loop, core = self._thread, self._loop, self._core
        _LIVE.discard(self)
        if thread is None:
            return
        if loop is not None and core is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(core.stopping.set)
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        self._loop = None
        self._set_state(TunnelState.CLOSED, None)
        self._address = None

    def __enter__(self) -> Tunnel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
