"""Where each kind lives in the Kubernetes API, and one permission on it.

Enough to build every URL the project sends without API discovery (one round trip
saved per deploy), and the ``Access`` a preflight asks SelfSubjectAccessReviews about.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import KubeError


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API: enough to build its URLs without discovery."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        return base


_KINDS = (
    Kind("Namespace", "", "v1", "namespaces", False),
    Kind("Node", "", "v1", "nodes", False),
    Kind("Pod", "", "v1", "pods"),
    Kind("Service", "", "v1", "services"),
    Kind("Endpoints", "", "v1", "endpoints"),
    Kind("ConfigMap", "", "v1", "configmaps"),
    Kind("Secret", "", "v1", "secrets"),
    Kind("ServiceAccount", "", "v1", "serviceaccounts"),
    Kind("Event", "", "v1", "events"),
    Kind("ResourceQuota", "", "v1", "resourcequotas"),
    Kind("LimitRange", "", "v1", "limitranges"),
    Kind("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims"),
    Kind("Deployment", "apps", "v1", "deployments"),
    Kind("ReplicaSet", "apps", "v1", "replicasets"),
    Kind("DaemonSet", "apps", "v1", "daemonsets"),
    Kind("Job", "batch", "v1", "jobs"),
    Kind("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies"),
    Kind("Role", "rbac.authorization.k8s.io", "v1", "roles"),
    Kind("RoleBinding", "rbac.authorization.k8s.io", "v1", "rolebindings"),
    Kind("ClusterRole", "rbac.authorization.k8s.io", "v1", "clusterroles", False),
    Kind("ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", "clusterrolebindings", False),
    Kind(
        "CertificateSigningRequest",
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        False,
    ),
    Kind(
        "SelfSubjectAccessReview", "authorization.k8s.io", "v1", "selfsubjectaccessreviews", False
    ),
    Kind("SelfSubjectRulesReview", "authorization.k8s.io", "v1", "selfsubjectrulesreviews", False),
)
KINDS: dict[str, Kind] = {k.kind: k for k in _KINDS}


def kind_of(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise KubeError(f"kind {kind!r} is not known to arkouda-k8s") from None


@dataclass(frozen=True)
class Access:
    """One permission: ``verb`` on ``resource[/subresource]`` of ``group``, in a namespace."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespaced: bool = True
    name: str = ""

    def __str__(self) -> str:
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        if self.group:
            res += f".{self.group}"
        return f"{self.verb} {res}"
