"""ServerConnection against the shared sandbox: what a status read costs the API server
in port-forwards (its registry counts the ones it accepts), with the same numbers shown.

Through a tunnel every TCP connection is a port-forward of its own. A status read used
to open a connection per request and one more per request for a TCP check: a status of
a held tunnel opened 2 (the memory read), a short-lived one 5 (the tunnel's readiness
check, then check + connection for the handshake and again for the memory read).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from _support import eventually
from _support.lifecycle import admin, spec

from arkouda_k8s.cluster import STATUS_HANDSHAKE, ArkoudaCluster

VERSION = "v2023.05.05"


def _forwards_of(sb: Any, read: Any) -> tuple[int, Any]:
    """(port-forwards the API server accepted during ``read()``, its answer); and every
    forward opened is closed again once nothing holds a tunnel."""
    registry = sb.portforward_registry
    before = registry.opened
    answer = read()
    return registry.opened - before, answer


def test_status_of_a_held_tunnel_opens_no_port_forward(sb: Any, deployed: Any) -> None:
    """The memory read of every status goes over the connection the handshake opened
    (it was 2 port-forwards per status: a TCP check and the request's connection)."""
    with deployed(spec("conn-held", locales=1)) as c:
        for _ in range(3):
            opened, status = _forwards_of(sb, c.status)
            assert opened == 0, f"a status of a held tunnel opened {opened} port-forwards"
            assert status.memory_used is not None and status.arkouda_version == VERSION
            assert status.tunnel_state == "ready" and status.warnings == ()

        # the API server drops every forward (a restart, a network cut): the kept
        # connection is replaced by one new one, the numbers are still read
        registry = sb.portforward_registry
        assert registry.drop_all() >= 1, "the kept connection was not open"
        opened, status = _forwards_of(sb, c.status)
        assert opened == 1 and status.memory_used is not None, (opened, status)
        opened, status = _forwards_of(sb, c.status)
        assert opened == 0 and status.memory_used is not None, (opened, status)

        c.close()  # the kept connection goes with the tunnel
        eventually(
            lambda: registry.open_forwards, 10, 0.05, "no open port-forward", until=lambda n: n == 0
        )


def test_short_lived_status_opens_one_port_forward(sb: Any, deployed: Any) -> None:
    """``status(handshake=True)`` with no tunnel held (`arkouda-k8s status NAME`, the
    Jupyter server for a deployment it does not hold): it was 5 port-forwards, now the
    one connection of handshake + memory read (the short-lived tunnel makes no check of
    its own first); it is closed when the status returns. A refused port-forward is
    still the status's warning, said at once."""
    with deployed(spec("conn-short", locales=1)) as held:
        held.close()  # the deploy's own tunnel: this process holds none now
        registry = sb.portforward_registry
        eventually(lambda: registry.open_forwards, 10, 0.05, until=lambda n: n == 0)
        shown = ArkoudaCluster.from_name("conn-short", "default", kube=admin(sb), connect=False)
        for _ in range(2):
            opened, status = _forwards_of(sb, lambda: shown.status(handshake=True))
            assert opened == 1, f"a short-lived status opened {opened} port-forwards"
            assert status.warnings == (), status.warnings
            assert status.memory_used is not None and status.arkouda_version == VERSION
            assert status.tunnel_state is None and status.address is None
            eventually(
                lambda: registry.open_forwards,
                10,
                0.05,
                "the short-lived tunnel's port-forwards closed",
                until=lambda n: n == 0,
            )

        sb.faults.deny("*", "pods/portforward", user="*")
        try:
            started = time.monotonic()
            opened, status = _forwards_of(sb, lambda: shown.status(handshake=True))
            took = time.monotonic() - started
        finally:
            sb.faults.clear()
        assert opened == 0 and status.memory_used is None, (opened, status)
        assert len(status.warnings) == 1 and "pods/portforward" in status.warnings[0], status
        assert took < STATUS_HANDSHAKE / 2, f"the refusal was said after {took:.1f}s"
        assert status.stage == "Ready" and status.tunnel_state is None


def test_connect_after_deploy_opens_only_the_clients_port_forward(sb: Any, deployed: Any) -> None:
    """``connect()`` right after a deploy (``%arkouda_connect``): the handshake's answer,
    learned over the kept connection still open on this tunnel, stands in for the
    session's own probe. It was 2 port-forwards (that probe's connection, then the
    client's), now the client's 1. With nothing learned yet (a reattach without a
    handshake) the session still probes first; when the kept connection ended since the
    handshake, it is asked again (and stays kept for status)."""
    pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")
    registry = sb.portforward_registry
    with deployed(spec("conn-connect", locales=1, authenticate=False)) as c:
        for _ in range(2):  # again: a reconnect of a held, handshaken tunnel
            opened, ak = _forwards_of(sb, c.connect)
            assert opened == 1, f"connect after the handshake opened {opened} port-forwards"
            assert int(ak.arange(0, 10, 1).sum()) == 45
            assert c.session is not None and c.session.server_version == VERSION
        opened, status = _forwards_of(sb, c.status)
        assert opened == 0 and status.memory_used is not None, (opened, status)

        # every forward dropped: one new kept connection (asked again by the connect, or
        # by the status when its end had not been seen yet) and the client's (the session
        # closed first: ZeroMQ would redial its dropped connection, a forward of its own)
        c.connection.close_session()
        assert registry.drop_all() >= 1
        opened, ak = _forwards_of(sb, c.connect)
        assert int(ak.arange(0, 5, 1).sum()) == 10
        more, status = _forwards_of(sb, c.status)
        assert opened + more == 2 and status.memory_used is not None, (opened, more, status)

        c.close()
        eventually(lambda: registry.open_forwards, 10, 0.05, until=lambda n: n == 0)
        # a reattach that made no handshake: nothing learned, the session probes first
        # (the tunnel's own check, the probe's connection, the client's)
        bare = ArkoudaCluster.from_name("conn-connect", "default", kube=admin(sb), connect=False)
        try:
            opened, ak = _forwards_of(sb, bare.connect)
            assert opened == 3, f"a connect with nothing learned opened {opened} port-forwards"
            assert int(ak.arange(0, 10, 1).sum()) == 45
        finally:
            bare.close()
