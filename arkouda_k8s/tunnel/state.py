"""The states a tunnel moves through (``Tunnel.state``)."""

from __future__ import annotations

import enum


class TunnelState(enum.StrEnum):
    """``starting``; ``ready``; ``reconnecting`` (a connection or a health check failed,
    the pod is being re-resolved); ``failed`` (a permission error, or
    ``reconnect_timeout`` passed; new connections still try); ``closed`` (never started,
    or stopped). A ``str``: it compares equal to, and prints as, its value."""

    STARTING = "starting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"
