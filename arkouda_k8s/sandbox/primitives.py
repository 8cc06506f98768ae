"""What the sandbox's control plane and its kubelet share (below both).

Kubernetes quantities, a pod's QoS class and the Event recorder: the controllers and the
kubelet each need them, so they live here rather than in either.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .store import ApiError

log = logging.getLogger(__name__)

_SUFFIXES: dict[str, int | Decimal] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity (``500m``, ``2Gi``, ``1e3``) as a Decimal."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number = text[: -len(suffix)]
            break
    else:
        suffix, number = "", text
    try:
        return Decimal(number) * Decimal(_SUFFIXES[suffix])
    except ArithmeticError:
        raise ValueError(f"quantity {value!r} is not a Kubernetes quantity") from None


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def qos_class(pod: dict[str, Any]) -> str:
    reqs = [(c.get("resources") or {}) for c in pod["spec"].get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in reqs):
        return "BestEffort"
    for r in reqs:
        lim = r.get("limits") or {}
        req = r.get("requests") or lim
        for k in ("cpu", "memory"):
            if k not in lim or parse_quantity(str(req.get(k, lim[k]))) != parse_quantity(
                str(lim[k])
            ):
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
