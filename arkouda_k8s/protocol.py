"""The few Arkouda wire messages arkouda-k8s itself sends: connect, getconfig, getmemused,
shutdown (v2023 JSON request messages over a ZeroMQ REQ socket).

Readiness, status and shutdown use them, independent of whichever ``arkouda`` client the
user installed. ZeroMQ's connect never fails and a REQ socket that timed out is stuck,
so a conversation uses a fresh REQ socket (LINGER 0, no automatic reconnect, send and
receive deadlines) and watches its TCP connection through the socket's monitor. That
tells apart "nothing listens" (:class:`ServerNotAnswering`, ``reason="refused"``), "the
connection was accepted and then closed" (``reason="closed"``: a tunnel whose server pod
does not listen, a server that exits), "the port is open but the server never replies"
(``reason="silent"``: busy or stuck) and a refused token (:class:`TokenRefused`), over
the conversation's one TCP connection: through a tunnel, every connection is a
port-forward of its own.

    probe = ArkoudaProbe("127.0.0.1", 5555, token=token, timeout=5.0)
    config = probe.handshake()          # {"arkoudaVersion": ..., "numLocales": ...}
    used = probe.getmemused()
    probe.close()
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from .errors import ArkoudaK8sError, ServerNotAnswering, SessionError

__all__ = ["ArkoudaProbe", "ServerError", "ServerNotAnswering", "TokenRefused"]

# What the socket monitor reports: the TCP connection is up, or it ended (a connect that
# failed is CLOSED; an established one that broke, DISCONNECTED).
_UP = zmq.EVENT_CONNECTED
_DOWN = zmq.EVENT_CLOSED | zmq.EVENT_DISCONNECTED


class TokenRefused(SessionError):
    """The server answered but refused the token (missing or not the server's)."""


class ServerError(ArkoudaK8sError):
    """The server answered a request with an error message."""


def _not_answering(message: str, hint: str, reason: str) -> ServerNotAnswering:
    exc = ServerNotAnswering(message, hint)
    exc.reason = reason  # type: ignore[attr-defined]
    return exc


class ArkoudaProbe:
    """A short conversation with an Arkouda server (v2023 message format).

    ``token`` is sent with every request and never shown (not in ``repr`` nor errors).
    ``timeout`` bounds each step: the TCP connect, and each send and receive. A
    conversation (``handshake``: connect then getconfig) is one TCP connection. ``keep``:
    one connection for every conversation until ``close()`` (through a tunnel, each new
    connection is a new port-forward stream); one that broke meanwhile, or failed, is
    replaced by a new one on the next call. A dropped connection is never redialed behind
    the caller's back (ZeroMQ would, every 100 ms: a port-forward each through a tunnel).
    Not for use by several threads at once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        token: str | None = None,
        timeout: float = 5.0,
        *,
        keep: bool = False,
    ) -> None:
        self.host = host
        self.port = int(port)
        self._token = token or ""
        self.timeout = float(timeout)
        try:
            self.user = getpass.getuser()
        except (KeyError, OSError):
            self.user = "arkouda-k8s"
        self._context: zmq.Context[Any] | None = zmq.Context()
        self.keep = keep
        # the kept REQ socket and its monitor (the PAIR socket its events arrive on)
        self._kept: tuple[zmq.Socket[Any], zmq.Socket[Any]] | None = None

    def __repr__(self) -> str:
        token = "set" if self._token else "none"
        return f"ArkoudaProbe({self.host}:{self.port}, token={token}, timeout={self.timeout})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ public
    def handshake(self) -> dict[str, Any]:
        """``connect`` then ``getconfig``; the server's configuration as a dict."""
        config = self._conversation([("connect", None), ("getconfig", None)])[-1]
        try:
            parsed = json.loads(config)
        except ValueError:
            raise ServerError(
                f"the server at {self.address} answered getconfig with something that is "
                f"not JSON: {config[:80]!r}",
                "is this an Arkouda server of release v2021 or later?",
            ) from None
        if not isinstance(parsed, dict):
            raise ServerError(f"the server at {self.address} sent a malformed configuration")
        return parsed

    def getmemused(self) -> int:
        """Bytes of memory the server's objects use."""
        args = {"factor": ("VALUE", "int", "1"), "as_percent": ("VALUE", "bool", "False")}
        reply = self._conversation([("getmemused", args)])[-1]
        try:
            return int(float(reply))
        except ValueError:
            raise ServerError(
                f"the server at {self.address} answered getmemused with {reply[:80]!r}"
            ) from None

    def shutdown(self) -> None:
        """Ask the server to shut down (it deletes its objects and exits)."""
        try:
            self._conversation([("shutdown", None)])
        except ServerNotAnswering as exc:
            # it exited before its reply got out: what was asked
            if getattr(exc, "reason", None) != "closed":
                raise

    def connected(self) -> bool:
        """Whether the kept connection is open (as far as its monitor has said yet); one
        that ended is let go here, as the next conversation would."""
        kept = self._kept
        if kept is None:
            return False
        if self._ended(kept[1]):
            self._drop_kept()
            return False
        return True

    def close(self) -> None:
        self._drop_kept()
        if self._context is not None:
            self._context.destroy(linger=0)
            self._context = None

    def __enter__(self) -> ArkoudaProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- helpers
    def _check_tcp(self) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout):
                pass
        except ConnectionRefusedError:
            raise _not_answering(
                f"nothing listens on {self.address} (connection refused)",
                "is the server pod running and the tunnel up? see `arkouda-k8s status NAME`",
                "refused",
            ) from None
        except TimeoutError:
            raise _not_answering(
                f"no TCP connection to {self.address} within {self.timeout:g}s",
                "check the tunnel and the server pod (`arkouda-k8s status NAME`)",
                "timeout",
            ) from None
        except OSError as exc:
            raise _not_answering(
                f"cannot reach {self.address}: {exc.strerror or exc}",
                "check the address and the tunnel",
                "unreachable",
            ) from None

    def _message(self, cmd: str, args: dict[str, tuple[str, str, str]] | None) -> str:
        items = [
            json.dumps({"key": key, "objType": obj, "dtype": dtype, "val": val})
            for key, (obj, dtype, val) in (args or {}).items()
        ]
        return json.dumps(
            {
                "user": self.user,
                "token": self._token,
                "cmd": cmd,
                "format": "STRING",
                "args": json.dumps(items) if items else "",
                "size": len(items) if items else -1,
            }
        )

    def _conversation(
        self, requests: list[tuple[str, dict[str, tuple[str, str, str]] | None]]
    ) -> list[str]:
        if self._context is None:
            raise ArkoudaK8sError("this ArkoudaProbe is closed")
        kept, self._kept = self._kept, None
        if kept is not None and self._ended(kept[1]):
            self._close_socket(kept)  # broke while idle (server or tunnel gone): a new one
            kept = None
        link = kept or self._open()
        replies: list[str] = []
        try:
            for cmd, args in requests:
                try:
                    raw = self._exchange(link, cmd, self._message(cmd, args))
                except ServerNotAnswering as exc:
                    # a kept connection that broke just now, before its first reply:
                    # once more on a new one (these requests are safe to repeat)
                    if link is not kept or replies or getattr(exc, "reason", "") != "closed":
                        raise
                    self._close_socket(link)
                    link = kept = self._open()
                    raw = self._exchange(link, cmd, self._message(cmd, args))
                replies.append(self._parse_reply(cmd, raw))
        except BaseException:
            # a REQ socket without its reply is stuck: a new one next time
            self._close_socket(link)
            raise
        if self.keep:
            self._kept = link
        else:
            self._close_socket(link)
        return replies

    def _open(self) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
        """A REQ socket whose TCP connection is up, and its monitor; raises when the
        connection cannot be made (refused, unreachable, no answer within the timeout)."""
        assert self._context is not None
        ms = max(1, int(self.timeout * 1000))
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, ms)
        sock.setsockopt(zmq.RCVTIMEO, ms)
        sock.setsockopt(zmq.RECONNECT_IVL, -1)
        # No ZMQ_IMMEDIATE: with it, the reply to `shutdown` (sent just before the server
        # closes) was lost about one time in six.
        link = (sock, sock.get_monitor_socket(_UP | _DOWN))
        try:
            sock.connect(f"tcp://{self.host}:{self.port}")
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not link[1].poll(max(1, int(left * 1000))):
                    raise _not_answering(
                        f"no TCP connection to {self.address} within {self.timeout:g}s",
                        "check the tunnel and the server pod (`arkouda-k8s status NAME`)",
                        "timeout",
                    )
                event = recv_monitor_message(link[1])["event"]
                if event & _UP:
                    return link
                if event & _DOWN:
                    break
            # ZeroMQ does not say why a connect failed; a plain one does (nothing listens
            # there, so this costs no port-forward)
            self._check_tcp()
            raise _not_answering(
                f"cannot connect to {self.address}",
                "is the server pod running and the tunnel up? see `arkouda-k8s status NAME`",
                "refused",
            )
        except BaseException:
            self._close_socket(link)
            raise

    def _exchange(
        self, link: tuple[zmq.Socket[Any], zmq.Socket[Any]], cmd: str, message: str
    ) -> str:
        """One request and its reply, or an error as soon as the connection ends."""
        sock, monitor = link
        try:
            sock.send_string(message, zmq.NOBLOCK)
        except zmq.Again:
            # a REQ socket without a connection to send on: it ended since (and is not
            # redialed), perhaps before the monitor said so
            raise self._closed(cmd) from None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            ready = dict(poller.poll(max(1, int(left * 1000)))) if left > 0 else {}
            if sock.poll(0):  # a reply wins over the end that may follow it (shutdown)
                return str(sock.recv_string())
            if not ready:
                raise self._silent(cmd)
            if monitor in ready and self._ended(monitor):
                raise self._closed(cmd)

    def _closed(self, cmd: str) -> ServerNotAnswering:
        return _not_answering(
            f"{self.address} closed the connection before the Arkouda server answered `{cmd}`",
            "the server exited, or (through a tunnel) its pod does not listen on the port: "
            "see `arkouda-k8s status NAME`",
            "closed",
        )

    def _silent(self, cmd: str) -> ServerNotAnswering:
        return _not_answering(
            f"{self.address} accepts connections but the Arkouda server does not "
            f"answer `{cmd}` within {self.timeout:g}s",
            "a busy or stuck server: read its log (`arkouda-k8s logs NAME`)",
            "silent",
        )

    @staticmethod
    def _ended(monitor: zmq.Socket[Any]) -> bool:
        """Whether the monitor reported the connection's end (reads what it has queued)."""
        ended = False
        while monitor.poll(0):
            ended |= bool(recv_monitor_message(monitor)["event"] & _DOWN)
        return ended

    @staticmethod
    def _close_socket(link: tuple[zmq.Socket[Any], zmq.Socket[Any]]) -> None:
        sock, monitor = link
        with contextlib.suppress(zmq.ZMQError):
            sock.disable_monitor()
        monitor.close(0)
        sock.close(0)

    def _drop_kept(self) -> None:
        kept, self._kept = self._kept, None
        if kept is not None:
            self._close_socket(kept)

    def _parse_reply(self, cmd: str, raw: str) -> str:
        try:
            reply = json.loads(raw)
            msg, msg_type = str(reply["msg"]), str(reply["msgType"])
        except (ValueError, KeyError, TypeError):
            # A 2020-era server answers JSON requests in plain text.
            if raw.startswith("Error:"):
                raise ServerError(
                    f"the server at {self.address} does not speak the v2023 protocol: {raw[:120]}",
                    "arkouda-k8s needs an Arkouda server of release v2021 or later",
                ) from None
            raise ServerError(
                f"the server at {self.address} sent a malformed reply to {cmd}: {raw[:80]!r}"
            ) from None
        if msg_type == "ERROR":
            if "token" in msg.lower():
                # Never repeat a token: the real server echoes the submitted one here.
                text = msg.replace(self._token, "********") if self._token else msg
                raise TokenRefused(
                    f"the Arkouda server at {self.address} refused the token: {text}",
                    "pass the deployment's token (its Secret `<name>-token`), or deploy with "
                    "--no-auth",
                )
            raise ServerError(f"the Arkouda server at {self.address} answered {cmd}: {msg}")
        return msg
