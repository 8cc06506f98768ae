"""Patch and apply semantics of the sandbox API server.

JSON merge patch (RFC 7386), JSON patch (RFC 6902, via ``jsonpatch``), strategic merge
patch for the list fields our objects use, and server-side apply with per-manager
field ownership (``managedFields`` in the real ``FieldsV1`` form): fields a manager
applied before and no longer applies are removed unless another applier owns them.
List semantics come from the table below (merge keys of the Kubernetes schema), not
from a full OpenAPI model; unknown lists are atomic, like ``x-kubernetes-list-type``
atomic. Appliers conflict (409) over a field another applier set to a different value
unless they force; other writes are not tracked as managers.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from .store import ApiError, bad_request, now_rfc3339

# field name -> merge keys for lists of objects that merge by key (everything else is
# atomic). "ports" differs between containers and services; both keys are tried.
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "ports": ("containerPort", "port"),
    "resourceClaims": ("name",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
# lists of scalars merged as sets
SET_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, list):
        raise bad_request("json patch must be a JSON array of operations")
    try:
        result = jsonpatch.JsonPatch(patch).apply(target)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise _invalid_patch(str(exc)) from None
    except (TypeError, KeyError, ValueError, IndexError) as exc:
        raise _invalid_patch(f"invalid operation: {exc}") from None
    if not isinstance(result, dict):
        raise _invalid_patch("the patched document is not an object")
    return result


def _apply_conflict(conflicts: list[tuple[str, str, str]]) -> ApiError:
    n = len(conflicts)
    lines = "; ".join(f'conflict with "{m}" using {v}: {f}' for m, v, f in conflicts)
    return ApiError(
        409,
        "Conflict",
        f"Apply failed with {n} conflict{'s' if n > 1 else ''}: {lines} (another field manager "
        "set these fields: apply with force (kubectl --force-conflicts) to take them over, or "
        "leave them out of your configuration)",
        {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": f'conflict with "{m}" using {v}',
                    "field": f,
                }
                for m, v, f in conflicts
            ]
        },
    )


def _invalid_patch(message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f"the server rejected our request due to an error in our request: {message}",
    )


def _item_key(field: str, item: Any) -> tuple[Any, ...] | None:
    if not isinstance(item, dict):
        return None
    for k in MERGE_KEYS.get(field, ()):
        if k in item:
            return (k, item[k])
    return None


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge patch: merge-patch plus merge-by-key lists and ``$patch`` directives."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        out = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$setElementOrder/") or key == "$retainKeys":
                continue
            if key.startswith("$deleteFromPrimitiveList/"):
                name = key.split("/", 1)[1]
                if isinstance(out.get(name), list) and isinstance(value, list):
                    out[name] = [x for x in out[name] if x not in value]
                continue
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_merge_patch(out.get(key), value, key)
        return out
    if isinstance(patch, list) and isinstance(target, list):
        if field in SET_LISTS:
            return list(target) + [x for x in patch if x not in target]
        if field in MERGE_KEYS and all(_item_key(field, p) for p in patch if isinstance(p, dict)):
            result = [copy.deepcopy(x) for x in target]
            for item in patch:
                key = _item_key(field, item)
                if key is None:
                    continue
                idx = next((i for i, x in enumerate(result) if _item_key(field, x) == key), None)
                if isinstance(item, dict) and item.get("$patch") == "delete":
                    if idx is not None:
                        result.pop(idx)
                elif idx is None:
                    result.append({k: v for k, v in item.items() if k != "$patch"})
                else:
                    result[idx] = strategic_merge_patch(result[idx], item, "")
            return result
    return copy.deepcopy(patch)


# ---------------------------------------------------------------------------------------
# Server-side apply

Path = tuple[str, ...]


def _list_item_id(field: str, item: Any, index: int) -> str | None:
    if field in SET_LISTS and not isinstance(item, dict | list):
        return "v:" + json.dumps(item)
    if isinstance(item, dict) and field in MERGE_KEYS:
        keys = {k: item[k] for k in MERGE_KEYS[field] if k in item}
        if field == "ports" and keys:
            keys["protocol"] = item.get("protocol", "TCP")  # the key defaults like the field
        if keys:
            return "k:" + json.dumps(keys, sort_keys=True, separators=(",", ":"))
    return None


def field_set(obj: Any, prefix: Path = (), field: str = "") -> set[Path]:
    """The paths an applied configuration sets: leaves, plus keyed list items."""
    out: set[Path] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not prefix and key in ("apiVersion", "kind"):
                continue
            if prefix == ("f:metadata",) and key in (
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "managedFields",
                "creationTimestamp",
                "generation",
            ):
                continue
            path = (*prefix, f"f:{key}")
            if isinstance(value, dict) and value:
                out |= field_set(value, path, key)
            elif isinstance(value, list) and value and _keyed_list(key, value):
                for i, item in enumerate(value):
                    ident = _list_item_id(key, item, i)
                    assert ident is not None
                    item_path = (*path, ident)
                    out.add(item_path)
                    if isinstance(item, dict):
                        out |= field_set(item, item_path, "")
            else:
                out.add(path)
    return out


def _keyed_list(field: str, value: list[Any]) -> bool:
    return all(_list_item_id(field, item, i) is not None for i, item in enumerate(value))


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(part, {})
        if path and path[-1].startswith(("k:", "v:")):
            node.setdefault(".", {})
    return root


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, child in (tree or {}).items():
        if key == ".":
            out.add(prefix)
            continue
        path = (*prefix, key)
        if child:
            out |= from_fields_v1(child, path)
        else:
            out.add(path)
    return out


def _remove_path(obj: Any, path: Path) -> None:
    """Delete the value at ``path`` (FieldsV1 elements) from ``obj`` if it is there."""
    node = obj
    parent_field = ""
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if part.startswith("f:"):
            if not isinstance(node, dict) or part[2:] not in node:
                return
            if last:
                del node[part[2:]]
                return
            parent_field = part[2:]
            node = node[part[2:]]
        elif isinstance(node, list):
            idx = next(
                (j for j, item in enumerate(node) if _list_item_id(parent_field, item, j) == part),
                None,
            )
            if idx is None:
                return
            if last:
                node.pop(idx)
                return
            node = node[idx]
        else:
            return


_MISSING = object()


def _get_path(obj: Any, path: Path) -> Any:
    """The value at ``path`` (FieldsV1 elements), or _MISSING."""
    node = obj
    parent_field = ""
    for part in path:
        if part.startswith("f:"):
            if not isinstance(node, dict) or part[2:] not in node:
                return _MISSING
            parent_field = part[2:]
            node = node[part[2:]]
        elif isinstance(node, list):
            found = [
                item for j, item in enumerate(node) if _list_item_id(parent_field, item, j) == part
            ]
            if not found:
                return _MISSING
            node = found[0]
        else:
            return _MISSING
    return node


def _show_path(path: Path) -> str:
    """``.spec.containers[name="a"].image``: how the real server names a field."""
    out = ""
    for part in path:
        if part.startswith("f:"):
            out += "." + part[2:]
        elif part.startswith("k:"):
            keys = json.loads(part[2:])
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif part.startswith("v:"):
            out += f"[={part[2:]}]"
    return out


def _conflicts(
    live: dict[str, Any],
    applied: dict[str, Any],
    new_set: set[Path],
    rivals: list[dict[str, Any]],
) -> list[tuple[str, str, str]]:
    """(manager, apiVersion, field) for fields another applier owns with another value."""
    found = []
    for e in rivals:
        owned = from_fields_v1(e.get("fieldsV1") or {})
        for path in sorted(new_set & owned):
            if path[-1].startswith(("k:", "v:")):
                continue  # a list item itself: its fields are compared one by one
            if _get_path(live, path) != _get_path(applied, path):
                found.append(
                    (str(e.get("manager")), str(e.get("apiVersion", "")), _show_path(path))
                )
    return found


def _apply_merge(live: Any, applied: Any, field: str = "") -> Any:
    """Merge an applied configuration into the live object (maps and keyed lists merge)."""
    if isinstance(applied, dict) and isinstance(live, dict):
        out = dict(live)
        for key, value in applied.items():
            out[key] = _apply_merge(live.get(key), value, key) if key in live else value
        return out
    if isinstance(applied, list) and isinstance(live, list) and _keyed_list(field, applied):
        result = list(live)
        for i, item in enumerate(applied):
            ident = _list_item_id(field, item, i)
            idx = next(
                (j for j, x in enumerate(result) if _list_item_id(field, x, j) == ident), None
            )
            if idx is None:
                result.append(copy.deepcopy(item))
            else:
                result[idx] = _apply_merge(result[idx], item, "")
        return result
    return copy.deepcopy(applied)


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    api_version: str,
    *,
    force: bool = True,
) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` (``live`` None: a create).

    Without ``force``, a field another applier owns with a different value is a 409
    conflict (like ``kubectl apply --server-side`` without ``--force-conflicts``); with
    it, this manager takes the field over.
    """
    if not isinstance(applied, dict):
        raise bad_request("an apply configuration must be an object with apiVersion and kind")
    if not isinstance(applied.get("metadata", {}), dict):
        raise bad_request("metadata of an apply configuration must be an object")
    new_set = field_set(applied)
    entries = list(((live or {}).get("metadata") or {}).get("managedFields") or [])
    mine = next(
        (e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"),
        None,
    )
    rivals = [
        e for e in entries if e is not mine and e.get("operation") == "Apply" and e.get("fieldsV1")
    ]
    if live is not None and rivals:
        conflicts = _conflicts(live, applied, new_set, rivals)
        if conflicts and not force:
            raise _apply_conflict(conflicts)
        if conflicts:  # forced: the fields move to this manager
            moved = []
            for e in entries:
                if any(e is r for r in rivals):
                    left = from_fields_v1(e["fieldsV1"]) - new_set
                    if not left:
                        continue  # a manager that owns nothing any more is dropped
                    e = {**e, "fieldsV1": to_fields_v1(left)}
                moved.append(e)
            entries = moved
    if live is None:
        result = copy.deepcopy(applied)
    else:
        result = copy.deepcopy(live)
        if mine is not None:
            owned_by_others: set[Path] = set()
            for e in entries:
                if e is not mine and e.get("operation") == "Apply":
                    owned_by_others |= from_fields_v1(e.get("fieldsV1") or {})
            gone = from_fields_v1(mine.get("fieldsV1") or {}) - new_set - owned_by_others
            # shortest first: a removed list item takes its fields with it
            for path in sorted(gone, key=len):
                if not any(p[: len(path)] == path for p in new_set):
                    _remove_path(result, path)
        result = _apply_merge(result, applied)
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(new_set),
    }
    entries = [e for e in entries if e is not mine] + [entry]
    result.setdefault("metadata", {})["managedFields"] = entries
    return result
