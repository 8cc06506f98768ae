"""manifests.render: valid Kubernetes objects, names, labels, the upstream traps fixed,
both registration modes, and launch scripts that do what the server pod needs, run over
models of the real images (tests/_support/pod_root.py, from sandbox/image_facts.yaml)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kubernetes_validate
import pytest
from _support import eventually
from cryptography import x509
from cryptography.x509.oid import NameOID

from arkouda_k8s import manifests
from arkouda_k8s.credentials import Credentials
from arkouda_k8s.errors import SpecError
from arkouda_k8s.manifests import PLACEHOLDER, names, render, selector
from arkouda_k8s.sandbox import image_facts
from arkouda_k8s.sandbox.auth import CertificateAuthority
from arkouda_k8s.spec import ClusterSpec, Persistence, parse_quantity

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
    "udp-chart": ClusterSpec(namespace="team", locales=3, registration="server"),
    "full-chart": FULL.replace(registration="server"),
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


def _kinds(spec: ClusterSpec) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in render(spec, include_namespace=True)]


def test_udp_objects_in_apply_order():
    assert _kinds(SPECS["udp-4"]) == [
        ("Namespace", "team"),
        ("Secret", "arkouda-ssh"),
        ("Secret", "arkouda-token"),
        ("ServiceAccount", "arkouda-server"),
        ("Role", "arkouda-server"),
        ("RoleBinding", "arkouda-server"),
        ("ConfigMap", "arkouda-launch"),
        ("Service", "arkouda-arkouda"),
        ("Service", "arkouda-server"),
        ("Service", "arkouda-locale-headless"),
        ("NetworkPolicy", "arkouda-network"),
        ("Deployment", "arkouda-locale"),
        ("Pod", "arkouda-server"),
    ]


def test_chart_registration_objects_in_apply_order():
    assert _kinds(SPECS["udp-chart"]) == [
        ("Namespace", "team"),
        ("Secret", "arkouda-ssh"),
        ("Secret", "arkouda-tls"),
        ("Secret", "arkouda-token"),
        ("Role", "arkouda-server"),
        ("RoleBinding", "arkouda-server"),
        ("CertificateSigningRequest", "arkouda-k8s-team-arkouda"),
        ("ConfigMap", "arkouda-launch"),
        ("Service", "arkouda-server"),
        ("Service", "arkouda-locale-headless"),
        ("NetworkPolicy", "arkouda-network"),
        ("Deployment", "arkouda-locale"),
        ("Pod", "arkouda-server"),
    ]


def test_smp_is_one_pod_without_ssh_tls_or_rbac():
    objs = render(SPECS["smp"])
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("Secret", "arkouda-token"),
        ("ConfigMap", "arkouda-launch"),
        ("Service", "arkouda-arkouda"),
        ("NetworkPolicy", "arkouda-network"),
        ("Pod", "arkouda-server"),
    ]
    pod = objs[-1]
    c = pod["spec"]["containers"][0]
    assert c["image"] == "bearsrus/arkouda-smp-server:v2023.05.05"
    assert _env(c)["NUMLOCALES"]["value"] == "4"
    assert "K8S_HOST" not in _env(c)
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"launch", "token"}
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert not any(a.startswith("--ExternalIntegration") for a in c["args"])
    script = objs[1]["data"]["start-arkouda-server.sh"]
    assert "sshd" not in script
    assert 'exec /opt/arkouda/arkouda_server -nl "$NUMLOCALES" "$@"' in script


def test_names_are_prefixed_so_instances_share_a_namespace():
    a = render(ClusterSpec(name="alpha", namespace="team"))
    b = render(ClusterSpec(name="beta", namespace="team"))
    keys_a = {(o["kind"], o["metadata"]["name"]) for o in a}
    keys_b = {(o["kind"], o["metadata"]["name"]) for o in b}
    assert not keys_a & keys_b
    assert all(name.startswith("alpha-") for _, name in keys_a)
    chart = render(ClusterSpec(name="alpha", namespace="team", registration="server"))
    keys = {(o["kind"], o["metadata"]["name"]) for o in chart}
    assert all(name.startswith("alpha-") or name == "arkouda-k8s-team-alpha" for _, name in keys)
    assert ("CertificateSigningRequest", "arkouda-k8s-team-alpha") in keys


def test_names_match_the_rendered_objects():
    n = names(FULL)
    objs = _by_kind(render(FULL.replace(registration="server")))
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


@pytest.mark.parametrize("registration", ["client", "server"])
def test_standard_labels_everywhere_and_selectors_match(registration):
    spec = FULL.replace(registration=registration)
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
            "network",
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
    spec = ClusterSpec(
        name="demo", namespace="team", locales=4, memory="4Gi", cpu="2", registration="server"
    )
    pod = _by_kind(render(spec))[("Pod", "demo-server")]
    assert pod["spec"]["restartPolicy"] == "Never"
    c = pod["spec"]["containers"][0]
    assert c["name"] == "arkouda-server"
    assert c["image"] == "bearsrus/arkouda-udp-server:v2023.05.05"
    assert c["command"] == ["sh", "/opt/arkouda-k8s/start-arkouda-server.sh"]
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
    assert volumes[mounts["/opt/arkouda-k8s"]]["configMap"]["name"] == "demo-launch"
    assert volumes[mounts["/etc/arkouda-k8s/token"]]["secret"]["secretName"] == "demo-token"


def test_upstream_traps_are_fixed():
    a = ClusterSpec(name="alpha", namespace="team", memory="1024Mi", registration="server")
    b = ClusterSpec(name="beta", namespace="team", registration="server")
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
    # The token comes from the instance's Secret, as a file.
    volumes = {v["name"]: v for v in objs[("Pod", "alpha-server")]["spec"]["volumes"]}
    assert volumes["token"]["secret"]["secretName"] == "alpha-token"
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
    assert c["command"] == ["sh", "/opt/arkouda-k8s/start-arkouda-locale.sh"]
    assert c["image"] == spec.server_image
    assert c["ports"] == [{"name": "ssh", "containerPort": 22, "protocol": "TCP"}]
    server = objs[("Pod", "arkouda-server")]["spec"]["containers"][0]
    assert _env(server)["NUMLOCALES"]["value"] == str(locales)


def test_role_is_namespaced_least_privilege_for_the_certificate_user(creds):
    spec = SPECS["udp-chart"]
    objs = _by_kind(render(spec, creds["udp-chart"]))
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
    spec = SPECS["udp-chart"]
    placeholder = _by_kind(render(spec))
    for name in ("arkouda-ssh", "arkouda-tls", "arkouda-token"):
        secret = placeholder[("Secret", name)]
        assert "data" not in secret
        assert set(secret["stringData"].values()) == {PLACEHOLDER}
    assert placeholder[("Secret", "arkouda-tls")]["type"] == "kubernetes.io/tls"
    c = creds["udp-chart"]
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


def test_credentials_without_a_csr_are_refused_for_registration_server(creds):
    """Credentials made for registration client hold no TLS key: rendering them for a
    spec that needs the certificate says so, rather than a placeholder request."""
    with pytest.raises(SpecError, match='registration="server"') as err:
        render(SPECS["udp-2"].replace(registration="server"), creds["udp-2"])
    assert err.value.field == "credentials"


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
        # The given service account runs every pod; the server's Role is bound to it.
        assert podspec["serviceAccountName"] == "arkouda-runner"
        host = [v for v in podspec["volumes"] if "hostPath" in v]
        assert host[0]["hostPath"]["path"] == "/mnt/arkouda"
    assert template["metadata"]["labels"]["app"] == "full-locale"
    assert ("ServiceAccount", "arkouda-runner") not in objs
    assert objs[("RoleBinding", "full-server")]["subjects"] == [
        {"kind": "ServiceAccount", "name": "arkouda-runner", "namespace": "team"}
    ]
    # None given: the server pod runs as its own account; nothing else gets a token.
    plain = _by_kind(render(SPECS["udp-2"]))
    server = plain[("Pod", "arkouda-server")]["spec"]
    assert server["serviceAccountName"] == "arkouda-server"
    assert server["automountServiceAccountToken"] is True
    locale = plain[("Deployment", "arkouda-locale")]["spec"]["template"]["spec"]
    assert locale["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in locale
    # Registration "server": the server uses its certificate, no pod gets a token.
    chart = render(SPECS["udp-chart"])[-1]["spec"]
    assert chart["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in chart


def test_metrics_exporter_when_on():
    objs = _by_kind(render(FULL))
    pod = objs[("Pod", "full-server")]
    names_ = [c["name"] for c in pod["spec"]["containers"]]
    assert names_ == ["arkouda-server", "prometheus-arkouda-exporter"]
    args = pod["spec"]["containers"][0]["args"]
    # METRICS alone would open no client port (ServerDaemon.chpl): DEFAULT with it.
    assert "--ServerDaemon.daemonTypes=ServerDaemonType.DEFAULT,ServerDaemonType.METRICS" in args
    chart = _by_kind(render(FULL.replace(registration="server")))[("Pod", "full-server")]
    assert (
        "--ServerDaemon.daemonTypes=ServerDaemonType.INTEGRATION,ServerDaemonType.METRICS"
        in chart["spec"]["containers"][0]["args"]
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


# -- the real images' facts (sandbox/image_facts.yaml) ---------------------------------------

UDP = image_facts.image("udp-server")
SMP = image_facts.image("smp-server")
EXPORTER = image_facts.image("exporter")
SERVER = image_facts.server()


def _containers(spec: ClusterSpec) -> list[tuple[dict, dict]]:
    """(pod spec, container) of every container of the deployment."""
    out = []
    for obj in render(spec):
        if obj["kind"] in ("Pod", "Deployment"):
            podspec = (
                obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
            )
            out += [(podspec, c) for c in podspec["containers"]]
    return out


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


@pytest.mark.parametrize("key", list(SPECS))
def test_nothing_is_mounted_over_what_the_image_keeps_in_opt_arkouda(key):
    """Item 1: /opt/arkouda holds the launcher, arkouda_server_real and dep/; a volume
    on it or above it hides them (amudprun then finds nothing to start on a locale)."""
    spec = SPECS[key]
    facts = UDP if spec.mode == "udp" else SMP
    kept = [facts["arkouda_dir"], *facts["arkouda_dir_contents"], facts["home"] + "/.local"]
    for _, c in _containers(spec):
        if c["name"] == "prometheus-arkouda-exporter":
            continue
        for m in c.get("volumeMounts") or []:
            for path in kept:
                assert not _under(path, m["mountPath"]), (c["name"], m["mountPath"], path)
        # The command's script lives in a mounted directory of its own.
        script = c["command"][1]
        assert any(_under(script, m["mountPath"]) for m in c["volumeMounts"])
        assert not _under(script, facts["arkouda_dir"])


@pytest.mark.parametrize("key", ["udp-2", "udp-chart", "smp"])
def test_the_launcher_is_called_by_its_absolute_path(key):
    """Item 2: the images' PATH holds Chapel's bin dir and the system's, not /opt/arkouda."""
    spec = SPECS[key]
    facts = UDP if spec.mode == "udp" else SMP
    assert facts["arkouda_dir"] not in [p.rstrip("/") for p in facts["path"]]
    script = manifests.launch_config(spec)["data"][manifests.SERVER_SCRIPT]
    execs = [ln.strip() for ln in script.splitlines() if ln.strip().startswith("exec ")]
    # (udp: the root stage re-runs the script as the image's user first)
    assert execs[-1:] == [f'exec {facts["launcher"]} -nl "$NUMLOCALES" "$@"']
    assert all("$0" in e for e in execs[:-1])


def test_smp_divides_memory_and_threads_among_the_locales_of_its_pod():
    """Item 3: memMax and threads are per locale (ServerConfig.chpl) and the smp locales
    share one pod: 4 locales at 4Gi / 4 CPUs get memMax * 4 below the limit, 1 thread."""
    assert SERVER["mem_max_per_locale"] is True
    spec = ClusterSpec(namespace="team", mode="smp", locales=4, memory="4Gi", cpu="4")
    c = _by_kind(render(spec))[("Pod", "arkouda-server")]["spec"]["containers"][0]
    mem_max = int(next(a for a in c["args"] if a.startswith("--memMax=")).split("=")[1])
    assert 0 < mem_max * 4 < 4 * 2**30
    assert _env(c)["CHPL_RT_NUM_THREADS_PER_LOCALE"]["value"] == "1"
    # udp: one locale per pod, the whole pod for it.
    udp = _by_kind(render(spec.replace(mode="udp")))[("Pod", "arkouda-server")]
    udp_max = int(
        next(a for a in udp["spec"]["containers"][0]["args"] if a.startswith("--memMax=")).split(
            "="
        )[1]
    )
    assert udp_max == mem_max * 4
    with pytest.raises(SpecError) as err:
        spec.replace(mem_max=2**30)  # 4 x 1 GiB is the whole 4 GiB limit
    assert "times 4 locales sharing the pod" in err.value.allowed


def test_locale_pods_are_ready_only_when_sshd_listens():
    """Item 5: discovery waits for the Ready condition, which the tcp:22 probe sets."""
    dep = _by_kind(render(SPECS["udp-4"]))[("Deployment", "arkouda-locale")]
    probe = dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["tcpSocket"]["port"] == UDP["ssh_port"]


@pytest.mark.parametrize("registration", ["client", "server"])
def test_exporter_gets_the_variables_it_reads_and_room_to_import_arkouda(registration):
    """Item 7: arkouda_metrics_exporter reads ARKOUDA_METRICS_SERVER_NAME,
    METRICS_POLLING_INTERVAL, METRICS_SCRAPE_PORT and the service host/port; it imports
    arkouda (about 95 MiB), so 128Mi OOM-kills it, for good with restartPolicy Never."""
    pod = _by_kind(render(FULL.replace(registration=registration)))[("Pod", "full-server")]
    exporter = pod["spec"]["containers"][1]
    env = {e["name"]: e["value"] for e in exporter["env"]}
    assert set(env) == set(EXPORTER["env_read"])
    assert not set(env) & set(EXPORTER["env_not_read"])
    assert env["ARKOUDA_METRICS_SERVER_NAME"] == "full"
    assert int(env["METRICS_SCRAPE_PORT"]) == EXPORTER["scrape_port"]
    assert int(env["ARKOUDA_METRICS_SERVICE_PORT"]) == SERVER["metrics_port"]
    assert exporter["ports"][0]["containerPort"] == EXPORTER["scrape_port"]
    minimum = int(parse_quantity(EXPORTER["min_memory_limit"]))
    for kind in ("requests", "limits"):
        assert int(parse_quantity(exporter["resources"][kind]["memory"])) >= minimum


@pytest.mark.parametrize("key", list(SPECS))
def test_the_token_is_never_in_an_environment(key, creds):
    """Item 10: the udp launcher copies its environment onto every locale's ssh command
    line; the server reads .arkouda/tokens.txt first (Security.chpl): a file it is."""
    assert SERVER["token_order"][0] == "tokens.txt"
    spec = SPECS[key]
    for _, c in _containers(spec):
        for e in c.get("env") or []:
            assert e["name"] != "ARKOUDA_SERVER_TOKEN"
            assert "secretKeyRef" not in e.get("valueFrom", {}), e
    pod = _by_kind(render(spec))[("Pod", names(spec).server_pod)]
    token = next(v for v in pod["spec"]["volumes"] if v["name"] == "token")
    assert token["secret"]["secretName"] == names(spec).token_secret
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "token")
    assert mount["readOnly"] is True


# -- registration "client" (default): namespace permissions only ----------------------------


def test_client_registration_needs_a_role_to_read_pods_and_nothing_more():
    objs = _by_kind(render(SPECS["udp-4"]))
    sa = objs[("ServiceAccount", "arkouda-server")]
    assert sa["metadata"]["namespace"] == "team"
    role = objs[("Role", "arkouda-server")]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    binding = objs[("RoleBinding", "arkouda-server")]
    assert binding["roleRef"]["name"] == "arkouda-server"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "arkouda-server", "namespace": "team"}
    ]
    assert not any(k.startswith("Cluster") or k == "CertificateSigningRequest" for k, _ in objs)
    assert ("Secret", "arkouda-tls") not in objs
    pod = objs[("Pod", "arkouda-server")]
    assert pod["spec"]["serviceAccountName"] == "arkouda-server"
    env = _env(pod["spec"]["containers"][0])
    assert env["CA_FILE"]["value"] == f"{manifests.SERVICE_ACCOUNT_DIR}/ca.crt"
    for registration_only in ("K8S_HOST", "CERT_FILE", "EXTERNAL_SERVICE_NAME"):
        assert registration_only not in env


@pytest.mark.parametrize("key", ["udp-4", "smp", "full"])
def test_client_registration_creates_the_servers_service_with_a_selector(key):
    spec = SPECS[key]
    objs = _by_kind(render(spec))
    n = names(spec)
    svc = objs[("Service", n.self_service)]
    pod = objs[("Pod", n.server_pod)]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    template = objs.get(("Deployment", n.locale_deployment))
    if template:
        labels_ = template["spec"]["template"]["metadata"]["labels"]
        assert not svc["spec"]["selector"].items() <= labels_.items()
    (port,) = svc["spec"]["ports"]
    assert port["port"] == spec.server_port
    assert port["targetPort"] in {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    args = pod["spec"]["containers"][0]["args"]
    assert not any("INTEGRATION" in a or "ExternalIntegration" in a for a in args)
    if spec.metrics:
        metrics = objs[("Service", n.metrics_service)]
        assert metrics["spec"]["ports"][0]["port"] == SERVER["metrics_port"]
    else:
        assert ("Service", n.metrics_service) not in objs


def test_server_registration_keeps_the_charts_objects(creds):
    objs = _by_kind(render(SPECS["udp-chart"], creds["udp-chart"]))
    assert ("CertificateSigningRequest", "arkouda-k8s-team-arkouda") in objs
    assert ("Secret", "arkouda-tls") in objs
    assert ("Service", "arkouda-arkouda") not in objs  # the server registers it itself
    args = objs[("Pod", "arkouda-server")]["spec"]["containers"][0]["args"]
    assert "--ExternalIntegration.systemType=SystemType.KUBERNETES" in args
    assert "--ServerDaemon.daemonTypes=ServerDaemonType.INTEGRATION" in args


# -- the launch scripts, run over models of the real images ---------------------------------


def test_launch_scripts_are_valid_sh():
    for spec in (SPECS["udp-2"], SPECS["udp-chart"], SPECS["smp"]):
        for name, script in manifests.launch_config(spec)["data"].items():
            result = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
            assert result.returncode == 0, (name, result.stderr)


class _FakeApi:
    """An HTTPS endpoint on 127.0.0.1, verified by a test CA, that lists locale pods (a
    Ready one, then on later calls a second Ready one among pods that do not count:
    Running but not Ready, Pending, being deleted) and records who asked and DELETEs.
    Callers authenticate with a client certificate or a bearer token."""

    SA_TOKEN = "service-account-token-of-the-server-pod"

    def __init__(self, ca: CertificateAuthority, *, status: int = 200) -> None:
        self.selectors: list[str] = []
        self.deletes: list[str] = []
        self.users: list[str] = []
        self.status = status
        # The sandbox CA's serving certificate: 127.0.0.1 among its names and the
        # extensions a cluster's carries, which Python 3.13's strict verification (in the
        # launch scripts) requires. Client certificates optional: tokens are accepted too.
        ctx = ca.server_context()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _user(self) -> bool:
                peer = self.connection.getpeercert()
                if peer:
                    api.users.append(dict(x[0] for x in peer["subject"])["commonName"])
                    return True
                if self.headers.get("Authorization") == f"Bearer {api.SA_TOKEN}":
                    api.users.append("system:serviceaccount:team:demo-server")
                    return True
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

            def do_GET(self):
                if not self._user():
                    return
                url = urllib.parse.urlparse(self.path)
                assert url.path == "/api/v1/namespaces/team/pods"
                api.selectors.append(urllib.parse.parse_qs(url.query)["labelSelector"][0])
                if api.status != 200:
                    self.send_response(api.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                pods = [_pod("127.0.0.12", "Running")]
                if len(api.selectors) > 1:
                    pods += [
                        _pod("127.0.0.15", "Running", ready=False),  # sshd not listening yet
                        _pod("127.0.0.11", "Running"),
                        _pod("127.0.0.13", "Pending", ready=False),
                        _pod("127.0.0.14", "Running", deleting=True),
                    ]
                body = json.dumps({"kind": "PodList", "items": pods}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_DELETE(self):
                if not self._user():
                    return
                api.deletes.append(self.path)
                found = self.path.endswith("/services/demo-arkouda")
                self.send_response(200 if found else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _pod(ip: str, phase: str, *, ready: bool = True, deleting: bool = False) -> dict:
    meta: dict = {"name": f"pod-{ip}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": meta, "status": {"phase": phase, "podIP": ip, "conditions": conditions}}


FIELDS = {"status.podIP": "127.0.0.10", "metadata.namespace": "team"}


@pytest.fixture
def pod_world() -> Iterator[dict]:
    """A fake API server and a test CA that signs it and the instance's CSR."""
    from _support.pod_root import available

    why = available()
    if why:
        pytest.skip(f"pods over image models: {why}")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = Path(tempfile.mkdtemp(prefix="arkouda-k8s-test-", dir=shm))
    os.chmod(work, 0o700)
    try:
        ca = CertificateAuthority("test-ca")
        api = _FakeApi(ca)
        try:
            yield {"ca": ca, "api": api, "work": work}
        finally:
            api.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _objects(world: dict, spec: ClusterSpec) -> tuple[Credentials, dict]:
    creds = Credentials.generate(spec)
    if spec.registration == "server":
        # Sign the instance's own CSR, as the cluster would on approval.
        creds = creds.with_certificate(world["ca"].sign_client_csr(creds.csr))
    objs = _by_kind(render(spec, creds))
    # The namespace's kube-root-ca.crt ConfigMap, as every cluster publishes it.
    objs[("ConfigMap", "kube-root-ca.crt")] = {"data": {"ca.crt": world["ca"].ca_pem.decode()}}
    return creds, objs


def _root(
    world: dict,
    spec: ClusterSpec,
    objs: dict,
    *,
    component: str = "server",
    container: str | None = None,
    **kw,
):
    from _support.pod_root import PodRoot

    n = names(spec)
    if component == "server":
        pod = objs[("Pod", n.server_pod)]
    else:
        dep = objs[("Deployment", n.locale_deployment)]
        pod = {
            "metadata": {"name": f"{n.locale_deployment}-0"},
            "spec": dep["spec"]["template"]["spec"],
        }
    sa = kw.pop(
        "service_account", {"token": _FakeApi.SA_TOKEN.encode(), "ca.crt": world["ca"].ca_pem}
    )
    every = [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
    return PodRoot(
        f"{spec.mode}-server",
        pod,
        next(c for c in every if c["name"] == container)
        if container
        else every[len(every) - len(pod["spec"]["containers"])],
        objs,
        field_refs=FIELDS,
        # What the kubelet puts in every container: the API server's address.
        extra_env={
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(world["api"].port),
        },
        service_account=sa,
        **kw,
    )


def _env_leaks(record: dict, secret: str) -> list[str]:
    return [k for k, v in record["env"].items() if secret in v or k == "ARKOUDA_SERVER_TOKEN"]


def test_server_script_starts_the_images_launcher_across_ready_locales(pod_world):
    """Items 1, 2, 5, 10 and registration "client", on a model of arkouda-udp-server."""
    spec = ClusterSpec(name="demo", namespace="team", locales=3, metrics=True)
    creds, objs = _objects(pod_world, spec)
    api = pod_world["api"]
    with _root(pod_world, spec, objs) as root:
        result = root.run(timeout=90)
        assert result.returncode == 0, result.stderr
        launched = root.launcher()
        assert launched is not None, result.stderr
        # The image's own launcher, by absolute path; the program it starts on each
        # locale and its libraries are still there (nothing mounted over /opt/arkouda).
        assert launched["argv"] == [UDP["launcher"], "-nl", "3", *manifests.server_args(spec)]
        assert launched["real_program"] and launched["dep"]
        assert launched["uid"] == UDP["uid"]
        # Waited for two Ready locale pods; skipped the unready, Pending and deleted ones.
        assert len(api.selectors) == 2 and set(api.selectors) == {selector(spec, "locale")}
        assert launched["env"]["SSH_SERVERS"].split() == ["127.0.0.10", "127.0.0.11", "127.0.0.12"]
        assert launched["env"]["GASNET_MASTERIP"] == "127.0.0.10"
        # Asked with the pod's service-account token, the API verified by its CA.
        assert set(api.users) == {"system:serviceaccount:team:demo-server"}
        assert api.deletes == []  # nothing registered, nothing stale to remove
        # The token: a private read-write file where the server reads it, in no environment.
        assert launched["cwd"] == UDP["home"]
        assert launched["token"] == creds.token and launched["token_mode"] == "0o600"
        assert _env_leaks(launched, creds.token) == []
        # sshd started as root through the image's sudo; the keys installed privately.
        assert root.read("/tmp/sshd-started") == b"uid=0 \n"
        ssh = UDP["home"] + "/.ssh"
        assert root.read(f"{ssh}/id_rsa") == creds.ssh_private_key
        assert root.read(f"{ssh}/authorized_keys") == creds.ssh_public_key


def test_server_script_with_chart_registration_uses_the_certificate(pod_world):
    spec = ClusterSpec(
        name="demo", namespace="team", locales=3, metrics=True, registration="server"
    )
    creds, objs = _objects(pod_world, spec)
    api = pod_world["api"]
    with _root(pod_world, spec, objs, service_account={}) as root:
        result = root.run(timeout=90)
        assert result.returncode == 0, result.stderr
        launched = root.launcher()
        assert launched["argv"] == [UDP["launcher"], "-nl", "3", *manifests.server_args(spec)]
        assert launched["env"]["SSH_SERVERS"].split() == ["127.0.0.10", "127.0.0.11", "127.0.0.12"]
        assert set(api.users) == {"arkouda-k8s:team:demo"}
        # The stale self-registered services were removed before the start.
        assert "/api/v1/namespaces/team/services/demo-arkouda" in api.deletes
        assert "/api/v1/namespaces/team/endpoints/demo-metrics" in api.deletes
        assert launched["token"] == creds.token
        assert _env_leaks(launched, creds.token) == []


def test_server_script_refuses_an_unverified_api_server(pod_world):
    """Security #20 item 6: no CA, no request (the token would go to whoever answers)."""
    spec = ClusterSpec(name="demo", namespace="team", locales=3)
    _, objs = _objects(pod_world, spec)
    with _root(pod_world, spec, objs, service_account={"token": b"t"}) as root:
        result = root.run(timeout=60)
        assert result.returncode == 1
        assert "no cluster CA" in result.stderr and "unverified" in result.stderr
        assert root.launcher() is None
    assert pod_world["api"].selectors == []


def test_server_script_gives_up_with_a_reason(pod_world):
    pod_world["api"].status = 403
    spec = ClusterSpec(name="demo", namespace="team", locales=3)
    _, objs = _objects(pod_world, spec)
    pod = objs[("Pod", "demo-server")]
    container = pod["spec"]["containers"][0]
    container["env"].append({"name": "LOCALE_WAIT_SECONDS", "value": "0"})
    with _root(pod_world, spec, objs) as root:
        result = root.run(timeout=60)
        assert result.returncode == 1
        assert "found 0 of 2 Ready locale pods" in result.stderr
        assert "403" in result.stderr
        assert root.launcher() is None


def test_smp_script_starts_every_locale_in_the_pod(pod_world):
    spec = ClusterSpec(name="demo", namespace="team", mode="smp", locales=4, memory="4Gi", cpu="4")
    creds, objs = _objects(pod_world, spec)
    with _root(pod_world, spec, objs) as root:
        result = root.run(timeout=60)
        assert result.returncode == 0, result.stderr
        launched = root.launcher()
        assert launched["argv"] == [SMP["launcher"], "-nl", "4", *manifests.server_args(spec)]
        assert launched["real_program"] and launched["dep"]
        assert launched["token"] == creds.token
        assert _env_leaks(launched, creds.token) == []
        assert launched["env"]["CHPL_RT_NUM_THREADS_PER_LOCALE"] == "1"
    assert pod_world["api"].selectors == []  # smp needs no API access


@pytest.mark.parametrize("component", ["server", "locale"])
def test_a_host_path_becomes_writable_for_the_images_user(pod_world, component):
    """Item 4: the kubelet creates a hostPath directory root-owned 0755; the image's
    user (uid 1000) runs the server and must write there. The pod's init container
    (root with CHOWN only) hands it over; sudo is no longer possible in these pods."""
    spec = ClusterSpec(
        name="demo", namespace="team", locales=1, persistence=Persistence("/mnt/arkouda")
    )
    _, objs = _objects(pod_world, spec)
    if component == "locale":
        objs[("Deployment", "demo-locale")]["spec"]["replicas"] = 1
    with _root(pod_world, spec, objs, component=component, container="persistence-owner") as init:
        done = init.run(timeout=60)
        assert done.returncode == 0, done.stderr
        host = init.host_paths["/mnt/arkouda"]
        assert (os.stat(host).st_uid, os.stat(host).st_gid) == (UDP["uid"], UDP["gid"])
        with _root(pod_world, spec, objs, component=component, host_paths=init.host_paths) as root:
            proc = root.start()
            try:
                if component == "locale":

                    def sshd_started() -> bool:
                        assert proc.poll() is None, proc.communicate()
                        return root.read("/tmp/sshd-started") is not None

                    eventually(sshd_started, 60, message="the locale started sshd")
                    proc.terminate()
                out, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
            assert proc.returncode == 0, err
            assert "not writable" not in err


def test_without_the_init_container_the_script_says_the_host_path_is_not_writable(pod_world):
    """The scripts have no sudo to fall back on: they stop at once, naming the directory."""
    spec = ClusterSpec(
        name="demo", namespace="team", locales=1, persistence=Persistence("/mnt/arkouda")
    )
    _, objs = _objects(pod_world, spec)
    with _root(pod_world, spec, objs) as root:
        result = root.run(timeout=60)
    assert result.returncode == 1
    assert "/arkouda-files is not writable for ubuntu (uid 1000)" in result.stderr
    assert root.launcher() is None


def test_locale_script_installs_keys_and_stops_on_sigterm(pod_world):
    spec = ClusterSpec(name="demo", namespace="team", locales=2)
    creds, objs = _objects(pod_world, spec)
    with _root(pod_world, spec, objs, component="locale") as root:
        proc = root.start()

        def sshd_started() -> bool:
            assert proc.poll() is None, proc.communicate()
            return root.read("/tmp/sshd-started") is not None

        eventually(sshd_started, 30, message="the locale script started sshd")
        assert root.read(UDP["home"] + "/.ssh/authorized_keys") == creds.ssh_public_key
        proc.terminate()
        proc.communicate(timeout=10)
        assert proc.returncode == 0
