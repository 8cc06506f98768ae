"""A user who holds only the built-in ``admin`` ClusterRole in one namespace (bound by a
RoleBinding: what a cluster administrator gives a team), against the sandbox whose
admin/edit/view carry a real cluster's bootstrap rules.

The default registration needs nothing more: deploy 4 udp locales, compute through the
tunnel with the 2020 client, tear down. ``--registration server`` needs a cluster-scoped
grant this user lacks: one line naming it, nothing created. ``--print-rbac`` for the
default mode has no ClusterRole.
"""

from __future__ import annotations

import pytest
import yaml
from _support.lifecycle import FAST, labelled, spec, wait_no_processes

from arkouda_k8s.cli import main
from arkouda_k8s.cluster import ArkoudaCluster
from arkouda_k8s.errors import PermissionsMissing

NS = "team-a"
RBAC = "rbac.authorization.k8s.io"


@pytest.fixture(scope="module")
def team_admin(sb, kube):
    """A kubeconfig for user `alice`, bound to ClusterRole admin in NS only."""
    if kube.get("Namespace", NS) is None:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    kube.create(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "alice-admin", "namespace": NS},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "alice"}],
        }
    )
    return sb.kubeconfig_for_user("alice")


def test_namespace_admin_deploys_computes_and_tears_down(sb, kube, deployed, team_admin):
    pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")
    s = spec("na-udp", namespace=NS, locales=4, authenticate=False)
    with deployed(ArkoudaCluster(s, kubeconfig=team_admin, timeouts=FAST)) as c:
        assert c.status().stage == "Ready"
        assert c.status().locales_ready == 3
        ak = c.connect()
        assert int(ak.arange(0, 100, 1).sum()) == 4950
        # no certificate anywhere: nothing cluster-scoped was made or needed
        assert kube.list("CertificateSigningRequest")["items"] == [] or all(
            "na-udp" not in o["metadata"]["name"]
            for o in kube.list("CertificateSigningRequest")["items"]
        )
    assert labelled(kube, "na-udp", NS) == []
    assert wait_no_processes(sb) == []


def test_registration_server_is_one_line_naming_the_cluster_permission(kube, team_admin):
    s = spec("na-server", namespace=NS, locales=2, registration="server")
    with pytest.raises(PermissionsMissing) as err:
        ArkoudaCluster(s, kubeconfig=team_admin, timeouts=FAST).deploy()
    line = err.value.one_line()
    assert "\n" not in line
    assert "certificatesigningrequests.certificates.k8s.io (cluster-scoped)" in line
    assert "alice" in line and f"namespace {NS}" in line
    assert "--registration client" in line  # the way out
    assert labelled(kube, "na-server", NS) == []


def test_print_rbac_of_the_default_mode_has_no_cluster_role(sb, capsys):
    argv = ["deploy", "--name", "na-x", "-n", NS, "--print-rbac", "--kubeconfig"]
    assert main([*argv, sb.kubeconfig_path]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {d["kind"] for d in docs} == {"Role", "RoleBinding"}
    assert "certificatesigningrequests" not in yaml.safe_dump_all(docs)
    assert main([*argv, sb.kubeconfig_path, "--registration", "server"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {"ClusterRole", "ClusterRoleBinding"} <= {d["kind"] for d in docs}
