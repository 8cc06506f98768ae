"""Preflight: before anything is created, can this deployment work in this namespace?

It owns the permissions a spec needs (``required_access``: derived from the objects
``manifests.render`` makes, so the two never drift apart), how they are checked, the
RBAC an administrator grants when some are missing (``rbac_yaml``), and the namespace's
own limits: existence, Pod Security, ResourceQuota, node capacity; and the verdict on
what it found (``judge``: the error to raise, or the line saying it passed).

Permissions are checked with one SelfSubjectRulesReview for the namespace (every rule
the user holds there), not one access review per permission: against a distant API
server a deploy pays for round trips. Cluster-scoped needs (the CSR of
``--registration server``, creating a missing namespace) still go through a
SelfSubjectAccessReview each, since a namespace's rules say nothing of them, and so do
namespaced needs the rules seem to lack when the review says it is incomplete (another
authorizer than RBAC may allow them). Every request of a preflight is sent side by
side: one round trip in all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import manifests
from .errors import KubeError, PermissionsMissing, PreflightError
from .kube import Access, Kube, kind_of
from .spec import ClusterSpec, format_bytes, parse_quantity

# What the lifecycle does to each kind it renders: create (apply), read and watch it
# (status, waits), delete it (teardown).
OBJECT_VERBS = ("get", "list", "watch", "create", "patch", "delete")
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
# Pod Security levels that reject a hostPath volume (baseline forbids them outright).
NO_HOSTPATH_LEVELS = ("baseline", "restricted")


@dataclass
class Findings:
    """What a preflight found; ``problems`` and ``missing`` make the deploy fail."""

    missing: list[Access] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The user may create the CSR but not approve it: an administrator must.
    approval_by_admin: bool = False
    namespace_missing: bool = False


def required_access(spec: ClusterSpec) -> list[Access]:
    """Every permission a deploy of ``spec`` (and its status, tunnel, teardown) needs.

    Namespaced only, unless ``spec.registration`` is ``server`` (its CSR is
    cluster-scoped).
    """
    objects = manifests.render(spec)
    out: list[Access] = []

    def add(access: Access) -> None:
        if access not in out:
            out.append(access)

    # Pods are always waited for, the state ConfigMap always written.
    kinds = ["Pod", "ConfigMap"] + [o["kind"] for o in objects]
    for kind in dict.fromkeys(kinds):
        if kind == "CertificateSigningRequest":
            continue
        k = kind_of(kind)
        for verb in OBJECT_VERBS:
            add(Access(verb, k.plural, k.group))
    # Kubernetes lets a user create a Role only with rules the user holds (escalation
    # prevention), so the server's Role adds its rules to ours.
    for role in (o for o in objects if o["kind"] == "Role"):
        for rule in role.get("rules") or []:
            for group in rule.get("apiGroups") or [""]:
                for resource in rule.get("resources") or []:
                    res, _, sub = resource.partition("/")
                    for verb in rule.get("verbs") or []:
                        add(Access(verb, res, group, sub))
    add(Access("get", "pods", subresource="log"))
    add(Access("create", "pods", subresource="portforward"))
    add(Access("get", "pods", subresource="portforward"))
    add(Access("list", "events"))
    if any(o["kind"] == "Service" for o in objects):
        # Teardown waits until the Endpoints the cluster made for our Services (they
        # copy the Services' labels) are gone with them.
        for verb in ("list", "watch"):
            add(Access(verb, "endpoints"))
    if any(o["kind"] == "Deployment" for o in objects):
        # Teardown waits for the garbage collector to remove the ReplicaSets.
        for verb in ("list", "watch"):
            add(Access(verb, "replicasets", "apps"))
    if any(o["kind"] == "CertificateSigningRequest" for o in objects):
        # The server registers its own Service (--registration server): a Service +
        # Endpoints it registered in an earlier life (no labels of ours) are removed by
        # name before a start and at teardown.
        for verb in ("get", "list", "watch", "delete"):
            add(Access(verb, "services"))
            add(Access(verb, "endpoints"))
    if any(o["kind"] == "CertificateSigningRequest" for o in objects):
        for verb in ("get", "list", "watch", "create", "delete"):
            add(Access(verb, "certificatesigningrequests", "certificates.k8s.io", namespaced=False))
        add(
            Access(
                "update",
                "certificatesigningrequests",
                "certificates.k8s.io",
                "approval",
                namespaced=False,
            )
        )
        add(
            Access(
                "approve",
                "signers",
                "certificates.k8s.io",
                namespaced=False,
                name=manifests.CSR_SIGNER,
            )
        )
    return out


def is_approval(access: Access) -> bool:
    """Approving the CSR: an administrator may do it instead of the user."""
    return access.subresource == "approval" or access.resource == "signers"


# -- rules ------------------------------------------------------------------------------------


def rule_allows(rule: dict[str, Any], access: Access) -> bool:
    """Does one ResourceRule of a rules review (or a Role) grant ``access``?

    RBAC's matching: "*" for verbs, groups and resources; "*/sub" for a subresource of
    any resource; resourceNames restrict to those names.
    """
    verbs = rule.get("verbs") or []
    if "*" not in verbs and access.verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and access.group not in groups:
        return False
    wanted = f"{access.resource}/{access.subresource}" if access.subresource else access.resource
    resources = rule.get("resources") or []
    if not (
        "*" in resources
        or wanted in resources
        or (access.subresource and f"*/{access.subresource}" in resources)
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(access.name) and access.name in names)


def allowed_by(rules: Iterable[dict[str, Any]], access: Access) -> bool:
    return any(rule_allows(r, access) for r in rules)


# -- the check --------------------------------------------------------------------------------


def check(
    kube: Kube,
    spec: ClusterSpec,
    namespace: str,
    *,
    deadline: float,
    create_namespace: bool = False,
) -> Findings:
    """Everything preflight asks the cluster, in one round trip; creates nothing."""
    needs = required_access(spec)
    namespaced = [a for a in needs if a.namespaced]
    cluster_wide = [a for a in needs if not a.namespaced]
    if create_namespace:
        cluster_wide.append(Access("create", "namespaces", namespaced=False))

    calls: list[Callable[[], Any]] = [
        lambda: _rules_review(kube, namespace, deadline),
        lambda: _namespace(kube, namespace, deadline),
        lambda: _forbidden_as_none(
            lambda: kube.list("ResourceQuota", namespace, deadline=deadline)["items"]
        ),
        lambda: _forbidden_as_none(lambda: kube.list("Node", deadline=deadline)["items"]),
    ]
    calls += [functools.partial(kube.can_i, a, namespace, deadline=deadline) for a in cluster_wide]
    review, ns, quotas, nodes, *cluster_allowed = kube.concurrently(calls)

    found = Findings()
    if review is None:
        # The rules review itself is forbidden (a locked-down cluster): one access
        # review per permission, still side by side.
        found.missing = kube.missing_access(namespaced, namespace, deadline=deadline)
    else:
        rules = review.get("resourceRules") or []
        lacking = [a for a in namespaced if not allowed_by(rules, a)]
        if lacking and review.get("incomplete"):
            # Another authorizer may grant what RBAC's rules do not show: ask it.
            lacking = kube.missing_access(lacking, namespace, deadline=deadline)
        found.missing = lacking
    denied = [a for a, ok in zip(cluster_wide, cluster_allowed, strict=True) if not ok]
    found.namespace_missing = ns is _MISSING
    if create_namespace and found.namespace_missing:
        found.missing += [a for a in denied if a.resource == "namespaces"]
    denied = [a for a in denied if a.resource != "namespaces"]
    approval = [a for a in denied if is_approval(a)]
    found.approval_by_admin = bool(approval)
    found.missing += [a for a in denied if not is_approval(a)]

    if found.namespace_missing and not create_namespace:
        found.problems.append(
            f"namespace {namespace} does not exist (create it: kubectl create namespace "
            f"{namespace}, or deploy with --create-namespace)"
        )
    if isinstance(ns, dict):
        found.problems += _pod_security(spec, namespace, ns, found.warnings)
    elif spec.persistence is not None:
        found.warnings.append(_hostpath_warning(spec))
    if quotas:
        found.problems += _quota_problems(spec, quotas)
    if nodes:
        found.problems += _capacity_problems(spec, nodes)
    return found


def judge(found: Findings, spec: ClusterSpec, kube: Kube, namespace: str) -> str:
    """Raise what the preflight found fatal (``PermissionsMissing``, every missing
    permission at once with the RBAC to grant; ``PreflightError``); else the progress
    line that says it passed, with what is worth saying."""
    if found.missing:
        raise permissions_missing(spec, kube, namespace, found.missing, found.problems)
    if found.problems:
        raise PreflightError(
            f"deployment {spec.name!r} cannot run in namespace {namespace}: "
            + "; ".join(found.problems),
            "nothing was created; fix the problems above and deploy again",
            problems=found.problems,
        )
    notes = [
        *found.warnings,
        *(
            ["the CSR must be approved by an administrator (you may not approve it)"]
            if found.approval_by_admin
            else []
        ),
    ]
    return "preflight passed" + "".join(f"; {n}" for n in notes)


def permissions_missing(
    spec: ClusterSpec, kube: Kube, namespace: str, missing: list[Access], problems: list[str]
) -> PermissionsMissing:
    """The error for ``missing`` permissions of the kubeconfig's user: grouped by
    resource on one line, with the RBAC an administrator would apply."""
    exc = PermissionsMissing(
        [str(a) for a in missing], rbac_yaml(spec, list(missing), kube.user), user=kube.user
    )
    # The same list, grouped by resource, reads better on one line.
    exc.message = (
        f"missing permissions for {kube.user or 'the current user'} (context "
        f"{kube.context or 'in-cluster'}) in namespace {namespace}: " + grouped(missing)
    )
    cluster_wide = [a for a in missing if not a.namespaced and a.resource != "namespaces"]
    if spec.registration == "server" and cluster_wide:
        exc.hint = (
            "--registration server needs a cluster-scoped grant to create and approve "
            f"{manifests.CSR_SIGNER} CSRs, which few administrators give (and EKS never "
            "signs); deploy with the default --registration client, which needs "
            "namespace permissions only, or ask an administrator to apply the RBAC "
            "printed by `arkouda-k8s deploy --registration server --print-rbac`"
        )
    exc.problems += problems
    return exc


_MISSING = object()


def _rules_review(kube: Kube, namespace: str, deadline: float) -> dict[str, Any] | None:
    try:
        return kube.rules_review(namespace, deadline=deadline)
    except KubeError as exc:
        if exc.status in (403, 404):  # forbidden, or an API server without the review
            return None
        raise


def _namespace(kube: Kube, namespace: str, deadline: float) -> Any:
    """The Namespace, _MISSING when it does not exist, None when we may not read it."""
    try:
        ns = kube.get("Namespace", namespace, deadline=deadline)
    except KubeError as exc:
        if exc.status == 403:
            return None  # most users may not read namespaces; the deploy will tell
        raise
    return _MISSING if ns is None else ns


def _forbidden_as_none(call: Callable[[], Any]) -> Any:
    """A list the user may not make (quota, nodes: optional checks) gives None."""
    try:
        return call()
    except KubeError as exc:
        if exc.status == 403:
            return None
        raise


def _hostpath_warning(spec: ClusterSpec) -> str:
    host_path = spec.persistence.host_path if spec.persistence else ""
    return (
        f"persistence mounts the hostPath {host_path}, which the Pod Security level "
        "'baseline' forbids: if the namespace or the cluster enforces baseline, the pods "
        "are rejected (an administrator can label the namespace "
        f"{PSA_ENFORCE}=privileged)"
    )


def _pod_security(
    spec: ClusterSpec, namespace: str, ns: dict[str, Any], warnings: list[str]
) -> list[str]:
    labels = (ns.get("metadata") or {}).get("labels") or {}
    level = labels.get(PSA_ENFORCE)
    if level == "restricted":
        # What of the pods 'restricted' rejects (smp without metrics and persistence
        # passes: the images' user, no capability, no escalation).
        blockers = []
        if spec.mode == "udp":
            blockers.append("udp mode (sshd runs as root with SETUID, SETGID, SYS_CHROOT)")
        if spec.metrics:
            blockers.append("the metrics exporter (it runs as its image's user, root)")
        if spec.persistence is not None:
            blockers.append("persistence (a hostPath, handed over by a root init container)")
        if blockers:
            return [
                f"namespace {namespace} enforces the 'restricted' Pod Security level, "
                f"which rejects {' and '.join(blockers)}; use a namespace at 'baseline' "
                "or 'privileged', or ask an administrator to relabel it"
            ]
    if spec.persistence is None:
        return []
    if level in NO_HOSTPATH_LEVELS:
        return [
            f"namespace {namespace} enforces the '{level}' Pod Security level, which "
            f"forbids the hostPath volume of persistence ({spec.persistence.host_path}); "
            "deploy without persistence, or ask an administrator to label the namespace "
            f"{PSA_ENFORCE}=privileged"
        ]
    if level != "privileged":
        # No label: the cluster's default level applies, which we cannot read.
        warnings.append(_hostpath_warning(spec))
    return []


# -- quota and capacity ------------------------------------------------------------------------

_COUNTED = frozenset(
    {
        "secrets",
        "count/secrets",
        "configmaps",
        "count/configmaps",
        "services",
        "count/services",
        "count/deployments.apps",
    }
)


def pod_resources(pod_spec: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(cpu requests, memory requests, cpu limits, memory limits) of one pod."""
    cpu_r = mem_r = cpu_l = mem_l = Decimal(0)
    for c in pod_spec.get("containers") or []:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        cpu_r += parse_quantity(req.get("cpu", lim.get("cpu", "0")))
        mem_r += parse_quantity(req.get("memory", lim.get("memory", "0")))
        cpu_l += parse_quantity(lim.get("cpu", "0"))
        mem_l += parse_quantity(lim.get("memory", "0"))
    return cpu_r, mem_r, cpu_l, mem_l


def needs(spec: ClusterSpec) -> tuple[int, Decimal, Decimal, Decimal, Decimal]:
    """(pods, cpu requests, memory requests, cpu limits, memory limits) of the spec."""
    pods = 1 + spec.locale_pods
    per = pod_resources(manifests.server_pod(spec)["spec"])
    return (pods, per[0] * pods, per[1] * pods, per[2] * pods, per[3] * pods)


def _quota_problems(spec: ClusterSpec, quotas: list[dict[str, Any]]) -> list[str]:
    pods, cpu_req, mem_req, cpu_lim, mem_lim = needs(spec)
    need = {
        "pods": Decimal(pods),
        "count/pods": Decimal(pods),
        "requests.cpu": cpu_req,
        "cpu": cpu_req,
        "requests.memory": mem_req,
        "memory": mem_req,
        "limits.cpu": cpu_lim,
        "limits.memory": mem_lim,
    }
    # Object counts: what manifests render, plus our state ConfigMap.
    counts: dict[str, int] = {"ConfigMap": 1}
    for obj in manifests.render(spec):
        counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1
    for kind, keys in (
        ("Secret", ("secrets", "count/secrets")),
        ("ConfigMap", ("configmaps", "count/configmaps")),
        ("Service", ("services", "count/services")),
        ("Deployment", ("count/deployments.apps",)),
    ):
        for key in keys:
            need[key] = Decimal(counts.get(kind, 0))
    problems = []
    for q in quotas:
        hard = (q.get("status") or {}).get("hard") or (q.get("spec") or {}).get("hard") or {}
        used = (q.get("status") or {}).get("used") or {}
        for key, amount in need.items():
            if key not in hard:
                continue
            try:
                free = parse_quantity(hard[key]) - parse_quantity(used.get(key, "0"))
            except ValueError:
                continue
            if amount > free:
                problems.append(
                    f"ResourceQuota {q['metadata']['name']} leaves {_qty(key, free)} of "
                    f"{key}, the deployment needs {_qty(key, amount)} "
                    + (
                        f"({pods} pods); use fewer locales or less cpu/memory, or ask "
                        "for a larger quota"
                        if key not in _COUNTED
                        else "; remove unused objects or ask for a larger quota"
                    )
                )
    return problems


def _capacity_problems(spec: ClusterSpec, nodes: list[dict[str, Any]]) -> list[str]:
    pods, cpu_req, mem_req, _, _ = needs(spec)
    per_cpu, per_mem = cpu_req / pods, mem_req / pods
    fits = 0
    largest = (Decimal(0), Decimal(0))
    for node in nodes:
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        alloc = (node.get("status") or {}).get("allocatable") or {}
        try:
            cpu = parse_quantity(alloc.get("cpu", "0"))
            mem = parse_quantity(alloc.get("memory", "0"))
            max_pods = int(parse_quantity(alloc.get("pods", "110")))
        except ValueError:
            continue
        largest = max(largest, (cpu, mem))
        n = max_pods
        if per_cpu > 0:
            n = min(n, int(cpu / per_cpu))
        if per_mem > 0:
            n = min(n, int(mem / per_mem))
        fits += n
    if fits >= pods:
        return []
    return [
        f"the nodes' allocatable capacity fits {fits} of the {pods} pods "
        f"({spec.cpu} cpu, {spec.memory} memory each; the largest node has "
        f"{largest[0]} cpu, {format_bytes(int(largest[1]))}); use fewer locales or "
        "smaller pods"
    ]


def _qty(key: str, value: Decimal) -> str:
    if "memory" in key:
        return format_bytes(int(value))
    return f"{value.normalize():f}"


# -- what to tell the user and the administrator ------------------------------------------------


def grouped(accesses: list[Access]) -> str:
    """'get/list/watch pods; create pods/portforward; ...' in the order given; cluster-
    scoped ones marked as such."""
    by_resource: dict[str, list[str]] = {}
    for a in accesses:
        resource = str(a).split(" ", 1)[1]
        if not a.namespaced:
            resource += " (cluster-scoped)"
        by_resource.setdefault(resource, []).append(a.verb)
    return "; ".join(f"{'/'.join(verbs)} {res}" for res, verbs in by_resource.items())


def rbac_yaml(spec: ClusterSpec, missing: list[Access], user: str | None) -> str:
    """Role + RoleBinding granting the namespaced ``missing`` to ``user`` (and a
    ClusterRole + ClusterRoleBinding only for cluster-scoped ones), as YAML."""
    import yaml

    docs = manifests.deployer_rbac(spec, missing, user)
    cluster_rules = any(d["kind"] == "ClusterRole" for d in docs)
    scope = (
        "a cluster-scoped grant (the CSR of --registration server) and namespaced ones"
        if cluster_rules
        else "namespace permissions only"
    )
    header = (
        f"# RBAC for arkouda-k8s deployment {spec.name!r} in namespace {spec.namespace} "
        f"(registration {spec.registration}: {scope}).\n"
        f"# The subject is the kubeconfig user {user!r}; if your cluster knows you by another\n"
        "# name (an email, a cloud identity), put that name in the bindings' subjects.\n"
    )
    return header + yaml.safe_dump_all(docs, sort_keys=False)
