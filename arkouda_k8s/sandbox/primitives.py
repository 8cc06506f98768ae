"""What the sandbox's control plane and its kubelet share (below both).

Kubernetes quantities (parsed by the project's own ``syntax.parse_quantity``: one parser
for the client and the test world), what a pod requests and limits, its QoS class and the
Event recorder: the API server, the controllers and the kubelet each need them, so they
live here rather than in any of them.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..syntax import parse_quantity
from .store import ApiError

__all__ = ["EventRecorder", "now", "parse_quantity", "pod_resources", "qos_class"]

log = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _container_resources(c: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(requests, limits) of a container; a request left out defaults to its limit, as
    the API server's defaulting does (so a pod counts the same whether or not it ran)."""
    res = (c or {}).get("resources") or {}
    limits = res.get("limits") or {}
    return {**limits, **(res.get("requests") or {})}, limits


def pod_resources(pod: dict[str, Any]) -> dict[str, Decimal]:
    """``requests.cpu``, ``requests.memory``, ``limits.cpu``, ``limits.memory`` of a pod as
    the scheduler and quota count them: containers summed, the largest init container
    if it is larger (init containers run one at a time, before the others)."""
    spec = pod.get("spec") or {}
    out = {f"{kind}.{r}": Decimal(0) for kind in ("requests", "limits") for r in ("cpu", "memory")}
    for group, combine in (("containers", Decimal.__add__), ("initContainers", max)):
        for c in spec.get(group) or []:
            for kind, values in zip(("requests", "limits"), _container_resources(c), strict=True):
                for r in ("cpu", "memory"):
                    if values.get(r) is not None:
                        key = f"{kind}.{r}"
                        out[key] = combine(out[key], parse_quantity(values[r]))
    return out


def qos_class(pod: dict[str, Any]) -> str:
    """Guaranteed (every container, init ones too, limits cpu and memory and requests the
    same, compared
    as quantities: "500m" is "0.5"), BestEffort (no container asks for either), else
    Burstable."""
    spec = pod.get("spec") or {}
    containers = [
        _container_resources(c)
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    ]
    if not any(r.get(k) or lim.get(k) for r, lim in containers for k in ("cpu", "memory")):
        return "BestEffort"
    for requests, limits in containers:
        for k in ("cpu", "memory"):
            if k not in limits or parse_quantity(requests[k]) != parse_quantity(limits[k]):
                return "Burstable"
    return "Guaranteed"


class EventRecorder:
    """Writes ``v1`` Events, folding repeats into ``count`` like the real recorder."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._seen: dict[tuple[str, ...], str] = {}

    def record(
        self,
        obj: dict[str, Any],
        reason: str,
        message: str,
        *,
        warning: bool = False,
        field_path: str | None = None,
        component: str = "controller-manager",
        host: str | None = None,
    ) -> None:
        md = obj.get("metadata") or {}
        namespace = md.get("namespace") or "default"
        etype = "Warning" if warning else "Normal"
        involved: dict[str, Any] = {
            "apiVersion": obj.get("apiVersion", "v1"),
            "kind": obj.get("kind", ""),
            "name": md.get("name", ""),
            "uid": md.get("uid", ""),
        }
        if md.get("namespace"):
            involved["namespace"] = md["namespace"]
        if md.get("resourceVersion"):
            involved["resourceVersion"] = md["resourceVersion"]
        if field_path:
            involved["fieldPath"] = field_path
        key = (namespace, involved["uid"], field_path or "", reason, message, etype)
        stamp = now()
        try:
            existing = self._seen.get(key)
            if existing is not None:
                ev = self.store.get("events", namespace, existing)
                if ev is not None:
                    ev["count"] = int(ev.get("count") or 1) + 1
                    ev["lastTimestamp"] = stamp
                    ev["metadata"].pop("resourceVersion", None)
                    self.store.update("events", ev)
                    return
            name = f"{involved['name'] or 'object'}.{secrets.token_hex(8)}"
            source = {"component": component}
            if host:
                source["host"] = host
            self.store.create(
                "events",
                {
                    "metadata": {"name": name, "namespace": namespace},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "type": etype,
                    "source": source,
                    "count": 1,
                    "firstTimestamp": stamp,
                    "lastTimestamp": stamp,
                    "eventTime": None,
                    "reportingComponent": component,
                    "reportingInstance": host or "",
                },
            )
            if len(self._seen) > 20000:
                self._seen.clear()
            self._seen[key] = name
        except ApiError as exc:  # e.g. the namespace is terminating: events are best effort
            log.debug("event %s for %s not recorded: %s", reason, involved["name"], exc.message)
