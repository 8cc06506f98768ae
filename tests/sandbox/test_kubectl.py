"""kubectl 1.32 works against the sandbox unmodified.

Skipped, loudly, only when there is no kubectl on the machine.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import eventually

pytestmark = pytest.mark.kubectl

MANIFEST = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Namespace
    metadata:
      name: kubectl-tests
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: launch
      namespace: kubectl-tests
      labels: {app.kubernetes.io/name: arkouda, app.kubernetes.io/instance: k1}
    data:
      NUMLOCALES: "2"
    ---
    apiVersion: v1
    kind: Secret
    metadata:
      name: token
      namespace: kubectl-tests
      labels: {app.kubernetes.io/name: arkouda, app.kubernetes.io/instance: k1}
    stringData:
      token: not-a-real-token
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata:
      name: k1-server
      namespace: kubectl-tests
    rules:
    - apiGroups: [""]
      resources: [services, endpoints]
      verbs: [create, get, delete]
    ---
    apiVersion: v1
    kind: Service
    metadata:
      name: k1-headless
      namespace: kubectl-tests
      labels: {app.kubernetes.io/name: arkouda, app.kubernetes.io/instance: k1}
    spec:
      clusterIP: None
      selector: {app: k1-locale}
      ports: [{name: ssh, port: 22}]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: k1-locale
      namespace: kubectl-tests
      labels: {app.kubernetes.io/name: arkouda, app.kubernetes.io/instance: k1}
    spec:
      replicas: 0
      selector: {matchLabels: {app: k1-locale}}
      template:
        metadata: {labels: {app: k1-locale}}
        spec:
          containers:
          - name: arkouda-locale
            image: bearsrus/arkouda-udp-server:v2023.05.05
            ports: [{containerPort: 22}]
    """
)


def run(
    kubectl: str, env: dict[str, str], *args: str, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, timeout=60)
    if ok:
        assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
    return proc


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "arkouda.yaml"
    path.write_text(MANIFEST)
    return path


def test_get_namespaces_and_api_resources(kubectl: str, kubectl_env: dict[str, str]) -> None:
    out = run(kubectl, kubectl_env, "get", "ns").stdout
    assert out.split("\n")[0].split() == ["NAME", "STATUS", "AGE"]
    assert {"default", "kube-system", "kube-public"} <= {
        line.split()[0] for line in out.strip().split("\n")[1:]
    }
    resources = run(kubectl, kubectl_env, "api-resources").stdout
    rows = {line.split()[0]: line.split() for line in resources.strip().split("\n")[1:]}
    assert rows["pods"][1] == "po" and rows["deployments"][1] == "deploy"
    assert rows["certificatesigningrequests"][1] == "csr"
    assert "selfsubjectaccessreviews" in rows
    explained = run(kubectl, kubectl_env, "explain", "deployment.spec.strategy").stdout
    assert "KIND:       Deployment" in explained and "rollingUpdate" in explained


def test_server_side_apply_twice_is_idempotent_then_delete(
    kubectl: str, kubectl_env: dict[str, str], manifest: Path
) -> None:
    first = run(kubectl, kubectl_env, "apply", "--server-side", "-f", str(manifest))
    assert "namespace/kubectl-tests serverside-applied" in first.stdout
    assert "deployment.apps/k1-locale serverside-applied" in first.stdout
    rv_before = run(
        kubectl,
        kubectl_env,
        "get",
        "cm",
        "launch",
        "-n",
        "kubectl-tests",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ).stdout
    second = run(kubectl, kubectl_env, "apply", "--server-side", "-f", str(manifest))
    assert second.stdout.count("serverside-applied") == 6 and not second.stderr.strip()
    rv_after = run(
        kubectl,
        kubectl_env,
        "get",
        "cm",
        "launch",
        "-n",
        "kubectl-tests",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ).stdout
    assert rv_before == rv_after  # nothing changed, nothing was written

    labelled = run(
        kubectl,
        kubectl_env,
        "get",
        "cm,secret,svc,deploy",
        "-n",
        "kubectl-tests",
        "-l",
        "app.kubernetes.io/instance=k1",
        "-o",
        "name",
    ).stdout.split()
    assert sorted(labelled) == [
        "configmap/launch",
        "deployment.apps/k1-locale",
        "secret/token",
        "service/k1-headless",
    ]
    secret = yaml.safe_load(
        run(
            kubectl, kubectl_env, "get", "secret", "token", "-n", "kubectl-tests", "-o", "yaml"
        ).stdout
    )
    assert secret["data"]["token"] and "stringData" not in secret

    deleted = run(
        kubectl,
        kubectl_env,
        "delete",
        "deploy,cm,secret,svc",
        "-n",
        "kubectl-tests",
        "-l",
        "app.kubernetes.io/instance=k1",
    )
    assert 'deployment.apps "k1-locale" deleted' in deleted.stdout
    assert 'configmap "launch" deleted' in deleted.stdout
    gone = run(kubectl, kubectl_env, "get", "deploy", "k1-locale", "-n", "kubectl-tests", ok=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    run(kubectl, kubectl_env, "delete", "-f", str(manifest), "--ignore-not-found", "--timeout=20s")
    left = run(kubectl, kubectl_env, "get", "ns", "kubectl-tests", ok=False)
    assert left.returncode != 0 and "NotFound" in left.stderr


def test_server_side_apply_rejects_an_unknown_field(
    kubectl: str, kubectl_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: typo, namespace: default}
            data: {a: b}
            dta: {c: d}
            """
        )
    )
    proc = run(kubectl, kubectl_env, "apply", "--server-side", "-f", str(bad), ok=False)
    assert proc.returncode != 0
    assert 'unknown field "dta"' in proc.stderr
    assert run(kubectl, kubectl_env, "get", "cm", "typo", ok=False).returncode != 0


def test_create_get_yaml_label_selector_and_delete(
    kubectl: str, kubectl_env: dict[str, str], tmp_path: Path
) -> None:
    pods = tmp_path / "pods.yaml"
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"kp-{i}", "labels": {"tier": "a" if i < 2 else "b"}},
            "spec": {
                "containers": [{"name": "c", "image": "busybox:1", "command": ["sleep", "30"]}]
            },
        }
        for i in range(3)
    ]
    pods.write_text(yaml.safe_dump_all(docs))
    created = run(kubectl, kubectl_env, "create", "-f", str(pods))
    assert created.stdout.count("created") == 3
    again = run(kubectl, kubectl_env, "create", "-f", str(pods), ok=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr

    listed = run(kubectl, kubectl_env, "get", "pods", "-l", "tier=a", "-o", "name").stdout.split()
    assert listed == ["pod/kp-0", "pod/kp-1"]
    table = run(kubectl, kubectl_env, "get", "pods", "-l", "tier in (b)").stdout
    assert table.split("\n")[0].split()[:3] == ["NAME", "READY", "STATUS"]
    assert "kp-2" in table and "kp-0" not in table

    doc = yaml.safe_load(run(kubectl, kubectl_env, "get", "pod", "kp-0", "-o", "yaml").stdout)
    assert doc["kind"] == "Pod" and doc["metadata"]["labels"] == {"tier": "a"}
    assert doc["spec"]["restartPolicy"] == "Always"  # defaulted by the server

    run(kubectl, kubectl_env, "delete", "pod", "-l", "tier", "--wait=true", "--timeout=30s")
    left = run(kubectl, kubectl_env, "get", "pods", "-l", "tier", "-o", "name").stdout.split()
    assert left == []


def test_imperative_create_and_label(kubectl: str, kubectl_env: dict[str, str]) -> None:
    run(kubectl, kubectl_env, "create", "namespace", "imperative")
    run(kubectl, kubectl_env, "create", "configmap", "c", "-n", "imperative", "--from-literal=a=1")
    run(kubectl, kubectl_env, "label", "configmap", "c", "-n", "imperative", "x=y")
    got = run(
        kubectl,
        kubectl_env,
        "get",
        "cm",
        "-n",
        "imperative",
        "-l",
        "x=y",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ).stdout
    assert got == "c"
    # kinds kubectl sends as protobuf that the sandbox does not decode: a clear 415
    proc = run(
        kubectl,
        kubectl_env,
        "create",
        "deployment",
        "d",
        "-n",
        "imperative",
        "--image=busybox",
        ok=False,
    )
    assert proc.returncode != 0 and "send JSON" in proc.stderr


def test_auth_can_i_follows_rbac(kubectl: str, kubectl_env: dict[str, str], sandbox: Any) -> None:
    assert run(kubectl, kubectl_env, "auth", "can-i", "create", "pods").stdout.strip() == "yes"
    bob = dict(kubectl_env, KUBECONFIG=sandbox.kubeconfig_for_user("bob", ["team"]))
    whoami = run(kubectl, bob, "auth", "whoami").stdout
    assert "bob" in whoami and "team" in whoami
    no = run(kubectl, bob, "auth", "can-i", "list", "pods", "-n", "default", ok=False)
    assert no.stdout.strip() == "no" and no.returncode == 1
    run(
        kubectl,
        kubectl_env,
        "create",
        "rolebinding",
        "bob-view",
        "-n",
        "default",
        "--clusterrole=view",
        "--user=bob",
        ok=False,
    )  # protobuf for RoleBinding is not decoded: fall back to a manifest
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "bob-view", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "bob"}],
    }
    proc = subprocess.run(
        [kubectl, "apply", "--server-side", "-f", "-"],
        input=yaml.safe_dump(binding),
        env=kubectl_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    yes = run(kubectl, bob, "auth", "can-i", "list", "pods", "-n", "default")
    assert yes.stdout.strip() == "yes"
    assert run(kubectl, bob, "get", "pods", "-n", "default").returncode == 0
    as_bob = run(kubectl, kubectl_env, "auth", "can-i", "list", "pods", "-n", "default", "--as=bob")
    assert as_bob.stdout.strip() == "yes"  # the admin impersonates bob
    not_admin = run(kubectl, bob, "get", "pods", "--as=sandbox-admin", ok=False)
    assert 'cannot impersonate resource "users"' in not_admin.stderr
    denied = run(kubectl, bob, "get", "pods", "-n", "kube-system", ok=False)
    assert (
        'pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the '
        'namespace "kube-system"' in denied.stderr
    )


def test_wait_uses_a_field_selector_watch(
    kubectl: str, kubectl_env: dict[str, str], sandbox: Any
) -> None:
    # the condition is set by this test (not by a kubelet), so it shows the watch path alone
    run(kubectl, kubectl_env, "create", "configmap", "waited", "--from-literal=a=1")
    proc = subprocess.Popen(
        [kubectl, "wait", "--for=jsonpath={.data.ready}=yes", "configmap/waited", "--timeout=20s"],
        env=kubectl_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run(
            kubectl,
            kubectl_env,
            "patch",
            "configmap",
            "waited",
            "--type=merge",
            "-p",
            '{"data": {"ready": "yes"}}',
        )
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "condition met" in out


def test_certificate_approve_and_a_kubeconfig_with_the_issued_certificate(
    kubectl: str, kubectl_env: dict[str, str], sandbox: Any, tmp_path: Path
) -> None:
    import base64
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    user = "arkouda-k8s:default:kubectl-csr"
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    csr = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "kubectl-csr"},
        "spec": {
            "request": base64.b64encode(request).decode(),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"],
        },
    }
    manifest = tmp_path / "csr.json"
    manifest.write_text(json.dumps(csr))  # a request is public material
    run(kubectl, kubectl_env, "create", "-f", str(manifest))
    pending = run(kubectl, kubectl_env, "get", "csr", "kubectl-csr").stdout
    assert "Pending" in pending
    approved = run(kubectl, kubectl_env, "certificate", "approve", "kubectl-csr")
    assert "approved" in approved.stdout
    cert_b64 = eventually(
        lambda: (
            run(
                kubectl,
                kubectl_env,
                "get",
                "csr",
                "kubectl-csr",
                "-o",
                "jsonpath={.status.certificate}",
            ).stdout
        ),
        10,
        message="a certificate issued for the approved CSR",
    )
    assert cert_b64, "no certificate was issued within 10 s of approval"
    assert "Approved,Issued" in run(kubectl, kubectl_env, "get", "csr", "kubectl-csr").stdout

    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "csr-user", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "csr-user", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "csr-user"},
        "subjects": [{"kind": "User", "name": user}],
    }
    proc = subprocess.run(
        [kubectl, "apply", "--server-side", "-f", "-"],
        input=yaml.safe_dump_all([role, binding]),
        env=kubectl_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # the kubeconfig holds the key: the sandbox writes it to its private tmpfs directory
    path = sandbox.write_kubeconfig(
        sandbox.kubeconfig_dict(
            user=user, client_certificate=base64.b64decode(cert_b64), client_key=key_pem
        ),
        "kubeconfig-csr-user",
    )
    as_user = dict(kubectl_env, KUBECONFIG=path)
    assert "kubernetes" in run(kubectl, as_user, "get", "svc", "-o", "name").stdout
    denied = run(kubectl, as_user, "get", "pods", ok=False)
    assert f'User "{user}" cannot list resource "pods"' in denied.stderr
    assert run(kubectl, as_user, "auth", "can-i", "list", "services").stdout.strip() == "yes"
    assert (
        run(
            kubectl, as_user, "auth", "can-i", "list", "services", "-n", "kube-system", ok=False
        ).stdout.strip()
        == "no"
    )


def test_server_side_apply_conflicts_between_field_managers(
    kubectl: str, kubectl_env: dict[str, str], tmp_path: Path
) -> None:
    def manifest(value: str) -> str:
        path = tmp_path / f"cm-{value}.yaml"
        path.write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned, namespace: default}\n"
            f"data: {{x: '{value}'}}\n"
        )
        return str(path)

    run(
        kubectl, kubectl_env, "apply", "--server-side", "--field-manager=alice", "-f", manifest("1")
    )
    clash = run(
        kubectl,
        kubectl_env,
        "apply",
        "--server-side",
        "--field-manager=bob",
        "-f",
        manifest("2"),
        ok=False,
    )
    assert clash.returncode != 0
    assert 'conflict with "alice"' in clash.stderr and ".data.x" in clash.stderr
    run(
        kubectl,
        kubectl_env,
        "apply",
        "--server-side",
        "--field-manager=bob",
        "--force-conflicts",
        "-f",
        manifest("2"),
    )
    value = run(kubectl, kubectl_env, "get", "cm", "owned", "-o", "jsonpath={.data.x}").stdout
    assert value == "2"
