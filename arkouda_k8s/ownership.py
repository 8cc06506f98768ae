"""Which objects belong to one deployment, decided by its state ConfigMap.

A deploy creates (never applies over) the state ConfigMap first: it marks the instance,
and every other object the deploy creates names it as owner and carries its instance
id. So a name someone else took is refused instead of replaced, two sessions deploying
one name at once meet at that ConfigMap (one creates, the other joins), a failed deploy
kept for debugging is marked on it, and teardown deletes only what it owns.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from typing import Any

from . import manifests
from .errors import ArkoudaK8sError, KubeError
from .inventory import (
    FAILED_ANNOTATION,
    INSTANCE_ID_LABEL,
    _looks_ours,
    _parse_time,
    read_state,
)
from .kube import Kube
from .spec import ClusterSpec

log = logging.getLogger(__name__)


class Ownership:
    """The state ConfigMap of instance ``name`` in ``namespace`` and what it owns.

    >>> own = Ownership(kube, "demo", "analytics")                  # doctest: +SKIP
    >>> if own.claim(state_object, deadline):  # ours: create the rest, owned
    ...     own.create_owned(secret, deadline)                      # doctest: +SKIP
    >>> own.owns(kube.get("Pod", "demo-server"))                    # doctest: +SKIP
    """

    def __init__(self, kube: Kube, name: str, namespace: str) -> None:
        self.kube = kube
        self.name = name
        self.namespace = namespace
        self.state_name = manifests.state_name(name)
        # The state ConfigMap, once known ours (created by this session, or read after
        # a reattach), and the instance id on its labels.
        self.state: dict[str, Any] | None = None
        self.instance_id: str | None = None
        # This session created the state ConfigMap: its deploy (and rollback) owns it.
        self.created = False

    def foreign(self, kind: str, name: str) -> ArkoudaK8sError:
        """The error for a name the deployment needs that something else holds."""
        return ArkoudaK8sError(
            f"{kind} {self.namespace}/{name} already exists and is not part of arkouda-k8s "
            f"deployment {self.name!r}: refusing to replace or delete it",
            "choose another --name, or delete that object yourself if you know it is a leftover",
        )

    # -- before anything is created ----------------------------------------------------------

    def our_names(self, spec: ClusterSpec) -> list[tuple[str, str]]:
        """(kind, name) of every namespaced object a deploy of ``spec`` creates, or its
        server registers itself."""
        out = [
            (o["kind"], o["metadata"]["name"])
            for o in manifests.render(spec)
            if o["kind"] != "CertificateSigningRequest"
        ]
        out.append(("ConfigMap", self.state_name))
        if self_registers(spec):
            n = manifests.names(spec)
            for svc in (n.self_service, n.metrics_service):
                out += [("Service", svc), ("Endpoints", svc)]
        return sorted(set(out), key=out.index)

    def taken(self, spec: ClusterSpec, deadline: float) -> tuple[str, str] | None:
        """(kind, name) of the first name the deploy would use that is taken (every name
        asked side by side): refused before anything is created."""
        names = self.our_names(spec)
        found = self.kube.concurrently(
            [
                functools.partial(self.kube.get, kind, name, self.namespace, deadline=deadline)
                for kind, name in names
            ]
        )
        return next((n for n, obj in zip(names, found, strict=True) if obj is not None), None)

    def claim(self, state_object: dict[str, Any], deadline: float) -> bool:
        """Create the state ConfigMap ``state_object``: True when this session made it
        (the deploy is ours to do), False when another session of this deployment made
        it first (its deploy is under way: join it). A ConfigMap of that name that is
        not ours is refused.

        Created, not applied: of two sessions deploying the same name at once, one gets
        409 instead of writing a second set of credentials over the other's."""
        self.instance_id = state_object["metadata"]["labels"][INSTANCE_ID_LABEL]
        try:
            self.state = self.kube.create(state_object, deadline=deadline)
        except KubeError as exc:
            if exc.status != 409:
                raise
            if self.owner_object() is None:
                raise self.foreign("ConfigMap", self.state_name) from None
            return False
        self.created = True
        return True

    # -- what is ours --------------------------------------------------------------------------

    def owner_object(self, deadline: float | None = None) -> dict[str, Any] | None:
        """The state ConfigMap, if it is ours (labels and an instance id), else None."""
        found = read_state(self.kube, self.name, self.namespace, deadline)
        if found is None or not _looks_ours(found, self.name):
            return None
        return found

    def adopt(self, state: dict[str, Any]) -> None:
        """Take ``state`` (a state ConfigMap of ours, just read) as the owner."""
        self.state = state
        self.instance_id = state["metadata"]["labels"][INSTANCE_ID_LABEL]

    def owner(self, deadline: float | None = None) -> dict[str, Any]:
        """The state ConfigMap of ours (read on first use after a reattach); a missing or
        foreign one is refused."""
        if self.state is None:
            found = self.owner_object(deadline)
            if found is None:
                raise self.foreign("ConfigMap", self.state_name)
            self.adopt(found)
        assert self.state is not None
        return self.state

    def owner_uid(self, deadline: float | None = None) -> str:
        return str(self.owner(deadline)["metadata"]["uid"])

    def owns(self, obj: dict[str, Any]) -> bool:
        """Whether ``obj``'s ownerReferences name our state ConfigMap."""
        uid = self.owner_uid()
        return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])

    def owned(self, obj: dict[str, Any]) -> dict[str, Any]:
        """``obj`` labelled with this deployment's id and owned by its state ConfigMap."""
        return manifests.owned(obj, self.owner())

    def create_owned(self, obj: dict[str, Any], deadline: float) -> dict[str, Any]:
        """Create (never apply over) one object; a name someone else took is refused."""
        try:
            return self.kube.create(self.owned(obj), deadline=deadline)
        except KubeError as exc:
            if exc.status == 409:
                raise self.foreign(obj["kind"], obj["metadata"]["name"]) from None
            raise

    def create_all_owned(self, objs: list[dict[str, Any]], deadline: float) -> list[dict[str, Any]]:
        """``create_owned`` for independent objects, side by side."""
        return self.kube.concurrently(
            [functools.partial(self.create_owned, o, deadline) for o in objs]
        )

    # -- a deploy under way, a deploy failed ---------------------------------------------------

    def creation_under_way(self, window: float) -> bool:
        """Whether the session that made this deployment's state ConfigMap may still be
        creating the rest: the ConfigMap is ours, younger than ``window`` (a create's
        deadlines) and not marked failed. (Another session's existence probe can land
        between the state ConfigMap, made first, and the server pod.)"""
        state = self.owner_object()
        if state is None:
            return False
        if FAILED_ANNOTATION in (state["metadata"].get("annotations") or {}):
            return False
        born = _parse_time(state["metadata"].get("creationTimestamp"))
        if born is None:
            return False
        return (datetime.now(UTC) - born).total_seconds() < window

    def mark_failed(self, reason: str) -> None:
        """Mark a failed deploy kept for debugging, so a later deploy of the name says so
        at once instead of waiting for it as for a deploy under way."""
        try:
            self.kube.patch(
                "ConfigMap",
                self.state_name,
                {"metadata": {"annotations": {FAILED_ANNOTATION: reason[:200]}}},
                self.namespace,
            )
        except Exception as exc:  # the deploy's own error is what the user needs
            log.debug("could not mark %s failed: %s", self.state_name, exc)

    # -- what the server registered itself -----------------------------------------------------

    def self_registered(self, deadline: float | None) -> list[dict[str, Any]]:
        """Service/Endpoints the server registered itself (selector-less, no labels of
        anyone's, created after our state ConfigMap): ours though unlabelled."""
        owner = self.state if self.created and self.state else self.owner_object(deadline)
        if owner is None:
            return []
        born = _parse_time(owner["metadata"].get("creationTimestamp"))
        n = manifests.names(ClusterSpec(name=self.name, namespace=self.namespace))
        wanted = [
            (kind, name)
            for name in (n.self_service, n.metrics_service)
            for kind in ("Service", "Endpoints")
        ]
        found = self.kube.concurrently(
            [
                functools.partial(self.kube.get, kind, name, self.namespace, deadline=deadline)
                for kind, name in wanted
            ]
        )
        out = []
        for obj in found:
            if obj is None or self.owns(obj):
                continue  # absent, or rendered by us and owned: deleted with the rest
            md = obj["metadata"]
            created = _parse_time(md.get("creationTimestamp"))
            if (
                (obj.get("spec") or {}).get("selector")
                or md.get("labels")
                or md.get("ownerReferences")
                or born is None
                or created is None
                or created < born
            ):
                continue
            out.append(obj)
        return out


def self_registers(spec: ClusterSpec) -> bool:
    """Does the server register its own Service (the charts' flow)? Only with a client
    certificate, i.e. when a CSR is rendered (--registration server)."""
    return any(o["kind"] == "CertificateSigningRequest" for o in manifests.render(spec))
