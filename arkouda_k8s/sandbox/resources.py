"""The sandbox's resource table: every kind the simulated API server serves.

One row per resource gives what discovery advertises (group, version, kind, verbs,
namespaced, short names, subresources) and what the store needs (the store key
``plural[.group]``). Discovery documents (``/api``, ``/apis``, ``/api/v1``,
``/apis/<group>/<version>``) are built from this table alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # subresource name -> verbs
    subresources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    categories: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The store key: the plural, with the group for non-core resources."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


_STATUS = ("get", "patch", "update")

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        subresources={"status": _STATUS, "finalize": ("update",)},
    ),
    Resource(
        "pods",
        "Pod",
        short_names=("po",),
        categories=("all",),
        subresources={
            "status": _STATUS,
            "log": ("get",),
            "portforward": ("create", "get"),
            "exec": ("create", "get"),
        },
    ),
    Resource(
        "services",
        "Service",
        short_names=("svc",),
        categories=("all",),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
        subresources={"status": _STATUS},
    ),
    Resource("endpoints", "Endpoints", short_names=("ep",)),
    Resource("configmaps", "ConfigMap", short_names=("cm",)),
    Resource("secrets", "Secret"),
    Resource("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    Resource("events", "Event", short_names=("ev",)),
    Resource(
        "nodes", "Node", namespaced=False, short_names=("no",), subresources={"status": _STATUS}
    ),
    Resource(
        "resourcequotas", "ResourceQuota", short_names=("quota",), subresources={"status": _STATUS}
    ),
    Resource("limitranges", "LimitRange", short_names=("limits",)),
    Resource(
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short_names=("pvc",),
        subresources={"status": _STATUS},
    ),
    Resource(
        "deployments",
        "Deployment",
        group="apps",
        short_names=("deploy",),
        categories=("all",),
        subresources={"status": _STATUS, "scale": _STATUS},
    ),
    Resource(
        "replicasets",
        "ReplicaSet",
        group="apps",
        short_names=("rs",),
        categories=("all",),
        subresources={"status": _STATUS, "scale": _STATUS},
    ),
    Resource(
        "daemonsets",
        "DaemonSet",
        group="apps",
        short_names=("ds",),
        categories=("all",),
        subresources={"status": _STATUS},
    ),
    Resource(
        "jobs",
        "Job",
        group="batch",
        categories=("all",),
        subresources={"status": _STATUS},
    ),
    # Stored and validated; the sandbox's pods share the loopback, so no policy is enforced.
    Resource(
        "networkpolicies", "NetworkPolicy", group="networking.k8s.io", short_names=("netpol",)
    ),
    Resource("roles", "Role", group="rbac.authorization.k8s.io"),
    Resource("rolebindings", "RoleBinding", group="rbac.authorization.k8s.io"),
    Resource("clusterroles", "ClusterRole", group="rbac.authorization.k8s.io", namespaced=False),
    Resource(
        "clusterrolebindings",
        "ClusterRoleBinding",
        group="rbac.authorization.k8s.io",
        namespaced=False,
    ),
    Resource(
        "certificatesigningrequests",
        "CertificateSigningRequest",
        group="certificates.k8s.io",
        namespaced=False,
        short_names=("csr",),
        subresources={"status": _STATUS, "approval": _STATUS},
    ),
    Resource(
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        group="authorization.k8s.io",
        namespaced=False,
        verbs=("create",),
    ),
    Resource(
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        group="authorization.k8s.io",
        namespaced=False,
        verbs=("create",),
    ),
    Resource(
        "subjectaccessreviews",
        "SubjectAccessReview",
        group="authorization.k8s.io",
        namespaced=False,
        verbs=("create",),
    ),
    Resource(
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        group="authorization.k8s.io",
        verbs=("create",),
    ),
    Resource(
        "selfsubjectreviews",
        "SelfSubjectReview",
        group="authentication.k8s.io",
        namespaced=False,
        verbs=("create",),
    ),
    Resource("leases", "Lease", group="coordination.k8s.io"),
    Resource(
        "endpointslices",
        "EndpointSlice",
        group="discovery.k8s.io",
    ),
)

# Review kinds are answered, never stored.
VIRTUAL = frozenset(
    r.key for r in RESOURCES if r.group in ("authorization.k8s.io", "authentication.k8s.io")
)

BY_KEY: dict[str, Resource] = {r.key: r for r in RESOURCES}
BY_GVR: dict[tuple[str, str, str], Resource] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}
BY_GVK: dict[tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in RESOURCES}


def resource(key: str) -> Resource:
    """The table row for a store key such as ``pods`` or ``deployments.apps``."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise KeyError(f"the sandbox serves no resource {key!r}") from None


def group_versions() -> dict[str, list[str]]:
    """Every non-core group and its versions, in table order."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """The APIResourceList document of ``/api/v1`` or ``/apis/<group>/<version>``."""
    rows = [r for r in RESOURCES if r.group == group and r.version == version]
    if not rows:
        return None
    resources: list[dict[str, Any]] = []
    for r in rows:
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        resources.append(entry)
        for sub, verbs in r.subresources.items():
            kind = r.kind
            sub_group: dict[str, Any] = {}
            if sub == "scale":
                kind = "Scale"
                sub_group = {"group": "autoscaling", "version": "v1"}
            elif sub in ("log", "portforward", "exec"):
                kind = {"log": "Pod", "portforward": "PodPortForwardOptions"}.get(
                    sub, "PodExecOptions"
                )
            resources.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": kind,
                    "verbs": list(verbs),
                    **sub_group,
                }
            )
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def openapi_v3_root() -> dict[str, Any]:
    """The ``/openapi/v3`` index: one document per group version we serve."""
    paths = {}
    for r in RESOURCES:
        prefix = f"apis/{r.group}/{r.version}" if r.group else "api/v1"
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash=sandbox1"}
    return {"paths": paths}


# kubectl falls back to its compiled-in patch metadata when the document does not offer
# strategic merge patch, which is what the sandbox wants (it carries no full schemas).
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)


def openapi_v3_document(prefix: str) -> dict[str, Any] | None:
    """A minimal per-group-version OpenAPI v3 document.

    It holds only what kubectl reads from it: the PATCH operation of every resource
    with its ``x-kubernetes-group-version-kind`` and the ``fieldValidation`` and
    ``dryRun`` query parameters, so that ``kubectl apply``/``create`` leave field
    validation to the server (``fieldValidation=Strict``) instead of downloading schemas.
    """
    rows = [
        r for r in RESOURCES if (f"apis/{r.group}/{r.version}" if r.group else "api/v1") == prefix
    ]
    if not rows:
        return None
    params = [
        {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for n in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
    ]
    paths: dict[str, Any] = {}
    for r in rows:
        if "patch" not in r.verbs:
            continue
        base = f"/{prefix}" + ("/namespaces/{namespace}" if r.namespaced else "")
        paths[f"{base}/{r.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{r.kind}",
                "parameters": params,
                "requestBody": {
                    "content": {t: {"schema": {"type": "object"}} for t in _PATCH_TYPES},
                    "required": True,
                },
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": r.group,
                    "version": r.version,
                    "kind": r.kind,
                },
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "arkouda-k8s sandbox (simulated Kubernetes API)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }
