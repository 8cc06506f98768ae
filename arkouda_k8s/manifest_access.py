"""The access and ownership objects of a deployment, as plain dicts: its Secrets, the
server's RBAC (and a pipeline's, ``runner_rbac``), the CSR of its client certificate,
the state ConfigMap that owns every other object and the owner reference that says so.
Pure: no I/O."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from .credentials import Credentials
from .manifest_base import (
    CSR_SIGNER,
    EPHEMERAL_ANNOTATION,
    HEARTBEAT_ANNOTATION,
    INSTANCE_ID_LABEL,
    MANAGED_BY,
    PLACEHOLDER,
    SPEC_ANNOTATION,
    TTL_ANNOTATION,
    _b64,
    _meta,
    _namespace,
    labels,
    names,
)
from .spec import ClusterSpec

if TYPE_CHECKING:
    from .kube_kinds import Access

RBAC_GROUP = "rbac.authorization.k8s.io"


def _secret(
    spec: ClusterSpec, name: str, values: dict[str, bytes | str | None], type_: str = "Opaque"
) -> dict[str, Any]:
    """A Secret; values that are None are shown as a placeholder in stringData."""
    data = {k: _b64(v) for k, v in values.items() if v is not None}
    string_data = {k: PLACEHOLDER for k, v in values.items() if v is None}
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(spec, name, "credentials"),
        "type": type_,
    }
    if data:
        obj["data"] = data
    if string_data:
        obj["stringData"] = string_data
    return obj


def secrets(spec: ClusterSpec, credentials: Credentials | None) -> list[dict[str, Any]]:
    """The SSH Secret (udp), the TLS Secret (registration "server"), the token Secret."""
    n = names(spec)
    c = credentials
    out = []
    if spec.mode == "udp":
        out.append(
            _secret(
                spec,
                n.ssh_secret,
                {
                    "id_rsa": c.ssh_private_key if c else None,
                    "id_rsa.pub": c.ssh_public_key if c else None,
                },
            )
        )
    if spec.registration == "server":
        out.append(
            _secret(
                spec,
                n.tls_secret,
                {
                    "tls.crt": c.certificate if c and c.certificate else None,
                    "tls.key": c.tls_key if c else None,
                },
                "kubernetes.io/tls",
            )
        )
    out.append(_secret(spec, n.token_secret, {"token": c.token if c else None}))
    return out


_READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}


def rbac(spec: ClusterSpec) -> list[dict[str, Any]]:
    """What the server pod needs from the API, in its namespace only (udp; smp: nothing).

    registration "client": a ServiceAccount (unless the spec names one) with a Role to
    read pods, for locale discovery with the pod's own token. Registration "server": a
    Role for the certificate's user, which also writes services and endpoints because
    the server registers its own selector-less Service (and removes it at shutdown).
    """
    if spec.mode != "udp":
        return []
    n = names(spec)
    out: list[dict[str, Any]] = []
    if spec.registration == "client":
        if not spec.service_account:
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": _meta(spec, n.service_account, "rbac"),
                }
            )
        rules = [dict(_READ_PODS)]
        subject = {"kind": "ServiceAccount", "name": n.service_account, "namespace": n.namespace}
    else:
        rules = [
            dict(_READ_PODS),
            {
                "apiGroups": [""],
                "resources": ["services", "endpoints"],
                "verbs": ["get", "list", "watch", "create", "delete", "update"],
            },
        ]
        subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": n.user}
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(spec, n.role, "rbac"),
            "rules": rules,
        }
    )
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(spec, n.role_binding, "rbac"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": n.role},
            "subjects": [subject],
        }
    )
    return out


def runner_rbac(spec: ClusterSpec) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for pipeline pods that run
    ``arkouda-k8s run --in-cluster NAME``: ``get`` on this deployment's Service, its
    Endpoints and its token Secret, each by name (nothing can be listed or changed).

    Not labelled managed-by arkouda-k8s: the grant belongs to the pipeline, so a teardown
    and redeploy of the cluster leave it in place.
    """
    n = names(spec)
    meta_labels = {
        k: v for k, v in labels(spec, "runner").items() if k != "app.kubernetes.io/managed-by"
    }

    def meta(name: str) -> dict[str, Any]:
        return {"name": name, "namespace": n.namespace, "labels": dict(meta_labels)}

    def rule(resource: str, name: str) -> dict[str, Any]:
        return {
            "apiGroups": [""],
            "resources": [resource],
            "resourceNames": [name],
            "verbs": ["get"],
        }

    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(n.runner_account)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(n.runner_account),
            "rules": [
                rule("services", n.self_service),
                rule("endpoints", n.self_service),
                rule("secrets", n.token_secret),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(n.runner_account),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": n.runner_account,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": n.runner_account, "namespace": n.namespace}
            ],
        },
    ]


def certificate_signing_request(
    spec: ClusterSpec, credentials: Credentials | None
) -> dict[str, Any]:
    """The cluster-scoped CSR for the server's client certificate (CN = the user);
    registration "server" only."""
    n = names(spec)
    request = credentials.csr if credentials and credentials.csr else PLACEHOLDER.encode()
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": _meta(spec, n.csr, "credentials", namespaced=False),
        "spec": {
            "request": _b64(request),
            "signerName": CSR_SIGNER,
            "usages": ["digital signature", "key encipherment", "client auth"],
        },
    }


def state_name(name: str) -> str:
    """The name of instance ``name``'s state ConfigMap."""
    return f"{name}-state"


def state_configmap(
    spec: ClusterSpec,
    instance_id: str | None,
    *,
    heartbeat: str,
    context: str | None = None,
    ephemeral: bool = False,
) -> dict[str, Any]:
    """The small ConfigMap that marks the instance and owns its other objects: the
    spec (for reattach), the time-to-live and the heartbeat (``heartbeat``: when, as
    ``YYYY-MM-DDTHH:MM:SSZ``)."""
    annotations = {
        SPEC_ANNOTATION: json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":")),
        HEARTBEAT_ANNOTATION: heartbeat,
    }
    if spec.ttl_seconds:
        annotations[TTL_ANNOTATION] = str(spec.ttl_seconds)
    if ephemeral:
        annotations[EPHEMERAL_ANNOTATION] = "true"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": state_name(spec.name),
            "namespace": _namespace(spec),
            "labels": {**labels(spec, "config"), INSTANCE_ID_LABEL: instance_id or ""},
            "annotations": annotations,
        },
        "data": {"context": context or "", "created-by": MANAGED_BY},
    }


def owned(obj: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` labelled with the instance id of ``state`` (the instance's
    state ConfigMap, as created) and owned by it: deleting the ConfigMap deletes it, and
    teardown deletes nothing that does not name that ConfigMap's uid."""
    md_state = state["metadata"]
    instance_id = md_state["labels"][INSTANCE_ID_LABEL]
    obj = copy.deepcopy(obj)
    md = obj["metadata"]
    md.setdefault("labels", {})[INSTANCE_ID_LABEL] = instance_id
    if obj["kind"] == "Deployment":
        template = obj["spec"]["template"].setdefault("metadata", {})
        template.setdefault("labels", {})[INSTANCE_ID_LABEL] = instance_id
    if obj["kind"] != "CertificateSigningRequest":  # cluster-scoped: no namespaced owner
        md["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": md_state["name"],
                "uid": str(md_state["uid"]),
            }
        ]
    return obj


def deployer_rbac(
    spec: ClusterSpec, missing: list[Access], user: str | None
) -> list[dict[str, Any]]:
    """What an administrator applies so that ``user`` may deploy ``spec``: a Role and
    RoleBinding granting the namespaced ``missing`` permissions, and a ClusterRole and
    ClusterRoleBinding only for cluster-scoped ones (the CSR of registration "server")."""
    subject = {"apiGroup": RBAC_GROUP, "kind": "User", "name": user or "<your user>"}
    ns_rules = _rules([a for a in missing if a.namespaced])
    cluster_rules = _rules([a for a in missing if not a.namespaced])
    docs: list[dict[str, Any]] = []
    base = f"arkouda-k8s-deployer-{spec.name}"
    for kind, rules in (("Role", ns_rules), ("ClusterRole", cluster_rules)):
        if not rules:
            continue

        def meta(kind: str = kind) -> dict[str, Any]:
            return {"name": base, "namespace": spec.namespace} if kind == "Role" else {"name": base}

        docs.append(
            {"apiVersion": f"{RBAC_GROUP}/v1", "kind": kind, "metadata": meta(), "rules": rules}
        )
        docs.append(
            {
                "apiVersion": f"{RBAC_GROUP}/v1",
                "kind": f"{kind}Binding",
                "metadata": meta(),
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": base},
                "subjects": [subject],
            }
        )
    return docs


def _rules(accesses: list[Access]) -> list[dict[str, Any]]:
    grouped_verbs: dict[tuple[str, str, str], list[str]] = {}
    for a in accesses:
        res = a.resource + (f"/{a.subresource}" if a.subresource else "")
        verbs = grouped_verbs.setdefault((a.group, res, a.name), [])
        if a.verb not in verbs:
            verbs.append(a.verb)
    rules = []
    for (group, res, name), verbs in grouped_verbs.items():
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [res], "verbs": verbs}
        if name:
            rule["resourceNames"] = [name]
        rules.append(rule)
    return rules
