"""The way from this process to one deployment's Arkouda server: its token (read from
the deployment's Secret, held in memory only), the supervised tunnel to the server pod
(started, restarted, borrowed from another process, stopped, and registered so that
``list_clusters()`` shows it), the handshake that proves the server answers, the user's
``arkouda`` session through it and the server's own numbers for status.

``ArkoudaCluster`` holds one and delegates to it; what a failed handshake means for the
deployment (a server that exited at its registration, worth a restart or not) stays
with the lifecycle, which hands it in as ``retry``.

>>> conn = ServerConnection(kube, spec)                              # doctest: +SKIP
>>> conn.handshake(time.monotonic() + 60, within=60)["arkoudaVersion"]  # doctest: +SKIP
>>> ak = conn.connect()                                              # doctest: +SKIP
>>> conn.close()                                                     # doctest: +SKIP
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import manifests
from .errors import (
    ArkoudaK8sError,
    ClusterNotFound,
    StageTimeout,
    TunnelError,
    TunnelForbidden,
    logged,
)
from .inventory import _HELD_TUNNELS, _forget_tunnel, _record_tunnel
from .kube import Kube
from .spec import ClusterSpec
from .stages import Report

if TYPE_CHECKING:  # imported where first used: the lifecycle loads without them
    from .protocol import ArkoudaProbe
    from .session import Session
    from .tunnel import Tunnel

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class ServerConnection:
    """Token, tunnel, handshake and session of the deployment of ``spec``.

    ``spec`` may be replaced (the lifecycle learns the deployed one on attach); the
    tunnel listens on 127.0.0.1 (``local_port``, 0: any free port) and tells each of
    ``listeners`` its state as text; ``ready_pod()`` names the server pod a wait just saw
    Ready, once.

    Its own requests (the handshake, the memory read of every status) share one kept
    connection to the tunnel, opened by the first and closed with the tunnel: through a
    tunnel every new connection is a port-forward, so a status of a held tunnel opens
    none, and a short-lived one only the connection its handshake needs.
    """

    def __init__(
        self,
        kube: Kube,
        spec: ClusterSpec,
        *,
        local_port: int = 0,
        on_progress: Report | None = None,
        ready_pod: Callable[[], str | None] | None = None,
    ) -> None:
        self.kube = kube
        self.spec = spec
        self.local_port = local_port
        self.listeners: list[Callable[[str], None]] = []
        self.tunnel: Tunnel | _BorrowedTunnel | None = None  # borrowed: use_tunnel
        self.session: Session | None = None
        self.config: dict[str, Any] | None = None  # the server's getconfig answer
        self.token_text: str | None = None
        # our one kept connection to the server (see the class docstring); the lock:
        # status polls and the lifecycle may ask from different threads
        self._probe: ArkoudaProbe | None = None
        self._probe_lock = threading.Lock()
        # The server pod a wait just saw Ready (once): the tunnel's first target, no list.
        self._ready_pod = ready_pod
        self._on_progress = on_progress

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def namespace(self) -> str:
        return self.spec.namespace or self.kube.namespace

    @property
    def names(self) -> manifests.Names:
        return manifests.names(self.spec)

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) on 127.0.0.1 where the tunnel listens, once it runs."""
        if self.tunnel is None:
            return None
        try:
            host, port = self.tunnel.local_address
            return (host, port)
        except Exception:
            return None

    def token(self) -> str | None:
        """The server token, read from its Secret (None when authentication is off).

        Held in memory only; the front ends pass it to ak.connect and never print it.
        """
        if not self.spec.authenticate:
            return None
        if self.token_text is None:
            secret = self.kube.get("Secret", self.names.token_secret, self.namespace)
            if secret is None or "token" not in (secret.get("data") or {}):
                raise ClusterNotFound(
                    f"secret {self.names.token_secret} with the server token is missing",
                    f"the deployment is damaged: `arkouda-k8s teardown {self.name}` and deploy again",
                )
            self.token_text = base64.b64decode(secret["data"]["token"]).decode()
        return self.token_text

    # -- the tunnel -------------------------------------------------------------------

    def start_tunnel(self, timeout: float = 30.0, *, check: bool = True) -> tuple[str, int]:
        """Start (or restart) the port-forward to the server pod; returns its address.

        ``check=False``: a tunnel started here skips its own check that the API server
        accepts a port-forward to the pod (a port-forward of its own); the caller's first
        connection proves that (``Tunnel(check_on_start=False)``)."""
        from .tunnel import Tunnel, TunnelState

        if self.tunnel is not None:
            if self.tunnel.state not in (TunnelState.CLOSED, TunnelState.FAILED):
                addr = self.address
                if addr:
                    return addr
            self.stop_tunnel()
        self.tunnel = Tunnel(
            self.kube.endpoint,  # a callable: fresh credentials on a 401
            self.namespace,
            self._server_pod,
            self.spec.server_port,
            local_port=self.local_port,
            on_state=self._tunnel_state,
            check_on_start=check,
        )
        self.tunnel.start(timeout=timeout)
        addr = self.address
        if addr is None:
            raise TunnelError(f"the tunnel to {self.name} did not start")
        _HELD_TUNNELS[self._key()] = self
        _record_tunnel(self._key(), addr)
        return addr

    def use_tunnel(self, address: tuple[str, int], token: str | None) -> None:
        """Reach the server through a tunnel another process holds (the Jupyter server's);
        ``stop_tunnel()`` leaves it running for its holder. ``token`` is the deployment's
        token, so nothing is read from the cluster here."""
        self.stop_tunnel()
        self.tunnel = _BorrowedTunnel(address)
        if token is not None:
            self.token_text = token

    def stop_tunnel(self) -> None:
        self._close_probe()
        if _HELD_TUNNELS.get(self._key()) is self:
            del _HELD_TUNNELS[self._key()]
            _forget_tunnel(self._key())
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            with logged(log, "stopping the tunnel"):
                tunnel.stop()

    def _tunnel_refused(self) -> TunnelForbidden | None:
        """The refusal a failed tunnel met (the API server's answer to its port-forward,
        set before the refused connection was reset), if that is why it failed."""
        from .tunnel import Tunnel, TunnelState

        tunnel = self.tunnel
        if isinstance(tunnel, Tunnel) and tunnel.state == TunnelState.FAILED:
            error = tunnel.last_error
            if isinstance(error, TunnelForbidden):
                return error
        return None

    def _key(self) -> tuple[str, str, str]:
        return (self.kube.server, self.namespace, self.name)

    def _server_pod(self) -> str:
        """The current server pod (the tunnel's target: trap 3, never the Service)."""
        hint = self._ready_pod() if self._ready_pod is not None else None
        if hint is not None:  # just seen Ready by a wait; later dials look again
            return hint
        pods = self.kube.list(
            "Pod", self.namespace, label_selector=manifests.selector(self.spec, "server")
        )["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        running = [p for p in live if (p.get("status") or {}).get("phase") == "Running"]
        pick = running or live
        if not pick:
            raise TunnelError(
                f"no server pod of {self.name} in namespace {self.namespace}",
                f"check `arkouda-k8s status {self.name}`",
            )
        return str(pick[0]["metadata"]["name"])

    def _tunnel_state(self, state: Any, error: BaseException | None = None) -> None:
        text = str(getattr(state, "value", state))
        if error is not None:
            why = " ".join(f"{type(error).__name__}: {error}".split())
            log.debug("tunnel of %s: %s (%s)", self.name, text, why)
        for cb in list(self.listeners):
            try:
                cb(text)
            except Exception:
                log.exception("tunnel state callback failed")

    # -- the server through it --------------------------------------------------------

    def handshake(
        self,
        deadline: float,
        *,
        within: float,
        retry: Callable[[float], bool] | None = None,
        log_tail: Callable[[], str | None] | None = None,
        hint: str = "",
        tunnel_check: bool = True,
    ) -> dict[str, Any]:
        """Arkouda's connect + getconfig answered through the tunnel (readiness proof),
        tried until ``deadline`` (``within``: those seconds, as the timeout says).

        ``tunnel_check=False``: a tunnel this starts skips its own port-forward check,
        the handshake's connection is the one port-forward (a short-lived status read);
        a refused port-forward still raises ``TunnelForbidden`` at once.

        After each failed try, ``retry(deadline)`` may raise (the server will never
        answer) or return True to try again at once (it restarted the server). The
        timeout carries ``log_tail()`` and ``hint`` after the logs advice.
        """
        from .protocol import TokenRefused

        self._progress("handshake", 0, 1, "connecting to Arkouda through the tunnel")
        self.token()  # first: a missing token Secret says so before any tunnel starts
        last: ArkoudaK8sError | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                host, port = self.start_tunnel(timeout=max(1.0, left), check=tunnel_check)
                config = self._ask(lambda p: p.handshake(), timeout=max(0.5, min(5.0, left)))
                assert config is not None  # the tunnel was just started
                self.config = config
                version = config.get("arkoudaVersion", "?")
                self._progress("handshake", 1, 1, f"Arkouda {version} answered")
                self._progress("ready", 1, 1, f"{self.name} ready at {host}:{port}")
                return config
            except TunnelForbidden:
                raise  # a refused port-forward stays refused: no wait until the deadline
            except TokenRefused as exc:
                # The server's token is not the Secret's (edited by hand): stays so.
                raise TokenRefused(
                    f"{exc.message} (the token in Secret {self.names.token_secret} is not the "
                    "one the server started with)",
                    f"restore the Secret, or `arkouda-k8s teardown {self.name}` and deploy again",
                ) from None
            except ArkoudaK8sError as exc:  # not answering yet, tunnel trouble, API trouble
                last = exc
            refused = self._tunnel_refused()
            if refused is not None:  # unchecked tunnel: its first connection was refused
                raise refused
            # outside the except: what retry raises is not "during" the last failure
            if retry is not None and retry(deadline):
                continue
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        raise StageTimeout(
            f"the Arkouda server of {self.name} did not answer through the tunnel within "
            f"{within:.0f}s: {last.one_line() if last else 'no attempt'}",
            f"see `arkouda-k8s logs {self.name}`{hint}",
            stage="handshake",
            reason="NotAnswering",
            pod=self.names.server_pod,
            log_tail=log_tail() if log_tail else None,
        )

    def connect(self, timeout: float = 10.0, *, config: dict[str, Any] | None = None) -> Any:
        """The user's ``arkouda`` module, connected through the tunnel (again, after a drop).

        ``config``: the getconfig answer of a handshake another process made (the Jupyter
        server that holds the tunnel): the client's connect is then the one round trip.
        Without it, what our own handshake learned on this tunnel stands in for the
        session's probe (a port-forward of its own) while the connection that learned it
        is still open; with nothing learned yet (a reattach before any handshake) the
        session probes the server first.
        """
        from .session import Session

        host, port = self.start_tunnel()
        probed = False  # another process's answer: the client's connect is the first word
        if config is None:
            config = self._known_config((host, port), timeout)
            probed = config is not None  # our handshake's, over this very tunnel
        self.close_session()
        self.session = Session.bind(
            host,
            port,
            token=self.token(),
            timeout=timeout,
            server_version=self.spec.release,
            config=config,
            probed=probed,
        )
        return self.session.ak

    def _known_config(self, address: tuple[str, int], timeout: float) -> dict[str, Any] | None:
        """The server's getconfig answer as our kept connection to ``address`` knows it.

        While the connection the handshake learned it over is open, it is the same server
        process behind the same tunnel (a server restart or a dropped forward ends the
        connection), so the answer stands, with no request. A kept connection that ended
        meanwhile asks again (the one new port-forward the session's probe would have
        opened, now kept for status). None: no kept connection (nothing learned here)."""
        with self._probe_lock:
            probe = self._probe
            if probe is None or (probe.host, probe.port) != address:
                return None
            if self.config is not None and probe.connected():
                return self.config
        self.config = self._ask(lambda p: p.handshake(), timeout=timeout)
        return self.config

    def memory_used(self) -> int | None:
        """Bytes the server reports in use (getmemused), over our kept connection."""
        return self._ask(lambda p: int(p.getmemused()))

    def numbers(self) -> tuple[int | None, str | None]:
        """(bytes in use, Arkouda version) asked of the server through the tunnel held;
        what it cannot say is None (status shows it as unknown, not as an error)."""
        memory_used = None
        with logged(log, "reading the server's memory use for status"):
            memory_used = self.memory_used()
        version = (self.config or {}).get("arkoudaVersion")
        if version is None and self.address is not None:
            with logged(log, "the handshake for status"):
                self.config = self._ask(lambda p: p.handshake())
                version = (self.config or {}).get("arkoudaVersion")
        return memory_used, version

    def _ask(self, question: Callable[[ArkoudaProbe], _T], timeout: float = 5.0) -> _T | None:
        """``question`` asked of the server over the kept connection (None: no tunnel).

        One connection for the tunnel's life, not one per request; it is replaced when the
        tunnel's address changed (a restart) and, by the probe, when it broke."""
        from .protocol import ArkoudaProbe

        address = self.address
        if address is None:
            return None
        token = self.token()
        with self._probe_lock:
            probe = self._probe
            if probe is not None and (probe.host, probe.port) != address:
                probe.close()
                probe = None
            if probe is None:
                probe = self._probe = ArkoudaProbe(*address, token=token, keep=True)
            probe.timeout = timeout
            return question(probe)

    def _close_probe(self) -> None:
        with self._probe_lock:
            probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()

    def close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            with logged(log, "closing the session"):
                session.close()

    def close(self) -> None:
        """The session and the tunnel (a borrowed one stays with its holder)."""
        self.close_session()
        self.stop_tunnel()

    def _progress(self, stage: str, done: int, total: int, message: str) -> None:
        if self._on_progress is not None:
            self._on_progress(stage, done, total, message)


class _BorrowedTunnel:
    """The tunnel of another process, as ``ServerConnection.tunnel`` (``use_tunnel``)."""

    state = "shared"

    def __init__(self, address: tuple[str, int]) -> None:
        self.local_address = (str(address[0]), int(address[1]))

    def stop(self) -> None:
        """Its holder stops it, not a borrower."""
