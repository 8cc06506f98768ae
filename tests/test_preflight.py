"""Preflight against the sandbox: every missing permission in one error with the RBAC to
grant (and that RBAC is enough), the restricted Pod Security level, ResourceQuota and
node capacity; a failed preflight creates nothing."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from _support import settled
from _support.lifecycle import FAST, FAULT, Recorder, dead_kubeconfig, labelled, spec

from arkouda_k8s import preflight
from arkouda_k8s.cluster import ArkoudaCluster, required_access
from arkouda_k8s.errors import PermissionsMissing, PreflightError, StageTimeout
from arkouda_k8s.kube import Access
from arkouda_k8s.spec import Persistence


def objects_in(kube, namespace):
    out = []
    for kind in ("Pod", "Deployment", "Secret", "ConfigMap", "Service", "Role", "RoleBinding"):
        out += [
            o["metadata"]["name"]
            for o in kube.list(kind, namespace)["items"]
            if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by")
            == "arkouda-k8s"
        ]
    return out


@pytest.mark.parametrize("registration", ["client", "server"])
def test_restricted_user_gets_every_missing_permission_and_nothing_is_created(
    sb, kube, registration
):
    s = spec("p-user", locales=3, registration=registration)
    path = sb.kubeconfig_for_user("p-carol", groups=["dev"])
    c = ArkoudaCluster(s, kubeconfig=path, timeouts=FAST)
    with pytest.raises(PermissionsMissing) as err:
        c.deploy()
    exc = err.value
    want = [str(a) for a in required_access(s) if "approv" not in str(a)]
    assert sorted(exc.missing) == sorted(want)
    line = exc.one_line()
    needs = [
        "get/list/watch/create/patch/delete pods;",
        "create/get pods/portforward;",
        "get pods/log;",
        "create/patch/delete roles.rbac.authorization.k8s.io",
    ]
    csr = "get/list/watch/create/delete certificatesigningrequests.certificates.k8s.io"
    if registration == "server":
        needs.append(csr)
    else:
        needs.append("get/list/watch/create/patch/delete serviceaccounts")
        assert "certificatesigningrequests" not in line
    for needed in needs:
        assert needed in line
    assert "p-carol" in line and "namespace default" in line
    docs = list(yaml.safe_load_all(exc.rbac))
    # Registration "client" (the default) needs namespace permissions only.
    kinds = {"Role", "RoleBinding"}
    if registration == "server":
        kinds |= {"ClusterRole", "ClusterRoleBinding"}
    assert {d["kind"] for d in docs} == kinds
    assert all(d["subjects"][0]["name"] == "p-carol" for d in docs if "Binding" in d["kind"])
    assert labelled(kube, "p-user") == []  # nothing created, not even the state ConfigMap


def test_granting_the_printed_rbac_is_enough_and_an_admin_approves_the_csr(sb, kube, deployed):
    s = spec("p-granted", locales=2, registration="server")
    path = sb.kubeconfig_for_user("p-dave")
    with pytest.raises(PermissionsMissing) as err:
        ArkoudaCluster(s, kubeconfig=path, timeouts=FAST).deploy()
    for doc in yaml.safe_load_all(err.value.rbac):
        kube.apply(doc)

    csr = f"arkouda-k8s-default-{s.name}"
    approved = threading.Event()

    def administrator():
        # a thread: the test asserts on `approved`, and sets it to stop the thread
        made = settled(
            lambda: kube.get("CertificateSigningRequest", csr),
            30,
            0.1,
            until=lambda obj: obj is not None or approved.is_set(),
        )
        if made is not None and not approved.is_set():
            kube.approve_csr(csr, message="approved by the test's administrator")
            approved.set()

    rec = Recorder()
    admin_thread = threading.Thread(target=administrator, daemon=True)
    admin_thread.start()
    c = ArkoudaCluster(s, kubeconfig=path, timeouts=FAST, on_progress=rec)
    with deployed(c, deploy=False):
        try:
            c.deploy()
            assert approved.is_set()
            assert any(f"kubectl certificate approve {csr}" in m for m in rec.messages())
            assert c.status().stage == "Ready"
            assert kube.get("CertificateSigningRequest", csr) is None  # deleted once stored
        finally:
            approved.set()
            admin_thread.join(5)
    assert labelled(kube, "p-granted") == []


def test_unapproved_csr_times_out_and_says_who_must_approve(sb, kube):
    s = spec("p-waiting", locales=2, registration="server")
    path = sb.kubeconfig_for_user("p-erin")
    with pytest.raises(PermissionsMissing) as err:
        ArkoudaCluster(s, kubeconfig=path, timeouts=FAULT).deploy()
    for doc in yaml.safe_load_all(err.value.rbac):
        kube.apply(doc)
    from _support.lifecycle import Timeouts

    short = Timeouts(preflight=20, credentials=2, locales=10, server=10, handshake=10, teardown=20)
    start = time.monotonic()
    with pytest.raises(StageTimeout) as err2:
        ArkoudaCluster(s, kubeconfig=path, timeouts=short).deploy()
    assert time.monotonic() - start < 10
    assert "kubectl certificate approve arkouda-k8s-default-p-waiting" in err2.value.one_line()
    assert labelled(kube, "p-waiting") == []


def test_restricted_pod_security_namespace_is_detected(sb, kube, deployed):
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "p-restricted",
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        }
    )
    c = ArkoudaCluster(
        spec("p-psa", namespace="p-restricted"), kubeconfig=sb.kubeconfig_path, timeouts=FAST
    )
    with pytest.raises(PreflightError) as err:
        c.deploy()
    assert "restricted" in err.value.one_line() and "sshd runs as root" in err.value.one_line()
    assert objects_in(kube, "p-restricted") == []
    # smp without metrics or persistence holds nothing 'restricted' forbids: it deploys.
    smp = ArkoudaCluster(
        spec("p-psa-smp", namespace="p-restricted", mode="smp", locales=2),
        kubeconfig=sb.kubeconfig_path,
        timeouts=FAST,
    )
    with deployed(smp):
        assert smp.status().stage == "Ready"
    assert objects_in(kube, "p-restricted") == []


def test_missing_namespace_is_reported(sb):
    c = ArkoudaCluster(
        spec("p-nons", namespace="p-nowhere"), kubeconfig=sb.kubeconfig_path, timeouts=FAST
    )
    with pytest.raises(PreflightError, match="kubectl create namespace p-nowhere"):
        c.deploy()


def test_resource_quota_too_small(sb, kube):
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p-quota"}})
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "small", "namespace": "p-quota"},
            "spec": {"hard": {"pods": "3", "requests.memory": "1Gi", "count/secrets": "1"}},
        }
    )
    s = spec("p-q", namespace="p-quota", locales=4, memory="512Mi")
    with pytest.raises(PreflightError) as err:
        ArkoudaCluster(s, kubeconfig=sb.kubeconfig_path, timeouts=FAST).deploy()
    msg = err.value.one_line()
    assert "ResourceQuota small" in msg and "pods" in msg and "requests.memory" in msg
    assert "2.0 GiB" in msg  # 4 pods x 512Mi
    # The SSH and token Secrets (a TLS one only with registration "server").
    assert "leaves 1 of count/secrets, the deployment needs 2" in msg
    assert objects_in(kube, "p-quota") == []


def test_node_capacity_too_small(sb, kube):
    s = spec("p-big", locales=4, memory="100Gi")  # the sandbox node has 256Gi allocatable
    with pytest.raises(PreflightError) as err:
        ArkoudaCluster(s, kubeconfig=sb.kubeconfig_path, timeouts=FAST).deploy()
    assert "fits 2 of the 4 pods" in err.value.one_line()
    assert labelled(kube, "p-big") == []


def test_preflight_is_one_round_trip_with_one_rules_review(sb):
    """One SelfSubjectRulesReview for the namespace instead of an access review per
    permission (62 of them before), every check side by side: against a distant API
    server the whole preflight waits for one round trip."""
    c = ArkoudaCluster(spec("p-fast", locales=4), kubeconfig=sb.kubeconfig_path, timeouts=FAST)
    before_requests, before_trips = c.kube.requests, c.kube.round_trips
    sb.api_latency = 0.05  # every request slow enough that side by side shows
    try:
        c.preflight()
    finally:
        sb.api_latency = 0.0
    sent = c.kube.requests - before_requests
    trips = c.kube.round_trips - before_trips
    assert trips == 1, f"{sent} requests in {trips} round trips"
    assert sent <= 4 + sum(1 for a in required_access(c.spec) if not a.namespaced)


def test_rule_matching_follows_rbac():
    pods_get = Access("get", "pods")
    scale = Access("update", "deployments", "apps", "scale")
    signer = Access("approve", "signers", "certificates.k8s.io", name="x/y", namespaced=False)
    rule = preflight.rule_allows
    assert rule({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, scale)
    assert rule({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, pods_get)
    assert not rule({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}, pods_get)
    # a resource does not grant its subresources, "*/scale" grants every scale
    assert not rule(
        {"verbs": ["update"], "apiGroups": ["apps"], "resources": ["deployments"]}, scale
    )
    assert rule({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/scale"]}, scale)
    base = {"verbs": ["approve"], "apiGroups": ["certificates.k8s.io"], "resources": ["signers"]}
    assert rule({**base, "resourceNames": ["x/y"]}, signer)
    assert not rule({**base, "resourceNames": ["other"]}, signer)
    assert not rule(
        {**base, "resourceNames": ["x/y"]}, Access("approve", "signers", "certificates.k8s.io")
    )


class _IncompleteReview:
    """A Kube whose RBAC rules grant nothing and say so incompletely (a webhook
    authorizer allows pods only): the preflight must ask access reviews."""

    namespace = "default"

    def __init__(self):
        self.asked = []

    def concurrently(self, calls):
        return [c() for c in calls]

    def rules_review(self, namespace, *, deadline):
        return {"resourceRules": [], "incomplete": True}

    def get(self, kind, name, namespace=None, *, deadline=None):
        return {"metadata": {"name": name, "labels": {}}}

    def list(self, kind, namespace=None, *, deadline=None):
        return {"items": []}

    def can_i(self, access, namespace=None, *, deadline=None):
        self.asked.append(access)
        return access.resource == "pods"

    def missing_access(self, needs, namespace=None, *, deadline=None):
        return [a for a in needs if not self.can_i(a, namespace)]


def test_an_incomplete_rules_review_is_confirmed_by_access_reviews():
    kube = _IncompleteReview()
    s = spec("p-webhook", locales=2)
    found = preflight.check(kube, s, "default", deadline=time.monotonic() + 5)
    assert found.missing and all(a.resource != "pods" for a in found.missing)
    assert any(a.resource == "pods" for a in kube.asked)


def test_baseline_pod_security_and_hostpath_persistence(sb, kube):
    """Pod Security 'baseline' forbids hostPath: an error where the namespace enforces
    it, a warning where the level is the cluster's default (unknown to us)."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "p-baseline",
                "labels": {"pod-security.kubernetes.io/enforce": "baseline"},
            },
        }
    )
    files = Persistence(host_path="/tmp/arkouda-files", mount_path="/arkouda-files")
    s = spec("p-files", namespace="p-baseline", persistence=files)
    with pytest.raises(PreflightError) as err:
        ArkoudaCluster(s, kubeconfig=sb.kubeconfig_path, timeouts=FAST).deploy()
    assert "'baseline'" in err.value.one_line() and "hostPath" in err.value.one_line()
    assert objects_in(kube, "p-baseline") == []

    rec = Recorder()
    c = ArkoudaCluster(
        spec("p-files", persistence=files),
        kubeconfig=sb.kubeconfig_path,
        timeouts=FAST,
        on_progress=rec,
    )
    c.preflight()
    assert any("baseline" in w and "hostPath" in w for w in c.warnings)
    assert any(
        "forbids" in m for m in rec.messages() if m.startswith("preflight: preflight passed")
    )


def test_deploy_where_nothing_listens_fails_after_a_few_attempts(tmp_path):
    """No API server at the address: the deploy says so after a few refused attempts
    (kube.UNREACHABLE_ATTEMPTS), not after the preflight's 60 s of retries."""
    from arkouda_k8s.errors import KubeError

    config, port = dead_kubeconfig(tmp_path)
    c = ArkoudaCluster(spec("pf-nothing-listens"), kubeconfig=config)  # default timeouts
    assert c.timeouts.preflight >= 60
    with pytest.raises(KubeError) as err:
        c.deploy()
    e = err.value
    assert e.reason == "Unreachable"
    assert e.message.startswith(f"nothing answers at the Kubernetes API https://127.0.0.1:{port}")
    assert "(5 attempts)" in e.message and "Connection refused" in e.message
    assert f"check the server address of the context in {config}" in e.hint
