"""The readiness waits, fed a sequence of pod states in the order a watch can bring them
(no cluster: a stand-in for Kube.wait_for hands each state to the wait's check)."""

from __future__ import annotations

import time
from typing import Any

from arkouda_k8s.errors import StageTimeout
from arkouda_k8s.kube import WatchDeadline
from arkouda_k8s.readiness import Readiness
from arkouda_k8s.spec import ClusterSpec
from arkouda_k8s.stages import Timeouts

COMPONENT = "app.kubernetes.io/component"


class Watch:
    """Kube.wait_for over the given states: the first that the check accepts is the
    answer; past the last, the deadline (as a watch that saw nothing more)."""

    namespace = "default"

    def __init__(self, *states: dict[str, dict[str, Any]]) -> None:
        self.states = states

    def wait_for(self, kind: str, check: Any, *args: Any, **kwargs: Any) -> Any:
        for state in self.states:
            found = check(state)
            if found:
                return found
        raise WatchDeadline("the deadline passed")


def pod(name: str, component: str, ready: bool = False) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "resourceVersion": "1",
            "labels": {COMPONENT: component},
        },
        "spec": {"nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIP": "127.1.0.1",
            "containerStatuses": [{"name": "c", "state": {"running": {}}}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_the_server_stage_gets_its_own_deadline_when_the_locales_ran_first() -> None:
    """The locale pod runs before the server pod's creation reaches the watch (a loaded
    machine): once the server pod shows up, not Ready yet, the wait hands over to the
    server stage (its own deadline), instead of keeping the server waiting out the
    locales' deadline (a NeverReady server failed after 12 s, not 4 s)."""
    spec = ClusterSpec(name="r", locales=2).with_namespace("default")
    locale = pod("r-locale-1", "locale")
    server = pod("r-server", "server")
    watch = Watch({"l": locale}, {"l": locale, "s": server})
    readiness = Readiness(watch, spec, Timeouts(), lambda *a: None, None)  # type: ignore[arg-type]
    got = readiness.wait_server(time.monotonic() + 60, with_locales=True)
    assert got["metadata"]["name"] == "r-server"


def test_a_server_pod_never_seen_is_the_servers_timeout_once_the_locales_ran() -> None:
    spec = ClusterSpec(name="r", locales=2).with_namespace("default")
    readiness = Readiness(
        Watch({"l": pod("r-locale-1", "locale")}),  # type: ignore[arg-type]
        spec,
        Timeouts(),
        lambda *a: None,
        None,  # type: ignore[arg-type]
    )
    try:
        readiness.wait_server(time.monotonic() + 60, with_locales=True)
    except StageTimeout as exc:
        assert "server pod r-server does not exist" in exc.message
    else:
        raise AssertionError("no StageTimeout")
