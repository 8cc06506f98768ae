"""Patch and apply semantics of the sandbox API server, on plain dicts."""

from __future__ import annotations

import pytest

from arkouda_k8s.sandbox.merge import (
    from_fields_v1,
    json_patch,
    merge_patch,
    server_side_apply,
    strategic_merge_patch,
    to_fields_v1,
)
from arkouda_k8s.sandbox.store import ApiError

POD_SPEC = {
    "containers": [
        {
            "name": "a",
            "image": "i:1",
            "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
            "ports": [{"containerPort": 22, "protocol": "TCP"}],
        },
        {"name": "b", "image": "j:1"},
    ],
    "tolerations": [{"key": "k", "operator": "Exists"}],
}


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    out = merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"c": None}, "l": [3]})
    assert out == {"a": {"b": 1}, "l": [3]}


def test_strategic_merge_patch_merges_keyed_lists_and_honours_directives() -> None:
    patched = strategic_merge_patch(
        {"spec": POD_SPEC},
        {
            "spec": {
                "containers": [
                    {"name": "a", "image": "i:2", "env": [{"name": "Z", "value": "3"}]},
                    {"name": "b", "$patch": "delete"},
                ],
                "tolerations": [{"key": "other", "operator": "Exists"}],
            }
        },
    )
    (a,) = patched["spec"]["containers"]
    assert a["image"] == "i:2" and [e["name"] for e in a["env"]] == ["X", "Y", "Z"]
    assert a["ports"] == [{"containerPort": 22, "protocol": "TCP"}]
    assert patched["spec"]["tolerations"] == [{"key": "other", "operator": "Exists"}]  # atomic
    replaced = strategic_merge_patch({"m": {"a": 1, "b": 2}}, {"m": {"$patch": "replace", "c": 3}})
    assert replaced == {"m": {"c": 3}}
    fin = strategic_merge_patch(
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
    )
    assert fin == {"metadata": {"finalizers": ["b"]}}


def test_json_patch_errors_are_api_errors() -> None:
    assert json_patch({"a": 1}, [{"op": "replace", "path": "/a", "value": 2}]) == {"a": 2}
    with pytest.raises(ApiError) as err:
        json_patch({"a": 1}, [{"op": "remove", "path": "/nope"}])
    assert err.value.status == 422
    with pytest.raises(ApiError) as err:
        json_patch({"a": 1}, {"op": "add"})
    assert err.value.status == 400


def test_fields_v1_round_trip() -> None:
    applied = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": POD_SPEC}
    from arkouda_k8s.sandbox.merge import field_set

    paths = field_set(applied)
    tree = to_fields_v1(paths)
    assert 'k:{"name":"a"}' in tree["f:spec"]["f:containers"]
    assert (
        'k:{"containerPort":22,"protocol":"TCP"}'
        in (tree["f:spec"]["f:containers"]['k:{"name":"a"}']["f:ports"])
    )
    assert from_fields_v1(tree) == paths


def test_apply_removes_only_what_this_manager_stopped_applying() -> None:
    first = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}},
        "data": {"x": "1", "y": "2"},
    }
    live = server_side_apply(None, first, "me", "v1")
    live["data"]["other"] = "kept"  # a field nobody applied (an Update)
    theirs = server_side_apply(
        live,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"y": "2"}},
        "them",
        "v1",
    )
    second = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"a": "1"}},
        "data": {"x": "9"},
    }
    out = server_side_apply(theirs, second, "me", "v1")
    assert out["metadata"]["labels"] == {"a": "1"}
    # y stays: "them" applies it too; other stays: no applier owns it
    assert out["data"] == {"x": "9", "y": "2", "other": "kept"}
    assert sorted(m["manager"] for m in out["metadata"]["managedFields"]) == ["me", "them"]
    with pytest.raises(ApiError):
        server_side_apply(out, ["not", "an", "object"], "me", "v1")  # type: ignore[arg-type]


def test_apply_conflicts_between_managers_unless_forced() -> None:
    cfg = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}}
    live = server_side_apply(None, cfg, "alice", "v1", force=False)
    same = server_side_apply(live, cfg, "bob", "v1", force=False)  # same value: shared
    assert sorted(m["manager"] for m in same["metadata"]["managedFields"]) == ["alice", "bob"]
    other = {**cfg, "data": {"x": "2"}}
    with pytest.raises(ApiError) as err:
        server_side_apply(live, other, "bob", "v1", force=False)
    assert err.value.status == 409
    assert 'Apply failed with 1 conflict: conflict with "alice" using v1: .data.x' in (
        err.value.message
    )
    forced = server_side_apply(live, other, "bob", "v1", force=True)
    assert forced["data"] == {"x": "2"}
    # alice owned nothing else, so she is no longer a manager of the object
    assert [m["manager"] for m in forced["metadata"]["managedFields"]] == ["bob"]
