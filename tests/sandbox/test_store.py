"""The sandbox store: versions, conflicts, selectors, finalizers, watch history."""

from __future__ import annotations

import base64

import pytest

from arkouda_k8s.sandbox.store import (
    ApiError,
    Store,
    match_fields,
    match_label_selector_obj,
    match_labels,
)


@pytest.fixture
def store() -> Store:
    s = Store()
    s.create("namespaces", {"metadata": {"name": "default"}})
    return s


def pod(name: str, labels: dict[str, str] | None = None, **extra: object) -> dict:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        **extra,
    }


def test_create_fills_metadata_and_get_returns_copies(store: Store) -> None:
    made = store.create("pods", pod("a"))
    md = made["metadata"]
    assert made["kind"] == "Pod" and made["apiVersion"] == "v1"
    assert md["uid"] and md["creationTimestamp"].endswith("Z") and md["generation"] == 1
    got = store.get("pods", "default", "a")
    assert got == made
    got["metadata"]["labels"]["x"] = "y"
    assert "x" not in store.get("pods", "default", "a")["metadata"]["labels"]


def test_generate_name_secret_string_data_and_already_exists(store: Store) -> None:
    a = store.create("configmaps", {"metadata": {"generateName": "cfg-", "namespace": "default"}})
    assert a["metadata"]["name"].startswith("cfg-") and len(a["metadata"]["name"]) == 9
    s = store.create(
        "secrets", {"metadata": {"name": "s", "namespace": "default"}, "stringData": {"k": "v"}}
    )
    assert s["data"] == {"k": base64.b64encode(b"v").decode()} and "stringData" not in s
    with pytest.raises(ApiError) as err:
        store.create("secrets", {"metadata": {"name": "s", "namespace": "default"}})
    assert err.value.status == 409 and err.value.reason == "AlreadyExists"
    assert err.value.message == 'secrets "s" already exists'


def test_create_in_missing_namespace_is_not_found(store: Store) -> None:
    with pytest.raises(ApiError) as err:
        store.create("pods", {"metadata": {"name": "p", "namespace": "nope"}, "spec": {}})
    assert err.value.status == 404 and 'namespaces "nope" not found' in err.value.message


def test_update_conflict_generation_and_status_subresource(store: Store) -> None:
    d = store.create(
        "deployments.apps",
        {"metadata": {"name": "d", "namespace": "default"}, "spec": {"replicas": 1}},
    )
    stale = dict(d)
    d["spec"]["replicas"] = 3
    d2 = store.update("deployments.apps", d)
    assert d2["metadata"]["generation"] == 2
    assert int(d2["metadata"]["resourceVersion"]) > int(d["metadata"]["resourceVersion"])
    with pytest.raises(ApiError) as err:
        store.update("deployments.apps", stale)
    assert err.value.status == 409 and err.value.reason == "Conflict"
    # status through the main resource is ignored; through the subresource it lands
    d2["status"] = {"replicas": 3}
    d3 = store.update("deployments.apps", d2)
    assert (
        "status" not in d3
        and d3["metadata"]["resourceVersion"] == d2["metadata"]["resourceVersion"]
    )
    d3["status"] = {"replicas": 3}
    d3["spec"]["replicas"] = 9
    d4 = store.update("deployments.apps", d3, subresource="status")
    assert d4["status"] == {"replicas": 3} and d4["spec"]["replicas"] == 3
    assert d4["metadata"]["generation"] == 2


def test_delete_with_finalizers_waits_for_them(store: Store) -> None:
    store.create(
        "configmaps", {"metadata": {"name": "c", "namespace": "default", "finalizers": ["x/y"]}}
    )
    marked = store.delete("configmaps", "default", "c")
    assert marked["metadata"]["deletionTimestamp"]
    assert store.get("configmaps", "default", "c") is not None
    marked["metadata"]["finalizers"] = []
    store.update("configmaps", marked)
    assert store.get("configmaps", "default", "c") is None
    with pytest.raises(ApiError) as err:
        store.delete("configmaps", "default", "c")
    assert err.value.status == 404 and err.value.message == 'configmaps "c" not found'


def test_namespace_delete_terminates_until_finalized(store: Store) -> None:
    store.create("namespaces", {"metadata": {"name": "t"}})
    ns = store.delete("namespaces", None, "t")
    assert ns["status"]["phase"] == "Terminating"
    with pytest.raises(ApiError) as err:
        store.create("configmaps", {"metadata": {"name": "c", "namespace": "t"}})
    assert err.value.status == 403 and "being terminated" in err.value.message
    ns["spec"]["finalizers"] = []
    store.update("namespaces", ns, subresource="finalize")
    assert store.get("namespaces", None, "t") is None


def test_list_with_label_and_field_selectors(store: Store) -> None:
    store.create("pods", pod("a", {"app": "x", "tier": "web"}))
    store.create("pods", pod("b", {"app": "y"}))
    store.create("pods", pod("c", {"app": "x"}, status={"phase": "Running"}))

    def names(**kw: str) -> list[str]:
        items, rv = store.list("pods", "default", **kw)
        assert rv == store.resource_version
        return [i["metadata"]["name"] for i in items]

    assert names(label_selector="app=x") == ["a", "c"]
    assert names(label_selector="app in (x, y),!tier") == ["b", "c"]
    assert names(label_selector="app notin (x)") == ["b"]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="app==x,tier!=web") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="status.phase=Running") == ["c"]
    assert names(field_selector="status.phase!=Running") == ["a", "b"]
    with pytest.raises(ApiError) as err:
        names(field_selector="spec.foo=1")
    assert err.value.status == 400 and "field label not supported: spec.foo" in err.value.message
    with pytest.raises(ApiError):
        names(label_selector="a in (b")


def test_selector_helpers() -> None:
    assert match_labels("a=1,b in (2,3)", {"a": "1", "b": "3"})
    assert not match_labels("a=1,b in (2,3)", {"a": "1"})
    assert match_label_selector_obj(
        {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]},
        {"a": "1", "b": ""},
    )
    assert not match_label_selector_obj({"matchLabels": {"a": "1"}}, {"a": "2"})
    ev = {"involvedObject": {"kind": "Pod", "name": "p"}, "source": {"component": "kubelet"}}
    assert match_fields(
        "involvedObject.kind=Pod,involvedObject.name=p,source=kubelet", ev, "events"
    )


def test_subscribe_and_events_since_replay(store: Store) -> None:
    seen: list[tuple[str, str, str]] = []
    unsubscribe = store.subscribe(lambda t, r, o: seen.append((t, r, o["metadata"]["name"])))
    start = store.resource_version
    a = store.create("pods", pod("a"))
    a["metadata"]["labels"] = {"z": "1"}
    store.update("pods", a)
    store.delete("pods", "default", "a")
    store.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    unsubscribe()
    store.create("configmaps", {"metadata": {"name": "d", "namespace": "default"}})
    assert seen == [
        ("ADDED", "pods", "a"),
        ("MODIFIED", "pods", "a"),
        ("DELETED", "pods", "a"),
        ("ADDED", "configmaps", "c"),
    ]
    replay = store.events_since("pods", start)
    assert [t for t, _o, _old in replay] == ["ADDED", "MODIFIED", "DELETED"]
    assert store.events_since("pods", store.resource_version) == []


def test_too_old_resource_version_is_gone() -> None:
    s = Store(history_limit=5)
    s.create("namespaces", {"metadata": {"name": "default"}})
    for i in range(10):
        s.create("configmaps", {"metadata": {"name": f"c{i}", "namespace": "default"}})
    with pytest.raises(ApiError) as err:
        s.events_since("configmaps", 1)
    assert err.value.status == 410 and err.value.reason == "Expired"
    assert len(s.events_since("configmaps", int(s.resource_version) - 3)) == 3
