"""The sandbox's object store: every Kubernetes object the simulated API server holds.

In memory, single-threaded (every method runs on the sandbox's event-loop thread).
It does what etcd plus the generic registry do in a real API server: resourceVersion,
uid, generation, creationTimestamp, generateName, Secret ``stringData``, optimistic
concurrency, finalizers, status subresources, a bounded change history for watch
replay, and change callbacks for controllers. It also owns the selector language
(``match_labels``, ``match_fields``) so controllers and the API agree on it.
Objects go in and come out as deep copies; callers never share state with the store.
"""

from __future__ import annotations

import base64
import builtins
import copy
import re
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .resources import BY_KEY, Resource

# Enough to replay a deploy of a few hundred pods to a watcher that fell behind, at
# about 8 KB per pod version (about 80 MB at most); older versions answer 410 Gone.
HISTORY_LIMIT = 10000

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class ApiError(Exception):
    """An API failure the server answers with a ``Status`` object (``to_status()``)."""

    def __init__(
        self, status: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.status,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


def _details(res: Resource, name: str, causes: list[dict[str, str]] | None = None) -> dict:
    d: dict[str, Any] = {"name": name, "kind": res.plural}
    if res.group:
        d["group"] = res.group
    if causes:
        d["causes"] = causes
    return d


def _qualified(res: Resource) -> str:
    """How the real API server names a resource in messages: ``deployments.apps``."""
    return res.key


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(res)} "{name}" not found', _details(res, name))


def already_exists(res: Resource, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{_qualified(res)} "{name}" already exists', _details(res, name)
    )


def conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(res)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(res, name),
    )


def invalid(res: Resource, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid; ``causes`` are (field, message) pairs."""
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(
        422,
        "Invalid",
        f'{res.kind} "{name}" is invalid: {text}',
        _details(
            res,
            name,
            [{"reason": _cause_reason(m), "message": m, "field": f} for f, m in causes],
        ),
    )


# The cause reasons of field.ErrorType, by the message's leading words.
_CAUSE_REASONS = (
    ("Required value", "FieldValueRequired"),
    ("Unsupported value", "FieldValueNotSupported"),
    ("Forbidden", "FieldValueForbidden"),
    ("Duplicate value", "FieldValueDuplicate"),
    ("Too long", "FieldValueTooLong"),
    ("Too many", "FieldValueTooMany"),
    ("Not found", "FieldValueNotFound"),
)


def _cause_reason(message: str) -> str:
    return next((r for lead, r in _CAUSE_REASONS if message.startswith(lead)), "FieldValueInvalid")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------
# Selectors


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op == "=":
            return labels.get(self.key) == self.values[0]
        if self.op == "!=":
            return labels.get(self.key) != self.values[0]
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return labels.get(self.key) not in self.values  # notin: absent matches too


_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


def _split_top(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_label_selector(selector: str | None) -> list[Requirement]:
    """Parse equality- and set-based label selectors; raises a 400 ApiError when bad."""
    if not selector or not selector.strip():
        return []
    out: list[Requirement] = []
    for part in _split_top(selector):
        if m := _SET_RE.match(part):
            values = tuple(v.strip() for v in m.group(4).split(",") if v.strip())
            if not all(_VALUE_RE.match(v) for v in values):
                raise bad_request(f"unable to parse requirement: invalid label value in {part!r}")
            out.append(Requirement(m.group(1), m.group(3), values))
        elif m := _EQ_RE.match(part):
            op = "!=" if m.group(3) == "!=" else "="
            out.append(Requirement(m.group(1), op, (m.group(4),)))
        elif m := _EXISTS_RE.match(part):
            out.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
        else:
            raise bad_request(
                f"unable to parse requirement: {part.strip()!r} is not a valid label selector "
                "term (key=value, key!=value, key in (a,b), key notin (a), key, !key)"
            )
    return out


def match_labels(selector: str | list[Requirement] | None, labels: dict[str, str] | None) -> bool:
    """Whether ``labels`` satisfy a label selector string (or a parsed one)."""
    reqs = parse_label_selector(selector) if isinstance(selector, str | None) else selector
    lab = labels or {}
    return all(r.matches(lab) for r in reqs)


def match_label_selector_obj(
    selector: dict[str, Any] | None, labels: dict[str, str] | None
) -> bool:
    """Whether labels satisfy a ``LabelSelector`` object (matchLabels + matchExpressions).

    An empty or missing selector matches everything, like a Deployment's does.
    """
    if not selector:
        return True
    lab = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if lab.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(
            expr.get("operator", "")
        )
        if op is None:
            return False
        if not Requirement(expr.get("key", ""), op, tuple(expr.get("values") or ())).matches(lab):
            return False
    return True


# Field selectors each resource supports, beyond metadata.name / metadata.namespace.
FIELD_LABELS: dict[str, frozenset[str]] = {
    "pods": frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    "events": frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    "secrets": frozenset({"type"}),
    "namespaces": frozenset({"status.phase"}),
    "nodes": frozenset({"spec.unschedulable"}),
    "replicasets.apps": frozenset({"status.replicas"}),
    "certificatesigningrequests.certificates.k8s.io": frozenset({"spec.signerName"}),
}


def parse_field_selector(resource: str | None, selector: str | None) -> list[tuple[str, str, str]]:
    """Parse ``a=b,c!=d`` into (field, op, value); unsupported fields are a 400 like the real one."""
    if not selector or not selector.strip():
        return []
    out = []
    allowed = {"metadata.name", "metadata.namespace"} | set(FIELD_LABELS.get(resource or "", ()))
    for part in selector.split(","):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid field selector: {part.strip()!r} is not field=value")
        field, op, value = m.group(1), m.group(2), m.group(3)
        if resource is not None and field not in allowed:
            res = BY_KEY.get(resource)
            kind = res.kind if res else resource
            raise bad_request(f"field label not supported: {field} (on {kind})")
        out.append((field, "!=" if op == "!=" else "=", value))
    return out


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    if path == "source" and isinstance(obj.get("source"), dict):
        return str(obj["source"].get("component", ""))
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def match_fields(
    selector: str | list[tuple[str, str, str]] | None,
    obj: dict[str, Any],
    resource: str | None = None,
) -> bool:
    """Whether ``obj`` satisfies a field selector (string, or parsed by parse_field_selector)."""
    reqs = (
        parse_field_selector(resource, selector) if isinstance(selector, str | None) else selector
    )
    for field, op, value in reqs:
        actual = _field_value(obj, field)
        if (actual == value) != (op == "="):
            return False
    return True


# ---------------------------------------------------------------------------------------
# The store

Key = tuple[str, str]  # (namespace or "", name)
Callback = Callable[[str, str, dict[str, Any]], None]
FullCallback = Callable[[str, str, dict[str, Any], dict[str, Any] | None], None]


def _row(resource: str) -> Resource:
    try:
        return BY_KEY[resource]
    except KeyError:
        raise ApiError(
            404, "NotFound", f"the server could not find the requested resource ({resource})"
        ) from None


def _strip_volatile(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without the fields every write changes, to detect no-op writes."""
    o = dict(obj)
    md = dict(o.get("metadata") or {})
    md.pop("resourceVersion", None)
    md.pop("managedFields", None)
    o["metadata"] = md
    return o


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    """What counts as "spec" for generation: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


class Store:
    """In-memory objects, keyed by resource (``pods``, ``deployments.apps``), namespace, name."""

    def __init__(self, history_limit: int = HISTORY_LIMIT) -> None:
        self._objects: dict[str, dict[Key, dict[str, Any]]] = {r: {} for r in BY_KEY}
        self._rv = 0
        # (rv, type, resource, obj, old) for watch replay; contiguous rvs, bounded
        self._history: deque[tuple[int, str, str, dict[str, Any], dict[str, Any] | None]] = deque(
            maxlen=history_limit
        )
        self._subscribers: list[FullCallback] = []
        # the newest snapshot of every live object: the "old" of its next change
        self._latest: dict[tuple[str, Key], dict[str, Any]] = {}

    # -- reading -----------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        res = _row(resource)
        obj = self._objects[resource].get(self._key(res, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Matching objects sorted by namespace/name, and the list's resourceVersion."""
        _row(resource)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(resource, field_selector)
        items = []
        for (ns, _name), obj in sorted(self._objects[resource].items()):
            if namespace and ns != namespace:
                continue
            if labels and not match_labels(labels, obj["metadata"].get("labels")):
                continue
            if fields and not match_fields(fields, obj):
                continue
            items.append(copy.deepcopy(obj))
        return items, str(self._rv)

    def iter_raw(self, resource: str) -> Iterable[dict[str, Any]]:
        """The stored objects themselves (no copies): read-only, for the GC and RBAC."""
        return list(self._objects[_row(resource).key].values())

    # -- writing -----------------------------------------------------------------------

    def create(
        self, resource: str, obj: dict[str, Any], *, uid: str | None = None
    ) -> dict[str, Any]:
        res = _row(resource)
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise invalid(res, "", [("metadata", "Invalid value: must be an object")])
        obj["kind"] = res.kind
        obj["apiVersion"] = res.api_version
        name: str = md.get("name") or ""
        if not name:
            prefix = md.get("generateName")
            if not prefix:
                raise invalid(
                    res, "", [("metadata.name", "Required value: name or generateName is required")]
                )
            for _ in range(50):
                name = prefix + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
                if self._key(res, md.get("namespace"), name) not in self._objects[resource]:
                    break
            md["name"] = name
        if res.namespaced:
            ns = md.get("namespace") or "default"
            md["namespace"] = ns
            self._check_namespace_open(ns)
        else:
            md.pop("namespace", None)
        key = self._key(res, md.get("namespace"), name)
        if key in self._objects[resource]:
            raise already_exists(res, name)
        # A Job's selector names its uid before it is stored (the registry passes it).
        md["uid"] = uid or str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        for volatile in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(volatile, None)
        if "spec" in obj or res.plural in ("deployments", "replicasets"):
            md["generation"] = 1
        else:
            md.pop("generation", None)
        self._normalise(res, obj)
        if res.plural == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        return self._commit("ADDED", res, key, obj, None)

    def update(
        self, resource: str, obj: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        """Replace an object (PUT semantics).

        A given ``metadata.resourceVersion`` must be current (else 409 Conflict). With
        ``subresource="status"`` only ``status`` changes; without it, resources that have
        a status subresource keep their stored status. ``approval`` changes only
        ``status.conditions`` (CSRs); ``finalize`` only ``spec.finalizers`` (namespaces).
        An object being deleted is removed once its finalizers are gone.
        """
        res = _row(resource)
        obj = copy.deepcopy(obj)
        md = obj.get("metadata") or {}
        name = md.get("name")
        if not name:
            raise invalid(res, "", [("metadata.name", "Required value: name is required")])
        key = self._key(res, md.get("namespace"), name)
        old = self._objects[resource].get(key)
        if old is None:
            raise not_found(res, name)
        rv = md.get("resourceVersion")
        if rv and str(rv) != old["metadata"]["resourceVersion"]:
            raise conflict(res, name)
        if subresource in ("status", "approval", "finalize", "scale"):
            new = copy.deepcopy(old)
            if subresource == "status":
                new["status"] = obj.get("status") or {}
            elif subresource == "approval":
                new.setdefault("status", {})["conditions"] = (obj.get("status") or {}).get(
                    "conditions"
                ) or []
            elif subresource == "finalize":
                new.setdefault("spec", {})["finalizers"] = (obj.get("spec") or {}).get(
                    "finalizers"
                ) or []
            else:
                new.setdefault("spec", {})["replicas"] = (obj.get("spec") or {}).get("replicas", 0)
        elif subresource is not None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({subresource})"
            )
        else:
            new = obj
            new["kind"] = res.kind
            new["apiVersion"] = res.api_version
            nmd = new.setdefault("metadata", {})
            for keep in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "namespace",
                "generation",
            ):
                if keep in old["metadata"]:
                    nmd[keep] = old["metadata"][keep]
                else:
                    nmd.pop(keep, None)
            if res.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            self._normalise(res, new)
        nmd = new["metadata"]
        if "generation" in old["metadata"] and _spec_part(new) != _spec_part(old):
            nmd["generation"] = int(old["metadata"]["generation"]) + 1
        if _strip_volatile(new) == _strip_volatile(old):
            return copy.deepcopy(old)  # no-op writes keep the resourceVersion, like the real one
        if nmd.get("deletionTimestamp") and not self._finalizers(res, new):
            return self._remove(res, key, new)
        return self._commit("MODIFIED", res, key, new, old)

    def delete(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Delete, or mark for deletion (deletionTimestamp) while finalizers remain.

        ``grace_period_seconds > 0`` also only marks the object (graceful pod deletion:
        the kubelet stops the processes, then deletes again without a grace period).
        Returns the deleted object, or the marked one.
        """
        res = _row(resource)
        key = self._key(res, namespace, name)
        old = self._objects[resource].get(key)
        if old is None:
            raise not_found(res, name)
        finalizers = self._finalizers(res, old)
        graceful = grace_period_seconds is not None and grace_period_seconds > 0
        if finalizers or graceful:
            if old["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = grace_period_seconds if graceful else 0
            if res.plural == "namespaces":
                new.setdefault("status", {})["phase"] = "Terminating"
            return self._commit("MODIFIED", res, key, new, old)
        return self._remove(res, key, copy.deepcopy(old))

    # -- watching ----------------------------------------------------------------------

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(type, resource, obj)`` after each change; returns unsubscribe.

        ``obj`` is shared with the store's history and the other subscribers: read it,
        keep it, never mutate it (``copy.deepcopy`` first). Callbacks run synchronously
        on the loop thread inside the write, so they must be quick and must not write to
        the store themselves (schedule a task instead).
        """

        def full(kind: str, resource: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
            callback(kind, resource, obj)

        return self.subscribe_full(full)

    def subscribe_full(self, callback: FullCallback) -> Callable[[], None]:
        """Like subscribe, with the previous object as a fourth argument (None on ADDED)."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def events_since(
        self, resource: str, resource_version: str | int
    ) -> builtins.list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        """The changes to ``resource`` after ``resource_version``: (type, obj, old) copies.

        Raises 410 Gone (reason Expired) when the history no longer reaches back that far.
        """
        _row(resource)
        try:
            since = int(resource_version)
        except (TypeError, ValueError):
            raise bad_request(
                f"invalid resourceVersion {resource_version!r}: must be an integer"
            ) from None
        if since > self._rv:
            # The real server waits for a future version; the sandbox cannot reach it.
            raise ApiError(
                504, "Timeout", f"Too large resource version: {since}, current: {self._rv}"
            )
        oldest = self._history[0][0] if self._history else self._rv + 1
        if since < oldest - 1 and since < self._rv:
            raise ApiError(410, "Expired", f"too old resource version: {since} ({oldest - 1})")
        return [
            (kind, copy.deepcopy(obj), copy.deepcopy(old))
            for rv, kind, r, obj, old in self._history
            if rv > since and r == resource
        ]

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _key(res: Resource, namespace: str | None, name: str) -> Key:
        return ((namespace or "") if res.namespaced else "", name)

    @staticmethod
    def _finalizers(res: Resource, obj: dict[str, Any]) -> builtins.list[str]:
        found = list(obj["metadata"].get("finalizers") or [])
        if res.plural == "namespaces":
            found += list((obj.get("spec") or {}).get("finalizers") or [])
        return found

    def _check_namespace_open(self, namespace: str) -> None:
        ns = self._objects["namespaces"].get(("", namespace))
        if ns is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
                {"name": namespace, "kind": "namespaces"},
            )

    @staticmethod
    def _normalise(res: Resource, obj: dict[str, Any]) -> None:
        if res.plural == "secrets" and res.group == "":
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                data = obj.setdefault("data", {}) or {}
                obj["data"] = data
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
            obj.setdefault("type", "Opaque")

    def _commit(
        self,
        kind: str,
        res: Resource,
        key: Key,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> dict[str, Any]:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[res.key][key] = obj
        self._publish(kind, res, key, obj)
        return copy.deepcopy(obj)

    def _remove(self, res: Resource, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        self._objects[res.key].pop(key)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._publish("DELETED", res, key, obj)
        return copy.deepcopy(obj)

    def _publish(self, kind: str, res: Resource, key: Key, obj: dict[str, Any]) -> None:
        # One snapshot per version, shared by the history, every subscriber and (as
        # "old") the next change of the same object: callbacks must treat it as
        # read-only. Copying per subscriber dominated a 256-pod deploy's CPU, and
        # keeping a separate "old" copy doubled the history's memory.
        snapshot = copy.deepcopy(obj)
        latest_key = (res.key, key)
        old = self._latest.pop(latest_key, None)
        if kind != "DELETED":
            self._latest[latest_key] = snapshot
        self._history.append((self._rv, kind, res.key, snapshot, old))
        for callback in list(self._subscribers):
            callback(kind, res.key, snapshot, old)
