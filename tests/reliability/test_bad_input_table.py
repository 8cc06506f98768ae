"""Bad input, one table: each case is what a user types (the CLI, the runner, a magic,
the notebook's deploy form) or what the cluster answers (403s, a terminating namespace, Pod Security, a quota, a
hand-edited Secret). Each must end in one line naming the field or the problem, with
exit code 2 for input the user can fix in the command, and nothing left on the cluster."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from _support.lifecycle import dead_kubeconfig, labelled, run_cli

NAME = "rel-bad"
SMALL = ["--cpu", "100m", "--memory", "256Mi", "--locales", "1"]


@dataclass
class Case:
    id: str
    argv: list[str]
    code: int
    text: str  # what the one line must say (the field, or the problem)
    files: dict[str, str] = field(default_factory=dict)  # {placeholder: file content}
    namespace: str = "default"
    setup: Callable[[Any, Any], Any] | None = None
    deny: tuple[str, str] | None = None  # (verb, resource) refused to everyone, admin too
    bound_s: float = 30.0  # a refusal is told at once, not after a stage's deadline


def deploy(*extra: str) -> list[str]:
    return ["deploy", "--name", NAME, *SMALL, *extra]


def vdeploy(*extra: str) -> list[str]:
    """A deploy whose spec comes from a values file alone (options would override it)."""
    return ["deploy", "--name", NAME, *extra]


def values(text: str) -> dict[str, str]:
    return {"@values": text}


SPEC = [
    Case("name-uppercase", ["deploy", "--name", "Bad_Name"], 2, "name: invalid value 'Bad_Name'"),
    Case("name-digit-first", ["deploy", "--name", "1abc"], 2, "name: invalid value '1abc'"),
    Case("name-trailing-dash", ["deploy", "--name", "abc-"], 2, "name: invalid value 'abc-'"),
    Case("name-too-long", ["deploy", "--name", "a" * 48], 2, "at most 47 characters"),
    Case("name-dot", ["deploy", "--name", "a.b"], 2, "name: invalid value 'a.b'"),
    Case("name-empty", ["deploy", "--name", ""], 2, "name"),
    Case("memory-unit", deploy("--memory", "4Gb"), 2, "memory: invalid value '4Gb'"),
    Case("memory-negative", deploy("--memory", "-1Gi"), 2, "memory"),
    Case("memory-zero", deploy("--memory", "0"), 2, "memory"),
    Case("memory-words", deploy("--memory", "lots"), 2, "memory: invalid value 'lots'"),
    Case("cpu-unit", deploy("--cpu", "2cores"), 2, "cpu: invalid value '2cores'"),
    Case("cpu-negative", deploy("--cpu", "-1"), 2, "cpu"),
    Case("cpu-zero", deploy("--cpu", "0"), 2, "cpu"),
    Case("cpu-two-dots", deploy("--cpu", "1.5.5"), 2, "cpu"),
    Case("locales-zero", deploy("--locales", "0"), 2, "locales"),
    Case("locales-negative", deploy("--locales", "-3"), 2, "locales"),
    Case("locales-word", deploy("--locales", "two"), 2, "--locales"),
    Case("threads-zero", deploy("--threads", "0"), 2, "threads"),
    Case("mode", deploy("--mode", "tcp"), 2, "mode"),
    Case("release-space", deploy("--release", "v2023 05"), 2, "release"),
    Case("repository-space", deploy("--image-repository", "bad repo"), 2, "image"),
    Case("pull-policy", deploy("--pull-policy", "Sometimes"), 2, "pull"),
    Case("ttl-unit", deploy("--ttl", "2x"), 2, "ttl"),
    Case("ttl-negative", deploy("--ttl", "-5m"), 2, "ttl"),
    Case("namespace-invalid", deploy("--namespace", "Bad_NS"), 2, "namespace"),
    Case("network-policy", deploy("--network-policy", "all"), 2, "--network-policy"),
    Case("registration", deploy("--registration", "maybe"), 2, "--registration"),
    Case("unknown-option", deploy("--gpus", "2"), 2, "--gpus"),
    Case("values-missing", vdeploy("-f", "/nonexistent/values.yaml"), 2, "No such file"),
    Case("values-not-yaml", vdeploy("-f", "@values"), 2, "values", values("a: [1, 2\n")),
    Case("values-a-list", vdeploy("-f", "@values"), 2, "values", values("- 1\n- 2\n")),
    Case(
        "values-memory",
        vdeploy("-f", "@values"),
        2,
        "memory",
        values("resources:\n  requests:\n    memory: 4Gb\n"),
    ),
    Case(
        "values-locales",
        vdeploy("-f", "@values"),
        2,
        "locales",
        values("server:\n  numLocales: -2\n"),
    ),
    Case("status-name", ["status", "Bad_Name"], 2, "name"),
    Case("teardown-name", ["teardown", "Bad_Name"], 2, "name"),
    Case("teardown-nothing", ["teardown"], 2, "NAME"),
    Case("logs-locale", ["logs", NAME, "--locale", "x"], 2, "--locale"),
    Case("logs-since", ["logs", NAME, "--since", "yesterday"], 2, "since"),
]

CONTEXTS = [
    Case("context-unknown", deploy("--context", "nowhere"), 2, "nowhere"),
    Case("kubeconfig-missing", deploy("--kubeconfig", "/nonexistent/kc"), 2, "/nonexistent/kc"),
    Case("kubeconfig-not-yaml", deploy("--kubeconfig", "@kc"), 2, "kubeconfig", {"@kc": "{{{"}),
    Case(
        "kubeconfig-no-context",
        deploy("--kubeconfig", "@kc"),
        2,
        "context",
        {"@kc": "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"},
    ),
]

RUNNER = [
    Case("run-token-argv", ["run", "--token", "x", "-c", "1"], 2, "--token"),
    Case("run-in-cluster-outside", ["run", "--in-cluster", NAME, "-c", "1"], 2, "in-cluster"),
    Case("run-server-format", ["run", "--server", "nohostport", "-c", "1"], 2, "server"),
    Case(
        "run-token-file",
        ["run", "--server", "127.0.0.1:1", "--token-file", "/nonexistent/t", "-c", "1"],
        2,
        "/nonexistent/t",
    ),
    Case(
        "run-connect-timeout",
        ["run", "--server", "127.0.0.1:1", "--connect-timeout", "-1", "-c", "1"],
        2,
        "connect-timeout",
    ),
    Case(
        "run-input-missing",
        ["run", "--server", "127.0.0.1:1", "--input", "/nonexistent/in", "-c", "1"],
        2,
        "/nonexistent/in",
    ),
]


def namespace(name: str, labels: dict[str, str] | None = None, **extra: Any) -> Any:
    def setup(sb: Any, kube: Any) -> None:
        if kube.get("Namespace", name) is None:
            kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels or {}, **extra},
                }
            )

    return setup


def terminating(sb: Any, kube: Any) -> None:
    """A namespace being deleted: a finalizer holds it in Terminating."""
    name = "rel-going"
    if kube.get("Namespace", name) is None:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "held", "namespace": name, "finalizers": ["example.com/hold"]},
            }
        )
        ns = kube.get("Namespace", name)
        kube.delete("Namespace", name, uid=ns["metadata"]["uid"])


def quota(sb: Any, kube: Any) -> None:
    namespace("rel-quota")(sb, kube)
    if kube.get("ResourceQuota", "tiny", "rel-quota") is None:
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "tiny", "namespace": "rel-quota"},
                "spec": {"hard": {"requests.memory": "128Mi"}},
            }
        )


CREATED_KINDS = [
    "pods",
    "deployments.apps",
    "secrets",
    "configmaps",
    "services",
    "serviceaccounts",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "networkpolicies.networking.k8s.io",
]

API = [
    *(
        Case(f"403-create-{r.split('.')[0]}", deploy(), 1, r.split(".")[0], deny=("create", r))
        for r in CREATED_KINDS
    ),
    *(
        Case(f"403-{v}-pods", deploy(), 1, "pods", deny=(v, "pods"))
        for v in ("get", "list", "watch")
    ),
    Case("403-get-configmaps", deploy(), 1, "configmaps", deny=("get", "configmaps")),
    Case("403-portforward", deploy(), 1, "portforward", deny=("create", "pods/portforward")),
    Case("403-list", ["list", "--kubeconfig", "@sb"], 1, "configmaps", deny=("list", "configmaps")),
    Case("403-teardown", ["teardown", NAME], 1, "configmaps", deny=("get", "configmaps")),
    Case("403-status", ["status", NAME], 1, "configmaps", deny=("get", "configmaps")),
    Case(
        "namespace-missing",
        deploy("--namespace", "rel-nowhere"),
        1,
        "rel-nowhere",
        namespace="default",
    ),
    Case(
        "namespace-terminating",
        deploy("--namespace", "rel-going"),
        1,
        "rel-going",
        namespace="rel-going",
        setup=terminating,
    ),
    Case(
        "pod-security-restricted",
        deploy("--namespace", "rel-psa"),
        1,
        "restricted",
        namespace="rel-psa",
        setup=namespace("rel-psa", {"pod-security.kubernetes.io/enforce": "restricted"}),
    ),
    Case(
        "quota-too-small",
        deploy("--namespace", "rel-quota"),
        1,
        "ResourceQuota tiny",
        namespace="rel-quota",
        setup=quota,
    ),
]


def unreachable(sb: Any, kube: Any, tmp_path: Any) -> str:
    return dead_kubeconfig(tmp_path)[0]


def wrong_ca(sb: Any, kube: Any, tmp_path: Any) -> str:
    """The sandbox's address with another cluster's CA: the TLS check must fail."""
    import yaml

    with open(sb.kubeconfig_path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    other = foreign_ca()
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = other
    path = tmp_path / "wrong-ca.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def foreign_ca() -> str:
    """A CA certificate no sandbox signed with (base64 PEM), made in memory."""
    import base64
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-sandbox")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


def expired_cert(sb: Any, kube: Any, tmp_path: Any) -> str:
    """The sandbox admin's kubeconfig, with a client certificate that expired a minute ago."""
    import datetime

    import yaml

    cert, key = sb.ca.issue_client(
        "sandbox-admin", ["system:masters"], lifetime=datetime.timedelta(minutes=-1)
    )
    doc = sb.kubeconfig_dict(client_certificate=cert, client_key=key)
    path = tmp_path / "expired.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(doc, fh)
    return str(path)


UNREACHABLE = "nothing answers at the Kubernetes API https://127.0.0.1:"

KUBECONFIGS = {"@dead": unreachable, "@wrong-ca": wrong_ca, "@expired": expired_cert}

API_SERVERS = [
    # nothing listens at the address: told after a few refused attempts, not after the
    # preflight's 60 s or a request's 30 s (kube.UNREACHABLE_ATTEMPTS)
    Case("api-unreachable", deploy("--kubeconfig", "@dead"), 1, UNREACHABLE),
    Case("api-unreachable-status", ["status", NAME, "--kubeconfig", "@dead"], 1, UNREACHABLE),
    Case("api-unreachable-list", ["list", "--kubeconfig", "@dead"], 1, UNREACHABLE),
    Case("api-unreachable-teardown", ["teardown", NAME, "--kubeconfig", "@dead"], 1, UNREACHABLE),
    Case("api-wrong-ca", deploy("--kubeconfig", "@wrong-ca"), 1, "certificate"),
    Case(
        "client-cert-expired",
        deploy("--kubeconfig", "@expired"),
        1,
        "client certificate of user sandbox-admin of context sandbox expired",
    ),
    Case(
        "client-cert-expired-list",
        ["list", "--kubeconfig", "@expired"],
        1,
        "client certificate of user sandbox-admin of context sandbox expired",
    ),
    Case(
        "api-wrong-ca-teardown", ["teardown", NAME, "--kubeconfig", "@wrong-ca"], 1, "certificate"
    ),
]


def cases() -> list[Case]:
    return SPEC + CONTEXTS + RUNNER + API + API_SERVERS


def _materialise(case: Case, tmp_path: Any) -> list[str]:
    argv = []
    for arg in case.argv:
        if arg in case.files:
            path = tmp_path / arg.lstrip("@")
            path.write_text(case.files[arg])
            arg = str(path)
        argv.append(arg)
    return argv


def everything(kube: Any, namespace: str = "default") -> set[str]:
    """Every object a deploy could have made in ``namespace`` (by kind/name)."""
    out = set()
    for kind in (
        "Pod",
        "Deployment",
        "Service",
        "Secret",
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
    ):
        for o in kube.list(kind, namespace)["items"]:
            out.add(f"{kind}/{o['metadata']['name']}")
    return out


def params() -> list[Any]:
    return [pytest.param(c, id=c.id) for c in cases()]


def test_a_wait_for_objects_to_go_polls_when_watch_is_refused(sb, kube):
    """The rollback of a deploy refused `watch` on pods waited for its server pod with a
    watch: the 403 ended the rollback half-way whenever the pod was not gone at the first
    list (about 1 run in 4 of 403-watch-pods). Deterministic here: an object held by a
    finalizer goes away while the watch is refused; the wait sees it go."""
    import threading

    name = "rel-held"
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "finalizers": ["example.com/h"]},
        }
    )
    held = kube.get("ConfigMap", name, "default")
    kube.delete("ConfigMap", name, "default", uid=held["metadata"]["uid"])
    release = threading.Timer(
        0.5, kube.patch, ("ConfigMap", name, {"metadata": {"finalizers": None}}, "default")
    )
    sb.faults.deny("watch", "configmaps", user="*")
    try:
        release.start()
        start = time.monotonic()
        kube.wait_gone(
            "ConfigMap",
            "default",
            field_selector=f"metadata.name={name}",
            deadline=time.monotonic() + 20,
        )
        took = time.monotonic() - start
    finally:
        release.join()
        sb.faults.clear()
    assert kube.get("ConfigMap", name, "default") is None
    assert 0.4 < took < 5, took


@pytest.fixture
def leave_nothing(sb: Any, kube: Any) -> Iterator[None]:
    yield
    if labelled(kube, NAME):
        from arkouda_k8s.cluster import ArkoudaCluster

        ArkoudaCluster.from_name(
            NAME, "default", kubeconfig=sb.kubeconfig_path, connect=False
        ).teardown()


@pytest.mark.usefixtures("leave_nothing")
@pytest.mark.parametrize("case", params())
def test_bad_input_is_one_line_and_creates_nothing(sb, kube, capsys, tmp_path, needles, case):
    argv = _materialise(case, tmp_path)
    argv = [sb.kubeconfig_path if a == "@sb" else a for a in argv]
    argv = [KUBECONFIGS[a](sb, kube, tmp_path) if a in KUBECONFIGS else a for a in argv]
    if case.argv[0] != "run" and "--kubeconfig" not in argv:
        argv += ["--kubeconfig", sb.kubeconfig_path]
    if case.setup:
        case.setup(sb, kube)
    before = everything(kube, case.namespace) if kube.get("Namespace", case.namespace) else set()
    if case.deny:
        sb.faults.deny(*case.deny, user="*")
    start = time.monotonic()
    try:
        code, out, err = run_cli(capsys, *argv)
    finally:
        sb.faults.clear()
    # a 403 on the port-forward waited out the handshake's 120 s
    assert time.monotonic() - start < case.bound_s
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.code, (code, err)
    # one error line, the last (progress lines and warnings on stderr may precede it)
    assert [line for line in lines if "error:" in line] == lines[-1:], err
    assert case.text in lines[-1], lines[-1]
    assert "Traceback" not in err
    if kube.get("Namespace", case.namespace):
        assert everything(kube, case.namespace) == before
    assert labelled(kube, NAME) == []
    needles.check(out + err, "the CLI's output")


# -- the notebook: %arkouda_deploy and the deploy form --------------------------------------


@dataclass
class NotebookCase:
    id: str
    given: str | dict[str, Any]  # the magic's options, or the form's fields
    text: str  # what the one line must say
    usage: bool = True  # refused before any request (UsageError / the form's error)
    namespace: str = "default"
    setup: Callable[[Any, Any], Any] | None = None
    deny: tuple[str, str] | None = None


def magic(*options: str) -> str:
    return " ".join(["--name", NAME, *SMALL, *options])


MAGIC = [
    NotebookCase("magic-locales-zero", magic("--locales", "0"), "--locales"),
    NotebookCase("magic-locales-word", magic("--locales", "two"), "--locales"),
    NotebookCase("magic-memory-unit", magic("--memory", "4Gb"), "--memory"),
    NotebookCase("magic-cpu-words", magic("--cpu", "lots"), "--cpu"),
    NotebookCase("magic-name-invalid", "--name Bad_Name", "--name"),
    NotebookCase("magic-mode", magic("--mode", "mpi"), "--mode"),
    NotebookCase("magic-pull-policy", magic("--pull-policy", "Sometimes"), "--pull-policy"),
    NotebookCase("magic-ttl", magic("--ttl", "2x"), "--ttl"),
    NotebookCase("magic-unknown-option", magic("--gpus", "2"), "--gpus"),
    NotebookCase("magic-values-missing", magic("-f", "/nonexistent/values.yaml"), "values.yaml"),
    NotebookCase("magic-context-unknown", magic("--context", "nowhere"), "context: 'nowhere'"),
    NotebookCase(
        "magic-kubeconfig-missing", magic("--kubeconfig", "/nonexistent/kc"), "/nonexistent/kc"
    ),
    NotebookCase(
        "magic-namespace-missing", magic("--namespace", "rel-nowhere"), "rel-nowhere", usage=False
    ),
    NotebookCase("magic-403-create-pods", magic(), "pods", usage=False, deny=("create", "pods")),
    NotebookCase(
        "magic-pod-security-restricted",
        magic("--namespace", "rel-psa"),
        "restricted",
        usage=False,
        namespace="rel-psa",
        setup=namespace("rel-psa", {"pod-security.kubernetes.io/enforce": "restricted"}),
    ),
]

FORM_OK = {"name": NAME, "cpu": "100m", "memory": "256Mi", "locales": 1}

FORM = [
    NotebookCase("form-name-invalid", {"name": "Bad_Name"}, "name: invalid value 'Bad_Name'"),
    NotebookCase("form-name-empty", {"name": ""}, "name"),
    NotebookCase("form-locales-zero", {"locales": 0}, "locales"),
    NotebookCase("form-memory-unit", {"memory": "4Gb"}, "memory: invalid value '4Gb'"),
    NotebookCase("form-cpu-words", {"cpu": "lots"}, "cpu: invalid value 'lots'"),
    NotebookCase("form-threads-word", {"threads": "four"}, "threads"),
    NotebookCase("form-mem-max-above-memory", {"mem_max": "8Gi"}, "mem_max"),
    NotebookCase("form-namespace-invalid", {"namespace": "Bad_NS"}, "namespace"),
    NotebookCase("form-release-space", {"release": "v2023 05"}, "release"),
    NotebookCase("form-labels-no-equals", {"labels": "team"}, "labels"),
    NotebookCase("form-tolerations-not-yaml", {"tolerations": "- [unclosed"}, "tolerations"),
    NotebookCase("form-persistence-relative", {"persistence": "data/arkouda"}, "persistence"),
    NotebookCase("form-ttl-word", {"ttl_seconds": "soon"}, "ttl_seconds"),
    NotebookCase("form-server-port", {"server_port": 70000}, "server_port"),
    NotebookCase(
        "form-namespace-missing", {"namespace": "rel-nowhere"}, "rel-nowhere", usage=False
    ),
    NotebookCase("form-403-create-secrets", {}, "secrets", usage=False, deny=("create", "secrets")),
]


@pytest.fixture
def shell(sb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    """IPython with the extension loaded, pointed at the sandbox, one-line errors."""
    from IPython.core.interactiveshell import InteractiveShell

    from arkouda_k8s import magic_options

    for key in magic_options.SETTINGS:
        monkeypatch.delenv(f"ARKOUDA_K8S_{key.upper()}", raising=False)
    monkeypatch.setenv("ARKOUDA_K8S_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("KUBECONFIG", sb.kubeconfig_path)
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.config.pop("ArkoudaMagics", None)
    ip.run_line_magic("load_ext", "arkouda_k8s")
    ip.run_line_magic("config", "ArkoudaMagics.short_errors = True")
    ip.run_line_magic("config", "ArkoudaMagics.widgets = True")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "arkouda_k8s")
        ip.config.pop("ArkoudaMagics", None)
        ip.user_ns.pop("ak", None)


def _one_line(error: BaseException) -> str:
    """What the notebook shows for the error: a UsageError's text, or the one line an
    ArkoudaError renders in place of a traceback."""
    from IPython.core.error import UsageError

    from arkouda_k8s.magic_errors import ArkoudaError

    if type(error) is UsageError:
        return str(error)
    assert isinstance(error, ArkoudaError), repr(error)
    shown = error._render_traceback_()
    assert len(shown) == 1, shown
    return shown[0]


def _notebook_case(sb: Any, kube: Any, case: NotebookCase, act: Callable[[], str]) -> str:
    if case.setup:
        case.setup(sb, kube)
    before = everything(kube, case.namespace) if kube.get("Namespace", case.namespace) else set()
    if case.deny:
        sb.faults.deny(*case.deny, user="*")
    start = time.monotonic()
    try:
        line = act()
    finally:
        sb.faults.clear()
    assert time.monotonic() - start < 30
    assert "\n" not in line and line.strip(), line
    assert case.text in line, line
    assert "Traceback" not in line
    if kube.get("Namespace", case.namespace):
        assert everything(kube, case.namespace) == before
    assert labelled(kube, NAME) == []
    return line


@pytest.mark.usefixtures("leave_nothing")
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in MAGIC])
def test_magic_bad_input_is_one_line_and_creates_nothing(sb, kube, shell, needles, case):
    from IPython.core.error import UsageError
    from IPython.utils.capture import capture_output

    def act() -> str:
        with capture_output() as shown:
            result = shell.run_cell(f"%arkouda_deploy {case.given}")
        error = result.error_in_exec or result.error_before_exec
        assert error is not None, "the magic accepted bad input"
        assert (type(error) is UsageError) == case.usage, repr(error)
        needles.check(shown.stdout + shown.stderr, "the notebook's output")
        return _one_line(error)

    line = _notebook_case(sb, kube, case, act)
    needles.check(line, "the magic's error line")


@pytest.mark.usefixtures("leave_nothing")
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in FORM])
def test_form_bad_input_is_one_line_and_creates_nothing(sb, kube, shell, needles, case):
    from IPython.utils.capture import capture_output

    from arkouda_k8s import magics as magics_module

    with capture_output():
        shell.run_line_magic("arkouda_deploy", "")
    form = magics_module._LOADED[id(shell)].form
    assert form is not None, "%arkouda_deploy without options shows the form"

    def act() -> str:
        for name, value in {**FORM_OK, **case.given}.items():
            form.fields[name].value = value
        if case.usage:
            # refused as typed: Deploy is disabled and pressing it does nothing
            assert form.error and form.deploy_button.disabled, form.error
            form.deploy()
            assert form.state == "editing"
            return form.error
        assert not form.error and not form.deploy_button.disabled, form.error
        with capture_output():
            form.deploy()
        assert form.state == "failed", (form.state, form.message)
        return form.message

    line = _notebook_case(sb, kube, case, act)
    needles.check(line + form.status_line.value, "the form")
