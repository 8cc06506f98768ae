"""Teardown: the order in which a deployment's objects are deleted and what counts as
left over, by one name (a deployment found by its spec, or the remains of one whose
spec is gone), and of every expired or every deployment in a namespace.

Ownership decides what is deleted (``ownership.py``), never a name or labels alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from . import manifests
from .errors import ArkoudaK8sError, ClusterNotFound, KubeError, one_line
from .inventory import (
    DELETED_KINDS,
    INSTANCE_ID_LABEL,
    INSTANCE_LABEL,
    OWNED_KINDS,
    existing_spec,
    kube_in,
    list_clusters,
)
from .kube import Kube
from .ownership import Ownership, self_registers
from .spec import ClusterSpec
from .stages import Progress, ProgressCallback, Report, Timeouts


def remove(
    own: Ownership,
    spec: ClusterSpec,
    *,
    timeout: float,
    report: Report,
    wait: bool = True,
) -> tuple[ClusterSpec, list[tuple[str, str]]]:
    """Delete every object ``own`` owns and (with ``wait``) wait until gone.

    Returns the spec the deployment was made with (``spec`` when none is recorded: a bare
    name, or remains without their spec) and the (kind, name) of each object deleted.
    """
    deadline = time.monotonic() + timeout
    spec = existing_spec(own.kube, own.name, own.namespace, deadline) or spec
    report("teardown", 0, 1, f"deleting {own.name}")
    deleted = delete_all(own, spec, deadline=deadline, wait=wait, report=report)
    report("teardown", 1, 1, f"{own.name}: {len(deleted)} objects deleted")
    return spec, deleted


def after_failure(
    own: Ownership,
    spec: ClusterSpec,
    exc: BaseException,
    *,
    keep: bool,
    timeout: float,
    report: Report,
) -> None:
    """A deploy that created the deployment failed with ``exc``: keep what it made,
    marked failed (``keep``: --keep-on-failure), or remove all of it. ``exc``'s hint
    then says which, and how to remove what is left."""
    remove_it = f"`arkouda-k8s teardown {own.name} -n {own.namespace}`"
    if keep:
        own.mark_failed(one_line(exc))
        _add_hint(
            exc,
            f"kept for debugging: inspect with `kubectl get all -n {own.namespace} "
            f"-l {INSTANCE_LABEL}={own.name}`, remove with {remove_it}",
        )
        return
    try:
        report("rollback", 0, 1, "removing what the failed deploy created")
        delete_all(own, spec, deadline=time.monotonic() + timeout, report=report)
        report("rollback", 1, 1, "rolled back")
        _add_hint(exc, "everything the deploy created was removed")
    except Exception as rollback_exc:
        _add_hint(
            exc,
            f"rollback failed too ({one_line(rollback_exc)}); remove the rest with {remove_it}",
        )


def _add_hint(exc: BaseException, more: str) -> None:
    if isinstance(exc, ArkoudaK8sError):
        exc.hint = f"{exc.hint}; {more}" if exc.hint else more


def delete_all(
    own: Ownership, spec: ClusterSpec, *, deadline: float, report: Report, wait: bool = True
) -> list[tuple[str, str]]:
    """Delete what our state ConfigMap owns, then the ConfigMap itself.

    An object is deleted only if its ownerReferences name our state ConfigMap's uid, and
    every delete carries a uid precondition. Without a state ConfigMap of ours there is
    nothing to delete (the garbage collector already removed whatever it owned).
    """
    deleted: list[tuple[str, str]] = []
    owner = own.owner_object(deadline)
    if owner is None:
        return deleted
    own.adopt(owner)
    kube, namespace = own.kube, own.namespace
    names = manifests.names(spec)
    uid = owner["metadata"]["uid"]
    selector = f"{manifests.selector(spec)},{INSTANCE_ID_LABEL}={own.instance_id}"
    unused = unused_kinds(spec)
    # The server pod first (the only pod we own directly), so it stops using what goes
    # next; the Deployment before the rest: the garbage collector removes its
    # ReplicaSets, then their pods.
    for kind in ("Pod", *DELETED_KINDS):
        with unless_forbidden(kind in unused):
            deleted += kube.delete_owned(
                [kind], selector, uid, namespace, wait=False, deadline=deadline
            )
        if kind == "Pod":
            # Services the server registered itself carry none of our labels; a server
            # still starting may register one until its pod is gone.
            kube.wait_gone(
                "Pod",
                namespace,
                field_selector=f"metadata.name={names.server_pod}",
                label_selector=selector,
                deadline=deadline,
            )
            if self_registers(spec):
                deleted += remove_self_registered(own, deadline, report, stage="teardown")
        if kind == "Deployment":
            with unless_forbidden("ReplicaSet" in unused):
                kube.wait_gone("ReplicaSet", namespace, label_selector=selector, deadline=deadline)
    if kube.delete("ConfigMap", own.state_name, namespace, uid=uid, deadline=deadline):
        deleted.append(("ConfigMap", own.state_name))
    if spec.mode == "udp":
        with contextlib.suppress(KubeError):
            csr = kube.get("CertificateSigningRequest", names.csr, deadline=deadline)
            labels = ((csr or {}).get("metadata") or {}).get("labels") or {}
            if (
                csr is not None
                and labels.get(INSTANCE_ID_LABEL) == own.instance_id
                and kube.delete(
                    "CertificateSigningRequest",
                    names.csr,
                    uid=csr["metadata"]["uid"],
                    deadline=deadline,
                )
            ):
                deleted.append(("CertificateSigningRequest", names.csr))
    if wait:
        for kind in OWNED_KINDS:
            with unless_forbidden(kind in unused):
                kube.wait_gone(kind, namespace, label_selector=selector, deadline=deadline)
    return list(dict.fromkeys(deleted))


def leftovers(own: Ownership, spec: ClusterSpec, deadline: float | None = None) -> list[str]:
    """``Kind/name`` of every object still present that the instance owns (through its
    state ConfigMap), the ConfigMap included, and the Services + Endpoints its server
    registered itself (``{name}-arkouda``, ``{name}-metrics``); empty when it has no
    state ConfigMap."""
    owner = own.owner_object(deadline)
    if owner is None:
        return []
    instance_id = owner["metadata"]["labels"][INSTANCE_ID_LABEL]
    selector = f"{manifests.selector(spec)},{INSTANCE_ID_LABEL}={instance_id}"
    out = [f"ConfigMap/{own.state_name}"]
    unused = unused_kinds(spec)
    for kind in OWNED_KINDS:
        with unless_forbidden(kind in unused):
            items = own.kube.list(kind, own.namespace, label_selector=selector, deadline=deadline)[
                "items"
            ]
            out += [f"{kind}/{o['metadata']['name']}" for o in items]
    if self_registers(spec):
        out += [f"{o['kind']}/{o['metadata']['name']}" for o in own.self_registered(deadline)]
    return sorted(set(out))


def remove_self_registered(
    own: Ownership, deadline: float, report: Report, stage: str = "server"
) -> list[tuple[str, str]]:
    """Delete the Services/Endpoints the server registered itself (a stale one makes a
    starting server exit: upstream trap 2), and wait until they are gone."""
    removed = []
    for obj in own.self_registered(deadline):
        kind, name = obj["kind"], obj["metadata"]["name"]
        if own.kube.delete(
            kind, name, own.namespace, uid=obj["metadata"]["uid"], deadline=deadline
        ):
            removed.append((kind, name))
            report(stage, 0, 1, f"removed {kind} {name} (registered by the server)")
            own.kube.wait_gone(
                kind, own.namespace, field_selector=f"metadata.name={name}", deadline=deadline
            )
    return removed


# -- by name, expired, all ---------------------------------------------------------------------


def teardown_named(
    name: str,
    namespace: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    kube: Kube | None = None,
    on_progress: ProgressCallback | None = None,
    timeouts: Timeouts | None = None,
) -> list[tuple[str, str]]:
    """Tear down deployment ``name`` and return the (kind, name) of each object deleted.

    Found by the spec it records; remains without a readable spec (a rollback that
    failed half-way, an edited annotation) still have a state ConfigMap of ours, and
    what it owns is removed too. :class:`ClusterNotFound` when neither is there.
    """
    kube = kube or Kube.connect(kubeconfig, context, namespace)
    ns = namespace or kube.namespace
    kube = kube_in(kube, ns)
    own = Ownership(kube, name, ns)
    spec = existing_spec(kube, name, ns)
    if spec is None:
        spec = ClusterSpec(name=name, namespace=ns)
        if not leftovers(own, spec):
            raise ClusterNotFound(
                f"no arkouda-k8s deployment {name!r} in namespace {ns} ({kube.describe()})",
                "see `arkouda-k8s list -A` for the deployments you can see",
            )
    timeout = (timeouts or Timeouts()).teardown
    return remove(own, spec, timeout=timeout, report=_reporter(on_progress))[1]


def teardown_expired(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
    *,
    kube: Kube | None = None,
    on_progress: ProgressCallback | None = None,
    timeouts: Timeouts | None = None,
) -> list[str]:
    """Tear down every deployment whose heartbeat is older than its time-to-live.

    Returns ``namespace/name`` of each one removed. Deployments without a TTL never expire.
    """
    kube = kube or Kube.connect(kubeconfig, context, namespace)
    infos = list_clusters(namespace=namespace, all_namespaces=all_namespaces, kube=kube)
    return _remove_each(
        kube, [(i.namespace, i.name) for i in infos if i.heartbeat_expired], on_progress, timeouts
    )


def teardown_all(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    *,
    kube: Kube | None = None,
    on_progress: ProgressCallback | None = None,
    timeouts: Timeouts | None = None,
) -> list[str]:
    """Tear down every arkouda-k8s deployment in the namespace."""
    kube = kube or Kube.connect(kubeconfig, context, namespace)
    infos = list_clusters(namespace=namespace, kube=kube)
    return _remove_each(kube, [(i.namespace, i.name) for i in infos], on_progress, timeouts)


def _remove_each(
    kube: Kube,
    found: list[tuple[str, str]],
    on_progress: ProgressCallback | None,
    timeouts: Timeouts | None,
) -> list[str]:
    removed = []
    timeout = (timeouts or Timeouts()).teardown
    for namespace, name in found:
        own = Ownership(kube_in(kube, namespace), name, namespace)
        spec = ClusterSpec(name=name, namespace=namespace)
        _, deleted = remove(own, spec, timeout=timeout, report=_reporter(on_progress))
        if deleted:  # nothing deleted: labels without a state of ours
            removed.append(f"{namespace}/{name}")
    return removed


def _reporter(on_progress: ProgressCallback | None) -> Report:
    def report(stage: str, done: int, total: int, message: str, *, note: bool = False) -> None:
        if on_progress is not None:
            on_progress(Progress(stage, done, total, message, note))

    return report


def unused_kinds(spec: ClusterSpec) -> set[str]:
    """Kinds a deployment of ``spec`` never has: a user allowed only what it needs may
    lack the right to even list them."""
    unused = set() if spec.mode == "udp" else {"Deployment", "ReplicaSet", "Role", "RoleBinding"}
    rendered = {o["kind"] for o in manifests.render(spec)}
    if "ServiceAccount" not in rendered:
        unused.add("ServiceAccount")
    if "CertificateSigningRequest" not in rendered:
        # Only a self-registering server makes Endpoints we must find ourselves; those of
        # our selector Services belong to the endpoints controller.
        unused.add("Endpoints")
    return unused


@contextlib.contextmanager
def unless_forbidden(allowed: bool) -> Iterator[None]:
    """Swallow a 403 when ``allowed`` (a kind the deployment cannot have)."""
    try:
        yield
    except KubeError as exc:
        if not (allowed and exc.status == 403):
            raise
