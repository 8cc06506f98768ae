"""The few Arkouda wire messages arkouda-k8s itself sends: connect, getconfig, getmemused,
shutdown (v2023 JSON request messages over a ZeroMQ REQ socket).

Readiness, status and shutdown use them, independent of whichever ``arkouda`` client the
user installed. ZeroMQ's connect never fails and a REQ socket that timed out is stuck,
so every call first checks that something accepts TCP connections, then uses a fresh
REQ socket with LINGER 0 and send/receive deadlines. That tells apart "nothing listens"
(:class:`ServerNotAnswering`, ``reason="refused"``) from "the port is open but the
server never replies" (``reason="silent"``: busy or stuck) and from a refused token
(:class:`TokenRefused`).

    probe = ArkoudaProbe("127.0.0.1", 5555, token=token, timeout=5.0)
    config = probe.handshake()          # {"arkoudaVersion": ..., "numLocales": ...}
    used = probe.getmemused()
    probe.close()
"""

from __future__ import annotations

import getpass
import json
import socket
from typing import Any

import zmq

from .errors import ArkoudaK8sError, ServerNotAnswering, SessionError

__all__ = ["ArkoudaProbe", "ServerError", "ServerNotAnswering", "TokenRefused"]


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
    ``timeout`` bounds each step: the TCP connect, and each send and receive. ``keep``:
    one connection for every conversation until ``close()`` (through a tunnel, each new
    connection is a new port-forward stream); after a failure the next one reconnects.
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
        self._kept: zmq.Socket[Any] | None = None

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
        self._conversation([("shutdown", None)])

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
        sock = self._kept
        if sock is None:
            self._check_tcp()
            ms = max(1, int(self.timeout * 1000))
            sock = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, ms)
            sock.setsockopt(zmq.RCVTIMEO, ms)
            # No ZMQ_IMMEDIATE: with it, the reply to `shutdown` (sent just before the
            # server closes) was lost about one time in six; the TCP check above already
            # tells a closed port apart from a silent server.
            sock.connect(f"tcp://{self.host}:{self.port}")
        replies = []
        done = False
        try:
            for cmd, args in requests:
                done = False
                try:
                    sock.send_string(self._message(cmd, args))
                    raw = sock.recv_string()
                except zmq.Again:
                    raise _not_answering(
                        f"{self.address} accepts connections but the Arkouda server does not "
                        f"answer `{cmd}` within {self.timeout:g}s",
                        "a busy or stuck server: read its log (`arkouda-k8s logs NAME`)",
                        "silent",
                    ) from None
                done = True  # a reply came: the REQ socket may send again
                replies.append(self._parse_reply(cmd, raw))
        finally:
            if self.keep and done:
                self._kept = sock
            else:  # a REQ socket without its reply is stuck: a new one next time
                self._kept = None
                sock.close(0)
        return replies

    def _drop_kept(self) -> None:
        sock, self._kept = self._kept, None
        if sock is not None:
            sock.close(0)

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
