"""The user-facing ClusterRoles of a real cluster (``admin``, ``edit``, ``view``), as data.

Source: Kubernetes' RBAC bootstrap policy, plugin/pkg/auth/authorizer/rbac/
bootstrappolicy/policy.go (``clusterRoles()``) in kubernetes/kubernetes, as of v1.22 and
later: ``endpoints`` write was taken out of ``system:aggregate-to-edit`` there
(CVE-2021-25740), and ``pods/eviction`` and ``serviceaccounts/token`` create were added.
The bootstrap output the repository tests against (testdata/cluster-roles.yaml) lists
the same rules.

``admin``, ``edit`` and ``view`` carry no rules of their own: each has an
aggregationRule, and the cluster's aggregation controller fills in the rules of every
ClusterRole with the matching label. ``edit`` carries the label that aggregates it into
``admin``, ``view`` the one that aggregates it into ``edit``; the rules themselves sit in
``system:aggregate-to-admin``, ``-edit`` and ``-view``. The sandbox aggregates the same
way (``auth.aggregate``), so a ClusterRole a user labels ``aggregate-to-view`` widens
``view``, ``edit`` and ``admin`` as it would on a cluster.
"""

from __future__ import annotations

from typing import Any

AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE

# (verbs, API group, resources), in the order of policy.go.
_AGGREGATE_TO_ADMIN: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
    (("create",), "authorization.k8s.io", ("localsubjectaccessreviews",)),
    (READ_WRITE, "rbac.authorization.k8s.io", ("roles", "rolebindings")),
]

_AGGREGATE_TO_EDIT: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
    # read on the resources that escalate (exec into a pod, read a secret)
    (
        READ,
        "",
        (
            "pods/attach",
            "pods/proxy",
            "pods/exec",
            "pods/portforward",
            "secrets",
            "services/proxy",
        ),
    ),
    (("impersonate",), "", ("serviceaccounts",)),
    (WRITE, "", ("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward")),
    (("create",), "", ("pods/eviction",)),
    (
        WRITE,
        "",
        (
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/proxy",
            "persistentvolumeclaims",
            "configmaps",
            "secrets",
        ),
    ),
    (("create",), "", ("serviceaccounts/token",)),
    (
        WRITE,
        "apps",
        (
            "statefulsets",
            "statefulsets/scale",
            "daemonsets",
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "replicasets",
            "replicasets/scale",
        ),
    ),
    (WRITE, "autoscaling", ("horizontalpodautoscalers",)),
    (WRITE, "batch", ("jobs", "cronjobs")),
    (
        WRITE,
        "extensions",
        (
            "daemonsets",
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "ingresses",
            "replicasets",
            "replicasets/scale",
            "replicationcontrollers/scale",
            "networkpolicies",
        ),
    ),
    (WRITE, "policy", ("poddisruptionbudgets",)),
    (WRITE, "networking.k8s.io", ("networkpolicies", "ingresses")),
]

_AGGREGATE_TO_VIEW: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
    (
        READ,
        "",
        (
            "pods",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/status",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "configmaps",
        ),
    ),
    (
        READ,
        "",
        (
            "limitranges",
            "resourcequotas",
            "bindings",
            "events",
            "pods/status",
            "resourcequotas/status",
            "namespaces/status",
            "replicationcontrollers/status",
            "pods/log",
        ),
    ),
    # reading the namespace object itself tells a user which namespaces they may use
    (READ, "", ("namespaces",)),
    (READ, "discovery.k8s.io", ("endpointslices",)),
    (
        READ,
        "apps",
        (
            "controllerrevisions",
            "statefulsets",
            "statefulsets/status",
            "statefulsets/scale",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/status",
            "deployments/scale",
            "replicasets",
            "replicasets/status",
            "replicasets/scale",
        ),
    ),
    (READ, "autoscaling", ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
    (READ, "batch", ("jobs", "cronjobs", "cronjobs/status", "jobs/status")),
    (
        READ,
        "extensions",
        (
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "ingresses",
            "ingresses/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "replicationcontrollers/scale",
            "networkpolicies",
        ),
    ),
    (READ, "policy", ("poddisruptionbudgets", "poddisruptionbudgets/status")),
    (READ, "networking.k8s.io", ("networkpolicies", "ingresses", "ingresses/status")),
]


def _rules(table: list[tuple[tuple[str, ...], str, tuple[str, ...]]]) -> list[dict[str, Any]]:
    return [
        {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
        for verbs, group, resources in table
    ]


def user_facing_roles() -> list[dict[str, Any]]:
    """The ClusterRoles (metadata, rules, aggregationRule) as the bootstrap creates them;
    the aggregated ones get their rules from ``auth.aggregate``."""

    def aggregated(name: str, selects: str, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": labels},
            "aggregationRule": {
                "clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + selects: "true"}}]
            },
            "rules": [],
        }

    def part(name: str, into: str, table: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": {AGGREGATE_TO + into: "true"}},
            "rules": _rules(table),
        }

    return [
        aggregated("admin", "admin", {}),
        aggregated("edit", "edit", {AGGREGATE_TO + "admin": "true"}),
        aggregated("view", "view", {AGGREGATE_TO + "edit": "true"}),
        part("system:aggregate-to-admin", "admin", _AGGREGATE_TO_ADMIN),
        part("system:aggregate-to-edit", "edit", _AGGREGATE_TO_EDIT),
        part("system:aggregate-to-view", "view", _AGGREGATE_TO_VIEW),
    ]
