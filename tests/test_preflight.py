"""Preflight against the sandbox: every missing permission in one error with the RBAC to
grant (and that RBAC is enough), the restricted Pod Security level, ResourceQuota and
node capacity; a failed preflight creates nothing."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from lifecycle_support import FAST, FAULT, Recorder, labelled, spec

from arkouda_k8s.cluster import ArkoudaCluster, required_access
from arkouda_k8s.errors import PermissionsMissing, PreflightError, StageTimeout


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


def test_restricted_user_gets_every_missing_permission_and_nothing_is_created(sb, kube):
    s = spec("p-user", locales=3)
    path = sb.kubeconfig_for_user("p-carol", groups=["dev"])
    c = ArkoudaCluster(s, kubeconfig=path, timeouts=FAST)
    with pytest.raises(PermissionsMissing) as err:
        c.deploy()
    exc = err.value
    want = [str(a) for a in required_access(s) if "approv" not in str(a)]
    assert sorted(exc.missing) == sorted(want)
    line = exc.one_line()
    for needed in (
        "get/list/watch/create/patch/delete pods;",
        "create/get pods/portforward;",
        "get pods/log;",
        "get/list/watch/create/delete certificatesigningrequests.certificates.k8s.io",
        "create/patch/delete roles.rbac.authorization.k8s.io",
    ):
        assert needed in line
    assert "p-carol" in line and "namespace default" in line
    docs = list(yaml.safe_load_all(exc.rbac))
    assert {d["kind"] for d in docs} == {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert all(d["subjects"][0]["name"] == "p-carol" for d in docs if "Binding" in d["kind"])
    assert labelled(kube, "p-user") == []  # nothing created, not even the state ConfigMap


def test_granting_the_printed_rbac_is_enough_and_an_admin_approves_the_csr(sb, kube):
    s = spec("p-granted", locales=2)
    path = sb.kubeconfig_for_user("p-dave")
    with pytest.raises(PermissionsMissing) as err:
        ArkoudaCluster(s, kubeconfig=path, timeouts=FAST).deploy()
    for doc in yaml.safe_load_all(err.value.rbac):
        kube.apply(doc)

    csr = f"arkouda-k8s-default-{s.name}"
    approved = threading.Event()

    def administrator():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not approved.is_set():
            if kube.get("CertificateSigningRequest", csr) is not None:
                kube.approve_csr(csr, message="approved by the test's administrator")
                approved.set()
                return
            time.sleep(0.1)

    rec = Recorder()
    admin_thread = threading.Thread(target=administrator, daemon=True)
    admin_thread.start()
    c = ArkoudaCluster(s, kubeconfig=path, timeouts=FAST, on_progress=rec)
    try:
        c.deploy()
        assert approved.is_set()
        assert any(f"kubectl certificate approve {csr}" in m for m in rec.messages())
        assert c.status().stage == "Ready"
        assert kube.get("CertificateSigningRequest", csr) is None  # deleted once stored
    finally:
        approved.set()
        admin_thread.join(5)
        c.teardown()
    assert labelled(kube, "p-granted") == []


def test_unapproved_csr_times_out_and_says_who_must_approve(sb, kube):
    s = spec("p-waiting", locales=2)
    path = sb.kubeconfig_for_user("p-erin")
    with pytest.raises(PermissionsMissing) as err:
        ArkoudaCluster(s, kubeconfig=path, timeouts=FAULT).deploy()
    for doc in yaml.safe_load_all(err.value.rbac):
        kube.apply(doc)
    from lifecycle_support import Timeouts

    short = Timeouts(preflight=20, credentials=2, locales=10, server=10, handshake=10, teardown=20)
    start = time.monotonic()
    with pytest.raises(StageTimeout) as err2:
        ArkoudaCluster(s, kubeconfig=path, timeouts=short).deploy()
    assert time.monotonic() - start < 10
    assert "kubectl certificate approve arkouda-k8s-default-p-waiting" in err2.value.one_line()
    assert labelled(kube, "p-waiting") == []


def test_restricted_pod_security_namespace_is_detected(sb, kube):
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
    assert "restricted" in err.value.one_line() and "sudo" in err.value.one_line()
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
            "spec": {"hard": {"pods": "3", "requests.memory": "1Gi", "count/secrets": "2"}},
        }
    )
    s = spec("p-q", namespace="p-quota", locales=4, memory="512Mi")
    with pytest.raises(PreflightError) as err:
        ArkoudaCluster(s, kubeconfig=sb.kubeconfig_path, timeouts=FAST).deploy()
    msg = err.value.one_line()
    assert "ResourceQuota small" in msg and "pods" in msg and "requests.memory" in msg
    assert "2.0 GiB" in msg  # 4 pods x 512Mi
    assert "leaves 2 of count/secrets, the deployment needs 3" in msg
    assert objects_in(kube, "p-quota") == []


def test_node_capacity_too_small(sb, kube):
    s = spec("p-big", locales=4, memory="100Gi")  # the sandbox node has 256Gi allocatable
    with pytest.raises(PreflightError) as err:
        ArkoudaCluster(s, kubeconfig=sb.kubeconfig_path, timeouts=FAST).deploy()
    assert "fits 2 of the 4 pods" in err.value.one_line()
    assert labelled(kube, "p-big") == []
