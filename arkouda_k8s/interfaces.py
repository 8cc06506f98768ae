"""What the front ends need of the library, as ``typing.Protocol``s: a deployment as
the notebook's live panel and magics use it, the client session bound to it, and the
progress events a deploy or teardown reports (the notebook's and the CLI's progress).

``ArkoudaCluster`` satisfies them, and so do the stand-ins of the front end's tests
(tests/test_widgets.py, tests/test_magics.py; mypy checks those files too), so mypy
checks the front ends against the real API rather than against whatever a stub offers.
Below the front ends, above the lifecycle: imports nothing of the package at run time;
at type checking time ``status``, and the lifecycle for the checks at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, assert_type

if TYPE_CHECKING:
    from .status import ClusterStatus


class ProgressEvent(Protocol):
    """One step of a deploy or teardown (``stages.Progress``)."""

    @property
    def stage(self) -> str: ...
    @property
    def done(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def message(self) -> str: ...
    @property
    def note(self) -> bool: ...


class ClientSession(Protocol):
    """The user's ``arkouda`` client bound to a deployment (``session.Session``)."""

    ak: Any  # the arkouda client module: its API is the client's, whatever version
    closed: bool

    def server_time(self) -> tuple[int, float]:
        """(requests, seconds waiting on the server) so far."""
        ...


class ShownCluster(Protocol):
    """A deployment as a live panel shows it: its status, its log, its two actions, and
    the tunnel's state changes pushed to ``on_tunnel_state``'s callbacks."""

    @property
    def on_tunnel_state(self) -> list[Callable[[str], None]]: ...

    @property
    def name(self) -> str: ...

    def status(self, probe: bool = True, *, handshake: bool = False) -> ClusterStatus:
        """``handshake``: the server's memory and version also without a tunnel held."""
        ...

    def logs(self, component: str, tail: int | None) -> str:
        """Masked: the front ends show it as it is."""
        ...

    def connect(self) -> Any:
        """The bound client's ``ak`` module."""
        ...

    def teardown(self) -> object: ...


class NotebookCluster(ShownCluster, Protocol):
    """A deployment the magics hold: the panel's needs, its session, its memory use (the
    ``%%arkouda`` report) and closing it at kernel exit."""

    @property
    def session(self) -> ClientSession | None: ...

    @property
    def namespace(self) -> str: ...

    def memory_used(self) -> int | None: ...

    def close(self) -> None: ...


if TYPE_CHECKING:  # checked by mypy: the real deployment is what the front ends expect
    from .cluster import ArkoudaCluster
    from .connection import _BorrowedTunnel
    from .session import Session
    from .tunnel import Tunnel

    _ARKOUDA_CLUSTER: type[NotebookCluster] = ArkoudaCluster
    _SESSION: type[ClientSession] = Session

    def _typed(cluster: ArkoudaCluster) -> None:
        # Their real types, not Any: a front end's misuse of either fails mypy.
        assert_type(cluster.tunnel, Tunnel | _BorrowedTunnel | None)
        assert_type(cluster.session, Session | None)
