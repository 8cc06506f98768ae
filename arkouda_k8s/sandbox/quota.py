"""ResourceQuota admission and usage for the sandbox API server.

Like the real quota admission plugin and quota controller, for the resources a
deployment of ours consumes: ``pods``, ``cpu``/``memory`` (= requests),
``requests.cpu``, ``requests.memory``, ``limits.cpu``, ``limits.memory``, and object
counts (``services``, ``configmaps``, ``secrets``, ``persistentvolumeclaims``,
``count/<resource>``). ``check`` words refusals as kube-apiserver does
(``exceeded quota: ...``, ``failed quota: ...: must specify ...``); ``usage`` is what
the API server writes to each quota's ``status.used``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .primitives import parse_quantity, pod_resources

# Binary suffixes for memory in status.used, largest first.
_BINARY = [(suffix, Decimal(2) ** (10 * (6 - i))) for i, suffix in enumerate("EPTGMK")]

COMPUTE = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory")
# quota key -> store key of the counted objects
COUNTED = {
    "pods": "pods",
    "services": "services",
    "configmaps": "configmaps",
    "secrets": "secrets",
    "persistentvolumeclaims": "persistentvolumeclaims",
}


def format_quantity(key: str, value: Decimal) -> str:
    """Canonical-ish form: memory in binary suffixes, cpu in millicores when fractional."""
    if "memory" in key or "storage" in key:
        for letter, factor in _BINARY:
            if value and value % factor == 0:
                return f"{int(value / factor)}{letter}i"
        return str(int(value))
    if value == value.to_integral_value():
        return str(int(value))
    return f"{int(value * 1000)}m"


def _count_key(key: str) -> str | None:
    if key in COUNTED:
        return COUNTED[key]
    if key.startswith("count/"):
        return key[len("count/") :]
    return None


def pod_usage(pod: dict[str, Any]) -> dict[str, Decimal]:
    """What one pod charges against compute quotas (containers summed, init as max)."""
    out = pod_resources(pod)
    out["cpu"], out["memory"] = out["requests.cpu"], out["requests.memory"]
    return out


def _live_pods(store: Any, namespace: str) -> list[dict[str, Any]]:
    return [
        p
        for p in store.iter_raw("pods")
        if p["metadata"].get("namespace") == namespace
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not p["metadata"].get("deletionTimestamp")
    ]


def usage(store: Any, namespace: str, hard: dict[str, Any]) -> dict[str, str]:
    """``status.used`` for a quota with ``hard`` in ``namespace``."""
    used: dict[str, Decimal] = {}
    pods = _live_pods(store, namespace)
    for key in hard:
        if key in COMPUTE:
            used[key] = sum((pod_usage(p)[key] for p in pods), Decimal(0))
        elif (resource := _count_key(key)) is not None:
            try:
                objects = store.iter_raw(resource)
            except Exception:
                continue
            if resource == "pods":
                used[key] = Decimal(len(pods))
            else:
                used[key] = Decimal(
                    sum(1 for o in objects if o["metadata"].get("namespace") == namespace)
                )
    return {k: format_quantity(k, v) for k, v in used.items()}


def check(store: Any, namespace: str, resource: str, obj: dict[str, Any]) -> str | None:
    """The ``forbidden:`` reason when creating ``obj`` would break a quota, else None."""
    quotas = [
        q for q in store.iter_raw("resourcequotas") if q["metadata"].get("namespace") == namespace
    ]
    if not quotas:
        return None
    wanted: dict[str, Decimal] = {}
    if resource == "pods":
        wanted = dict(pod_usage(obj))
        wanted["pods"] = Decimal(1)
        wanted["count/pods"] = Decimal(1)
    for key, counted in COUNTED.items():
        if counted == resource and resource != "pods":
            wanted[key] = Decimal(1)
    wanted[f"count/{resource}"] = Decimal(1)
    for q in sorted(quotas, key=lambda q: q["metadata"]["name"]):
        name = q["metadata"]["name"]
        hard = (q.get("spec") or {}).get("hard") or {}
        if resource == "pods":
            missing = _missing_requests(obj, hard)
            if missing:
                return f"failed quota: {name}: must specify {missing}"
        relevant = sorted(k for k in hard if k in wanted and wanted[k] > 0)
        if not relevant:
            continue
        current = usage(store, namespace, {k: hard[k] for k in relevant})
        over = [
            k
            for k in relevant
            if parse_quantity(current.get(k, "0")) + wanted[k] > parse_quantity(hard[k])
        ]
        if over:
            return (
                f"exceeded quota: {name}, requested: "
                + ",".join(f"{k}={format_quantity(k, wanted[k])}" for k in over)
                + ", used: "
                + ",".join(f"{k}={current.get(k, '0')}" for k in over)
                + ", limited: "
                + ",".join(f"{k}={hard[k]}" for k in over)
            )
    return None


def _missing_requests(pod: dict[str, Any], hard: dict[str, Any]) -> str:
    """``limits.memory for: c; requests.cpu for: c`` when a quota needs what a pod omits."""
    parts = []
    containers = (pod.get("spec") or {}).get("containers") or []
    for key in sorted(k for k in hard if k in COMPUTE):
        kind, _, res = key.rpartition(".")
        kind = kind or "requests"
        lacking = [
            c.get("name", "")
            for c in containers
            if res not in (((c or {}).get("resources") or {}).get(kind) or {})
        ]
        if lacking:
            parts.append(f"{key} for: {','.join(lacking)}")
    return "; ".join(parts)
