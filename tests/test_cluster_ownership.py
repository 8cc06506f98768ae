"""What deploy and teardown may touch: only objects the deployment created and owns.

Each test plants what an attacker (or a careless colleague) with write access to the
namespace could plant, runs the command a user would run, and checks that nothing of
theirs was replaced or deleted (security issue 20, items 1 and 2).
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from _support.lifecycle import cluster, labelled, spec

from arkouda_k8s.cli import main
from arkouda_k8s.cluster import HEARTBEAT_ANNOTATION, TTL_ANNOTATION
from arkouda_k8s.errors import ArkoudaK8sError
from arkouda_k8s.kube import KubeError

INSTANCE_ID_LABEL = "arkouda-k8s.dev/instance-id"

OUR_LABELS = {"app.kubernetes.io/managed-by": "arkouda-k8s", "app.kubernetes.io/name": "arkouda"}


def _pod(name: str, labels: dict[str, str] | None = None, namespace: str = "default") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "300"]}]
        },
    }


def _service(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 8080, "targetPort": 8080}]},
    }


def _uids(kube, *objs: tuple[str, str, str]) -> dict:
    """uid of each object, None once gone or being deleted (a pod's grace period)."""
    out = {}
    for kind, name, ns in objs:
        md = (kube.get(kind, name, ns) or {}).get("metadata", {})
        out[(kind, name, ns)] = None if md.get("deletionTimestamp") else md.get("uid")
    return out


def _remove(kube, kind: str, name: str, namespace: str = "default") -> None:
    """Test clean-up of what the test itself planted (by name: the test knows it)."""
    path = f"/api/v1/namespaces/{namespace}/{kind.lower()}s/{name}"
    try:
        kube.request("DELETE", path, query=[("gracePeriodSeconds", 0)])
    except KubeError as exc:
        if exc.status != 404:
            raise


def test_deploy_refuses_a_name_taken_by_a_secret_it_did_not_create(sb, kube, capsys):
    theirs = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "own-web-ssh"},
        "stringData": {"id_rsa": "their key"},
    }
    uid = kube.create(theirs)["metadata"]["uid"]
    try:
        code = main(["deploy", "--name", "own-web", "--kubeconfig", sb.kubeconfig_path])
        err = capsys.readouterr().err
        assert code == 1
        assert "Secret default/own-web-ssh already exists and is not part of" in err
        assert labelled(kube, "own-web") == []  # nothing half-created
        assert main(["teardown", "own-web", "--kubeconfig", sb.kubeconfig_path]) == 1
        now = kube.get("Secret", "own-web-ssh")
        assert now["metadata"]["uid"] == uid
        assert base64.b64decode(now["data"]["id_rsa"]) == b"their key"
        assert INSTANCE_ID_LABEL not in (now["metadata"].get("labels") or {})
    finally:
        _remove(kube, "Secret", "own-web-ssh")


def test_deploy_never_merges_into_a_service_of_that_name(sb, kube):
    before = kube.create(_service("own-svc-server"))
    c = cluster(sb, spec("own-svc", locales=1))
    try:
        with pytest.raises(ArkoudaK8sError, match="Service default/own-svc-server already"):
            c.deploy()
        c.teardown()  # explicit: what is asserted is that it leaves their Service alone
        after = kube.get("Service", "own-svc-server")
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["spec"]["selector"] == {"app": "theirs"}
        assert after["spec"]["ports"][0]["port"] == 8080
        assert not (after["metadata"].get("labels") or {})
    finally:
        _remove(kube, "Service", "own-svc-server")


def test_teardown_all_spares_objects_that_only_share_a_name_or_copy_labels(sb, kube, capsys):
    # A pod that copies our labels makes "prod" look like a deployment; the unlabelled
    # pod and service named like prod's are someone's production.
    kube.create(_pod("own-decoy", {**OUR_LABELS, "app.kubernetes.io/instance": "own-prod"}))
    kube.create(_pod("own-prod-server"))
    kube.create(_service("own-prod-arkouda"))
    watched = [
        ("Pod", "own-decoy", "default"),
        ("Pod", "own-prod-server", "default"),
        ("Service", "own-prod-arkouda", "default"),
    ]
    before = _uids(kube, *watched)
    try:
        assert main(["teardown", "--all", "--kubeconfig", sb.kubeconfig_path]) == 0
        assert "deleted default/own-prod" not in capsys.readouterr().out
        assert _uids(kube, *watched) == before
    finally:
        for kind, name, _ in watched:
            _remove(kube, kind, name)


def _planted_state(name: str, annotated: dict, namespace: str = "default") -> dict:
    """A state ConfigMap as a deployment writes it, expired, with an instance id."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{name}-state",
            "namespace": namespace,
            "labels": {
                **OUR_LABELS,
                "app.kubernetes.io/instance": name,
                "app.kubernetes.io/component": "config",
                INSTANCE_ID_LABEL: "0123456789abcdef",
            },
            "annotations": {
                "arkouda-k8s.dev/spec": json.dumps(annotated),
                HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z",
                TTL_ANNOTATION: "60",
            },
        },
        "data": {},
    }


def test_a_planted_state_configmap_makes_expired_delete_nothing_of_anyone(sb, kube, capsys):
    kube.create(_planted_state("own-db", {"name": "own-db", "namespace": "default"}))
    kube.create(_pod("own-db-server"))
    before = _uids(kube, ("Pod", "own-db-server", "default"))
    try:
        assert main(["teardown", "--expired", "--kubeconfig", sb.kubeconfig_path]) == 0
        assert _uids(kube, ("Pod", "own-db-server", "default")) == before
    finally:
        _remove(kube, "Pod", "own-db-server")
        _remove(kube, "ConfigMap", "own-db-state")


def test_a_spec_annotation_naming_another_namespace_is_refused(sb, kube, capsys, deployed):
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "own-team-b"}})
    victim = cluster(sb, spec("own-victim", mode="smp", locales=1, namespace="own-team-b"))
    with deployed(victim, deploy=False):
        victim.deploy(wait=False)
        try:
            there = labelled(kube, "own-victim", "own-team-b")
            assert "Pod/own-victim-server" in there
            kube.create(
                _planted_state("own-foo", {"name": "own-victim", "namespace": "own-team-b"})
            )
            code = main(
                ["teardown", "own-foo", "-n", "default", "--kubeconfig", sb.kubeconfig_path]
            )
            err = capsys.readouterr().err
            assert code == 1
            assert "ConfigMap default/own-foo-state" in err and "own-team-b/own-victim" in err
            code = main(
                ["teardown", "--expired", "-n", "default", "--kubeconfig", sb.kubeconfig_path]
            )
            capsys.readouterr()
            deadline = time.monotonic() + 2  # a deletion would show within this
            while time.monotonic() < deadline:
                assert labelled(kube, "own-victim", "own-team-b") == there
                time.sleep(0.2)
        finally:
            _remove(kube, "ConfigMap", "own-foo-state")
    assert labelled(kube, "own-victim", "own-team-b") == []


def test_teardown_deletes_what_it_owns_through_the_state_configmap(sb, kube):
    c = cluster(sb, spec("own-mine", locales=2))
    c.deploy(wait=False)
    state = kube.get("ConfigMap", "own-mine-state")
    uid = state["metadata"]["uid"]
    iid = state["metadata"]["labels"][INSTANCE_ID_LABEL]
    owned = (
        ("Secret", "own-mine-ssh"),
        ("Pod", "own-mine-server"),
        ("NetworkPolicy", "own-mine-network"),
    )
    for kind, name in owned:
        md = kube.get(kind, name)["metadata"]
        assert md["labels"][INSTANCE_ID_LABEL] == iid
        assert [r["uid"] for r in md["ownerReferences"]] == [uid]
    c.teardown()  # explicit: the teardown is what this test is about
    assert labelled(kube, "own-mine") == []
