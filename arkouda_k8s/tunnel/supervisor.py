"""The tunnel's supervisor: the async core on the tunnel's own event loop (listener,
server pod resolution, dialing with SPDY then websocket, probe, keepalive pings, health
check, recovery) and the tunnel's state moves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ..errors import TunnelError, TunnelForbidden
from ..kube_errors import renew_certificate_hint
from .local import Local, reset
from .spdy_path import NativeUpstream, SpdyUpstream, dial_native, dial_spdy, native_pump_usable
from .state import TunnelState
from .upstream import Refused, Upstream
from .websocket import dial_ws

if TYPE_CHECKING:
    import aiohttp

    from ..kube import ApiEndpoint
    from . import Tunnel

log = logging.getLogger("arkouda_k8s.tunnel")


def as_tunnel_error(
    exc: BaseException | None, what: str, endpoint: ApiEndpoint | None = None
) -> TunnelError:
    if isinstance(exc, TunnelError):
        return exc
    if isinstance(exc, Refused):
        hint = None
        if exc.status == 401:  # who we are was not accepted: not a missing permission
            problem = endpoint.certificate_problem if endpoint is not None else None
            if problem:
                return TunnelForbidden(
                    f"{what}: unauthorized: the kubeconfig's client certificate {problem}",
                    renew_certificate_hint(None),
                )
            return TunnelForbidden(
                f"{what}: the API server did not accept the credentials: {exc.message}",
                "log in again (the kubeconfig's credentials are not valid), or pick another "
                "context",
            )
        if exc.permission_problem:
            return TunnelForbidden(
                f"{what}: the API server refused: {exc.message}",
                "the user needs 'create' on pods/portforward in this namespace",
            )
        if exc.pod_problem:
            hint = "check that the server pod exists and is Running"
        return TunnelError(f"{what}: the API server refused: {exc.message}", hint)
    if isinstance(exc, asyncio.TimeoutError):
        return TunnelError(f"{what}: timed out", "check that the API server is reachable")
    if exc is None:
        return TunnelError(f"{what}: failed")
    return TunnelError(f"{what}: {exc}")


class Supervisor:
    """The async half of a Tunnel; lives on the tunnel's own event loop.

    It listens, resolves and follows the server pod, dials each accepted connection over
    the SPDY path (falling back to websocket), probes, pings and runs the health check,
    and moves the tunnel between its states.
    """

    def __init__(self, tunnel: Tunnel) -> None:
        self.t = tunnel
        self.loop = asyncio.get_running_loop()
        self.locals: set[Local] = set()
        self.server: asyncio.AbstractServer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.pod: str | None = None
        self.resolving: asyncio.Task[str] | None = None
        self.recovering: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.protocol = "spdy" if tunnel.protocol in ("auto", "spdy") else "websocket"
        self.stopping = asyncio.Event()
        self.pongs = 0
        url = urlsplit(tunnel.endpoint.server)
        self.tls = url.scheme == "https"
        # the native pump for data connections (TLS only; probes keep the asyncio path)
        self.native = self.tls and native_pump_usable()
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if self.tls else 80)
        self.base_path = url.path.rstrip("/")
        self.host_header = url.netloc

    @property
    def server_name(self) -> str:
        """What the API server's certificate is checked against on every dial: the
        kubeconfig's tls-server-name, else the server's host (read at each dial: the
        endpoint is replaced when credentials are refreshed)."""
        return self.t.endpoint.server_name or self.host

    # lifecycle
    async def serve(self, started: threading.Event) -> None:
        t = self.t
        try:
            self.server = await self.loop.create_server(
                lambda: Local(self), "127.0.0.1", t.local_port, reuse_address=True
            )
        except OSError as exc:
            t._set_state(
                TunnelState.FAILED,
                TunnelError(
                    f"local_port: cannot listen on 127.0.0.1:{t.local_port}: {exc.strerror}",
                    "choose another local port, or 0 for any free port",
                ),
            )
            started.set()
            await self.shutdown()
            return
        t._address = self.server.sockets[0].getsockname()[:2]
        started.set()
        if t.ping_interval:
            self._spawn(self.ping_loop())
        if t.check_on_start:
            # the first pod resolution + probe: ready when the API accepts a forward to the pod
            self.recover()
        else:  # the first connection checks as much (attach says ready, or why not)
            t._ready.set()
        await self.stopping.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.close()
        for local in list(self.locals):
            if local.upstream is not None:
                local.upstream.close()
        # native pumps still hold their sockets until they return (at once, once asked)
        pumps = [
            local.upstream for local in self.locals if isinstance(local.upstream, NativeUpstream)
        ]
        if pumps:
            await asyncio.wait([pump.finished for pump in pumps], timeout=5.0)
            for pump in pumps:  # past run() already: these joins take microseconds
                if pump.thread is not None:
                    pump.thread.join(1.0)
        for local in list(self.locals):
            reset(local.transport)
        tasks = list(self.tasks)
        if self.recovering is not None:
            tasks.append(self.recovering)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        await asyncio.sleep(0)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def ping_loop(self) -> None:
        interval = self.t.ping_interval
        assert interval is not None
        while not self.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), interval)
            for local in list(self.locals):
                if isinstance(local.upstream, SpdyUpstream | NativeUpstream):
                    local.upstream.ping()

    # the server pod
    async def resolve(self) -> str:
        """The current server pod name (asks the resolver when none is cached)."""
        if self.pod is not None:
            return self.pod
        task = self.resolving
        if task is None:
            task = self.resolving = self.loop.create_task(self._resolve_once())
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self.resolving is task:
                self.resolving = None

    async def _resolve_once(self) -> str:
        pod = self.t._pod
        name = await asyncio.to_thread(pod) if callable(pod) else pod
        if not isinstance(name, str) or not name:
            raise TunnelError(
                f"pod resolver returned {name!r}",
                "the resolver must return the name of a pod, or raise",
            )
        self.pod = name
        return name

    def forget_pod(self) -> None:
        """The cached pod looks gone: ask the resolver again next time (if there is one)."""
        if self.t._resolver is not None:
            self.pod = None

    # one accepted connection
    async def attach(self, local: Local) -> None:
        t = self.t
        deadline = self.loop.time() + t.connect_timeout
        delay = 0.05
        last: BaseException | None = None
        while not local.closed:
            try:
                pod = await self.resolve()
                upstream = await self.dial(pod, local)
            except Refused as exc:
                last = exc
                if exc.permission_problem:
                    t._set_state(
                        TunnelState.FAILED,
                        as_tunnel_error(exc, f"port-forward to pod {self.pod}", t.endpoint),
                    )
                    break
                if exc.pod_problem:
                    self.forget_pod()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                last = exc
            else:
                if local.closed:
                    upstream.close()
                    return
                local.attached(upstream)
                if (
                    t.state in (TunnelState.STARTING, TunnelState.RECONNECTING, TunnelState.FAILED)
                    and t.health_check is None
                ):
                    t._set_state(TunnelState.READY, None)
                return
            if self.loop.time() + delay > deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        if local.closed:
            return
        error = as_tunnel_error(last, f"port-forward to pod {self.pod}", t.endpoint)
        if t.state != TunnelState.FAILED:
            t._set_state(TunnelState.RECONNECTING, error)
            self.recover()
        else:
            t.last_error = error
        local.fail()

    async def dial(self, pod: str, local: Local, probe: bool = False) -> Upstream:
        try:
            return await self._dial(pod, local, probe)
        except Refused as exc:
            if exc.status != 401 or self.t._endpoint_source is None:
                raise
        # 401: credentials expire (exec plugins, OIDC); ask for fresh ones once
        source = self.t._endpoint_source
        self.t.endpoint = await asyncio.to_thread(source)
        if self.session is not None:
            await self.session.close()
            self.session = None
        return await self._dial(pod, local, probe)

    async def _dial(self, pod: str, local: Local, probe: bool) -> Upstream:
        if self.protocol == "spdy":
            try:
                if self.native and not probe:
                    return await dial_native(self, pod, local)
                return await dial_spdy(self, pod, local, probe)
            except Refused as exc:
                if self.t.protocol != "auto" or exc.pod_problem or exc.permission_problem:
                    raise
                log.info("SPDY port-forward refused (%s); trying websocket", exc)
                upstream = await dial_ws(self, pod, local)
                self.protocol = "websocket"
                return upstream
        return await dial_ws(self, pod, local)

    def path(self, pod: str) -> str:
        ns = quote(self.t.namespace, safe="")
        return f"{self.base_path}/api/v1/namespaces/{ns}/pods/{quote(pod, safe='')}/portforward"

    # supervision
    def stream_failed(self, message: str) -> None:
        """A live stream failed: its own connection is reset; the tunnel stays up."""
        self.t.last_error = TunnelError(message)
        log.info("tunnel: %s", message)

    def recover(self) -> None:
        if self.recovering is None or self.recovering.done():
            self.recovering = self.loop.create_task(self.recover_loop())

    async def recover_loop(self) -> None:
        """Resolve the pod and probe it until it answers, then report ready."""
        t = self.t
        delay = 0.2
        started = self.loop.time()
        while not self.stopping.is_set():
            try:
                pod = await self.resolve()
                if t.health_check is not None:
                    await self.run_health_check()
                else:
                    await self.probe(pod)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = as_tunnel_error(exc, f"port-forward to pod {self.pod or '?'}", t.endpoint)
                if isinstance(exc, Refused) and exc.permission_problem:
                    t._set_state(TunnelState.FAILED, error)
                    return
                if t.reconnect_timeout is not None and (
                    self.loop.time() - started > t.reconnect_timeout
                ):
                    t._set_state(TunnelState.FAILED, error)
                    return
                if t.state == TunnelState.READY:
                    t._set_state(TunnelState.RECONNECTING, error)
                else:
                    t.last_error = error
                self.forget_pod()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            t._set_state(TunnelState.READY, None)
            if t.health_check is not None and not any(
                getattr(task.get_coro(), "__name__", "") == "health_loop" for task in self.tasks
            ):
                self._spawn(self.health_loop())
            return

    async def probe(self, pod: str) -> None:
        """Does the API server accept a port-forward to the pod? Opens no stream."""
        local = Local(self)
        upstream = await self.dial(pod, local, probe=True)
        upstream.close()

    async def run_health_check(self) -> None:
        assert self.t.health_check is not None and self.t._address is not None
        host, port = self.t._address
        await asyncio.wait_for(
            asyncio.to_thread(self.t.health_check, host, port), self.t.health_timeout
        )

    async def health_loop(self) -> None:
        t = self.t
        failing_since: float | None = None
        while not self.stopping.is_set():
            try:
                await self.run_health_check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = as_tunnel_error(exc, "health check")
                now = self.loop.time()
                failing_since = now if failing_since is None else failing_since
                if t.state == TunnelState.READY:
                    t._set_state(TunnelState.RECONNECTING, error)
                elif (
                    t.state == TunnelState.RECONNECTING
                    and t.reconnect_timeout is not None
                    and now - failing_since > t.reconnect_timeout
                ):
                    t._set_state(TunnelState.FAILED, error)
                else:
                    t.last_error = error
                self.forget_pod()
            else:
                failing_since = None
                if t.state != TunnelState.READY:
                    t._set_state(TunnelState.READY, None)
            interval = (
                t.health_interval if t.state == TunnelState.READY else min(t.health_interval, 1.0)
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), interval)
