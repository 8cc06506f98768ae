"""Binding the user's installed ``arkouda`` client to a server address (usually the tunnel).

This is the only module that imports ``arkouda``, and only when a session is bound.
Before handing the address to the client it probes the server with
:mod:`arkouda_k8s.protocol`, so a silent server or a wrong token gives an error instead
of a hang. It connects with the connect arguments the installed client supports (a
token only if ``ak.connect`` accepts ``access_token``), with a timeout, then restores
blocking receives so a long computation is not cut off later. A client/server version
mismatch is a ``RuntimeWarning`` that names both versions. While bound, the client's
socket is wrapped in :class:`TimedSocket`, which counts requests and the time spent
waiting on the server (``Session.server_time()``, shown by ``%%arkouda``).

    session = Session.bind("127.0.0.1", 5555, token=token)
    ak = session.ak
    ak.arange(0, 10, 1).sum()
    session.close()

The ``arkouda`` client keeps one connection per process, so one Session at a time.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from types import ModuleType
from typing import Any

from .errors import ClientMissing, ServerNotAnswering, SessionError
from .protocol import ArkoudaProbe

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install the arkouda client of your server's release (Arkouda's installation "
    "instructions), or for the sandbox `python scripts/install_arkouda_client.py` "
    "(the pure-Python 2020.7.7 client from PyPI)"
)


def import_client() -> ModuleType:
    """The installed ``arkouda`` module; :class:`ClientMissing` if there is none."""
    try:
        with warnings.catch_warnings():
            # The 2020.7.7 client imports pkg_resources, which setuptools 80 (what a new
            # Python 3.12+ venv gets) announces as deprecated on every import: noise on
            # the user's stderr that says nothing about their code.
            warnings.filterwarnings(
                "ignore", message="pkg_resources is deprecated", category=UserWarning
            )
            # Its docstrings hold backslashes that Python 3.12+ reports when it first
            # compiles them (a fresh install): the client's text, not the user's code.
            warnings.filterwarnings(
                "ignore", message="invalid escape sequence", category=SyntaxWarning
            )
            return importlib.import_module("arkouda")
    except ImportError as exc:
        raise ClientMissing(f"the arkouda client is not installed ({exc})", INSTALL_HINT) from None


def client_sends_token() -> bool:
    """Whether the installed client can send a token (``ak.connect(access_token=...)``).

    The 2020.7.7 client from PyPI cannot: a deployment for it must run with --no-auth.
    :class:`ClientMissing` when no client is installed.
    """
    return "access_token" in inspect.signature(import_client().connect).parameters


def client_version() -> str | None:
    """The installed ``arkouda`` client's version from the package metadata (the client is
    not imported); None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("arkouda")
    except metadata.PackageNotFoundError:
        return None


def matching_release() -> str | None:
    """The image tag of the installed client's release (``2020.07.07`` -> ``v2020.07.07``).

    Read from the package metadata, so the client is not imported. None when no client
    is installed or its version is not a release date.
    """
    import re

    version = client_version()
    if version is None:
        return None
    m = re.match(r"v?(\d{4})\.(\d{1,2})\.(\d{1,2})(?![\d])", version.strip())
    if not m:
        return None
    year, month, day = (int(g) for g in m.groups())
    return f"v{year:04d}.{month:02d}.{day:02d}"


def version_key(version: str) -> tuple[Any, ...]:
    """``v2023.05.05`` and ``2023.5.5`` compare equal; other text compares as text."""
    text = str(version).strip().lstrip("vV").split("+")[0].split(" ")[0]
    parts: list[Any] = []
    for part in text.replace("-", ".").split("."):
        parts.append(int(part) if part.isdigit() else part)
    return tuple(parts)


def _speaks_2020_text(client_version: str) -> bool:
    first = version_key(client_version)[:1]
    return bool(first) and isinstance(first[0], int) and first[0] <= 2020


def _client_socket(client_module: ModuleType) -> Any:
    """The client's ZeroMQ socket: a module global (2020-2023), or on its channel (later)."""
    sock = getattr(client_module, "socket", None)
    if sock is None:
        channel = getattr(client_module, "channel", None)
        sock = getattr(channel, "socket", None)
    return sock


_SENDS = frozenset({"send", "send_string", "send_multipart", "send_json", "send_pyobj"})
_RECVS = frozenset({"recv", "recv_string", "recv_multipart", "recv_json", "recv_pyobj"})


class TimedSocket:
    """The client's ZeroMQ REQ socket, timing each request from its send to its reply.

    REQ/REP strictly alternates send and receive, so one start time is enough. Every
    other attribute (options, ``disconnect``, ``close``) is the socket's own; messages
    pass through untouched (no copies: the client's large array transfers cost the same).
    """

    __slots__ = ("_sock", "_started", "requests", "seconds")

    def __init__(self, sock: Any) -> None:
        object.__setattr__(self, "_sock", sock)
        object.__setattr__(self, "_started", None)
        object.__setattr__(self, "requests", 0)
        object.__setattr__(self, "seconds", 0.0)

    @property
    def wrapped(self) -> Any:
        return self._sock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._sock, name)
        if name in _SENDS:
            return self._timed_send(attr)
        if name in _RECVS:
            return self._timed_recv(attr)
        return attr

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__slots__:
            object.__setattr__(self, name, value)
        else:  # socket options as attributes (sock.rcvtimeo = ...)
            setattr(self._sock, name, value)

    def _timed_send(self, send: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = send(*args, **kwargs)
            object.__setattr__(self, "_started", started)
            return result

        return timed

    def _timed_recv(self, recv: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            try:
                result = recv(*args, **kwargs)
            except BaseException:
                # a timeout or an interrupt: the client resets its socket, the request
                # is abandoned and not counted
                object.__setattr__(self, "_started", None)
                raise
            started = self._started
            if started is not None:
                object.__setattr__(self, "_started", None)
                object.__setattr__(self, "seconds", self.seconds + time.perf_counter() - started)
                object.__setattr__(self, "requests", self.requests + 1)
            return result

        return timed

    def __repr__(self) -> str:
        return f"TimedSocket({self._sock!r}, requests={self.requests})"


def _socket_holder(client_module: ModuleType) -> tuple[Any, str] | None:
    """Where the client keeps its socket: (module, "socket") or (its channel, "socket")."""
    if getattr(client_module, "socket", None) is not None:
        return client_module, "socket"
    channel = getattr(client_module, "channel", None)
    if getattr(channel, "socket", None) is not None:
        return channel, "socket"
    return None


def _private_token_directory() -> str | None:
    """Keep the v2023 client's token file off the disk unless the user chose a place.

    The client writes ``<dir>/.arkouda/tokens.txt``; /dev/shm is memory, mode 0700.
    Returns the directory it made (the session removes it on close), or None.
    """
    if os.environ.get("ARKOUDA_CLIENT_DIRECTORY") or not os.path.isdir("/dev/shm"):
        return None
    path = tempfile.mkdtemp(prefix=f"arkouda-k8s-client-{os.getuid()}-", dir="/dev/shm")
    os.environ["ARKOUDA_CLIENT_DIRECTORY"] = path
    return path


def _remove_token_directory(path: str | None) -> None:
    if path is None:
        return
    shutil.rmtree(path, ignore_errors=True)
    if os.environ.get("ARKOUDA_CLIENT_DIRECTORY") == path:
        del os.environ["ARKOUDA_CLIENT_DIRECTORY"]


class Session:
    """An ``arkouda`` client connected to one server; ``.ak`` is the module."""

    def __init__(
        self,
        ak: ModuleType,
        host: str,
        port: int,
        config: dict[str, Any],
        client_version: str,
        server_version: str,
    ) -> None:
        self.ak = ak
        self.host = host
        self.port = port
        self.config = config
        self.client_version = client_version
        self.server_version = server_version
        self.closed = False
        self._token_dir: str | None = None
        self._timed: TimedSocket | None = None
        self._counted = (0, 0.0)  # of the timed sockets before the current one

    def __repr__(self) -> str:
        state = "closed" if self.closed else "connected"
        return (
            f"Session({self.host}:{self.port}, client={self.client_version}, "
            f"server={self.server_version}, {state})"
        )

    def server_time(self) -> tuple[int, float]:
        """(requests, seconds) the client has spent waiting on the server so far.

        Counts from the bind on. If the client replaced its socket (it does after an
        interrupted request), this call wraps the new one and the counts carry on from
        here (``%%arkouda`` calls it before each cell).
        """
        if not self.closed:
            self._time_socket()
        requests, seconds = self._counted
        if self._timed is not None:
            requests, seconds = requests + self._timed.requests, seconds + self._timed.seconds
        return requests, seconds

    def _time_socket(self) -> None:
        """Wrap the client's current socket in a TimedSocket (no-op when it is ours)."""
        client_module = sys.modules.get("arkouda.client")
        holder = _socket_holder(client_module) if client_module is not None else None
        if holder is None:
            return
        owner, attr = holder
        sock = getattr(owner, attr)
        if sock is self._timed:
            return
        if isinstance(sock, TimedSocket):  # another session's, still in place
            sock = sock.wrapped
        if self._timed is not None:
            requests, seconds = self._counted
            self._counted = (requests + self._timed.requests, seconds + self._timed.seconds)
        self._timed = TimedSocket(sock)
        setattr(owner, attr, self._timed)

    def _untime_socket(self) -> None:
        """Put the client's own socket back (if ours is still in place)."""
        client_module = sys.modules.get("arkouda.client")
        holder = _socket_holder(client_module) if client_module is not None else None
        if holder is None or self._timed is None:
            return
        owner, attr = holder
        if getattr(owner, attr) is self._timed:
            setattr(owner, attr, self._timed.wrapped)

    @classmethod
    def bind(
        cls,
        host: str,
        port: int,
        token: str | None = None,
        timeout: float = 10.0,
        server_version: str | None = None,
        config: dict[str, Any] | None = None,
        probed: bool | None = None,
    ) -> Session:
        """Probe the server, then connect the installed client to it.

        ``server_version`` is the release the server was deployed as (for the version
        check); default: what the server reports. ``config``: the server's getconfig
        answer when another process already made the handshake (the Jupyter server that
        holds the tunnel, or our own handshake on the same tunnel): no probe then, the
        client's connect is the one round trip. ``probed``: whether that answer came from
        a probe of this very server (what a timeout of the client's connect says; default:
        only when this probes).
        """
        ak = import_client()
        client_module = sys.modules.get("arkouda.client") or importlib.import_module(
            "arkouda.client"
        )
        client_version = str(getattr(ak, "__version__", "unknown"))

        if probed is None:
            probed = config is None
        if config is None:
            probed = True
            with ArkoudaProbe(host, port, token=token, timeout=timeout) as probe:
                config = probe.handshake()
        served = str(server_version or config.get("arkoudaVersion") or "unknown")

        if _speaks_2020_text(client_version) and not config.get("standIn"):
            # Servers since 2021 only read JSON request messages; the 2020 client's text
            # messages would get replies it cannot parse.
            raise SessionError(
                f"the installed arkouda client {client_version} speaks the 2020 text "
                f"protocol, which the Arkouda server at {host}:{port} ({served}) does not",
                f"install the arkouda client of release {served}",
            )
        accepts_token = client_sends_token()
        if config.get("authenticate") and not accepts_token:
            raise SessionError(
                f"the installed arkouda client {client_version} cannot send a token, but the "
                f"server at {host}:{port} ({served}) requires one",
                f"install the arkouda client of release {served}, or deploy with --no-auth",
            )
        kwargs: dict[str, Any] = {"timeout": max(1, math.ceil(timeout))}
        token_dir = None
        if accepts_token and token:
            token_dir = _private_token_directory()
            kwargs["access_token"] = token

        printed = io.StringIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
                # Our own warning below names both versions; the client's is malformed.
                warnings.filterwarnings("ignore", message="Version mismatch", category=Warning)
                ak.connect(host, int(port), **kwargs)
        except Exception as exc:
            cls._reset_client(client_module)
            _remove_token_directory(token_dir)
            if type(exc).__name__ == "Again":  # zmq.error.Again: the receive timed out
                answered = "answered the probe but not" if probed else "did not answer"
                raise ServerNotAnswering(
                    f"the Arkouda server at {host}:{port} {answered} the client's connect "
                    f"within {timeout:g}s",
                    "retry; if it persists read the server's log (`arkouda-k8s logs NAME`)",
                ) from None
            raise SessionError(
                f"the arkouda client {client_version} could not connect to {host}:{port}: "
                f"{' '.join(str(exc).split())}",
                "check that the client's release matches the server's",
            ) from None
        finally:
            if printed.getvalue().strip():
                log.info("arkouda: %s", printed.getvalue().strip())

        # connect(timeout=...) set deadlines on the socket that would also cut off every
        # later long computation: back to blocking receives and sends.
        sock = _client_socket(client_module)
        if sock is not None:
            import zmq

            sock.setsockopt(zmq.RCVTIMEO, -1)
            sock.setsockopt(zmq.SNDTIMEO, -1)

        if version_key(client_version) != version_key(served):
            warnings.warn(
                f"arkouda client {client_version} does not match the server's release "
                f"{served}; some commands may fail or behave differently (install the "
                f"client of release {served})",
                RuntimeWarning,
                stacklevel=2,
            )
        session = cls(ak, host, int(port), config, client_version, served)
        session._token_dir = token_dir
        session._time_socket()
        return session

    @staticmethod
    def _reset_client(client_module: ModuleType) -> None:
        """After a failed connect the client's REQ socket is stuck: drop it."""
        sock = _client_socket(client_module)
        if sock is not None:
            with contextlib.suppress(Exception):
                sock.close(0)
        if hasattr(client_module, "connected"):
            setattr(client_module, "connected", False)  # noqa: B010

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect the client (with a deadline, so a dead server does not hang it)."""
        if self.closed:
            return
        self.closed = True
        _remove_token_directory(self._token_dir)
        self._untime_socket()
        client_module = sys.modules.get("arkouda.client")
        if client_module is None or not getattr(client_module, "connected", True):
            return
        sock = _client_socket(client_module)
        printed = io.StringIO()
        try:
            if sock is not None:
                import zmq

                sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
                sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
            with contextlib.redirect_stdout(printed):
                self.ak.disconnect()
        except Exception as exc:  # the server is gone: drop the socket, nothing to undo
            log.debug("arkouda disconnect failed: %s", exc)
            self._reset_client(client_module)
        finally:
            if printed.getvalue().strip():
                log.info("arkouda: %s", printed.getvalue().strip())

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
