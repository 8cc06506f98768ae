"""What every path to the API server shares: the ``Upstream`` a local connection talks
to, the API server's refusal of a port-forward, and the buffer sizes both sides use."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .local import Local

# Room for a SPDY DATA frame head before each local read: the frame goes out whole in one
# TLS write (one record run, one socket send) without joining head and payload.
HEAD_ROOM = 8
# Pause the reading side when the other side holds this much unsent.
BUFFER_LIMIT = 4 * 1024 * 1024
# Local reads: the fixed cost per chunk (syscalls, a TLS write, Python calls) is large
# next to the per-byte cost: measured 2.2 s/GiB at 64 KiB, ~1.65 at 256 KiB, ~1.55 at
# 1 MiB, no better beyond (benchmarks/tunnel.py figures, busy 2-core machine).
LOCAL_READ_SIZE = 1024 * 1024


class Refused(Exception):
    """The API server answered the port-forward request with an HTTP error."""

    def __init__(self, status: int, message: str, protocol: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.protocol = protocol

    @property
    def pod_problem(self) -> bool:
        """The pod is missing or not running (wait/re-resolve), not a protocol refusal."""
        text = self.message.lower()
        return (
            self.status == 404 or "not found" in text or "not running" in text or self.status >= 500
        )

    @property
    def permission_problem(self) -> bool:
        return self.status in (401, 403)


def status_message(body: bytes, fallback: str) -> str:
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])
    except ValueError:
        pass
    text = body.decode(errors="replace").strip()
    return " ".join(text.split())[:300] or fallback


class Upstream:
    """One port-forward stream carrying one local connection."""

    protocol = ""
    # a native pump reads the local socket itself: it gets the early bytes via ``start``
    takes_socket = False

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def start(self, early: bytes, local_eof: bool) -> None:
        """Take over the local socket (a native pump); other paths get ``send`` calls."""
        raise NotImplementedError

    def send_read(self, local: Local, nbytes: int) -> None:
        """Send the nbytes just read into ``local.frames.current`` after its head room."""
        self.send(bytes(local.frames.current[HEAD_ROOM : HEAD_ROOM + nbytes]))

    def send_eof(self) -> None:
        raise NotImplementedError

    def pause_reading(self) -> None:
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
