"""Bad requests get the Kubernetes-style 4xx Status, never a 500 or a hang."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from _support import eventually

from arkouda_k8s.sandbox import Sandbox

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "ok"},
    "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
}


class Raw:
    """Plain HTTPS requests as the admin, with a deadline on every request."""

    def __init__(self, sb: Sandbox, ca_file: str) -> None:
        self.sb = sb
        self.http = urllib3.PoolManager(ca_certs=ca_file, cert_reqs="CERT_REQUIRED")

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, Any], Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        resp = self.http.request(
            method,
            self.sb.url + path,
            body=data,
            headers={
                "Authorization": f"Bearer {self.sb.admin_token}",
                "Content-Type": content_type,
            },
            timeout=urllib3.Timeout(total=15),
            retries=False,
        )
        try:
            doc = json.loads(resp.data)
        except ValueError:
            doc = resp.data
        return resp.status, dict(resp.headers), doc


@pytest.fixture(scope="module")
def raw(sandbox: Sandbox) -> Iterator[Raw]:
    with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as f:
        f.write(sandbox.ca_pem)  # the CA certificate is public
    try:
        yield Raw(sandbox, f.name)
    finally:
        os.unlink(f.name)


def assert_status(result: tuple[int, dict[str, Any], Any], code: int, reason: str) -> str:
    status, _, doc = result
    assert status == code, doc
    assert isinstance(doc, dict) and doc["kind"] == "Status" and doc["status"] == "Failure"
    assert doc["code"] == code and doc["reason"] == reason
    return str(doc["message"])


PODS = "/api/v1/namespaces/default/pods"


def test_log_options_are_validated_like_the_real_api_server(raw: Raw) -> None:
    """ValidatePodLogOptions: 422 Invalid before the pod is even looked up, every cause at
    once (what `kubectl logs --since=0s` or a client's sinceSeconds=0 gets)."""
    log = "/api/v1/namespaces/default/pods/absent/log"
    msg = assert_status(raw("GET", f"{log}?sinceSeconds=0"), 422, "Invalid")
    assert (
        msg
        == 'PodLogOptions "absent" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0'
    )
    status, _, doc = raw("GET", f"{log}?tailLines=-1&limitBytes=0")
    assert status == 422 and [c["field"] for c in doc["details"]["causes"]] == [
        "tailLines",
        "limitBytes",
    ]
    assert "tailLines: Invalid value: -1: must be greater than or equal to 0" in doc["message"]
    msg = assert_status(
        raw("GET", f"{log}?sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z"), 422, "Invalid"
    )
    assert msg.endswith(
        ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
    )
    # Valid options on an absent pod: the pod's 404.
    assert_status(raw("GET", f"{log}?sinceSeconds=5&tailLines=0"), 404, "NotFound")


def test_malformed_json_is_400(raw: Raw) -> None:
    msg = assert_status(raw("POST", PODS, raw=b'{"metadata": {'), 400, "BadRequest")
    assert "not valid JSON" in msg
    assert_status(raw("POST", PODS, raw=b""), 400, "BadRequest")
    assert_status(raw("POST", PODS, body=[1, 2]), 400, "BadRequest")
    assert_status(raw("POST", PODS, raw=b"\xff\xfe\x00"), 400, "BadRequest")
    deep = b'{"metadata": {"name": "deep"}, "spec": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    assert "deeper" in assert_status(raw("POST", PODS, raw=deep), 400, "BadRequest")
    nested = b'{"metadata": {"name": "n"}, "x": ' + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}"
    assert "deeper" in assert_status(raw("POST", PODS, raw=nested), 400, "BadRequest")


def test_unknown_resources_and_groups_are_404(raw: Raw) -> None:
    assert_status(raw("GET", "/api/v1/namespaces/default/widgets"), 404, "NotFound")
    assert_status(raw("GET", "/apis/example.com/v1/things"), 404, "NotFound")
    assert_status(raw("GET", "/api/v2/pods"), 404, "NotFound")
    assert_status(raw("GET", "/apis/apps/v1beta1/deployments"), 404, "NotFound")
    assert_status(raw("GET", "/api/v1/namespaces/default/pods/a/b/c"), 404, "NotFound")
    assert_status(raw("GET", "/api/v1/namespaces/default/pods/a/nosuchsub"), 404, "NotFound")
    assert_status(raw("GET", "/nowhere"), 404, "NotFound")
    msg = assert_status(raw("GET", PODS + "/missing"), 404, "NotFound")
    assert msg == 'pods "missing" not found'


def test_wrong_kind_or_api_version_in_the_body_is_400(raw: Raw) -> None:
    msg = assert_status(raw("POST", PODS, {**POD, "apiVersion": "apps/v1"}), 400, "BadRequest")
    assert "apps/v1" in msg
    msg = assert_status(raw("POST", PODS, {**POD, "kind": "Service"}), 400, "BadRequest")
    assert "Service" in msg
    other_ns = {**POD, "metadata": {"name": "x", "namespace": "kube-system"}}
    assert_status(raw("POST", PODS, other_ns), 400, "BadRequest")


def test_invalid_objects_are_422_with_field_causes(raw: Raw) -> None:
    no_image = {**POD, "spec": {"containers": [{"name": "c"}]}}
    status, _, doc = raw("POST", PODS, no_image)
    assert status == 422 and doc["reason"] == "Invalid"
    assert doc["details"]["causes"][0]["field"] == "spec.containers[0].image"
    bad_name = {**POD, "metadata": {"name": "Not_A_Name"}}
    msg = assert_status(raw("POST", PODS, bad_name), 422, "Invalid")
    assert msg.startswith('Pod "Not_A_Name" is invalid: metadata.name: Invalid value')
    selector_mismatch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    msg = assert_status(
        raw("POST", "/apis/apps/v1/namespaces/default/deployments", selector_mismatch),
        422,
        "Invalid",
    )
    assert "`selector` does not match template `labels`" in msg
    missing_ns = {**POD, "metadata": {"name": "x"}}
    assert_status(raw("POST", "/api/v1/namespaces/nope/pods", missing_ns), 404, "NotFound")


def test_volume_paths_that_climb_out_are_422_like_the_real_api_server(raw: Raw) -> None:
    spec = {
        "containers": [
            {
                "name": "c",
                "image": "busybox:1",
                "volumeMounts": [{"name": "h", "mountPath": "/h", "subPath": "../up"}],
            }
        ],
        "volumes": [
            {"name": "h", "hostPath": {"path": "/../../../../tmp/x"}},
            {"name": "s", "secret": {"secretName": "s", "items": [{"key": "k", "path": "/abs"}]}},
            {"name": "c", "configMap": {"name": "c", "items": [{"key": "k", "path": "..k"}]}},
        ],
    }
    status, _, doc = raw("POST", PODS, {**POD, "metadata": {"name": "climb"}, "spec": spec})
    assert status == 422, doc
    causes = {(c["field"], c["message"].split(": ", 1)[1]) for c in doc["details"]["causes"]}
    assert causes == {
        ("spec.volumes[0].hostPath.path", "\"/../../../../tmp/x\": must not contain '..'"),
        ("spec.volumes[1].secret.items[0].path", '"/abs": must be a relative path'),
        ("spec.volumes[2].configMap.items[0].path", "\"..k\": must not start with '..'"),
        ("spec.containers[0].volumeMounts[0].subPath", "\"../up\": must not contain '..'"),
    }
    status, _, doc = raw("GET", PODS + "/climb")
    assert status == 404, "nothing was created"


def test_wrong_types_and_unknown_fields(raw: Raw) -> None:
    typed = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "typed"},
        "spec": {"replicas": "two"},
    }
    msg = assert_status(
        raw("POST", "/apis/apps/v1/namespaces/default/deployments", typed), 400, "BadRequest"
    )
    assert "spec.replicas" in msg
    extra = {**POD, "metadata": {"name": "extra"}, "spek": {}}
    msg = assert_status(raw("POST", PODS + "?fieldValidation=Strict", extra), 400, "BadRequest")
    assert msg == 'strict decoding error: unknown field "spek"'
    status, headers, doc = raw("POST", PODS, extra)  # default: Warn
    assert status == 201 and "spek" not in doc
    assert headers.get("Warning") == '299 - "unknown field \\"spek\\""'
    raw("DELETE", PODS + "/extra")
    assert_status(raw("POST", PODS + "?fieldValidation=Loud", POD), 400, "BadRequest")


def test_wrong_methods_and_media_types(raw: Raw) -> None:
    assert_status(raw("POST", PODS + "/ok", POD), 405, "MethodNotAllowed")
    assert_status(
        raw("PUT", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {}),
        405,
        "MethodNotAllowed",
    )
    msg = assert_status(
        raw(
            "POST", PODS, raw=b"k8s\x00\x0a\x00", content_type="application/vnd.kubernetes.protobuf"
        ),
        415,
        "UnsupportedMediaType",
    )
    assert "send JSON" in msg
    bad_utf8_namespace = b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x06\n\x04\n\x02\xff\xfe"
    for junk in (b"k8s\x00\xff\xff\xff", bad_utf8_namespace, b"nope"):
        status, _, doc = raw(
            "POST",
            "/api/v1/namespaces",
            raw=junk,
            content_type="application/vnd.kubernetes.protobuf",
        )
        assert status in (400, 415), doc
    assert_status(raw("POST", PODS, POD, content_type="text/x-weird"), 415, "UnsupportedMediaType")
    assert_status(
        raw("PATCH", PODS + "/missing", {}, content_type="application/json"),
        415,
        "UnsupportedMediaType",
    )


def test_body_too_large_is_413(raw: Raw) -> None:
    huge = {**POD, "metadata": {"name": "huge", "annotations": {"a": "x" * (4 * 1024 * 1024)}}}
    assert_status(raw("POST", PODS, huge), 413, "RequestEntityTooLarge")


def test_bad_selectors_patches_and_apply_bodies(raw: Raw) -> None:
    assert_status(raw("GET", PODS + "?labelSelector=a%20in%20(b"), 400, "BadRequest")
    msg = assert_status(raw("GET", PODS + "?fieldSelector=spec.foo%3D1"), 400, "BadRequest")
    assert "field label not supported" in msg
    assert_status(raw("GET", PODS + "?limit=many"), 400, "BadRequest")
    assert_status(raw("GET", PODS + "?watch=true&resourceVersion=abc"), 400, "BadRequest")
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "patchme"}})
    cm = "/api/v1/namespaces/default/configmaps/patchme"
    assert_status(
        raw(
            "PATCH",
            cm,
            [{"op": "replace", "path": "/nope/deeper", "value": 1}],
            content_type="application/json-patch+json",
        ),
        422,
        "Invalid",
    )
    assert_status(
        raw("PATCH", cm, {"op": "add"}, content_type="application/json-patch+json"),
        400,
        "BadRequest",
    )
    assert_status(
        raw(
            "PATCH",
            cm + "?fieldManager=t",
            raw=b"a: [b",
            content_type="application/apply-patch+yaml",
        ),
        400,
        "BadRequest",
    )
    assert_status(
        raw("PATCH", cm, raw=b"kind: ConfigMap", content_type="application/apply-patch+yaml"),
        400,
        "BadRequest",
    )  # no fieldManager
    laughs = b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    laughs += b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n"
    msg = assert_status(
        raw(
            "PATCH", cm + "?fieldManager=t", raw=laughs, content_type="application/apply-patch+yaml"
        ),
        400,
        "BadRequest",
    )
    assert "aliases" in msg
    assert_status(raw("DELETE", cm + "?propagationPolicy=Sometimes"), 400, "BadRequest")
    status, _, _ = raw("DELETE", cm)
    assert status == 200


def test_the_server_still_answers_after_all_that(raw: Raw, sandbox: Sandbox) -> None:
    status, _, doc = raw("GET", "/api/v1/namespaces")
    assert status == 200 and doc["kind"] == "NamespaceList"


def test_pod_security_restricted_namespace_rejects_root_pods(raw: Raw) -> None:
    status, _, _ = raw(
        "POST",
        "/api/v1/namespaces",
        {
            "metadata": {
                "name": "psa-restricted",
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        },
    )
    assert status == 201
    pods = "/api/v1/namespaces/psa-restricted/pods"
    msg = assert_status(raw("POST", pods, POD), 403, "Forbidden")
    assert msg.startswith('pods "ok" is forbidden: violates PodSecurity "restricted:latest": ')
    assert 'allowPrivilegeEscalation != false (container "c" must set' in msg
    assert "runAsNonRoot != true" in msg and "seccompProfile" in msg
    hardened = {
        **POD,
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "c",
                    "image": "busybox:1",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    status, _, doc = raw("POST", pods + "?dryRun=All", hardened)
    assert status == 201, doc
    # a Deployment is admitted with a warning; its pods would be refused
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": POD["spec"]},
        },
    }
    status, headers, _ = raw(
        "POST", "/apis/apps/v1/namespaces/psa-restricted/deployments", deployment
    )
    assert status == 201
    assert 'would violate PodSecurity \\"restricted:latest\\"' in headers.get("Warning", "")


def _with_resources(name: str, resources: dict[str, Any] | None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": "busybox:1"}
    if resources is not None:
        c["resources"] = resources
    return {**POD, "metadata": {"name": name}, "spec": {"containers": [c]}}


def test_qos_class_compares_quantities_by_value(raw: Raw) -> None:
    """ "500m" is "0.5" and "1Gi" is "1073741824": requests equal to limits by value make
    a Guaranteed pod, as on a real API server (a text comparison said Burstable)."""
    cases = {
        "qos-same-value": (
            {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "0.5", "memory": "1073741824"},
            },
            "Guaranteed",
        ),
        "qos-limits-only": ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        "qos-less-cpu": (
            {
                "requests": {"cpu": "250m", "memory": "1Gi"},
                "limits": {"cpu": "0.5", "memory": "1Gi"},
            },
            "Burstable",
        ),
        "qos-no-memory-limit": (
            {"requests": {"cpu": "1"}, "limits": {"cpu": "1000m"}},
            "Burstable",
        ),
        "qos-none": (None, "BestEffort"),
    }
    try:
        for name, (resources, qos) in cases.items():
            status, _, doc = raw("POST", PODS, _with_resources(name, resources))
            assert status == 201, doc
            assert doc["status"]["qosClass"] == qos, name
            _, _, got = raw("GET", f"{PODS}/{name}")
            assert got["status"]["qosClass"] == qos, name
    finally:
        for name in cases:
            raw("DELETE", f"{PODS}/{name}?gracePeriodSeconds=0")


def test_resource_quantities_are_checked_like_the_real_api_server(raw: Raw) -> None:
    unreadable = _with_resources("q-bad", {"limits": {"cpu": "lots"}})
    msg = assert_status(raw("POST", PODS, unreadable), 400, "BadRequest")
    assert msg.startswith('Pod in version "v1" cannot be handled as a Pod: quantities must match')
    over = _with_resources(
        "q-over", {"requests": {"cpu": "2", "memory": "-1"}, "limits": {"cpu": "1500m"}}
    )
    status, _, doc = raw("POST", PODS, over)
    assert status == 422, doc
    causes = {(c["field"], c["message"]) for c in doc["details"]["causes"]}
    assert causes == {
        (
            "spec.containers[0].resources.requests",
            'Invalid value: "2": must be less than or equal to cpu limit of 1500m',
        ),
        (
            "spec.containers[0].resources.requests[memory]",
            'Invalid value: "-1": must be greater than or equal to 0',
        ),
    }
    template = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "q-deploy"},
        "spec": {
            "selector": {"matchLabels": {"app": "q"}},
            "template": {
                "metadata": {"labels": {"app": "q"}},
                "spec": _with_resources("x", {"requests": {"memory": "4Gb"}})["spec"],
            },
        },
    }
    msg = assert_status(
        raw("POST", "/apis/apps/v1/namespaces/default/deployments", template), 400, "BadRequest"
    )
    assert "quantities must match the regular expression" in msg


def test_resource_quota_admission_and_usage(raw: Raw, sandbox: Sandbox) -> None:

    raw("POST", "/api/v1/namespaces", {"metadata": {"name": "quota-tests"}})
    base = "/api/v1/namespaces/quota-tests"
    status, _, _ = raw(
        "POST",
        base + "/resourcequotas",
        {"metadata": {"name": "small"}, "spec": {"hard": {"pods": "2", "requests.memory": "1Gi"}}},
    )
    assert status == 201

    def pod(name: str, memory: str | None) -> dict[str, Any]:
        c: dict[str, Any] = {"name": "c", "image": "busybox:1"}
        if memory:
            c["resources"] = {"requests": {"memory": memory}}
        return {"metadata": {"name": name}, "spec": {"containers": [c]}}

    msg = assert_status(raw("POST", base + "/pods", pod("bare", None)), 403, "Forbidden")
    assert (
        msg == 'pods "bare" is forbidden: failed quota: small: must specify requests.memory for: c'
    )
    for name in ("a", "b"):
        status, _, doc = raw("POST", base + "/pods", pod(name, "512Mi"))
        assert status == 201, doc
    msg = assert_status(raw("POST", base + "/pods", pod("c", "512Mi")), 403, "Forbidden")
    assert msg == (
        'pods "c" is forbidden: exceeded quota: small, requested: pods=1,requests.memory=512Mi, '
        "used: pods=2,requests.memory=1Gi, limited: pods=2,requests.memory=1Gi"
    )
    used = eventually(
        lambda: (
            (raw("GET", base + "/resourcequotas/small")[2].get("status") or {}).get("used") or {}
        ),
        10,
        message="the quota's status.used counting pods a and b",
        until=lambda used: used == {"pods": "2", "requests.memory": "1Gi"},
    )
    assert used == {"pods": "2", "requests.memory": "1Gi"}
    raw("DELETE", base + "/pods/a?gracePeriodSeconds=0")
    # retried: the quota's usage follows the delete a moment later
    status, _, doc = eventually(
        lambda: raw("POST", base + "/pods", pod("c", "512Mi")),
        10,
        0.1,
        "pod c admitted (201) once pod a's share of the quota is freed",
        until=lambda answer: answer[0] == 201,
    )
    assert status == 201, doc


GARBAGE: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b"42",
    b'"text"',
    b"{}",
    b'{"metadata": null}',
    b'{"metadata": []}',
    b'{"metadata": [1]}',
    b'{"metadata": "x", "spec": []}',
    b'{"metadata": {"name": 7}}',
    b'{"metadata": {"name": "x", "labels": {"a": 1}}}',
    b'{"spec": "nope", "metadata": {"name": "x"}}',
    b'{"status": {"conditions": "x"}, "metadata": {"name": "x"}}',
    b'[{"op": "remove", "path": "/metadata"}]',
    b'[{"op": "replace", "path": "/spec/replicas", "value": -1}]',
    b"- a\n- b\n",
    b"a: [b",
    b"\x00\x01\x02",
    b'{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "g", "finalizers": "x"}}',
    b'{"metadata": {"name": "target", "ownerReferences": "x", "resourceVersion": 5}}',
    b'{"metadata": {"name": "target"}, "data": {"a": 1}, "spec": {"selector": "x"}}',
    b'{"metadata": {"name": "target"}, "spec": {"template": {"spec": {"containers": [7]}}}}',
    b'{"metadata": {"name": "target"}, "spec": {"replicas": 1e400}}',
    b'{"metadata": {"name": "target", "labels": {"' + b"k" * 300 + b'": "v"}}}',
    b'{"spec": {"resourceAttributes": "x"}}',
    b'{"spec": {"resourceAttributes": {"verb": 5}}}',
    b'{"spec": {"request": "%%%", "signerName": "x"}, "metadata": {"name": "c"}}',
    b'{"spec": {"request": "aGVsbG8=", "signerName": "x", "usages": ["a"]},'
    b' "metadata": {"name": "c2"}}',
]
CONTENT_TYPES = [
    "application/json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
]


def test_garbage_never_gets_a_500(raw: Raw) -> None:
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "target"}})
    raw(
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "metadata": {"name": "target"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    targets = [
        ("POST", "/api/v1/namespaces/default/configmaps"),
        ("PUT", "/api/v1/namespaces/default/configmaps/target"),
        ("PATCH", "/api/v1/namespaces/default/configmaps/target?fieldManager=fuzz"),
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/target?fieldManager=fuzz"),
        ("PUT", "/apis/apps/v1/namespaces/default/deployments/target/status"),
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/target/status?fieldManager=f"),
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/target/scale"),
        ("PUT", "/apis/apps/v1/namespaces/default/deployments/target/scale"),
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
        ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews"),
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews"),
        ("DELETE", "/api/v1/namespaces/default/configmaps/absent"),
        ("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests"),
    ]
    for method, path in targets:
        for ctype in CONTENT_TYPES if method == "PATCH" else ["application/json"]:
            for body in GARBAGE:
                status, _, doc = raw(method, path, raw=body, content_type=ctype)
                assert status < 500, (method, path, ctype, body, doc)
                if status >= 400:
                    assert isinstance(doc, dict) and doc.get("kind") == "Status", doc
    status, _, doc = raw("GET", "/api/v1/namespaces/default/configmaps/target")
    assert status == 200, doc


def test_odd_query_parameters_never_get_a_500_or_hang(raw: Raw) -> None:
    queries = [
        "watch=true&timeoutSeconds=-1",
        "watch=true&timeoutSeconds=1&resourceVersion=99999999999",
        "watch=true&timeoutSeconds=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
        "watch=1&timeoutSeconds=abc",
        "limit=-5",
        "limit=1&continue=garbage",
        "labelSelector=!!!",
        "labelSelector=a%3D%3D%3Db",
        "fieldSelector=a",
        "fieldSelector=metadata.name%3D%3Dx,metadata.namespace!%3Dy",
        "resourceVersion=abc",
        "pretty=true&includeObject=Object",
    ]
    for q in queries:
        for path in ("/api/v1/namespaces/default/pods", "/api/v1/pods", "/api/v1/namespaces"):
            status, _, doc = raw("GET", f"{path}?{q}")
            assert status < 500, (path, q, doc)
    for q in ("tailLines=abc", "sinceSeconds=-3", "sinceTime=yesterday", "container=nope"):
        status, _, doc = raw("GET", f"/api/v1/namespaces/default/pods/absent/log?{q}")
        assert status in (400, 404, 422), (q, doc)
    for path in (
        "/api/v1/namespaces/default/pods/%2F",
        "/api/v1/namespaces//pods",
        "/api/v1/namespaces/default/pods/a%00b",
        "/apis//v1/x",
        "/api/v1/namespaces/default/pods/x/portforward?ports=abc",
    ):
        status, _, doc = raw("GET", path)
        assert 400 <= status < 500, (path, doc)
