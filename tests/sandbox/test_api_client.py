"""The official ``kubernetes`` client works against the sandbox unmodified.

Create / get / list / patch / server-side apply / delete of every kind our manifests use,
watches (selectors, timeoutSeconds, resourceVersion replay), optimistic concurrency,
the CSR flow to a working client certificate, and a clean stop.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _support import eventually, settled
from api_support import api_client_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException

from arkouda_k8s.sandbox import Sandbox


@pytest.fixture(scope="module")
def ns(admin_api: Any) -> Iterator[str]:
    name = "api-client-tests"
    client.CoreV1Api(admin_api).create_namespace({"metadata": {"name": name}})
    yield name


def _ssa(
    api: Any, path: str, body: dict[str, Any], manager: str = "tests", dry_run: bool = False
) -> dict[str, Any]:
    """Server-side apply through the raw ApiClient (what kube.py does)."""
    query = [("fieldManager", manager), ("fieldValidation", "Strict"), ("force", "true")]
    if dry_run:
        query.append(("dryRun", "All"))
    params = api.param_serialize(
        "PATCH",
        path,
        query_params=query,
        header_params={
            "Content-Type": "application/apply-patch+yaml",
            "Accept": "application/json",
        },
        body=body,
        auth_settings=["BearerToken"],
    )
    resp = api.call_api(*params)
    resp.read()
    assert resp.status in (200, 201), resp.data
    return json.loads(resp.data)  # type: ignore[no-any-return]


def test_version_and_discovery(admin_api: Any) -> None:
    info = client.VersionApi(admin_api).get_code()
    assert info.major == "1" and "sandbox" in info.git_version
    groups = {g.name for g in client.ApisApi(admin_api).get_api_versions().groups}
    assert {"apps", "rbac.authorization.k8s.io", "certificates.k8s.io"} <= groups
    core = {r.name: r for r in client.CoreV1Api(admin_api).get_api_resources().resources}
    assert core["pods"].namespaced and not core["namespaces"].namespaced
    assert "po" in core["pods"].short_names and "pods/log" in core


def test_server_certificate_verifies_for_the_in_cluster_names(sandbox: Sandbox) -> None:
    import ssl

    for name in ("127.0.0.1", "localhost", "kubernetes.default.svc"):
        ctx = ssl.create_default_context(cadata=sandbox.ca_pem)
        with (
            socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    ctx = ssl.create_default_context(cadata=sandbox.ca_pem)
    with (
        socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname="example.com")


def test_tls13_cipher_choice_follows_the_go_apiserver(sandbox: Sandbox) -> None:
    # OpenSSL clients lead with AES-256-GCM; a Go server (kube-apiserver) on AES hardware
    # answers with AES-128-GCM, its own first choice, so transfers cost what they would
    # against a real cluster
    import ssl

    ctx = ssl.create_default_context(cadata=sandbox.ca_pem)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with (
        socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
    assert cipher is not None and cipher[0] == "TLS_AES_128_GCM_SHA256", cipher
    # a client that offers only another suite still gets through
    ctx = ssl.create_default_context(cadata=sandbox.ca_pem)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    with (
        socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"  # type: ignore[index]


def test_default_objects(admin_api: Any, sandbox: Sandbox) -> None:
    core = client.CoreV1Api(admin_api)
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public"} <= names
    node = core.read_node("sandbox-node")
    assert node.status.allocatable["cpu"] == sandbox.node_cpu
    assert core.read_namespaced_service("kubernetes", "default").spec.ports[0].port == 443


def test_crud_of_every_kind_our_manifests_use(admin_api: Any, ns: str) -> None:
    core = client.CoreV1Api(admin_api)
    apps = client.AppsV1Api(admin_api)
    rbac = client.RbacAuthorizationV1Api(admin_api)
    labels = {"app.kubernetes.io/name": "arkouda", "t": "crud"}
    md = {"labels": labels}

    secret = core.create_namespaced_secret(
        ns, {"metadata": {"name": "s", **md}, "stringData": {"token": "abc"}}
    )
    assert base64.b64decode(secret.data["token"]) == b"abc" and secret.type == "Opaque"
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm", **md}, "data": {"a": "1"}})
    core.create_namespaced_service_account(ns, {"metadata": {"name": "sa", **md}})
    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "r", **md},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "rb", **md},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "someone"}],
        },
    )
    dep = apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "d", **md},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
                },
            },
        },
    )
    assert dep.metadata.generation == 1 and dep.spec.strategy.type == "RollingUpdate"
    pod = core.create_namespaced_pod(
        ns,
        {
            "metadata": {"generateName": "p-", **md},
            "spec": {
                "containers": [{"name": "c", "image": "busybox:1", "command": ["sleep", "60"]}]
            },
        },
    )
    assert pod.metadata.name.startswith("p-") and pod.status.phase in ("Pending", "Running")
    svc = core.create_namespaced_service(
        ns, {"metadata": {"name": "svc", **md}, "spec": {"ports": [{"port": 5555}]}}
    )
    assert svc.spec.cluster_ip and svc.spec.ports[0].target_port == 5555
    core.create_namespaced_endpoints(
        ns,
        {
            "metadata": {"name": "svc-ep", **md},
            "subsets": [{"addresses": [{"ip": "127.0.0.5"}], "ports": [{"port": 5555}]}],
        },
    )

    # list by label across kinds
    sel = "t=crud"
    assert [s.metadata.name for s in core.list_namespaced_secret(ns, label_selector=sel).items] == [
        "s"
    ]
    assert len(core.list_namespaced_pod(ns, label_selector=sel).items) == 1
    assert [r.metadata.name for r in rbac.list_namespaced_role(ns, label_selector=sel).items] == [
        "r"
    ]
    assert core.read_namespaced_endpoints("svc-ep", ns).subsets[0].addresses[0].ip == "127.0.0.5"

    # patch: merge patch through the client, generation bumps on a spec change
    patched = apps.patch_namespaced_deployment("d", ns, {"spec": {"replicas": 0, "paused": True}})
    assert patched.spec.paused is True and patched.metadata.generation == 2
    core.patch_namespaced_config_map("cm", ns, {"data": {"b": "2"}})
    assert core.read_namespaced_config_map("cm", ns).data == {"a": "1", "b": "2"}

    # delete
    core.delete_namespaced_config_map("cm", ns)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("cm", ns)
    assert err.value.status == 404
    for fn, name in (
        (core.delete_namespaced_secret, "s"),
        (core.delete_namespaced_service_account, "sa"),
        (rbac.delete_namespaced_role, "r"),
        (rbac.delete_namespaced_role_binding, "rb"),
        (apps.delete_namespaced_deployment, "d"),
        (core.delete_namespaced_service, "svc"),
        (core.delete_namespaced_endpoints, "svc-ep"),
        (core.delete_namespaced_pod, pod.metadata.name),
    ):
        fn(name, ns)
    assert core.list_namespaced_secret(ns, label_selector=sel).items == []


def test_namespace_delete_terminates_and_removes_its_content(admin_api: Any) -> None:
    core = client.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": "short-lived", "labels": {"x": "y"}}})
    core.create_namespaced_config_map("short-lived", {"metadata": {"name": "c"}})
    assert core.read_namespace("short-lived").status.phase == "Active"
    core.delete_namespace("short-lived")

    def phase() -> str:
        """The namespace's phase while it terminates, "gone" once it is."""
        try:
            ns = core.read_namespace("short-lived")
        except ApiException as exc:
            assert exc.status == 404
            return "gone"
        assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp
        return str(ns.status.phase)

    eventually(phase, 15, message="namespace short-lived removed", until=lambda p: p == "gone")
    assert [
        c
        for c in core.list_config_map_for_all_namespaces().items
        if c.metadata.namespace == "short-lived"
    ] == []


def test_delete_propagation_orphan_keeps_dependents_background_removes_them(
    admin_api: Any, ns: str
) -> None:
    core = client.CoreV1Api(admin_api)

    def owner_and_dependent(tag: str) -> None:
        owner = core.create_namespaced_config_map(ns, {"metadata": {"name": f"owner-{tag}"}})
        ref = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": owner.metadata.name,
            "uid": owner.metadata.uid,
        }
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": f"dependent-{tag}", "ownerReferences": [ref]}}
        )

    owner_and_dependent("o")
    core.delete_namespaced_config_map("owner-o", ns, propagation_policy="Orphan")
    kept = core.read_namespaced_config_map("dependent-o", ns)
    assert kept.metadata.owner_references is None

    owner_and_dependent("b")
    core.delete_namespaced_config_map("owner-b", ns, propagation_policy="Background")

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent-b", ns)
        except ApiException as exc:
            assert exc.status == 404
            return True
        return False

    eventually(dependent_gone, 10, message="the garbage collector removed dependent-b of owner-b")


def test_server_side_apply_creates_then_updates_and_drops_removed_fields(
    admin_api: Any, ns: str
) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps/applied"
    cfg = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "namespace": ns, "labels": {"a": "1"}},
        "data": {"x": "1", "y": "2"},
    }
    dry = _ssa(admin_api, path, cfg, dry_run=True)
    assert dry["data"] == {"x": "1", "y": "2"}
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(admin_api).read_namespaced_config_map("applied", ns)
    assert err.value.status == 404  # a dry run stores nothing
    first = _ssa(admin_api, path, cfg)
    assert first["data"] == {"x": "1", "y": "2"}
    # someone else adds a key; our re-apply without "y" removes only our field
    client.CoreV1Api(admin_api).patch_namespaced_config_map("applied", ns, {"data": {"z": "3"}})
    cfg["data"] = {"x": "10"}
    second = _ssa(admin_api, path, cfg)
    assert second["data"] == {"x": "10", "z": "3"}
    managers = [m["manager"] for m in second["metadata"]["managedFields"]]
    assert "tests" in managers
    again = _ssa(admin_api, path, cfg)
    assert again["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]


def test_server_side_apply_through_the_dynamic_client(admin_api: Any, ns: str) -> None:
    dyn = dynamic.DynamicClient(admin_api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "dyn", "namespace": ns},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "dyn"}},
            "template": {
                "metadata": {"labels": {"app": "dyn"}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "busybox:1", "env": [{"name": "A", "value": "1"}]}
                    ]
                },
            },
        },
    }
    made = deployments.server_side_apply(body=body, namespace=ns, field_manager="tests")
    assert made.metadata.name == "dyn"
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "B", "value": "2"}]
    updated = deployments.server_side_apply(body=body, namespace=ns, field_manager="tests")
    env = updated.spec.template.spec.containers[0].env
    assert [e.name for e in env] == ["B"]
    assert len(updated.spec.template.spec.containers) == 1
    deployments.delete(name="dyn", namespace=ns)


def test_put_with_a_stale_resource_version_conflicts(admin_api: Any, ns: str) -> None:
    core = client.CoreV1Api(admin_api)
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "rv"}, "data": {"v": "0"}})
    cm.data["v"] = "1"
    fresh = core.replace_namespaced_config_map("rv", ns, cm)
    assert fresh.metadata.resource_version != cm.metadata.resource_version
    cm.data["v"] = "2"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("rv", ns, cm)
    assert err.value.status == 409
    assert "the object has been modified" in json.loads(err.value.body)["message"]
    assert core.read_namespaced_config_map("rv", ns).data == {"v": "1"}


def test_watch_with_selector_timeout_and_replay(admin_api: Any, ns: str) -> None:
    core = client.CoreV1Api(admin_api)
    start_rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w1", "labels": {"w": "yes"}}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w2", "labels": {"w": "no"}}})
    core.patch_namespaced_config_map("w1", ns, {"data": {"k": "v"}})
    core.patch_namespaced_config_map("w2", ns, {"metadata": {"labels": {"w": "yes"}}})
    core.delete_namespaced_config_map("w1", ns)

    # replay from a resourceVersion: the filtered history, in order, then the timeout ends it
    w = watch.Watch()
    began = time.monotonic()
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in w.stream(
            core.list_namespaced_config_map,
            ns,
            label_selector="w=yes",
            resource_version=start_rv,
            timeout_seconds=2,
        )
    ]
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("ADDED", "w2"), ("DELETED", "w1")]
    assert 1.5 < time.monotonic() - began < 10

    # a live watch sees a change made while it runs
    got: list[tuple[str, str]] = []
    watching = threading.Event()

    def consume() -> None:
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            ns,
            field_selector="metadata.name=w3",
            timeout_seconds=5,
            # the bookmark that ends the (empty) initial state says the watch is on
            send_initial_events=True,
            allow_watch_bookmarks=True,
        ):
            if e["type"] == "BOOKMARK":
                watching.set()
                continue
            got.append((e["type"], e["object"].metadata.name))
            if e["type"] == "DELETED":
                return

    t = threading.Thread(target=consume)
    t.start()
    assert watching.wait(10), "the watch did not start within 10 s"
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w3"}})
    core.delete_namespaced_config_map("w3", ns)
    t.join(10)
    assert got == [("ADDED", "w3"), ("DELETED", "w3")]


def test_watch_list_initial_events_end_with_a_bookmark(sandbox: Sandbox, ns: str) -> None:
    import urllib3

    core = client.CoreV1Api(api_client_for(sandbox.kubeconfig_path))
    core.create_namespaced_config_map(ns, {"metadata": {"name": "wl", "labels": {"wl": "1"}}})
    with tempfile.NamedTemporaryFile("w", suffix=".crt") as ca:
        ca.write(sandbox.ca_pem)  # public
        ca.flush()
        http = urllib3.PoolManager(ca_certs=ca.name, cert_reqs="CERT_REQUIRED")
        resp = http.request(
            "GET",
            f"{sandbox.url}/api/v1/namespaces/{ns}/configmaps?watch=true&labelSelector=wl%3D1"
            "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
            "&timeoutSeconds=1",
            headers={"Authorization": f"Bearer {sandbox.admin_token}"},
            timeout=urllib3.Timeout(total=10),
        )
    events = [json.loads(line) for line in resp.data.splitlines() if line.strip()]
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[0]["object"]["metadata"]["name"] == "wl"
    bookmark = events[1]["object"]["metadata"]
    assert bookmark["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(bookmark["resourceVersion"]) >= int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )


def test_watch_from_a_too_old_version_is_410(admin_api: Any, sandbox: Sandbox) -> None:
    # a fresh store with a tiny history would be needed to expire naturally; ask for
    # version 1 after trimming this sandbox's history to its last few events instead
    from collections import deque

    def trim() -> None:
        sandbox.store._history = deque(list(sandbox.store._history)[-3:], maxlen=3)

    sandbox.call(trim)
    core = client.CoreV1Api(admin_api)
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version="1", timeout_seconds=2
        ):
            pass
    assert err.value.status == 410


def _csr_pem(user: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, user),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "arkouda-users"),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


@contextlib.contextmanager
def _client_with_certificate(
    sandbox: Sandbox, cert_pem: bytes, key_pem: bytes
) -> Iterator[client.ApiClient]:
    """An official client authenticating with a client certificate. It reads certificates
    only from files: they live in a private directory on tmpfs for the block's length."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        os.chmod(tmp, 0o700)
        paths = {}
        for fname, data in (
            ("c.crt", cert_pem),
            ("c.key", key_pem),
            ("ca.crt", sandbox.ca_pem.encode()),
        ):
            paths[fname] = os.path.join(tmp, fname)
            fd = os.open(paths[fname], os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        cfg = client.Configuration()
        cfg.host = sandbox.url
        cfg.ssl_ca_cert = paths["ca.crt"]
        cfg.cert_file, cfg.key_file = paths["c.crt"], paths["c.key"]
        with client.ApiClient(cfg) as api:
            yield api


def test_csr_approval_issues_a_certificate_that_authenticates_per_its_role(
    admin_api: Any, sandbox: Sandbox, ns: str
) -> None:
    certs = client.CertificatesV1Api(admin_api)
    rbac = client.RbacAuthorizationV1Api(admin_api)
    user = "arkouda-k8s:api-client-tests:demo"
    csr_pem, key_pem = _csr_pem(user)
    name = "csr-demo"
    created = certs.create_certificate_signing_request(
        {
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(csr_pem).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "usages": ["client auth"],
                "expirationSeconds": 3600,
            },
        }
    )
    assert created.spec.username == "sandbox-admin"  # the requester, set by the server
    assert created.status.certificate is None
    created.status = client.V1CertificateSigningRequestStatus(
        conditions=[
            client.V1CertificateSigningRequestCondition(
                type="Approved", status="True", reason="Test", message="approved by test"
            )
        ]
    )
    certs.replace_certificate_signing_request_approval(name, created)
    cert_b64 = eventually(
        lambda: certs.read_certificate_signing_request(name).status.certificate,
        10,
        message="a certificate in the approved CSR's status",
    )
    cert_pem = base64.b64decode(cert_b64)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == user

    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "demo"},
            "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["create", "get"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "demo"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "demo"},
            "subjects": [{"kind": "User", "name": user}],
        },
    )
    with _client_with_certificate(sandbox, cert_pem, key_pem) as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_service(
            ns, {"metadata": {"name": "registered"}, "spec": {"ports": [{"port": 5555}]}}
        )
        assert core.read_namespaced_service("registered", ns).metadata.name == "registered"
        with pytest.raises(ApiException) as err:
            core.list_namespaced_pod(ns)
        assert err.value.status == 403
        message = json.loads(err.value.body)["message"]
        assert f'User "{user}" cannot list resource "pods"' in message
        with pytest.raises(ApiException) as err:
            core.create_namespaced_service(
                "default", {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 1}]}}
            )
        assert err.value.status == 403
        review = client.AuthorizationV1Api(api).create_self_subject_access_review(
            {
                "spec": {
                    "resourceAttributes": {
                        "namespace": ns,
                        "verb": "create",
                        "resource": "services",
                    }
                }
            }
        )
        assert review.status.allowed is True


def test_an_approved_csr_the_signer_cannot_honour_gets_a_failed_condition(
    admin_api: Any,
) -> None:
    certs = client.CertificatesV1Api(admin_api)
    csr_pem, _ = _csr_pem("someone")
    created = certs.create_certificate_signing_request(
        {
            "metadata": {"name": "csr-server-auth"},
            "spec": {
                "request": base64.b64encode(csr_pem).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "usages": ["server auth"],
            },
        }
    )
    created.status = client.V1CertificateSigningRequestStatus(
        conditions=[
            client.V1CertificateSigningRequestCondition(
                type="Approved", status="True", reason="Test", message="ok"
            )
        ]
    )
    certs.replace_certificate_signing_request_approval("csr-server-auth", created)
    status = eventually(
        lambda: certs.read_certificate_signing_request("csr-server-auth").status,
        10,
        message="a Failed condition on the CSR",
        until=lambda st: any(c.type == "Failed" for c in st.conditions or []),
    )
    conditions = {c.type: c for c in status.conditions or []}
    assert "Failed" in conditions and status.certificate is None
    assert "client auth" in conditions["Failed"].message


def test_a_certificate_from_another_ca_is_anonymous(sandbox: Sandbox) -> None:
    other = Sandbox.__new__(Sandbox)  # only for its CA
    from arkouda_k8s.sandbox.auth import CertificateAuthority

    other_ca = CertificateAuthority()
    cert_pem, key_pem = other_ca.issue_client("mallory", ["system:masters"])
    del other
    with (
        _client_with_certificate(sandbox, cert_pem, key_pem) as api,
        pytest.raises(Exception) as err,
    ):
        client.CoreV1Api(api).list_namespace()
    # the TLS layer refuses a certificate of another CA (the connection is dropped);
    # it must never be treated as the user it names
    if isinstance(err.value, ApiException):
        assert err.value.status in (401, 403)
    else:
        assert "aborted" in str(err.value) or "SSL" in str(err.value)


def test_stop_within_five_seconds_leaves_no_thread_or_socket() -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    sockets_before = _open_sockets()
    sb = Sandbox()
    sb.start()
    port = sb.port
    kubeconfig = sb.kubeconfig_path
    api = client.ApiClient(_config(sb))
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "sleeper"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox:1", "command": ["sleep", "600"]}]
            },
        },
    )
    pids = eventually(sb.pod_processes, 20, message="the pod's process started")
    # leave a watch open: stop must end it
    w = watch.Watch()
    stream = w.stream(client.CoreV1Api(api).list_namespace, timeout_seconds=60)
    next(stream)
    began = time.monotonic()
    sb.stop()
    assert time.monotonic() - began < 5
    w.stop()
    stream.close()  # the client side of the watch (this test's, not the sandbox's)
    api.close()
    gc.collect()
    extra = settled(
        lambda: [
            t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()
        ],
        2,
    )
    assert not extra, f"threads left behind: {[t.name for t in extra]}"
    assert not os.path.exists(kubeconfig)
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:  # a zombie awaiting its reaper is gone too
                state = f.read().split(")")[-1].split()[0]
        except OSError:  # reaped between the two looks
            continue
        assert state == "Z", f"pod process {pid} survived stop"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the API port still accepts connections"
    assert _open_sockets() <= sockets_before, "the sandbox left sockets open in this process"


def test_a_port_in_use_is_a_usage_error(sandbox: Sandbox) -> None:
    from arkouda_k8s.errors import UsageError

    with pytest.raises(UsageError, match="already in use"):
        Sandbox(port=sandbox.port, kubelet=False, controllers=False).start()


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # fds come and go while we look
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _config(sb: Sandbox) -> Any:
    from kubernetes import config

    cfg = client.Configuration()
    config.load_kube_config(config_file=sb.kubeconfig_path, client_configuration=cfg)
    return cfg
