"""`arkouda-k8s render`: YAML of every object or the charts' values; bad input exits 2."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from arkouda_k8s.cli import main
from arkouda_k8s.credentials import Credentials
from arkouda_k8s.manifests import PLACEHOLDER
from arkouda_k8s.spec import ClusterSpec

# The seed tutorial's values files for the two arkouda-contrib charts.
SEED = Path(__file__).resolve().parent / "fixtures" / "seed-values"
SEED_SERVER = str(SEED / "arkouda-udp-server.yaml")
SEED_LOCALE = str(SEED / "arkouda-udp-locale.yaml")
K8S_VERSION = kubernetes_validate.latest_version()


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("ARKOUDA_K8S_DEBUG", raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["render", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _docs(out: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(out) if d is not None]


def _find(objs: list[dict], kind: str, name: str | None = None) -> dict:
    return next(
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    )


def _server_container(objs: list[dict]) -> dict:
    return _find(objs, "Pod")["spec"]["containers"][0]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


def test_render_prints_valid_objects_in_namespace_default(capsys):
    rc, out, err = run(capsys, "--locales", "3")
    assert rc == 0 and err == ""
    objs = _docs(out)
    assert out.count("\n---\n") == len(objs) - 1
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        if obj["kind"] != "CertificateSigningRequest":
            assert obj["metadata"]["namespace"] == "default"
    assert "Namespace" not in [o["kind"] for o in objs]
    assert _find(objs, "Deployment")["spec"]["replicas"] == 2
    assert _env(_server_container(objs))["NUMLOCALES"] == "3"
    # The launch scripts are readable blocks, not escaped one-liners.
    assert "start-arkouda-server.sh: |" in out


def test_render_other_namespace_includes_the_namespace(capsys):
    rc, out, _ = run(capsys, "-n", "team", "--name", "demo", "--mode", "smp", "--no-auth")
    assert rc == 0
    objs = _docs(out)
    assert [o["kind"] for o in objs] == [
        "Namespace",
        "Secret",
        "ConfigMap",
        "Service",
        "NetworkPolicy",
        "Pod",
    ]
    assert objs[0]["metadata"]["name"] == "team"
    assert "--authenticate=false" in _server_container(objs)["args"]


@pytest.fixture(scope="module")
def known_creds() -> Credentials:
    return Credentials.generate(ClusterSpec(namespace="default"))


def _secret_forms(creds: Credentials) -> list[str]:
    forms = [creds.token, base64.b64encode(creds.token.encode()).decode()]
    for pem in (creds.ssh_private_key, creds.tls_key):
        if pem is None:  # no TLS key: registration client
            continue
        forms.append(base64.b64encode(pem).decode()[:48])
        forms += [ln for ln in pem.decode().splitlines() if ln and not ln.startswith("-----")][:3]
    return forms


def test_no_secret_material_without_include_secrets(capsys, monkeypatch, known_creds):
    monkeypatch.setattr(Credentials, "generate", classmethod(lambda cls, spec, **kw: known_creds))
    rc, out, err = run(capsys)
    assert rc == 0
    for form in _secret_forms(known_creds):
        assert form not in out and form not in err
    assert "PRIVATE KEY" not in out
    assert not re.search(r"\b[0-9a-f]{64}\b", out)
    for secret in (o for o in _docs(out) if o["kind"] == "Secret"):
        assert "data" not in secret
        assert set(secret["stringData"].values()) == {PLACEHOLDER}

    # With the flag the same material is there: the check above can fail.
    rc, out, _ = run(capsys, "--include-secrets")
    assert rc == 0
    assert any(form in out for form in _secret_forms(known_creds))
    ssh = _find(_docs(out), "Secret", "arkouda-ssh")["data"]
    assert base64.b64decode(ssh["id_rsa"]) == known_creds.ssh_private_key
    for obj in _docs(out):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_seed_values_render_with_warnings(capsys):
    rc, out, err = run(capsys, "-f", SEED_SERVER, "-f", SEED_LOCALE)
    assert rc == 0
    warnings = err.splitlines()
    assert warnings and all(w.startswith("arkouda-k8s: warning: ") for w in warnings)
    assert any("192.168.49.2" in w for w in warnings)
    assert any("memMax 2000" in w for w in warnings)
    objs = _docs(out)
    c = _server_container(objs)
    assert _env(c)["NUMLOCALES"] == "1"
    assert "--memMax=2000" in c["args"] and "--logLevel=LogLevel.DEBUG" in c["args"]
    assert "--authenticate=false" in c["args"]
    assert _find(objs, "Pod")["metadata"]["namespace"] == "arkouda"
    assert objs[0]["kind"] == "Namespace"


def test_options_override_values_files(capsys):
    rc, out, _ = run(capsys, "-f", SEED_SERVER, "--locales", "3", "--memory", "4Gi", "-n", "x")
    assert rc == 0
    objs = _docs(out)
    c = _server_container(objs)
    assert _env(c)["NUMLOCALES"] == "3"
    assert c["resources"]["limits"]["memory"] == "4Gi"
    assert _find(objs, "Pod")["metadata"]["namespace"] == "x"


def test_helm_values_round_trip_through_a_file(capsys, tmp_path):
    rc, out, err = run(capsys, "--helm-values", "--locales", "4", "--name", "demo", "-n", "team")
    assert rc == 0 and err == ""
    server, locale = _docs(out)
    assert server["server"]["numLocales"] == 4
    assert locale["server"]["numLocales"] == 3
    assert server["external"]["namespace"] == "team"
    assert server["secrets"] == {"tls": "demo-tls", "ssh": "demo-ssh"}
    path = tmp_path / "values.yaml"
    path.write_text(out)
    rc, again, err = run(capsys, "--helm-values", "-f", str(path))
    assert rc == 0 and err == ""
    assert again == out


def _values(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"v{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(text)
    return str(path)


# argv (a callable of tmp_path for values files) and text the one-line error must hold.
BAD_CLI = [
    (["--name", "Bad_Name"], "name: invalid value 'Bad_Name'"),
    (["--name", "my_cluster"], "name: invalid value"),
    (["--name=-arkouda"], "name: invalid value"),
    (["--name", "a" * 48], "at most 47 characters"),
    (["--namespace", "Team"], "namespace: invalid value"),
    (["--mode", "mpi"], "mode: invalid value 'mpi'"),
    (["--locales", "0"], "locales: invalid value 0"),
    (["--locales=-3"], "locales: invalid value -3"),
    (["--locales", "2000"], "locales: invalid value 2000"),
    (["--locales", "abc"], "--locales: invalid int value"),
    (["--threads", "0"], "threads: invalid value 0"),
    (["--cpu=-1"], "cpu: invalid value '-1'"),
    (["--cpu", "0"], "cpu: invalid value '0'"),
    (["--memory", "lots"], "memory: invalid value 'lots'"),
    (["--memory", "1Mi"], "memory: invalid value '1Mi'"),
    (["--release", "v2023 05 05"], "release: invalid value 'v2023 05 05'"),
    (["--release", ""], "release: invalid value ''"),
    (["--image-repository", "Bears R Us"], "image_repository: invalid value"),
    (["--pull-policy", "always"], "pull_policy: invalid value 'always'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--mode", "smp", "--helm-values"], "mode: invalid value 'smp'"),
    (lambda t: ["-f", _values(t, "server:\n  memMax: 4000000000\n")], "mem_max: invalid value"),
    (
        lambda t: ["-f", _values(t, "server:\n  memMax: 100\n  numLocales: 0\n")],
        "locales: invalid value 0",
    ),
    (
        lambda t: ["-f", _values(t, "server:\n  logLevel: LOUD\n")],
        "log_level: invalid value 'LOUD'",
    ),
    (
        lambda t: ["-f", _values(t, "server:\n  authenticate: maybe\n")],
        "authenticate: invalid value 'maybe'",
    ),
    (
        lambda t: ["-f", _values(t, "imagePullPolicy: Sometimes\n")],
        "pull_policy: invalid value 'Sometimes'",
    ),
    (
        lambda t: ["-f", _values(t, "resources:\n  limits:\n    memory: lots\n")],
        "memory: invalid value 'lots'",
    ),
    (
        lambda t: [
            "-f",
            _values(t, "external:\n  persistence:\n    enabled: true\n    hostPath: mnt\n"),
        ],
        "persistence.host_path: invalid value 'mnt'",
    ),
    (lambda t: ["-f", str(t / "missing.yaml")], "missing.yaml: No such file or directory"),
    (lambda t: ["-f", _values(t, "server: [unclosed\n")], "not valid YAML"),
    (lambda t: ["-f", _values(t, "- a\n- b\n")], "expected a mapping of Helm values"),
    (
        lambda t: ["-f", SEED_LOCALE, "-f", SEED_LOCALE],
        "a second arkouda-udp-locale values document",
    ),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_CLI, ids=[e for _, e in BAD_CLI])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, argv, expected):
    args = argv(tmp_path) if callable(argv) else argv
    rc, out, err = run(capsys, *args)
    assert rc == 2
    assert out == ""
    lines = [ln for ln in err.splitlines() if not ln.startswith("arkouda-k8s: warning: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("arkouda-k8s: error: ")
    assert expected in lines[0]
    assert "Traceback" not in err


def test_at_least_25_bad_cli_inputs():
    assert len(BAD_CLI) >= 25


def test_subprocess_bad_input_no_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ARKOUDA_K8S_DEBUG"}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "arkouda_k8s.cli", "render", "--memory", "lots"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("arkouda-k8s: error: memory: invalid value 'lots'")
    assert "Traceback" not in result.stderr


def test_runner_rbac_is_a_service_account_with_get_by_name_only(capsys):
    rc, out, err = run(capsys, "--runner-rbac", "pipe", "--namespace", "data")
    assert rc == 0 and err == ""
    objs = _docs(out)
    assert [o["kind"] for o in objs] == ["ServiceAccount", "Role", "RoleBinding"]
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        assert obj["metadata"]["name"] == "pipe-runner"
        assert obj["metadata"]["namespace"] == "data"
    role, binding = objs[1], objs[2]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": [r], "resourceNames": [n], "verbs": ["get"]}
        for r, n in (
            ("services", "pipe-arkouda"),
            ("endpoints", "pipe-arkouda"),
            ("secrets", "pipe-token"),
        )
    ]
    assert binding["roleRef"]["name"] == "pipe-runner"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipe-runner", "namespace": "data"}
    ]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--runner-rbac", "Bad_Name"], "name: invalid value 'Bad_Name'"),
        (
            ["--runner-rbac", "pipe", "--helm-values"],
            "--runner-rbac: prints the runner's RBAC only",
        ),
    ],
)
def test_runner_rbac_bad_input(capsys, argv, needle):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == "" and needle in err and err.count("\n") == 1


def _policy(out: str) -> dict:
    (policy,) = [d for d in _docs(out) if d["kind"] == "NetworkPolicy"]
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    return policy


def test_a_network_policy_admits_only_the_instance_to_sshd_and_gasnet(capsys):
    rc, out, err = run(capsys, "--name", "web")
    assert rc == 0, err
    spec = _policy(out)["spec"]
    own = {"app.kubernetes.io/name": "arkouda", "app.kubernetes.io/instance": "web"}
    assert spec["podSelector"] == {"matchLabels": own}
    assert spec["policyTypes"] == ["Ingress"]  # egress (the API, DNS) untouched
    every_port, arkouda = spec["ingress"]
    # every port (sshd 22, GASNet's UDP range) only from this instance's own pods
    assert every_port == {"from": [{"podSelector": {"matchLabels": own}}]}
    # the Arkouda port from the namespace's pods, nothing else from them
    assert arkouda == {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 5555}]}
    rc, out, _ = run(capsys, "--name", "web", "--metrics", "--network-policy", "cluster")
    arkouda = _policy(out)["spec"]["ingress"][1]
    assert arkouda["from"] == [{"namespaceSelector": {}}]
    assert [p["port"] for p in arkouda["ports"]] == [5555, 5080]
    rc, out, _ = run(capsys, "--name", "web", "--network-policy", "off")
    assert rc == 0 and not [d for d in _docs(out) if d["kind"] == "NetworkPolicy"]


def test_no_auth_warns_once_and_loudly(capsys):
    rc, out, err = run(capsys, "--name", "web", "--no-auth")
    assert rc == 0
    assert err.count("AUTHENTICATION IS OFF") == 1
    assert "anyone who can reach the Arkouda port" in err and "local tunnel" in err
    rc, out, err = run(capsys, "--name", "web")
    assert "AUTHENTICATION" not in err
