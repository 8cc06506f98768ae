"""What the notebook front end's tests (test_widgets.py, test_magics.py) hand to it in
place of a cluster's answers: real ``ClusterStatus`` and ``ClusterInfo`` objects with
the facts a test chooses. The stand-in clusters themselves live in those files, typed:
mypy checks them against ``arkouda_k8s.interfaces`` (pyproject.toml's mypy files)."""

from __future__ import annotations

import dataclasses
from typing import Any

from arkouda_k8s.status import ClusterInfo, ClusterStatus

_STATUS = ClusterStatus(
    name="demo",
    namespace="team",
    context=None,
    stage="Ready",
    locales_ready=2,
    locales_total=2,
    server_phase="Running",
    server_ready=True,
    address=("127.0.0.1", 40123),
    tunnel_state="up",
    memory_used=3 * 2**20,
    memory_max=2**30,
    arkouda_version="v2023.05.05",
    age=60.0,
    expires_at=None,
)

_INFO = ClusterInfo(
    name="demo",
    namespace="team",
    stage="Ready",
    locales_ready=2,
    locales_total=2,
    mode="udp",
    release="v2023.05.05",
    age=60.0,
    heartbeat=None,
    expires_at=None,
    heartbeat_expired=False,
)


def cluster_status(**changes: Any) -> ClusterStatus:
    """A Ready two-locale deployment ``demo`` with its tunnel up, and ``changes``."""
    return dataclasses.replace(_STATUS, **changes)


def cluster_info(**changes: Any) -> ClusterInfo:
    """One row of ``list_clusters()``: ``demo``, Ready, and ``changes``."""
    return dataclasses.replace(_INFO, **changes)
