"""manifests.render: valid Kubernetes objects, names, labels, the upstream traps fixed,
and launch scripts that do what the server pod needs."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kubernetes_validate
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from arkouda_k8s import manifests
from arkouda_k8s.credentials import Credentials
from arkouda_k8s.errors import SpecError
from arkouda_k8s.manifests import PLACEHOLDER, names, render, selector
from arkouda_k8s.spec import ClusterSpec, Persistence

K8S_VERSION = kubernetes_validate.latest_version()

FULL = ClusterSpec(
    name="full",
    namespace="team",
    locales=3,
    metrics=True,
    persistence=Persistence("/mnt/arkouda", "/arkouda-files"),
    labels={"team": "analytics"},
    annotations={"sandbox.arkouda-k8s.dev/start-delay-seconds": "1"},
    node_selector={"disk": "ssd"},
    tolerations=[
        {"key": "dedicated", "operator": "Equal", "value": "arkouda", "effect": "NoSchedule"}
    ],
    image_pull_secrets=["registry-creds"],
    service_account="arkouda-runner",
)

SPECS = {
    "udp-1": ClusterSpec(namespace="team", locales=1),
    "udp-2": ClusterSpec(namespace="team", locales=2),
    "udp-4": ClusterSpec(namespace="team", locales=4),
    "udp-64": ClusterSpec(namespace="team", locales=64, cpu="4", memory="16Gi"),
    "smp": ClusterSpec(namespace="team", mode="smp", locales=4),
    "smp-metrics": ClusterSpec(namespace="team", mode="smp", metrics=True),
    "full": FULL,
}


@pytest.fixture(scope="module")
def creds() -> dict[str, Credentials]:
    return {key: Credentials.generate(spec) for key, spec in SPECS.items()}


def _by_kind(objs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


# -- schema validity --------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(SPECS))
@pytest.mark.parametrize("with_credentials", [False, True], ids=["placeholders", "credentials"])
def test_every_object_validates_strictly(key, with_credentials, creds):
    spec = SPECS[key]
    c = creds[key].with_certificate(b"-----BEGIN CERTIFICATE-----") if with_credentials else None
    objs = render(spec, c, include_namespace=True)
    for obj in objs:
        # Plain JSON, what kubectl apply takes.
        assert json.loads(json.dumps(obj)) == obj
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_wrong_field():
    pod = render(SPECS["udp-2"])[-1]
    pod["spec"]["containers"][0]["envFrom"] = "nonsense"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


# -- names, labels, order ---------------------------------------------------------------------


def test_udp_objects_in_apply_order():
    kinds = [o["kind"] for o in render(SPECS["udp-4"], include_namespace=True)]
    assert kinds == [
        "Namespace",
        "Secret",
        "Secret",
        "Secret",
        "Role",
        "RoleBinding",
        "CertificateSigningRequest",
        "ConfigMap",
        "Service",
        "Service",
        "Deployment",
        "Pod",
    ]


def test_smp_is_one_pod_without_ssh_tls_or_rbac():
    objs = render(SPECS["smp"])
    assert [o["kind"] for o in objs] == ["Secret", "ConfigMap", "Pod"]
    pod = objs[-1]
    c = pod["spec"]["containers"][0]
    assert c["image"] == "bearsrus/arkouda-smp-server:v2023.05.05"
    assert _env(c)["NUMLOCALES"]["value"] == "4"
    assert "K8S_HOST" not in _env(c)
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"launch"}
    assert not any(a.startswith("--ExternalIntegration") for a in c["args"])
    script = objs[1]["data"]["start-arkouda-server.sh"]
    assert "sshd" not in script and 'exec arkouda_server -nl "$NUMLOCALES" "$@"' in script


def test_names_are_prefixed_so_instances_share_a_namespace():
    a = render(ClusterSpec(name="alpha", namespace="team"))
    b = render(ClusterSpec(name="beta", namespace="team"))
    keys_a = {(o["kind"], o["metadata"]["name"]) for o in a}
    keys_b = {(o["kind"], o["metadata"]["name"]) for o in b}
    assert not keys_a & keys_b
    assert all(name.startswith("alpha-") or name == "arkouda-k8s-team-alpha" for _, name in keys_a)
    assert ("CertificateSigningRequest", "arkouda-k8s-team-alpha") in keys_a


def test_names_match_the_rendered_objects():
    n = names(FULL)
    objs = _by_kind(render(FULL))
    for kind, name in [
        ("Secret", n.ssh_secret),
        ("Secret", n.tls_secret),
        ("Secret", n.token_secret),
        ("Role", n.role),
        ("RoleBinding", n.role_binding),
        ("CertificateSigningRequest", n.csr),
        ("ConfigMap", n.launch_config),
        ("Service", n.ssh_service),
        ("Service", n.headless_service),
        ("Service", n.metrics_exporter_service),
        ("Deployment", n.locale_deployment),
        ("Pod", n.server_pod),
    ]:
        assert (kind, name) in objs
    assert n.self_service == "full-arkouda"
    assert n.csr == "arkouda-k8s-team-full"
    assert n.user == "arkouda-k8s:team:full"


def test_longest_name_gives_valid_object_names():
    spec = ClusterSpec(name="a" * 47, namespace="n" * 63)
    for obj in render(spec, include_namespace=True):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        if obj["kind"] == "Service":
            assert len(obj["metadata"]["name"]) <= 63


def _parse_selector(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(","))


def test_standard_labels_everywhere_and_selectors_match():
    spec = FULL
    for obj in render(spec):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "arkouda"
        assert labels["app.kubernetes.io/instance"] == "full"
        assert labels["app.kubernetes.io/managed-by"] == "arkouda-k8s"
        assert labels["app.kubernetes.io/component"] in {
            "server",
            "locale",
            "credentials",
            "rbac",
            "config",
            "metrics",
        }
        assert labels["team"] == "analytics"
        assert _parse_selector(selector(spec)).items() <= labels.items()
    objs = _by_kind(render(spec))
    pod_labels = objs[("Pod", "full-server")]["metadata"]["labels"]
    assert _parse_selector(selector(spec, "server")).items() <= pod_labels.items()
    template = objs[("Deployment", "full-locale")]["spec"]["template"]["metadata"]["labels"]
    assert _parse_selector(selector(spec, "locale")).items() <= template.items()
    assert not _parse_selector(selector(spec, "server")).items() <= template.items()
    # Services select the pods of their own instance and component only.
    ssh = objs[("Service", "full-server")]["spec"]["selector"]
    assert ssh.items() <= pod_labels.items() and not ssh.items() <= template.items()


def test_namespace_object_is_not_tied_to_an_instance():
    ns = render(FULL, include_namespace=True)[0]
    assert ns["kind"] == "Namespace" and ns["metadata"]["name"] == "team"
    assert "app.kubernetes.io/instance" not in ns["metadata"]["labels"]


def test_render_needs_a_namespace():
    with pytest.raises(SpecError) as err:
        render(ClusterSpec())
    assert err.value.field == "namespace"


# -- the container contract and the upstream traps -----------------------------------------


def test_server_container_contract():
    spec = ClusterSpec(name="demo", namespace="team", locales=4, memory="4Gi", cpu="2")
    pod = _by_kind(render(spec))[("Pod", "demo-server")]
    assert pod["spec"]["restartPolicy"] == "Never"
    c = pod["spec"]["containers"][0]
    assert c["name"] == "arkouda-server"
    assert c["image"] == "bearsrus/arkouda-udp-server:v2023.05.05"
    assert c["command"] == ["sh", "/opt/arkouda/start-arkouda-server.sh"]
    assert "--ServerPort=5555" in c["args"]
    assert "--authenticate=true" in c["args"]
    assert "--logLevel=LogLevel.INFO" in c["args"]
    assert "--memTrack=true" in c["args"]
    env = _env(c)
    assert env["NUMLOCALES"]["value"] == "4"
    assert env["MY_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["CERT_FILE"]["value"] == "/etc/ssl/arkouda/tls.crt"
    assert env["KEY_FILE"]["value"] == "/etc/ssl/arkouda/tls.key"
    assert env["POD_METHOD"]["value"] == "GET_POD_IPS"
    assert env["APP_NAME"]["value"] == "demo-locale"
    assert env["EXTERNAL_SERVICE_PORT"]["value"] == "5555"
    assert env["CHPL_RT_NUM_THREADS_PER_LOCALE"]["value"] == "2"
    port = c["ports"][0]
    assert (port["name"], port["containerPort"]) == ("arkouda", 5555)
    assert c["readinessProbe"]["tcpSocket"]["port"] == 5555
    assert c["resources"]["requests"] == c["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[mounts["/etc/ssl/arkouda"]]["secret"]["secretName"] == "demo-tls"
    assert volumes[mounts["/home/ubuntu/ssh-keys"]]["secret"]["secretName"] == "demo-ssh"
    assert volumes[mounts["/opt/arkouda"]]["configMap"]["name"] == "demo-launch"


def test_upstream_traps_are_fixed():
    a = ClusterSpec(name="alpha", namespace="team", memory="1024Mi")
    b = ClusterSpec(name="beta", namespace="team")
    objs = _by_kind(render(a))
    env = _env(objs[("Pod", "alpha-server")]["spec"]["containers"][0])
    # In-cluster API address, not a host-only one.
    assert env["K8S_HOST"]["value"] == "https://kubernetes.default.svc"
    # Each instance registers its own service.
    env_b = _env(_by_kind(render(b))[("Pod", "beta-server")]["spec"]["containers"][0])
    assert env["EXTERNAL_SERVICE_NAME"]["value"] == "alpha-arkouda"
    assert env_b["EXTERNAL_SERVICE_NAME"]["value"] == "beta-arkouda"
    # Services live in the instance's namespace.
    for obj in objs.values():
        if obj["kind"] != "CertificateSigningRequest":
            assert obj["metadata"]["namespace"] == "team"
    # memMax is derived below the memory limit.
    args = objs[("Pod", "alpha-server")]["spec"]["containers"][0]["args"]
    mem_max = int(next(x for x in args if x.startswith("--memMax=")).split("=")[1])
    assert 0 < mem_max < 1024 * 2**20
    assert mem_max == a.effective_mem_max
    # The token comes from the instance's Secret.
    ref = env["ARKOUDA_SERVER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "alpha-token", "key": "token"}
    # Persistence is off unless asked for.
    assert not any("hostPath" in v for v in objs[("Pod", "alpha-server")]["spec"]["volumes"])


@pytest.mark.parametrize("locales", [1, 2, 4, 64])
def test_locale_deployment_has_total_minus_one_replicas(locales):
    spec = ClusterSpec(namespace="team", locales=locales)
    objs = _by_kind(render(spec))
    dep = objs[("Deployment", "arkouda-locale")]
    assert dep["spec"]["replicas"] == locales - 1
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["name"] == "arkouda-locale"
    assert c["command"] == ["sh", "/opt/arkouda/start-arkouda-locale.sh"]
    assert c["image"] == spec.server_image
    assert c["ports"] == [{"name": "ssh", "containerPort": 22, "protocol": "TCP"}]
    server = objs[("Pod", "arkouda-server")]["spec"]["containers"][0]
    assert _env(server)["NUMLOCALES"]["value"] == str(locales)


def test_role_is_namespaced_least_privilege_for_the_certificate_user(creds):
    spec = SPECS["udp-2"]
    objs = _by_kind(render(spec, creds["udp-2"]))
    role = objs[("Role", "arkouda-server")]
    rules = {tuple(r["resources"]): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        ("pods",): {"get", "list", "watch"},
        ("services", "endpoints"): {"get", "list", "watch", "create", "delete", "update"},
    }
    assert all(r["apiGroups"] == [""] for r in role["rules"])
    binding = objs[("RoleBinding", "arkouda-server")]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "arkouda-server",
    }
    (subject,) = binding["subjects"]
    csr = objs[("CertificateSigningRequest", "arkouda-k8s-team-arkouda")]
    request = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
    cn = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert subject == {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": cn}
    assert csr["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client"
    assert csr["spec"]["usages"] == ["digital signature", "key encipherment", "client auth"]
    assert "namespace" not in csr["metadata"]
    assert not any(o["kind"].startswith("Cluster") for o in objs.values())


def test_secrets_placeholders_and_real_data(creds):
    spec = SPECS["udp-2"]
    placeholder = _by_kind(render(spec))
    for name in ("arkouda-ssh", "arkouda-tls", "arkouda-token"):
        secret = placeholder[("Secret", name)]
        assert "data" not in secret
        assert set(secret["stringData"].values()) == {PLACEHOLDER}
    assert placeholder[("Secret", "arkouda-tls")]["type"] == "kubernetes.io/tls"
    c = creds["udp-2"]
    real = _by_kind(render(spec, c))
    ssh = real[("Secret", "arkouda-ssh")]["data"]
    assert base64.b64decode(ssh["id_rsa"]) == c.ssh_private_key
    assert base64.b64decode(ssh["id_rsa.pub"]) == c.ssh_public_key
    assert base64.b64decode(real[("Secret", "arkouda-token")]["data"]["token"]).decode() == c.token
    # Before the CSR is approved the TLS Secret holds the key and a placeholder cert.
    tls = real[("Secret", "arkouda-tls")]
    assert base64.b64decode(tls["data"]["tls.key"]) == c.tls_key
    assert tls["stringData"] == {"tls.crt": PLACEHOLDER}
    approved = _by_kind(render(spec, c.with_certificate(b"CERT PEM")))[("Secret", "arkouda-tls")]
    assert base64.b64decode(approved["data"]["tls.crt"]) == b"CERT PEM"
    assert "stringData" not in approved


def test_credentials_of_another_instance_are_refused(creds):
    with pytest.raises(SpecError):
        render(SPECS["udp-2"].replace(name="other"), creds["udp-2"])


def test_pod_settings_reach_server_and_locale_pods():
    objs = _by_kind(render(FULL))
    pod = objs[("Pod", "full-server")]
    template = objs[("Deployment", "full-locale")]["spec"]["template"]
    for meta, podspec in ((pod["metadata"], pod["spec"]), (template["metadata"], template["spec"])):
        assert meta["annotations"]["sandbox.arkouda-k8s.dev/start-delay-seconds"] == "1"
        assert meta["labels"]["team"] == "analytics"
        assert podspec["nodeSelector"] == {"disk": "ssd"}
        assert podspec["tolerations"][0]["key"] == "dedicated"
        assert podspec["imagePullSecrets"] == [{"name": "registry-creds"}]
        assert podspec["serviceAccountName"] == "arkouda-runner"
        host = [v for v in podspec["volumes"] if "hostPath" in v]
        assert host[0]["hostPath"]["path"] == "/mnt/arkouda"
    assert template["metadata"]["labels"]["app"] == "full-locale"
    # No service account given: no token mounted (the server uses its certificate).
    plain = render(SPECS["udp-2"])[-1]["spec"]
    assert plain["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in plain


def test_metrics_exporter_when_on():
    objs = _by_kind(render(FULL))
    pod = objs[("Pod", "full-server")]
    names_ = [c["name"] for c in pod["spec"]["containers"]]
    assert names_ == ["arkouda-server", "prometheus-arkouda-exporter"]
    args = pod["spec"]["containers"][0]["args"]
    assert (
        "--ServerDaemon.daemonTypes=ServerDaemonType.INTEGRATION,ServerDaemonType.METRICS" in args
    )
    svc = objs[("Service", "full-metrics-exporter")]
    assert svc["spec"]["ports"][0]["port"] == 5080
    assert svc["metadata"]["labels"]["app.kubernetes.io/component"] == "metrics"
    off = _by_kind(render(SPECS["udp-2"]))
    assert ("Service", "arkouda-metrics-exporter") not in off
    assert len(off[("Pod", "arkouda-server")]["spec"]["containers"]) == 1


def test_spec_annotation_gives_the_spec_back():
    pod = render(FULL)[-1]
    data = json.loads(pod["metadata"]["annotations"][manifests.SPEC_ANNOTATION])
    assert ClusterSpec.from_dict(data) == FULL


# -- the launch scripts, run for real against a fake API server -----------------------------


def test_launch_scripts_are_valid_sh():
    for spec in (SPECS["udp-2"], SPECS["smp"]):
        for name, script in manifests.launch_config(spec)["data"].items():
            result = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
            assert result.returncode == 0, (name, result.stderr)


def _cert(subject: str, key, issuer_key, issuer_name=None, *, ca=False, ip=None):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


class _FakeApi:
    """An HTTPS endpoint on 127.0.0.1 that requires the instance's client certificate,
    lists locale pods (a new one appears on the second call) and records DELETEs."""

    def __init__(self, ca_key, ca_cert, workdir: Path, *, status: int = 200) -> None:
        self.selectors: list[str] = []
        self.deletes: list[str] = []
        self.users: list[str] = []
        self.status = status
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert("127.0.0.1", key, ca_key, ca_cert.subject, ip="127.0.0.1")
        (workdir / "srv.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (workdir / "srv.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(workdir / "ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(str(workdir / "srv.crt"), str(workdir / "srv.key"))
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _user(self) -> None:
                peer = self.connection.getpeercert()
                api.users.append(dict(x[0] for x in peer["subject"])["commonName"])

            def do_GET(self):
                self._user()
                url = urllib.parse.urlparse(self.path)
                assert url.path == "/api/v1/namespaces/team/pods"
                api.selectors.append(urllib.parse.parse_qs(url.query)["labelSelector"][0])
                if api.status != 200:
                    self.send_response(api.status)
                    self.end_headers()
                    return
                pods = [_pod("127.0.0.12", "Running")]
                if len(api.selectors) > 1:
                    pods += [
                        _pod("127.0.0.11", "Running"),
                        _pod("127.0.0.13", "Pending"),
                        _pod("127.0.0.14", "Running", deleting=True),
                    ]
                body = json.dumps({"kind": "PodList", "items": pods}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_DELETE(self):
                self._user()
                api.deletes.append(self.path)
                found = self.path.endswith("/services/demo-arkouda")
                self.send_response(200 if found else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _pod(ip: str, phase: str, deleting: bool = False) -> dict:
    meta: dict = {"name": f"pod-{ip}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "podIP": ip}}


@pytest.fixture
def pod_world() -> Iterator[dict]:
    """A fake pod: mounts on tmpfs (/dev/shm), a fake sudo and arkouda_server on PATH."""
    spec = ClusterSpec(name="demo", namespace="team", locales=3, metrics=True)
    creds = Credentials.generate(spec)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = Path(tempfile.mkdtemp(prefix="arkouda-k8s-test-", dir=shm))
    os.chmod(work, 0o700)
    try:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _cert("test-ca", ca_key, ca_key, ca=True)
        (work / "ca").mkdir()
        (work / "ca" / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        (work / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        # Sign the instance's own CSR, as the cluster would on approval.
        csr = x509.load_pem_x509_csr(creds.csr)
        cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        leaf = _cert(str(cn), _KeyOf(csr), ca_key, ca_cert.subject)
        objs = _by_kind(
            render(spec, creds.with_certificate(leaf.public_bytes(serialization.Encoding.PEM)))
        )
        for secret_name, subdir in (("demo-tls", "tls"), ("demo-ssh", "ssh-keys")):
            (work / subdir).mkdir()
            for key, value in objs[("Secret", secret_name)]["data"].items():
                (work / subdir / key).write_bytes(base64.b64decode(value))
        (work / "bin").mkdir()
        (work / "bin" / "sudo").write_text('#!/bin/sh\necho "sudo $*" >> "$HOME/sudo.log"\n')
        (work / "bin" / "arkouda_server").write_text(
            '#!/bin/sh\necho "ARGS $*"\necho "SSH_SERVERS=$SSH_SERVERS"\n'
            'echo "GASNET_MASTERIP=$GASNET_MASTERIP"\n'
        )
        for f in (work / "bin").iterdir():
            f.chmod(0o700)
        (work / "home").mkdir()
        api = _FakeApi(ca_key, ca_cert, work)
        yield {"spec": spec, "creds": creds, "objs": objs, "work": work, "api": api}
        api.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _KeyOf:
    """Adapter: the certificate builder wants an object with public_key()."""

    def __init__(self, csr: x509.CertificateSigningRequest) -> None:
        self._csr = csr

    def public_key(self):
        return self._csr.public_key()


def _run_server_script(world: dict, extra_env: dict[str, str] | None = None):
    work: Path = world["work"]
    pod = world["objs"][("Pod", "demo-server")]
    container = pod["spec"]["containers"][0]
    script = work / "start-arkouda-server.sh"
    script.write_text(
        world["objs"][("ConfigMap", "demo-launch")]["data"]["start-arkouda-server.sh"]
    )
    env = {"PATH": f"{work / 'bin'}:{os.environ['PATH']}", "HOME": str(work / "home")}
    remap = {
        "/etc/ssl/arkouda": str(work / "tls"),
        "/home/ubuntu/ssh-keys": str(work / "ssh-keys"),
        "/etc/ssl/kubernetes-ca": str(work / "ca"),
    }
    for e in container["env"]:
        if "value" in e:
            value = e["value"]
            for mount, local in remap.items():
                value = value.replace(mount, local)
            env[e["name"]] = value
        elif "fieldRef" in e["valueFrom"]:
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            env[e["name"]] = {"status.podIP": "127.0.0.10", "metadata.namespace": "team"}[path]
        else:
            env[e["name"]] = world["creds"].token
    env["K8S_HOST"] = world["api"].url
    env.update(extra_env or {})
    assert container["command"][0] == "sh"
    return subprocess.run(
        ["sh", str(script), *container["args"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_server_script_finds_locales_and_execs_the_server(pod_world):
    result = _run_server_script(pod_world)
    assert result.returncode == 0, result.stderr
    api = pod_world["api"]
    spec = pod_world["spec"]
    lines = result.stdout.splitlines()
    # Waited until both locale pods were Running; skipped the Pending and deleted ones.
    assert len(api.selectors) == 2
    assert set(api.selectors) == {selector(spec, "locale")}
    assert "SSH_SERVERS=127.0.0.10 127.0.0.11 127.0.0.12 " in lines
    assert "GASNET_MASTERIP=127.0.0.10" in lines
    args_line = next(x for x in lines if x.startswith("ARGS "))
    assert args_line.split()[1:] == ["-nl", "3", *manifests.server_args(spec)]
    # The stale self-registered services were removed before the start.
    assert "/api/v1/namespaces/team/services/demo-arkouda" in api.deletes
    assert "/api/v1/namespaces/team/endpoints/demo-metrics" in api.deletes
    # It acted as the certificate's user, verifying the API with the cluster CA.
    assert set(api.users) == {"arkouda-k8s:team:demo"}
    # SSH keys installed privately.
    ssh = pod_world["work"] / "home" / ".ssh"
    assert (ssh / "id_rsa").read_bytes() == pod_world["creds"].ssh_private_key
    assert (ssh / "authorized_keys").read_bytes() == pod_world["creds"].ssh_public_key
    assert (ssh / "id_rsa").stat().st_mode & 0o077 == 0
    assert "sshd" in (pod_world["work"] / "home" / "sudo.log").read_text()


def test_server_script_gives_up_with_a_reason(pod_world):
    pod_world["api"].status = 403
    result = _run_server_script(pod_world, {"LOCALE_WAIT_SECONDS": "0"})
    assert result.returncode == 1
    assert "found 0 of 2 locale pods" in result.stderr
    assert "403" in result.stderr
    assert "ARGS" not in result.stdout


def test_locale_script_installs_keys_and_stops_on_sigterm(pod_world):
    work: Path = pod_world["work"]
    script = work / "start-arkouda-locale.sh"
    script.write_text(
        pod_world["objs"][("ConfigMap", "demo-launch")]["data"]["start-arkouda-locale.sh"]
    )
    env = {
        "PATH": f"{work / 'bin'}:{os.environ['PATH']}",
        "HOME": str(work / "home"),
        "SSH_KEYS_DIR": str(work / "ssh-keys"),
    }
    proc = subprocess.Popen(["sh", str(script)], env=env)
    try:
        authorized = work / "home" / ".ssh" / "authorized_keys"
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=10)
        while not (work / "home" / "sudo.log").exists():
            assert datetime.datetime.now() < deadline, "locale script did not start sshd"
            assert proc.poll() is None, "locale script exited"
            threading.Event().wait(0.05)
        assert authorized.read_bytes() == pod_world["creds"].ssh_public_key
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
