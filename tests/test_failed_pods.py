"""Which Failed pods decide a deployment's stage (failed_pods.judge and the stage the
summary of its pods gives): a locale pod replaced before the server started its locales
is a warning; one the running server had, one nothing replaced, and the bare server pod
make it Failed. Pod dicts as the API serves them (whole-second timestamps)."""

from __future__ import annotations

from typing import Any

from arkouda_k8s import failed_pods
from arkouda_k8s.inventory import _summarize
from arkouda_k8s.readiness import status_message
from arkouda_k8s.spec import ClusterSpec

EVICTED = "The node was low on resource: memory. "
RS = [{"kind": "ReplicaSet", "name": "demo-locale-abc", "controller": True, "uid": "u"}]


def _t(second: int) -> str:
    return f"2026-12-07T10:00:{second:02d}Z"


def _pod(name: str, component: str, *, created: int = 0, owners: Any = RS) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/component": component},
            "creationTimestamp": _t(created),
            "ownerReferences": owners if component == "locale" else [],
        },
        "status": {},
    }


def _running(pod: dict[str, Any], started: int, ready_at: int | None) -> dict[str, Any]:
    pod["status"] = {
        "phase": "Running",
        "podIP": "10.0.0.9",
        "containerStatuses": [{"name": "c", "state": {"running": {"startedAt": _t(started)}}}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready_at is not None else "False",
                "lastTransitionTime": _t(ready_at if ready_at is not None else started),
            }
        ],
    }
    return pod


def _evicted(pod: dict[str, Any], at: int) -> dict[str, Any]:
    pod["status"] = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": EVICTED,
        "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 137, "finishedAt": _t(at)}}}
        ],
        "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": _t(at)},
            {"type": "DisruptionTarget", "status": "True", "lastTransitionTime": _t(at)},
        ],
    }
    return pod


SPEC = ClusterSpec(name="demo", namespace="default", locales=2)  # one locale pod


def _stage(pods: list[dict[str, Any]]) -> tuple[str, str, list[str]]:
    info = _summarize("demo", "default", pods, None, SPEC)
    return (
        info.stage,
        status_message(pods, info.failures),
        [f.warning() for f in info.failures if not f.counts],
    )


def test_a_locale_evicted_before_the_server_started_and_replaced_leaves_it_ready():
    old = _evicted(_pod("demo-locale-abc-old", "locale"), at=3)
    new = _running(_pod("demo-locale-abc-new", "locale", created=3), started=5, ready_at=6)
    server = _running(_pod("demo-server", "server"), started=4, ready_at=9)
    stage, message, warnings = _stage([old, new, server])
    assert stage == "Ready" and message == ""
    assert warnings == [
        f"locale pod demo-locale-abc-old failed: Evicted: {EVICTED.strip()}; replaced by "
        "demo-locale-abc-new (the server started without it)"
    ]


def test_a_locale_lost_while_the_server_starts_leaves_it_starting_with_a_warning():
    old = _evicted(_pod("demo-locale-abc-old", "locale"), at=6)
    new = _running(_pod("demo-locale-abc-new", "locale", created=6), started=7, ready_at=8)
    server = _running(_pod("demo-server", "server"), started=4, ready_at=None)
    stage, _, warnings = _stage([old, new, server])
    assert stage == "Server"
    assert len(warnings) == 1 and "still starting, fails if it had started with it" in warnings[0]


def test_a_locale_lost_by_the_running_server_is_failed_even_with_a_ready_replacement():
    """Never Ready for a server whose locale set broke: a replacement cannot join the
    running Chapel job, whatever its own state."""
    old = _evicted(_pod("demo-locale-abc-old", "locale"), at=20)
    new = _running(_pod("demo-locale-abc-new", "locale", created=20), started=21, ready_at=22)
    server = _running(_pod("demo-server", "server"), started=4, ready_at=9)
    stage, message, warnings = _stage([old, new, server])
    assert stage == "Failed" and warnings == []
    assert message.startswith(f"demo-locale-abc-old: Evicted: {EVICTED.strip()}")
    assert "the running server had this locale" in message
    # lost in the very second the server became Ready: counted as lost (whole seconds)
    _evicted(old, at=9)
    assert _stage([old, new, server])[0] == "Failed"


def test_a_locale_nothing_replaced_is_failed_with_its_reason():
    server = _running(_pod("demo-server", "server"), started=4, ready_at=None)
    alone = _evicted(_pod("demo-locale-abc-old", "locale"), at=3)
    stage, message, _ = _stage([alone, server])
    assert stage == "Failed" and "not replaced" in message and "Evicted" in message
    # a bare locale pod is never replaced, whatever else runs
    bare = _evicted(_pod("demo-locale-bare", "locale", owners=[]), at=3)
    other = _running(_pod("demo-locale-abc-new", "locale", created=3), started=5, ready_at=6)
    judged = failed_pods.judge([bare, other, server], 1)
    assert [(f.name, f.counts) for f in judged] == [("demo-locale-bare", True)]


def test_an_evicted_server_pod_is_failed_and_named_after_the_locale_it_lost():
    server = _evicted(_running(_pod("demo-server", "server"), started=4, ready_at=9), at=30)
    locale = _running(_pod("demo-locale-abc-x", "locale"), started=2, ready_at=3)
    stage, message, _ = _stage([locale, server])
    assert stage == "Failed" and message == f"demo-server: Evicted: {EVICTED.strip()}"
    # the server exited after one of its locales was lost: the locale is the cause
    server = _running(_pod("demo-server", "server"), started=4, ready_at=9)
    server["status"]["phase"] = "Failed"
    old = _evicted(_pod("demo-locale-abc-old", "locale"), at=20)
    stage, message, _ = _stage([old, locale, server])
    assert stage == "Failed" and message.startswith("demo-locale-abc-old: Evicted")
