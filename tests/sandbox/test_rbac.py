"""Authentication, RBAC, access reviews and the fault API of the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _support import settled
from api_support import api_client_for
from kubernetes import client
from kubernetes.client.rest import ApiException

from arkouda_k8s.sandbox import Sandbox

NS = "rbac-tests"
RBAC = "rbac.authorization.k8s.io"


@pytest.fixture(scope="module", autouse=True)
def namespace(admin_api: Any) -> Iterator[None]:
    core = client.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": NS}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "public"}, "data": {"a": "1"}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "private"}, "data": {"b": "2"}})
    yield


def user_api(sandbox: Sandbox, name: str, groups: tuple[str, ...] = ()) -> Any:
    return api_client_for(sandbox.kubeconfig_for_user(name, groups))


def message(err: pytest.ExceptionInfo[ApiException]) -> str:
    return str(json.loads(err.value.body)["message"])


def bind(admin_api: Any, name: str, role: dict[str, Any], subjects: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(admin_api)
    kind = role.get("kind", "Role")
    if kind == "Role":
        rbac.create_namespaced_role(NS, {"metadata": {"name": name}, "rules": role["rules"]})
    rbac.create_namespaced_role_binding(
        NS,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role.get("name", name)},
            "subjects": subjects,
        },
    )


def test_a_user_without_bindings_is_forbidden_with_the_real_wording(sandbox: Sandbox) -> None:
    core = client.CoreV1Api(user_api(sandbox, "nobody"))
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(NS)
    assert err.value.status == 403
    assert message(err) == (
        'pods is forbidden: User "nobody" cannot list resource "pods" in API group "" in the '
        f'namespace "{NS}"'
    )
    with pytest.raises(ApiException) as err:
        core.list_namespace()
    assert message(err) == (
        'namespaces is forbidden: User "nobody" cannot list resource "namespaces" in API group '
        '"" at the cluster scope'
    )
    with pytest.raises(ApiException) as err:
        client.AppsV1Api(core.api_client).read_namespaced_deployment("d", NS)
    assert message(err).startswith(
        'deployments.apps "d" is forbidden: User "nobody" cannot get resource "deployments" in '
        'API group "apps"'
    )


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_bad_token_is_401_and_no_credentials_is_anonymous(sandbox: Sandbox) -> None:
    bad = sandbox.write_kubeconfig(sandbox.kubeconfig_dict(token="not-a-token"), "bad-token")
    with api_client_for(bad) as api, pytest.raises(ApiException) as err:
        client.CoreV1Api(api).list_namespace()
    assert err.value.status == 401
    cfg = client.Configuration()
    cfg.host = sandbox.url
    cfg.verify_ssl = False  # no credentials at all: an anonymous request
    with client.ApiClient(cfg) as api:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespace()
        assert err.value.status == 403 and 'User "system:anonymous"' in message(err)
        assert client.VersionApi(api).get_code().major == "1"  # public info stays public


def test_role_binding_grants_only_its_namespace_verbs_and_names(
    sandbox: Sandbox, admin_api: Any
) -> None:
    bind(
        admin_api,
        "reader",
        {
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["public"],
                    "verbs": ["get"],
                },
            ]
        },
        [{"kind": "User", "name": "carol"}],
    )
    core = client.CoreV1Api(user_api(sandbox, "carol"))
    assert core.list_namespaced_pod(NS).items == []
    assert core.read_namespaced_config_map("public", NS).data == {"a": "1"}
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("private", NS)
    assert err.value.status == 403
    with pytest.raises(ApiException):
        core.list_namespaced_config_map(NS)  # resourceNames never allow list
    with pytest.raises(ApiException):
        core.list_namespaced_pod("default")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(
            NS, {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        )
    assert "cannot create resource" in message(err)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("x", NS)
    assert err.value.status == 403 and 'resource "pods/log"' in message(err)


def test_groups_cluster_roles_and_service_accounts_as_subjects(
    sandbox: Sandbox, admin_api: Any
) -> None:
    bind(
        admin_api,
        "team-edit",
        {"kind": "ClusterRole", "name": "edit"},
        [
            {"kind": "Group", "name": "team-x", "apiGroup": RBAC},
            {"kind": "ServiceAccount", "name": "builder", "namespace": NS},
        ],
    )
    dave = client.CoreV1Api(user_api(sandbox, "dave", ("team-x",)))
    dave.create_namespaced_config_map(NS, {"metadata": {"name": "by-dave"}})
    with pytest.raises(ApiException):
        dave.create_namespaced_config_map("default", {"metadata": {"name": "by-dave"}})
    token = sandbox.service_account_token(NS, "builder")
    path = sandbox.write_kubeconfig(sandbox.kubeconfig_dict(token=token), "builder")
    with api_client_for(path) as api:
        assert client.CoreV1Api(api).read_namespaced_config_map("by-dave", NS).metadata.name


def test_access_reviews_use_the_same_engine(sandbox: Sandbox, admin_api: Any) -> None:
    bind(
        admin_api,
        "svc-maker",
        {"rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["create"]}]},
        [{"kind": "User", "name": "erin"}],
    )
    erin = client.AuthorizationV1Api(user_api(sandbox, "erin"))

    def can(verb: str, resource: str, namespace: str = NS, sub: str = "") -> bool:
        attrs = {"verb": verb, "resource": resource, "namespace": namespace}
        if sub:
            attrs["subresource"] = sub
        review = erin.create_self_subject_access_review({"spec": {"resourceAttributes": attrs}})
        return bool(review.status.allowed)

    assert can("create", "services") and not can("delete", "services")
    assert not can("create", "services", namespace="default")
    assert not can("create", "pods", sub="portforward")
    # SubjectAccessReview: the admin asks about erin
    admin_authz = client.AuthorizationV1Api(admin_api)
    sar = admin_authz.create_subject_access_review(
        {
            "spec": {
                "user": "erin",
                "resourceAttributes": {"verb": "create", "resource": "services", "namespace": NS},
            }
        }
    )
    assert sar.status.allowed is True
    # a normal user may not ask about others
    with pytest.raises(ApiException) as err:
        erin.create_subject_access_review(
            {"spec": {"user": "x", "resourceAttributes": {"verb": "get", "resource": "pods"}}}
        )
    assert err.value.status == 403
    rules = erin.create_self_subject_rules_review({"spec": {"namespace": NS}})
    assert any(
        "services" in (r.resources or []) and "create" in r.verbs
        for r in rules.status.resource_rules
    )


def test_deny_fault_hits_users_and_optionally_the_admin(sandbox: Sandbox, admin_api: Any) -> None:
    bind(
        admin_api,
        "frank-cm",
        {"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
        [{"kind": "User", "name": "frank"}],
    )
    frank = client.CoreV1Api(user_api(sandbox, "frank"))
    admin = client.CoreV1Api(admin_api)
    try:
        sandbox.faults.deny("list", "configmaps")
        with pytest.raises(ApiException) as err:
            frank.list_namespaced_config_map(NS)
        assert err.value.status == 403 and "fault injection" in message(err)
        assert frank.read_namespaced_config_map("public", NS).data  # other verbs still fine
        admin.list_namespaced_config_map(NS)  # user=None spares the admin
        review = client.AuthorizationV1Api(frank.api_client).create_self_subject_access_review(
            {
                "spec": {
                    "resourceAttributes": {
                        "verb": "list",
                        "resource": "configmaps",
                        "namespace": NS,
                    }
                }
            }
        )
        assert review.status.allowed is False
        sandbox.faults.deny("get", "configmaps", user="*", namespace=NS)
        with pytest.raises(ApiException):
            admin.read_namespaced_config_map("public", NS)
    finally:
        sandbox.faults.clear()
    assert frank.list_namespaced_config_map(NS).items
    assert admin.read_namespaced_config_map("public", NS).data


def test_fail_requests_and_request_stats(sandbox: Sandbox, admin_api: Any) -> None:
    core = client.CoreV1Api(admin_api)
    before = sandbox.stats.requests
    sandbox.faults.fail_requests(2, status=503)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.read_namespace(NS, _request_timeout=10)
        assert err.value.status == 503
    assert core.read_namespace(NS).metadata.name == NS
    core.list_namespaced_config_map(NS)
    after = sandbox.stats.requests
    assert after["get"] - before["get"] == 3
    assert after["list"] - before["list"] == 1
    assert after["total"] - before["total"] == 4


def _rules_review(api: Any, namespace: str) -> Any:
    return client.AuthorizationV1Api(api).create_self_subject_rules_review(
        {"spec": {"namespace": namespace}}
    )


def _grants(rules: Any, verb: str, resource: str, group: str = "") -> bool:
    return any(
        (verb in r.verbs or "*" in r.verbs)
        and (group in r.api_groups or "*" in r.api_groups)
        and (resource in r.resources or "*" in r.resources)
        for r in rules
    )


def test_admin_edit_view_carry_a_real_clusters_bootstrap_rules(admin_api: Any) -> None:
    """Aggregated like a cluster's: the rules sit in system:aggregate-to-*; edit lost
    endpoints write (CVE-2021-25740); only admin may write Roles."""
    rbac = client.RbacAuthorizationV1Api(admin_api)
    roles = {n: rbac.read_cluster_role(n) for n in ("admin", "edit", "view")}
    assert all(r.aggregation_rule.cluster_role_selectors for r in roles.values())
    admin, edit, view = (roles[n].rules for n in ("admin", "edit", "view"))
    assert _grants(view, "list", "pods") and not _grants(view, "create", "pods")
    assert not _grants(view, "get", "secrets")  # view never reads secrets
    assert _grants(edit, "create", "pods") and _grants(edit, "get", "secrets")
    assert _grants(edit, "create", "pods/portforward")
    assert not _grants(edit, "create", "endpoints") and _grants(edit, "list", "endpoints")
    assert not _grants(edit, "create", "roles", RBAC)
    assert _grants(admin, "create", "roles", RBAC) and _grants(
        admin, "create", "rolebindings", RBAC
    )
    assert _grants(admin, "create", "deployments", "apps")
    assert not _grants(admin, "create", "certificatesigningrequests", "certificates.k8s.io")


def test_a_labelled_cluster_role_widens_view_edit_and_admin(
    sandbox: Sandbox, admin_api: Any, unique: str
) -> None:
    rbac = client.RbacAuthorizationV1Api(admin_api)
    rbac.create_cluster_role(
        {
            "metadata": {
                "name": f"widgets-{unique}",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
            },
            "rules": [{"apiGroups": [f"{unique}.io"], "resources": ["widgets"], "verbs": ["get"]}],
        }
    )
    # the aggregation runs after the write, as a controller's would
    widened = settled(
        lambda: [
            _grants(rbac.read_cluster_role(n).rules, "get", "widgets", f"{unique}.io")
            for n in ("view", "edit", "admin")
        ],
        10,
        until=all,
    )
    assert widened == [True, True, True]
    rbac.delete_cluster_role(f"widgets-{unique}")


def test_rules_review_through_a_rolebinding_to_admin(sandbox: Sandbox, admin_api: Any) -> None:
    """A SelfSubjectRulesReview lists the aggregated rules of a ClusterRole bound in the
    namespace by a RoleBinding, and nothing of it in another namespace."""
    bind(
        admin_api,
        "frank-admin",
        {"kind": "ClusterRole", "name": "admin"},
        [{"kind": "User", "name": "frank", "apiGroup": RBAC}],
    )
    api = user_api(sandbox, "frank")
    here = _rules_review(api, NS).status
    assert here.incomplete is False
    assert _grants(here.resource_rules, "create", "rolebindings", RBAC)
    assert _grants(here.resource_rules, "create", "pods/portforward")
    assert _grants(here.resource_rules, "create", "pods/eviction")  # from aggregate-to-edit
    assert _grants(here.resource_rules, "create", "selfsubjectrulesreviews", "authorization.k8s.io")
    elsewhere = _rules_review(api, "default").status
    assert not _grants(elsewhere.resource_rules, "create", "rolebindings", RBAC)
    assert not _grants(elsewhere.resource_rules, "list", "pods")


def test_granting_more_than_one_holds_is_refused_like_a_real_api_server(
    sandbox: Sandbox, admin_api: Any
) -> None:
    """RBAC escalation prevention: a namespace admin may create a Role only with rules
    they hold, and bind only a Role that exists and whose rules they hold."""
    bind(
        admin_api,
        "gina-admin",
        {"kind": "ClusterRole", "name": "admin"},
        [{"kind": "User", "name": "gina", "apiGroup": RBAC}],
    )
    rbac = client.RbacAuthorizationV1Api(user_api(sandbox, "gina"))
    pods_reader = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    rbac.create_namespaced_role(NS, {"metadata": {"name": "gina-reader"}, "rules": pods_reader})
    more = [{"apiGroups": [""], "resources": ["endpoints"], "verbs": ["create"]}]
    with pytest.raises(ApiException) as err:
        rbac.create_namespaced_role(NS, {"metadata": {"name": "registrar"}, "rules": more})
    assert err.value.status == 403
    assert "attempting to grant RBAC permissions not currently held" in message(err)
    assert 'Resources:["endpoints"]' in message(err)

    def binding(name: str, role: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}],
        }

    with pytest.raises(ApiException) as err:
        rbac.create_namespaced_role_binding(NS, binding("early", "not-yet"))
    assert (
        err.value.status == 403
        and 'roles.rbac.authorization.k8s.io "not-yet" not found' in message(err)
    )
    rbac.create_namespaced_role_binding(NS, binding("gina-reader", "gina-reader"))
