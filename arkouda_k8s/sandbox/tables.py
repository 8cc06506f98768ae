"""Server-side printing: the ``Table`` answers kubectl asks for (``kubectl get``).

kubectl sends ``Accept: application/json;as=Table;g=meta.k8s.io;v=v1`` and prints the
columns the server chooses; this module gives the sandbox the columns a real cluster
shows for the kinds we serve (``NAME READY STATUS RESTARTS AGE`` for pods, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Column = tuple[str, str, int]  # name, type, priority (1 = only with -o wide)


def human_age(timestamp: str | None, now: datetime | None = None) -> str:
    """Kubernetes' short duration form: 45s, 3m12s, 7m, 5h3m, 2d3h, 12d."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    secs = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _age(o: dict[str, Any]) -> str:
    return human_age((o.get("metadata") or {}).get("creationTimestamp"))


def pod_status_reason(pod: dict[str, Any]) -> str:
    """What kubectl's STATUS column says for a pod."""
    st = pod.get("status") or {}
    reason = st.get("reason") or st.get("phase") or "Pending"
    for cs in st.get("initContainerStatuses") or []:
        state = cs.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode", 0) != 0:
            reason = "Init:" + (state["terminated"].get("reason") or "Error")
            break
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
            break
    else:
        for cs in reversed(st.get("containerStatuses") or []):
            state = cs.get("state") or {}
            if "waiting" in state and state["waiting"].get("reason"):
                reason = state["waiting"]["reason"]
            elif "terminated" in state:
                t = state["terminated"]
                reason = t.get("reason") or (
                    f"Signal:{t['signal']}" if t.get("signal") else f"ExitCode:{t.get('exitCode')}"
                )
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_row(p: dict[str, Any]) -> list[Any]:
    st = p.get("status") or {}
    statuses = st.get("containerStatuses") or []
    total = len((p.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    return [
        f"{ready}/{total}",
        pod_status_reason(p),
        restarts,
        _age(p),
        st.get("podIP") or "<none>",
        (p.get("spec") or {}).get("nodeName") or "<none>",
        st.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _ports(svc: dict[str, Any]) -> str:
    out = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        s = str(p.get("port"))
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _selector(sel: Any) -> str:
    if isinstance(sel, dict) and "matchLabels" in sel:
        sel = sel.get("matchLabels")
    if not sel:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sel.items())


def _endpoints(ep: dict[str, Any]) -> str:
    out = []
    for s in ep.get("subsets") or []:
        for a in s.get("addresses") or []:
            for p in s.get("ports") or [{}]:
                out.append(f"{a.get('ip')}:{p.get('port')}" if p else str(a.get("ip")))
    if not out:
        return "<none>"
    return ",".join(out[:3]) + (f" + {len(out) - 3} more..." if len(out) > 3 else "")


def _csr_condition(c: dict[str, Any]) -> str:
    conds = [x.get("type") for x in (c.get("status") or {}).get("conditions") or []]
    shown = ",".join(str(x) for x in conds) if conds else "Pending"
    if (c.get("status") or {}).get("certificate"):
        shown += ",Issued"
    return shown


def _containers(o: dict[str, Any]) -> tuple[str, str]:
    cs = (((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _node_row(n: dict[str, Any]) -> list[Any]:
    conds = {
        c.get("type"): c.get("status") for c in (n.get("status") or {}).get("conditions") or []
    }
    status = "Ready" if conds.get("Ready") == "True" else "NotReady"
    if (n.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    info = (n.get("status") or {}).get("nodeInfo") or {}
    return [status, "<none>", _age(n), info.get("kubeletVersion", "")]


_TABLES: dict[str, tuple[list[Column], Callable[[dict[str, Any]], list[Any]]]] = {
    "pods": (
        [
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod_row,
    ),
    "namespaces": (
        [("Status", "string", 0), ("Age", "string", 0)],
        lambda o: [(o.get("status") or {}).get("phase", "Active"), _age(o)],
    ),
    "services": (
        [
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ],
        lambda o: [
            (o.get("spec") or {}).get("type", "ClusterIP"),
            (o.get("spec") or {}).get("clusterIP") or "<none>",
            "<none>",
            _ports(o),
            _age(o),
            _selector((o.get("spec") or {}).get("selector")),
        ],
    ),
    "endpoints": (
        [("Endpoints", "string", 0), ("Age", "string", 0)],
        lambda o: [_endpoints(o), _age(o)],
    ),
    "configmaps": (
        [("Data", "integer", 0), ("Age", "string", 0)],
        lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o)],
    ),
    "secrets": (
        [("Type", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
        lambda o: [o.get("type", "Opaque"), len(o.get("data") or {}), _age(o)],
    ),
    "serviceaccounts": (
        [("Secrets", "integer", 0), ("Age", "string", 0)],
        lambda o: [len(o.get("secrets") or []), _age(o)],
    ),
    "nodes": (
        [
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
        ],
        _node_row,
    ),
    "events": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        lambda o: [
            human_age(
                o.get("lastTimestamp")
                or o.get("eventTime")
                or (o.get("metadata") or {}).get("creationTimestamp")
            ),
            o.get("type", ""),
            o.get("reason", ""),
            f"{((o.get('involvedObject') or {}).get('kind') or '').lower()}/{(o.get('involvedObject') or {}).get('name', '')}",
            o.get("message", ""),
        ],
    ),
    "deployments.apps": (
        [
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        lambda o: [
            f"{(o.get('status') or {}).get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 1)}",
            (o.get("status") or {}).get("updatedReplicas", 0),
            (o.get("status") or {}).get("availableReplicas", 0),
            _age(o),
            *_containers(o),
            _selector((o.get("spec") or {}).get("selector")),
        ],
    ),
    "replicasets.apps": (
        [
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        lambda o: [
            (o.get("spec") or {}).get("replicas", 0),
            (o.get("status") or {}).get("replicas", 0),
            (o.get("status") or {}).get("readyReplicas", 0),
            _age(o),
            *_containers(o),
            _selector((o.get("spec") or {}).get("selector")),
        ],
    ),
    "certificatesigningrequests.certificates.k8s.io": (
        [
            ("Age", "string", 0),
            ("SignerName", "string", 0),
            ("Requestor", "string", 0),
            ("RequestedDuration", "string", 0),
            ("Condition", "string", 0),
        ],
        lambda o: [
            _age(o),
            (o.get("spec") or {}).get("signerName", ""),
            (o.get("spec") or {}).get("username", ""),
            "<none>",
            _csr_condition(o),
        ],
    ),
    "rolebindings.rbac.authorization.k8s.io": (
        [("Role", "string", 0), ("Age", "string", 0)],
        lambda o: [
            f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}",
            _age(o),
        ],
    ),
    "clusterrolebindings.rbac.authorization.k8s.io": (
        [("Role", "string", 0), ("Age", "string", 0)],
        lambda o: [
            f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}",
            _age(o),
        ],
    ),
    "roles.rbac.authorization.k8s.io": (
        [("Created At", "date", 0)],
        lambda o: [(o.get("metadata") or {}).get("creationTimestamp", "")],
    ),
    "clusterroles.rbac.authorization.k8s.io": (
        [("Created At", "date", 0)],
        lambda o: [(o.get("metadata") or {}).get("creationTimestamp", "")],
    ),
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table(resource: str, items: list[dict[str, Any]], resource_version: str) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of ``items``; rows carry the whole object."""
    columns, row_fn = _TABLES.get(resource, ([("Age", "string", 0)], lambda o: [_age(o)]))
    definitions = [
        {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}
    ] + [
        {"name": name, "type": typ, "format": "", "description": name, "priority": prio}
        for name, typ, prio in columns
    ]
    rows = []
    for o in items:
        try:
            cells = row_fn(o)
        except (KeyError, TypeError, ValueError, AttributeError):
            cells = ["<unknown>"] * len(columns)
        rows.append({"cells": [(o.get("metadata") or {}).get("name", ""), *cells], "object": o})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
