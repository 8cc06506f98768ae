"""Injected faults end in their specific typed error, with Kubernetes' reason, within the
stage deadline, and the failed deploy is rolled back (or kept, when asked)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from _support import eventually, settled
from _support.lifecycle import FAST, FAULT, Recorder, cluster, labelled, spec, wait_no_processes

from arkouda_k8s.cluster import ArkoudaCluster, Timeouts, rbac_yaml, required_access
from arkouda_k8s.errors import (
    CrashError,
    DeployError,
    ImagePullError,
    KubeError,
    PermissionsMissing,
    StageTimeout,
    UnschedulableError,
)
from arkouda_k8s.readiness import REPLACEMENT_GRACE

FAULT_KEY = "sandbox.arkouda-k8s.dev/fault"


def faulty(name: str, fault: str, **kw):
    return spec(name, locales=2, annotations={FAULT_KEY: fault, **kw.pop("annotations", {})}, **kw)


@pytest.mark.parametrize(
    ("fault", "error", "reason", "text"),
    [
        ("Unschedulable", UnschedulableError, "Unschedulable", "cannot be scheduled"),
        ("ImagePullBackOff", ImagePullError, "ImagePullBackOff", "bearsrus/arkouda-udp-server"),
        ("OOMKilled", CrashError, "OOMKilled", "OOMKilled"),
        # The locale pods restart into CrashLoopBackOff; the server pod (restartPolicy
        # Never) fails with Error: whichever Kubernetes reports first is the reason.
        ("CrashLoopBackOff", CrashError, "CrashLoopBackOff|Error", "exits with code 1"),
        ("NeverReady", StageTimeout, "NotReady", "Readiness probe failed"),
    ],
)
def test_fault_gives_typed_error_and_rolls_back(sb, kube, fault, error, reason, text):
    name = f"f-{fault.lower()}"
    # OOMKilled: killed 0.1 s after start, before the stand-in server can open its port.
    extra = {"sandbox.arkouda-k8s.dev/kill-after-seconds": "0.1"} if fault == "OOMKilled" else {}
    # NeverReady can only end at the server stage's deadline: keep that one short.
    timeouts = replace(FAULT, server=4) if fault == "NeverReady" else FAULT
    seen: list[tuple[float, str]] = []  # (when, "stage: message") of each progress event
    progress = lambda e: seen.append((time.monotonic(), f"{e.stage}: {e.message}"))  # noqa: E731
    c = cluster(sb, faulty(name, fault, annotations=extra), timeouts=timeouts, on_progress=progress)
    start = time.monotonic()
    with pytest.raises(error) as err:
        c.deploy()
    took = time.monotonic() - start
    exc = err.value
    assert exc.reason in reason.split("|")
    assert text in exc.one_line()
    assert exc.pod and exc.pod.startswith(name)
    if fault == "NeverReady":
        # The server stage's own deadline starts once the locales run (however long a
        # loaded machine took to start them); the failure comes at that deadline.
        running = next(t for t, m in seen if m == "locales: locale pods 1/1 running")
        rollback = next(t for t, m in seen if m.startswith("rollback:"))
        assert rollback - running < timeouts.server + 4, seen
    else:
        # Each stage has 12 s; a fault that Kubernetes reports is raised well before.
        assert took < FAULT.locales
    assert "removed" in exc.hint
    assert labelled(kube, name) == []
    assert wait_no_processes(sb) == []


def test_crash_error_carries_the_log_tail(sb, kube):
    c = cluster(sb, faulty("f-crashlog", "CrashLoopBackOff"), timeouts=FAULT)
    with pytest.raises(CrashError) as err:
        c.deploy()
    assert "sandbox fault CrashLoopBackOff" in (err.value.log_tail or "")


def test_keep_on_failure_keeps_the_objects(sb, kube, deployed):
    c = cluster(sb, faulty("f-keep", "ImagePullBackOff"), timeouts=FAULT, keep_on_failure=True)
    with deployed(c, deploy=False):
        with pytest.raises(ImagePullError) as err:
            c.deploy()
        assert "kept for debugging" in err.value.hint and "teardown f-keep" in err.value.hint
        left = labelled(kube, "f-keep")
        assert "Deployment/f-keep-locale" in left and "Secret/f-keep-token" in left
        # Deploying the same name again says what is there instead of waiting for it (the
        # server pod, created with its locales, cannot pull either).
        start = time.monotonic()
        with pytest.raises(ImagePullError) as again:
            cluster(sb, faulty("f-keep", "ImagePullBackOff"), timeouts=FAULT).deploy()
        assert again.value.pod == "f-keep-server" and time.monotonic() - start < 3
    assert labelled(kube, "f-keep") == []


def test_api_errors_for_a_while_are_ridden_out(sb, kube, deployed):
    """Bursts of 500/503 at the start and in the middle of the waits (lists, watches,
    the handshake's pod lookup) are retried within the stage deadlines."""
    bursts = {"locales": (3, 503), "server": (3, 500), "handshake": (3, 503)}

    def inject(event):
        if event.stage in bursts:
            sb.faults.fail_requests(*bursts.pop(event.stage))

    c = cluster(sb, spec("f-flaky", locales=3), timeouts=FAULT, on_progress=inject)
    with deployed(c, deploy=False):
        sb.faults.fail_requests(6, status=500)
        try:
            c.deploy()
            assert c.status().stage == "Ready"
            assert bursts == {}  # every burst was injected
        finally:
            sb.faults.fail_requests(0)
    assert labelled(kube, "f-flaky") == []


def test_api_down_longer_than_the_stage_fails_within_its_deadline(sb, kube, deployed):
    from _support.lifecycle import Timeouts

    short = Timeouts(preflight=3, credentials=3, locales=3, server=3, handshake=3, teardown=10)
    c = cluster(sb, spec("f-down", locales=2), timeouts=short)
    with deployed(c, deploy=False):
        sb.faults.fail_requests(100_000, status=503)
        start = time.monotonic()
        try:
            with pytest.raises(KubeError, match="kept failing") as err:
                c.deploy()
            assert time.monotonic() - start < 3 + 3 + 2
            assert err.value.status == 503
        finally:
            sb.faults.fail_requests(0)
    assert labelled(kube, "f-down") == []


def test_permission_denied_on_one_verb(sb, kube, deployed):
    """A user granted exactly the printed RBAC, then denied one verb: preflight names
    that verb alone, fast, and nothing is created."""
    import yaml

    user = "f-deployer"
    s = spec("f-denied", locales=2)
    path = sb.kubeconfig_for_user(user)
    for doc in yaml.safe_load_all(rbac_yaml(s, required_access(s), user)):
        kube.apply(doc)
    sb.faults.deny(verb="create", resource="pods/portforward", user=user)
    c = ArkoudaCluster(s, kubeconfig=path, timeouts=FAULT)
    start = time.monotonic()
    try:
        with pytest.raises(PermissionsMissing) as err:
            c.deploy()
    finally:
        sb.faults.clear()
    assert time.monotonic() - start < 5
    assert err.value.missing == ["create pods/portforward"]
    assert "resources:\n  - pods/portforward" in err.value.rbac
    assert labelled(kube, "f-denied") == []
    # Without the fault the same user deploys (the CSR approval is in the RBAC too).
    with deployed(c):
        assert c.status().stage == "Ready"
    assert labelled(kube, "f-denied") == []


@pytest.mark.parametrize("metrics", [False, True], ids=["alone", "with-exporter"])
def test_server_that_exits_at_registration_is_explained_before_the_deadline(sb, kube, metrics):
    """With registration "server" the server exits when its self-registration is refused
    (here: RBAC denied for its certificate's user), as the real one does; its log says
    why and the deploy says it at once, also while the exporter keeps the pod Running."""
    s = spec("f-halt", locales=2, registration="server", metrics=metrics)
    sb.faults.deny(verb="create", resource="services", user="arkouda-k8s:default:f-halt")
    c = cluster(sb, s, timeouts=FAULT)
    start = time.monotonic()
    try:
        with pytest.raises(DeployError) as err:
            c.deploy()
    finally:
        sb.faults.clear()
    assert err.value.reason == "ExternalSystemError"
    assert "exited at start" in err.value.message and "403" in err.value.message
    assert "--registration client needs neither" in err.value.hint
    assert time.monotonic() - start < FAULT.handshake + FAULT.server
    assert labelled(kube, "f-halt") == []


def test_real_unschedulable_when_the_node_is_full(sb, kube, deployed):
    """Preflight compares with allocatable capacity; what other pods hold shows up only
    at scheduling: the scheduler's own message is in the error."""
    first = cluster(sb, spec("f-full-a", locales=2, memory="100Gi"), timeouts=FAULT)
    with deployed(first, deploy=False):
        first.deploy(wait=False)
        second = cluster(sb, spec("f-full-b", locales=2, memory="100Gi"), timeouts=FAULT)
        with pytest.raises(UnschedulableError) as err:
            second.deploy()
        assert "Insufficient memory" in err.value.message
        assert err.value.stage in ("locales", "server")
        assert labelled(kube, "f-full-b") == []


def test_unschedulable_grace_for_an_autoscaler(sb, kube):
    """With Timeouts(unschedulable=N) a pod may wait N seconds for capacity (a cluster
    autoscaler adding a node) before the deploy fails, and the progress says so."""
    from _support.lifecycle import Recorder

    rec = Recorder()
    c = cluster(
        sb,
        faulty("f-grace", "Unschedulable"),
        timeouts=replace(FAULT, unschedulable=2.5),
        on_progress=rec,
    )
    start = time.monotonic()
    with pytest.raises(UnschedulableError) as err:
        c.deploy()
    took = time.monotonic() - start
    assert 2.5 <= took < 2.5 + 4
    # the wait given, in the error as in the progress (not the measured wait, rounded)
    assert "(for 2.5s)" in err.value.message
    assert any("unschedulable, waiting up to 2.5s for capacity" in m for m in rec.messages())
    assert labelled(kube, "f-grace") == []


@pytest.mark.parametrize(
    ("line", "passing"),
    [
        ("ExternalSystemError: registering Service x-arkouda returned HTTP 500: boom", True),
        ("ExternalSystemError: registering Service x-arkouda returned HTTP 503: busy", True),
        ("ExternalSystemError: registering Service x-arkouda returned HTTP 429: slow down", True),
        ("ExternalSystemError: request to register Service x at https://k failed: reset", True),
        ("ExternalSystemError: registering Service x-arkouda returned HTTP 409: exists", False),
        ("ExternalSystemError: registering Service x-arkouda returned HTTP 403: forbidden", False),
    ],
)
def test_which_halts_are_worth_a_restart(line, passing):
    from arkouda_k8s.readiness import _passing_failure

    assert _passing_failure(line) is passing


def test_a_csr_no_signer_issues_fails_in_bounded_time_naming_the_way_out(sb, kube):
    """--registration server on a cluster without the kube-apiserver-client signer (EKS):
    the approved CSR is never signed; the deploy fails after Timeouts.signing, in one
    line naming the cause and the default mode, and rolls back."""
    s = spec("f-unsigned", locales=2, registration="server")
    short = Timeouts(preflight=20, credentials=60, locales=20, server=20, handshake=10, signing=2)
    sb.signs_client_csrs = False
    start = time.monotonic()
    try:
        with pytest.raises(StageTimeout) as err:
            ArkoudaCluster(s, kubeconfig=sb.kubeconfig_path, timeouts=short).deploy()
    finally:
        sb.signs_client_csrs = True
    assert time.monotonic() - start < 20  # the signing window, not the 60 s credentials one
    line = err.value.one_line()
    assert "approved but no signer issued a certificate within 2s" in line
    assert "EKS" in line and "kubernetes.io/kube-apiserver-client" in line
    assert "--registration client" in line
    assert err.value.reason == "CertificateNotIssued"
    assert labelled(kube, "f-unsigned") == []


def test_a_planted_event_reaches_the_error_without_escape_sequences(sb, kube):
    # Anyone who may create Events in the namespace chooses what a failing deploy
    # quotes: no escape sequence of theirs may reach the user's terminal.
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "f-planted-server.evil"},
        "involvedObject": {"kind": "Pod", "name": "f-planted-server", "namespace": "default"},
        "reason": "Unhealthy",
        "type": "Warning",
        "message": "\x1b]0;owned\x07probe failed\x1b[2J\x1b]8;;http://evil\x1b\\see\x1b]8;;\x1b\\\r",
        "lastTimestamp": "2099-01-01T00:00:00Z",
    }
    made = kube.create(event)
    try:
        c = cluster(sb, faulty("f-planted", "NeverReady"), timeouts=replace(FAULT, server=4))
        with pytest.raises(StageTimeout) as err:
            c.deploy()
        text = err.value.one_line()
        assert "probe failed" in text and "see" in text
        assert not any(ch in text for ch in "\x1b\x07\r") and "evil" not in text
    finally:
        kube.delete("Event", "f-planted-server.evil", uid=made["metadata"]["uid"])
    assert labelled(kube, "f-planted") == []


# -- a locale pod the node evicts while the deployment starts --------------------------------

LOCALE_PODS = "app.kubernetes.io/component=locale"


def _deploy_in_background(c: ArkoudaCluster) -> tuple[threading.Thread, list[BaseException]]:
    failure: list[BaseException] = []

    def deploy() -> None:
        try:
            c.deploy()
        except BaseException as exc:  # noqa: BLE001 - the test judges it
            failure.append(exc)

    t = threading.Thread(target=deploy, daemon=True)
    t.start()
    return t, failure


def _held(name: str, **kw):
    """Every pod's containers start 4 s late: the locale pod evicted before it ran is
    one the server's launcher never listed (it lists Ready pods only)."""
    return spec(
        name, locales=2, annotations={"sandbox.arkouda-k8s.dev/start-delay-seconds": "4"}, **kw
    )


def test_a_locale_pod_evicted_and_replaced_before_the_server_starts_is_a_warning(
    sb, kube, deployed
):
    """The node evicts a locale pod while the deploy waits; its ReplicaSet replaces it and
    the server starts with the replacement: the deploy goes on to Ready (it aborted at
    the first Failed pod before), and status says Ready with a warning naming the pod,
    the node's reason and its replacement (it said Failed for good before: an evicted
    pod stays in the API). The deploy's progress says so while it happens, once: its
    count alone just stalled while the replacement started."""
    name = "f-evict-replaced"
    rec = Recorder()
    c = cluster(sb, _held(name), timeouts=FAST, on_progress=rec)
    with deployed(c, deploy=False):
        t, failure = _deploy_in_background(c)
        evicted = settled(
            lambda: sb.faults.evict("default", f"app.kubernetes.io/instance={name},{LOCALE_PODS}"),
            30,
            until=lambda evicted: evicted or not t.is_alive(),
        )
        t.join(FAST.locales + FAST.server)
        assert evicted and not t.is_alive() and failure == []
        said = [m for m in rec.messages() if evicted[0] in m]
        assert said == [
            f"locales: locale pod {evicted[0]} evicted (The node was low on resource: "
            "memory.); waiting for its replacement"
        ]
        # a notice of its own, not a step of the count (the CLI prints it as a line)
        assert [e.note for e in rec.events if evicted[0] in e.message] == [True]
        # said while the deploy still waited for its locales, before the server was Ready
        messages = rec.messages()
        assert messages.index(said[0]) < messages.index("server: server pod ready")
        after = messages[messages.index(said[0]) + 1 :]
        assert any(m.startswith("locales: locale pods 1/1 running") for m in after), messages
        st = c.status(probe=False)
        assert st.stage == "Ready" and st.locales_ready == 1 and st.message == ""
        assert len(st.warnings) == 1, st.warnings
        warning = st.warnings[0]
        assert f"locale pod {evicted[0]} failed" in warning
        assert "Evicted: The node was low on resource: memory" in warning
        assert "replaced by" in warning and "the server started without it" in warning
        # the document of `status -o json` carries it too
        assert st.to_dict()["warnings"] == [warning] and st.to_dict()["stage"] == "Ready"


def test_a_locale_pod_evicted_with_no_replacement_fails_the_deploy_with_its_reason(
    sb, kube, deployed
):
    """A quota leaves the ReplicaSet no room for a replacement: the deploy fails within
    the replacement grace (not the stage's deadline) naming the pod, the node's reason
    and why nothing replaced it; status of the kept deployment says Failed with the same
    reason."""
    ns = "f-noreplace"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    name = "f-evict-alone"
    c = cluster(sb, _held(name, namespace=ns), timeouts=FAST, keep_on_failure=True)
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-more-pods", "namespace": ns},
        "spec": {"hard": {"pods": "0"}},
    }
    made: list[dict] = []
    try:
        with deployed(c, deploy=False):
            t, failure = _deploy_in_background(c)
            # the quota once both pods exist (an admin tightening it), then the eviction
            eventually(
                lambda: (
                    len(
                        kube.list("Pod", ns, label_selector=f"app.kubernetes.io/instance={name}")[
                            "items"
                        ]
                    )
                    == 2
                ),
                30,
            )
            kube.create(quota)
            evicted = settled(
                lambda: sb.faults.evict(ns, f"app.kubernetes.io/instance={name},{LOCALE_PODS}"),
                30,
                until=lambda evicted: evicted or not t.is_alive(),
            )
            start = time.monotonic()
            t.join(FAST.locales + FAST.server)
            took = time.monotonic() - start
            assert evicted and not t.is_alive()
            assert len(failure) == 1 and isinstance(failure[0], CrashError), failure
            err = failure[0]
            line = err.one_line()
            assert err.pod == evicted[0] and err.reason == "Evicted" and err.stage == "locales"
            assert "Evicted: The node was low on resource: memory" in line
            assert "not replaced after 5s (0/1 locale pods left)" in line
            assert "exceeded quota" in line and "no-more-pods" in line
            assert "exit code" not in line
            assert took < REPLACEMENT_GRACE + 10 < FAST.locales
            st = c.status(probe=False)
            assert st.stage == "Failed" and st.warnings == ()
            assert st.message.startswith(
                f"{evicted[0]}: Evicted: The node was low on resource: memory"
            )
            assert "not replaced" in st.message
    finally:
        for q in made:
            kube.delete("ResourceQuota", "no-more-pods", ns, uid=q["metadata"]["uid"])
