"""The IPython extension, driven through a real ``InteractiveShell``.

The first part needs no cluster (argument errors, settings, the error policy, the
``%%arkouda`` cell runner with a stand-in cluster object); the second runs every magic
end to end against the sandbox with the installable 2020.7.7 ``arkouda`` client.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from _support import eventually, settled
from _support.lifecycle import admin, labelled, torn_down
from _support.notebook import cluster_info, cluster_status
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from arkouda_k8s import magics as magics_module
from arkouda_k8s.credentials import MASK, redact
from arkouda_k8s.errors import DeployError
from arkouda_k8s.interfaces import ClientSession, NotebookCluster
from arkouda_k8s.magics import ArkoudaError, ArkoudaMagics
from arkouda_k8s.status import ClusterStatus
from arkouda_k8s.widgets import ClusterPanel


def run(ip: InteractiveShell, code: str) -> tuple[Any, CapturedIO]:
    """Run a cell; returns (the exception it failed with or None, what it showed)."""
    with capture_output() as out:
        result = ip.run_cell(code)
    out.result = result.result  # type: ignore[attr-defined]  # the cell's value
    return result.error_in_exec or result.error_before_exec, out


def run_ok(ip: InteractiveShell, code: str) -> CapturedIO:
    """Run a cell that must succeed; a failure is re-raised (jupysql's testing shell idea)."""
    error, out = run(ip, code)
    if error is not None:
        raise error
    return out


def shown(out: CapturedIO) -> str:
    """Everything a front end would show: streams and every mime type of every display."""
    parts = [out.stdout, out.stderr]
    for o in out.outputs:
        parts += [v if isinstance(v, str) else repr(v) for v in o.data.values()]
    return "\n".join(parts)


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[InteractiveShell]:
    for key in magics_module.SETTINGS:
        monkeypatch.delenv(f"ARKOUDA_K8S_{key.upper()}", raising=False)
    monkeypatch.setenv("ARKOUDA_K8S_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.chdir(tmp_path)
    shell = fresh_shell()
    shell.run_line_magic("load_ext", "arkouda_k8s")
    yield shell
    shell.run_line_magic("unload_ext", "arkouda_k8s")
    shell.user_ns.pop("ak", None)


def fresh_shell() -> InteractiveShell:
    """The test process's shell, without settings an earlier test made with %config."""
    shell = InteractiveShell.instance()
    shell.config.pop("ArkoudaMagics", None)  # %config persists in the shell's config
    return shell


def the_magics(ip: InteractiveShell) -> ArkoudaMagics:
    return magics_module._LOADED[id(ip)]


# -- loading, settings -------------------------------------------------------------------


def test_load_registers_magics_and_config_and_unload_removes_them(ip: InteractiveShell) -> None:
    names = {
        "arkouda_deploy",
        "arkouda_status",
        "arkouda_logs",
        "arkouda_connect",
        "arkouda_list",
        "arkouda_teardown",
        "arkouda_sandbox",
    }
    assert names <= set(ip.magics_manager.magics["line"])
    assert "arkouda" in ip.magics_manager.magics["cell"]
    run_ok(ip, "%config ArkoudaMagics.namespace = 'analytics'")
    assert the_magics(ip).namespace == "analytics"
    out = run_ok(ip, "%config ArkoudaMagics")
    assert "ArkoudaMagics.short_errors" in out.stdout and "'analytics'" in out.stdout
    ip.run_line_magic("load_ext", "arkouda_k8s")  # twice: still one set of magics
    assert sum(isinstance(c, ArkoudaMagics) for c in ip.configurables) == 1
    ip.run_line_magic("unload_ext", "arkouda_k8s")
    assert not names & set(ip.magics_manager.magics["line"])
    assert not any(isinstance(c, ArkoudaMagics) for c in ip.configurables)
    error, _ = run(ip, "%arkouda_status")
    assert isinstance(error, UsageError) and "not found" in str(error)
    ip.run_line_magic("load_ext", "arkouda_k8s")  # the fixture unloads it again


def test_settings_come_from_env_then_pyproject_then_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[tool.arkouda-k8s]\nnamespace = "from-pyproject"\nrelease = "v2024.01.01"\n'
    )
    user = tmp_path / "user.toml"
    user.write_text('namespace = "from-user"\ncontext = "user-context"\nlocales = 6\n')
    monkeypatch.setenv("ARKOUDA_K8S_CONFIG", str(user))
    monkeypatch.setenv("ARKOUDA_K8S_RELEASE", "v2099.09.09")
    monkeypatch.setenv("ARKOUDA_K8S_SHORT_ERRORS", "false")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.chdir(project / "notebooks")  # pyproject.toml is found in a parent
    ip = fresh_shell()
    ip.run_line_magic("load_ext", "arkouda_k8s")
    try:
        m = the_magics(ip)
        assert m.release == "v2099.09.09"  # env
        assert m.namespace == "from-pyproject"  # pyproject over the user file
        assert m.context == "user-context" and m.locales == 6  # user file
        assert m.short_errors is False
        run_ok(ip, "%config ArkoudaMagics.locales = 3")  # %config wins
        assert m.locales == 3
        # the settings are the defaults of a deploy
        spec = m.spec_from_args(argparse.Namespace(values=[]))
        assert (spec.namespace, spec.release, spec.locales) == (
            "from-pyproject",
            "v2099.09.09",
            3,
        )
    finally:
        ip.run_line_magic("unload_ext", "arkouda_k8s")


def test_load_ext_runs_nothing_a_project_file_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A cloned repository's pyproject.toml names a kubeconfig whose exec credential
    plugin would create a marker file: %load_ext must neither read it nor contact a
    cluster, and the project's other settings still apply."""
    import sys

    marker = tmp_path / "marker"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, pathlib, sys\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
        "'kind': 'ExecCredential', 'status': {'token': 'x'}}))\n"
    )
    evil = tmp_path / "evil-kubeconfig"
    evil.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: evil\n"
        "clusters: [{name: evil, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: evil, context: {cluster: evil, user: evil}}]\n"
        "users: [{name: evil, user: {exec: {apiVersion: client.authentication.k8s.io/v1, "
        f"command: {sys.executable}, args: [{str(plugin)!r}], interactiveMode: Never}}}}}}]\n"
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[tool.arkouda-k8s]\nkubeconfig = "{evil}"\ncontext = "evil"\nnamespace = "team"\n'
    )
    monkeypatch.chdir(project)
    monkeypatch.setenv("ARKOUDA_K8S_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("KUBECONFIG", str(evil))  # even where it would be the default
    ip = fresh_shell()
    ip.run_line_magic("load_ext", "arkouda_k8s")
    try:
        m = the_magics(ip)
        if m._expired_check is not None:  # a look started at load: let it do its worst
            m._expired_check.join(20)
        run_ok(ip, "1")
        assert not marker.exists(), "the project's exec plugin ran at %load_ext"
        assert m._expired_check is None
        assert m.kubeconfig is None and m.context is None
        assert m.namespace == "team"
    finally:
        ip.run_line_magic("unload_ext", "arkouda_k8s")


def test_a_bad_setting_is_a_one_line_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARKOUDA_K8S_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("ARKOUDA_K8S_LOCALES", "lots")
    ip = fresh_shell()
    configurables = list(ip.configurables)
    with pytest.raises(UsageError, match=r"setting locales: invalid value 'lots'"):
        magics_module.load_ipython_extension(ip)
    monkeypatch.delenv("ARKOUDA_K8S_LOCALES")
    (tmp_path / "pyproject.toml").write_text("[tool.arkouda-k8s]\nnamespace = 5\n")
    with pytest.raises(UsageError, match=r"setting: The 'namespace' trait .* expected a uni"):
        magics_module.load_ipython_extension(ip)
    (tmp_path / "bad.toml").write_text("namespace = [unclosed\n")
    monkeypatch.setenv("ARKOUDA_K8S_CONFIG", str(tmp_path / "bad.toml"))
    (tmp_path / "pyproject.toml").write_text("")
    with pytest.raises(UsageError, match=r"config file .*bad.toml: cannot read it"):
        magics_module.load_ipython_extension(ip)
    assert id(ip) not in magics_module._LOADED
    assert ip.configurables == configurables


# -- bad arguments ------------------------------------------------------------------------


class _Recorder:
    created: list[Any] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _Recorder.created.append((args, kwargs))


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("--locales 0", "--locales"),
        ("--locales two", "--locales"),
        ("--memory lots", "--memory"),
        ("--cpu 0", "--cpu"),
        ("--mode mpi", "--mode"),
        ("--name Bad_Name", "--name"),
        ("--pull-policy Sometimes", "--pull-policy"),
        ("--release 'v 1'", "--release"),
        ("--bogus", "--bogus"),
        ("--threads", "--threads"),
        ("--name ok --unschedulable-wait soon", "--unschedulable-wait"),
    ],
)
def test_bad_deploy_arguments_are_a_one_line_usage_error_and_deploy_nothing(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, line: str, option: str
) -> None:
    import arkouda_k8s.cluster

    _Recorder.created = []
    monkeypatch.setattr(arkouda_k8s.cluster, "ArkoudaCluster", _Recorder)
    error, out = run(ip, f"%arkouda_deploy {line}")
    assert type(error) is UsageError  # IPython shows it as one line, no traceback
    message = str(error)
    assert "\n" not in message and option in message and message.startswith("%arkouda_deploy:")
    assert "Traceback" not in shown(out)
    assert _Recorder.created == []


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ("%arkouda_logs --tail 0", "--tail"),
        ("%arkouda_logs --component gpu", "--component"),
        ("%arkouda_teardown demo --all", "one of NAME, --all or --expired"),
        ("%arkouda_sandbox now", "no arguments"),
        ("%%arkouda --cluster\n1", "--cluster"),
        ("%arkouda_status", "%arkouda_connect NAME"),  # nothing current yet: says what to do
    ],
)
def test_bad_arguments_of_other_magics(ip: InteractiveShell, cell: str, needle: str) -> None:
    error, _ = run(ip, cell)
    assert type(error) is UsageError
    assert needle in str(error) and "\n" not in str(error)


def test_dry_run_shows_the_objects_with_placeholders(ip: InteractiveShell) -> None:
    out = run_ok(ip, "%arkouda_deploy --dry-run --name demo --locales 3")
    text = shown(out)
    assert "kind: Pod" in text and "name: demo-server" in text and "kind: Deployment" in text
    assert "replicas: 2" in text  # 3 locales = the server + 2 locale pods
    assert "<generated at deploy>" in text
    assert "PRIVATE KEY" not in text
    assert any("text/html" in o.data for o in out.outputs)


def test_dry_run_reads_helm_values_files_and_options_win(
    ip: InteractiveShell, tmp_path: Any
) -> None:
    values = tmp_path / "server.yaml"
    values.write_text(
        "imageRepository: bearsrus\nreleaseVersion: v2023.05.05\n"
        "resources: {limits: {cpu: 2000m, memory: 4Gi}, requests: {cpu: 2000m, memory: 4Gi}}\n"
        "server: {numLocales: 3, authenticate: false, threadsPerLocale: 2}\n"
    )
    text = shown(run_ok(ip, f"%arkouda_deploy --dry-run --name fromvalues -f {values}"))
    assert "name: fromvalues-server" in text and "--authenticate=false" in text
    assert re.search(r"name: NUMLOCALES\s+value: '3'", text), text
    assert "memory: 4Gi" in text
    text = shown(run_ok(ip, f"%arkouda_deploy --dry-run --name fromvalues -f {values} --locales 5"))
    assert re.search(r"name: NUMLOCALES\s+value: '5'", text)
    run_ok(ip, "%config ArkoudaMagics.locales = 7")  # a default: the file's 3 wins over it
    text = shown(run_ok(ip, f"%arkouda_deploy --dry-run --name fromvalues -f {values}"))
    assert re.search(r"name: NUMLOCALES\s+value: '3'", text)
    error, _ = run(ip, f"%arkouda_deploy --dry-run -f {tmp_path / 'missing.yaml'}")
    assert type(error) is UsageError and "missing.yaml" in str(error)


def test_deploy_spec_from_values_shows_each_warning_and_note_on_one_line(
    ip: InteractiveShell, tmp_path: Any
) -> None:
    """The CLI's builder: a values file's trap is a warning line; the release note too."""
    from importlib import metadata

    from arkouda_k8s.session import matching_release

    values = tmp_path / "server.yaml"
    values.write_text(
        "resources: {limits: {cpu: 2000m, memory: 4Gi}, requests: {cpu: 1000m, memory: 4Gi}}\n"
        "server: {numLocales: 2, authenticate: false}\n"
    )
    out = run_ok(ip, f"%arkouda_deploy --dry-run --name warned -f {values}")
    lines = [line for line in out.stdout.splitlines() if line.startswith("arkouda-k8s: ")]
    assert any(
        "resources.requests.cpu '1000m' differs from the limit '2000m'" in line for line in lines
    ), out.stdout
    text = shown(out)
    assert "cpu: 2000m" in text and re.search(r"name: NUMLOCALES\s+value: '2'", text)
    try:
        metadata.version("arkouda")
    except metadata.PackageNotFoundError:
        return
    release = matching_release()
    assert release is not None
    # no release given anywhere: the installed client's, and a note says so
    assert any(
        line.startswith(f"arkouda-k8s: release: {release}, the release of") for line in lines
    )
    assert f"arkouda-udp-server:{release}" in text
    # a release setting counts as given: no client match, no note
    run_ok(ip, "%config ArkoudaMagics.release = 'v2023.05.05'")
    out = run_ok(ip, f"%arkouda_deploy --dry-run --name warned -f {values}")
    assert "the release of the installed arkouda client" not in out.stdout
    assert "arkouda-udp-server:v2023.05.05" in shown(out)


# -- the error policy -----------------------------------------------------------------------


@dataclass
class StubCluster:
    """Stands in for ArkoudaCluster where the test is about the front end only: what the
    magics need of it (``NotebookCluster``)."""

    name: str = "demo"
    namespace: str = "default"
    fail_logs: Exception | None = None
    ak: Any = None
    memory: list[int] = field(default_factory=lambda: [1000, 5000])
    session: ClientSession | None = None
    on_tunnel_state: list[Callable[[str], None]] = field(default_factory=list)

    def status(self, probe: bool = True, *, handshake: bool = False) -> ClusterStatus:
        return cluster_status(name=self.name, namespace=self.namespace)

    def logs(self, component: str, tail: int | None) -> str:
        if self.fail_logs is not None:
            raise self.fail_logs
        # masked, as ArkoudaCluster.logs returns it (the magics mask nothing themselves)
        return redact(
            f"listening on tcp://10.0.0.5:5555?token=0123456789abcdef ({component}, {tail})"
        )

    def connect(self) -> Any:
        return self.ak

    def memory_used(self) -> int:
        return self.memory.pop(0) if len(self.memory) > 1 else self.memory[0]

    def teardown(self) -> None:
        pass

    def close(self) -> None:
        pass


# Checked by mypy: the stand-in offers what the magics need of an ArkoudaCluster, as that does
_A_NOTEBOOK_CLUSTER: type[NotebookCluster] = StubCluster


@dataclass
class DeletableCluster(StubCluster):
    """A stub with a status that turns Gone on teardown."""

    gone: bool = False

    def status(self, probe: bool = True, *, handshake: bool = False) -> ClusterStatus:
        if not self.gone:
            return cluster_status(name=self.name, namespace=self.namespace)
        return cluster_status(
            name=self.name,
            namespace=self.namespace,
            stage="Gone",
            locales_ready=0,
            tunnel_state=None,
            address=None,
            memory_used=None,
        )

    def teardown(self) -> None:
        self.gone = True


def test_magic_teardown_leaves_the_panel_showing_the_deleted_cluster(
    ip: InteractiveShell,
) -> None:
    m = the_magics(ip)
    run_ok(ip, "%config ArkoudaMagics.widgets = True")
    cluster = DeletableCluster()
    m.clusters["demo"] = cluster
    m.current = "demo"
    panel = m.show_status(cluster)
    assert isinstance(panel, ClusterPanel)  # widgets on: the live panel
    assert re.search(r"stage\s+Ready", panel.text()) and "2/2 running" in panel.text()
    out = run_ok(ip, "%arkouda_teardown")
    assert "demo: deleted" in out.stdout
    text = panel.text()
    assert re.search(r"stage\s+Gone", text) and "0/2 running" in text, text
    assert "demo: deleted" in panel.status_line.value
    assert all(
        b.disabled for b in (panel.logs_button, panel.reconnect_button, panel.teardown_button)
    )
    assert panel._thread is None and panel not in m.panels


FAILURE = DeployError(
    "server pod demo-server: CrashLoopBackOff", "see %arkouda_logs demo", stage="server"
)


@dataclass
class HostileLogsCluster(StubCluster):
    """A pod whose output carries terminal escape sequences."""

    def logs(self, component: str, tail: int | None) -> str:
        return "\x1b]0;owned\x07started\x1b[2J\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\\rready"


def test_arkouda_logs_prints_no_escape_sequence_of_the_pod(ip: InteractiveShell) -> None:
    the_magics(ip).clusters["demo"] = HostileLogsCluster()
    out = run_ok(ip, "%arkouda_logs demo")
    assert "started" in out.stdout and "link" in out.stdout and "ready" in out.stdout
    assert not any(c in out.stdout for c in "\x1b\x07\r")
    assert "owned" not in out.stdout and "evil" not in out.stdout


def test_interactive_failure_is_one_line_with_hint_and_fails_the_cell(
    ip: InteractiveShell,
) -> None:
    the_magics(ip).clusters["demo"] = StubCluster(fail_logs=FAILURE)
    run_ok(ip, "%config ArkoudaMagics.short_errors = True")
    error, out = run(ip, "%arkouda_logs demo")
    assert isinstance(error, ArkoudaError)
    assert isinstance(error.__cause__, DeployError)
    assert error._render_traceback_() == [
        "DeployError: server pod demo-server: CrashLoopBackOff (hint: see %arkouda_logs demo)"
    ]
    text = shown(out)
    assert "DeployError: server pod demo-server: CrashLoopBackOff (hint: see" in text
    assert "Traceback" not in text and "magics.py" not in text


def test_batch_runs_and_short_errors_false_raise_the_exception(ip: InteractiveShell) -> None:
    m = the_magics(ip)
    m.clusters["demo"] = StubCluster(fail_logs=FAILURE)
    # a plain shell (tests, scripts) is not interactive: the exception itself
    error, _ = run(ip, "%arkouda_logs demo")
    assert error is FAILURE
    # a kernel whose client offers no stdin (papermill, nbval, nbconvert) is a batch run
    kernel = types.SimpleNamespace(_allow_stdin=False)
    ip.kernel = kernel  # type: ignore[attr-defined]
    try:
        assert not m.short_errors_now()
        kernel._allow_stdin = True  # a notebook front end
        assert m.short_errors_now()
        error, _ = run(ip, "%arkouda_logs demo")
        assert isinstance(error, ArkoudaError)
        run_ok(ip, "%config ArkoudaMagics.short_errors = False")
        error, _ = run(ip, "%arkouda_logs demo")
        assert error is FAILURE
    finally:
        del ip.kernel  # type: ignore[attr-defined]


def test_logs_are_masked(ip: InteractiveShell) -> None:
    the_magics(ip).clusters["demo"] = StubCluster()
    out = run_ok(ip, "%arkouda_logs demo --component locale --tail 5")
    assert "0123456789abcdef" not in out.stdout
    assert f"token={MASK}" in out.stdout and "(locale, 5)" in out.stdout


def test_redact_masks_tokens_pem_blocks_and_known_secrets() -> None:
    # A fake PEM block, assembled here so no key-shaped text sits in the repository.
    kind = "PRIVATE " + "KEY"
    pem = f"-----BEGIN {kind}-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END {kind}-----"
    text = redact(f"a {pem} b token=abcdefgh12345678 c s3cr3t-value", ("s3cr3t-value",))
    assert "MIIE" not in text and "abcdefgh12345678" not in text and "s3cr3t-value" not in text
    assert text.count(MASK) == 3
    assert redact("token: <generated at deploy>") == "token: <generated at deploy>"


# -- %%arkouda with a stand-in client ----------------------------------------------------------


def _fake_arkouda_client() -> types.ModuleType:
    """A module that raises like the arkouda client does when the server replies Error:."""
    module = types.ModuleType("arkouda.fake_client")
    exec(
        textwrap.dedent(
            """
            def arange(n):
                return list(range(n))

            def fail(what):
                raise RuntimeError("Error: " + what)
            """
        ),
        module.__dict__,
    )
    return module


def test_arkouda_cell_binds_ak_returns_the_last_value_and_reports(ip: InteractiveShell) -> None:
    ak = _fake_arkouda_client()
    m = the_magics(ip)
    m.clusters["demo"] = StubCluster(ak=ak)
    m.current = "demo"
    error, out = run(ip, "%%arkouda\nx = ak.arange(5)\nsum(x)")
    assert error is None, error
    assert ip.user_ns["ak"] is ak and ip.user_ns["x"] == [0, 1, 2, 3, 4]
    assert out.result == 10  # type: ignore[attr-defined]
    assert "[arkouda demo] cell " in out.stdout
    assert "server memory +3.9 KiB" in out.stdout  # 1000 -> 5000 bytes


def test_arkouda_cell_reports_server_time_when_the_session_counts_it(
    ip: InteractiveShell,
) -> None:
    @dataclass
    class CountingSession:
        ak: Any
        closed: bool = False
        counts: Iterator[tuple[int, float]] = iter([(10, 1.0), (13, 1.25)])

        def server_time(self) -> tuple[int, float]:
            return next(self.counts)

    session = CountingSession(_fake_arkouda_client())
    m = the_magics(ip)
    m.clusters["demo"] = StubCluster(ak=session.ak, session=session)
    m.current = "demo"
    out = run_ok(ip, "%%arkouda\nak.arange(3)")
    assert "server 0.250 s in 3 requests" in out.stdout


def test_arkouda_cell_timeit_uses_ipythons_timeit(ip: InteractiveShell) -> None:
    m = the_magics(ip)
    m.clusters["demo"] = StubCluster(ak=_fake_arkouda_client())
    m.current = "demo"
    out = run_ok(ip, "%%arkouda --timeit\nak.arange(3)")
    pattern = r"per loop \(mean (±|\+-) std\. dev\. of \d+ runs?, [\d,]+ loops? each\)"
    assert re.search(pattern, out.stdout), out.stdout
    assert "[arkouda demo] cell " in out.stdout


def test_arkouda_server_error_becomes_one_readable_line(ip: InteractiveShell) -> None:
    m = the_magics(ip)
    m.clusters["demo"] = StubCluster(ak=_fake_arkouda_client())
    m.current = "demo"
    run_ok(ip, "%config ArkoudaMagics.short_errors = True")
    error, out = run(ip, "%%arkouda\nak.fail('array index out of bounds: 10 >= 5')")
    assert isinstance(error, ArkoudaError)
    assert error._render_traceback_() == ["ArkoudaServerError: array index out of bounds: 10 >= 5"]
    assert "Traceback" not in shown(out)
    # a user's own mistake keeps its traceback (it is not the server's)
    error, _ = run(ip, "%%arkouda\n1 / 0")
    assert isinstance(error, ZeroDivisionError)


def test_expired_deployments_are_announced_once_after_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import arkouda_k8s.cluster

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("ARKOUDA_K8S_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(tmp_path)
    items = [
        cluster_info(name="old", namespace="default", heartbeat_expired=True),
        cluster_info(name="live", namespace="default", heartbeat_expired=False),
    ]
    monkeypatch.setattr(arkouda_k8s.cluster, "list_clusters", lambda **kw: items)
    ip = fresh_shell()
    ip.run_line_magic("load_ext", "arkouda_k8s")
    try:
        assert the_magics(ip)._expired_check is None  # loading contacts no cluster
        # the first magic that uses the cluster starts the look; its notice follows the
        # first cell that ends after the look finished (that cell itself when fast)
        texts = [run_ok(ip, "%arkouda_list").stdout]
        check = the_magics(ip)._expired_check
        if check is not None:
            check.join(10)
        texts += [run_ok(ip, "1").stdout, run_ok(ip, "2").stdout]
        texts += [run_ok(ip, "%arkouda_list").stdout, run_ok(ip, "3").stdout]
    finally:
        ip.run_line_magic("unload_ext", "arkouda_k8s")
    notice = "1 deployment(s) with an expired heartbeat: old"
    assert sum(notice in t for t in texts) == 1, texts  # said once
    assert "%arkouda_teardown --expired" in "".join(texts)


# == end to end against the sandbox, with the 2020.7.7 arkouda client ====================

E2E_SIZE = "--cpu 100m --memory 256Mi"


def secret_material(sb: Any, name: str, namespace: str = "default") -> list[str]:
    """Every piece of secret material of a deployment, as it could leak into an output."""
    import base64

    kube = admin(sb, namespace)
    pieces: list[str] = []
    for suffix in ("ssh", "tls", "token"):
        secret = kube.get("Secret", f"{name}-{suffix}", namespace)
        for encoded in ((secret or {}).get("data") or {}).values():
            value = base64.b64decode(encoded).decode()
            pieces.append(encoded)
            if "-----BEGIN" in value:  # any line of a PEM body, and the public key blob
                pieces += [line for line in value.splitlines() if len(line) >= 24]
                pieces += [p for p in value.split() if len(p) >= 40]
            else:
                pieces.append(value)
    assert pieces, f"no secrets found for {name}"
    return pieces


def assert_no_secrets(outputs: list[CapturedIO], secrets: list[str]) -> None:
    text = "\n".join(shown(out) for out in outputs)
    leaked = [s[:12] + "..." for s in secrets if s in text]
    assert not leaked, f"secret material shown: {leaked}"


@pytest.fixture
def sandbox_ip(
    lifecycle_sandbox: Any, ip: InteractiveShell
) -> Iterator[tuple[InteractiveShell, Any]]:
    pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")
    run_ok(ip, f"%config ArkoudaMagics.kubeconfig = {lifecycle_sandbox.kubeconfig_path!r}")
    run_ok(ip, "%config ArkoudaMagics.namespace = 'default'")
    yield ip, lifecycle_sandbox


def instance_objects(sb: Any, name: str) -> list[str]:
    return labelled(admin(sb), name)


def test_magics_end_to_end_deploy_compute_status_logs_teardown(
    sandbox_ip: tuple[InteractiveShell, Any],
) -> None:
    ip, sb = sandbox_ip
    outputs: list[CapturedIO] = []

    def step(code: str) -> CapturedIO:
        out = run_ok(ip, code)
        outputs.append(out)
        return out

    # bad arguments: one line, and nothing reaches the cluster
    error, out = run(ip, "%arkouda_deploy --name e2e --locales 0")
    assert type(error) is UsageError and "--locales" in str(error)
    assert instance_objects(sb, "e2e") == []

    out = step(f"%arkouda_deploy --name e2e --no-auth --locales 3 {E2E_SIZE}")
    stages = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")]
    for stage in ("preflight", "credentials", "locales", "server", "handshake", "ready"):
        assert stage in stages, out.stdout
    card = shown(out)
    assert "Arkouda cluster e2e" in card and "Ready" in card and "2/2 running" in card
    assert ip.user_ns["ak"].__name__ == "arkouda"

    out = step(
        "%%arkouda\n"
        "a = ak.arange(0, 10, 1)\n"
        "b = ak.randint(0, 100, 1000)\n"
        "int((a * 2).sum()), b.size, int(b.max()) < 100"
    )
    assert out.result == (90, 1000, True)  # type: ignore[attr-defined]
    (report,) = [line for line in out.stdout.splitlines() if line.startswith("[arkouda e2e]")]
    assert "server memory +" in report
    # the real client's requests, timed by the session: at least arange, randint, *, sum, max
    found = re.search(r"cell (\d+\.\d+) s, server (\d+\.\d+) s in (\d+) requests", report)
    assert found, report
    cell_s, server_s, requests = float(found[1]), float(found[2]), int(found[3])
    assert requests >= 5 and 0 < server_s <= cell_s
    assert ip.user_ns["a"].size == 10  # the cell's names stay in the user namespace

    # a server error: one readable line in a notebook, the exception itself otherwise
    run_ok(ip, "%config ArkoudaMagics.short_errors = True")
    error, out = run(ip, "%%arkouda\nak.zeros(10**12)")
    outputs.append(out)
    assert isinstance(error, ArkoudaError), error
    (line,) = error._render_traceback_()
    assert line.startswith("ArkoudaServerError: Operation would exceed memory limit")
    assert "Traceback" not in shown(out)
    run_ok(ip, "%config ArkoudaMagics.short_errors = False")
    error, _ = run(ip, "%%arkouda\nak.zeros(10**12)")
    assert type(error) is RuntimeError and "exceed memory limit" in str(error)

    out = step("%arkouda_status")
    card = shown(out)
    assert "Ready" in card and "tunnel" in card and "ready 127.0.0.1:" in card
    assert "memory" in card

    out = step("%arkouda_logs --tail 20")
    assert "getmemused" in out.stdout or "arange" in out.stdout
    assert len(out.stdout.strip().splitlines()) <= 20

    out = step("%arkouda_logs e2e --component locale --tail 3")
    assert "==> e2e-locale-" in out.stdout  # two locale pods, each headed by its name

    out = step("%arkouda_list")
    assert "default/e2e (current)" in shown(out)

    assert_no_secrets(outputs, secret_material(sb, "e2e"))

    out = step("%arkouda_teardown")
    assert "e2e: deleted" in out.stdout
    # its arrays leave the namespace while their server can still delete them
    assert "removed a, b (e2e is deleted" in out.stdout
    assert "a" not in ip.user_ns and "b" not in ip.user_ns
    assert instance_objects(sb, "e2e") == []
    assert "ak" not in ip.user_ns
    error, _ = run(ip, "%arkouda_status")
    assert type(error) is UsageError  # nothing current any more


def test_connect_from_a_fresh_shell_reattaches(sandbox_ip: tuple[InteractiveShell, Any]) -> None:
    import subprocess
    import sys

    ip, sb = sandbox_ip
    run_ok(ip, f"%arkouda_deploy --name reattach --no-auth --locales 2 {E2E_SIZE}")
    with torn_down(admin(sb), "reattach", lambda: run_ok(ip, "%arkouda_teardown reattach")):
        run_ok(ip, "%%arkouda\nkept = ak.arange(0, 5, 1)")
        # a new interpreter stands for the restarted kernel
        child = textwrap.dedent(
            f"""
            from IPython.core.interactiveshell import InteractiveShell
            ip = InteractiveShell.instance()
            ip.run_line_magic("load_ext", "arkouda_k8s")
            for cell in [
                "%config ArkoudaMagics.kubeconfig = {sb.kubeconfig_path!r}",
                "%arkouda_connect reattach",
                "%%arkouda\\nresult = int(ak.arange(0, 100, 1).sum())",
            ]:
                r = ip.run_cell(cell)
                if not r.success:
                    raise SystemExit(f"failed: {{cell!r}}: {{r.error_in_exec!r}}")
            print("RESULT", ip.user_ns["result"])
            ip.run_line_magic("unload_ext", "arkouda_k8s")
            """
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.dirname(os.path.dirname(magics_module.__file__)), env.get("PYTHONPATH", "")]
        )
        proc = subprocess.run(
            [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, env=env
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "RESULT 4950" in proc.stdout
        assert "Arkouda cluster reattach" in proc.stdout and "Ready" in proc.stdout
        # the first kernel's session still works
        out = run_ok(ip, "%%arkouda\nint(kept.sum())")
        assert out.result == 10  # type: ignore[attr-defined]
    assert instance_objects(sb, "reattach") == []


def test_teardown_by_name_removes_remains_whose_spec_is_unreadable(
    sandbox_ip: tuple[InteractiveShell, Any], deployed: Any
) -> None:
    """`%arkouda_teardown NAME` removes what a deployment's state ConfigMap owns even when
    no spec can be read from it (its annotation removed or edited): the one teardown by
    name of the library, as the CLI's (the magic said "not found" and left it all)."""
    from _support.lifecycle import cluster, spec

    from arkouda_k8s.manifests import SPEC_ANNOTATION

    ip, sb = sandbox_ip
    kube = admin(sb)
    remains = cluster(sb, spec("m-unread", mode="smp", locales=1))
    with deployed(remains, deploy=False):  # its teardown is for when the magic failed to
        remains.deploy(wait=False)
        unread = {"metadata": {"annotations": {SPEC_ANNOTATION: None}}}
        kube.patch("ConfigMap", "m-unread-state", unread)
        kube.patch("Pod", "m-unread-server", unread)
        assert "Pod/m-unread-server" in instance_objects(sb, "m-unread")
        out = run_ok(ip, "%arkouda_teardown m-unread")
        assert "m-unread: deleted" in out.stdout
        assert instance_objects(sb, "m-unread") == []


def test_token_auth_with_the_2020_client_is_one_line(
    sandbox_ip: tuple[InteractiveShell, Any],
) -> None:
    ip, sb = sandbox_ip
    run_ok(ip, "%config ArkoudaMagics.short_errors = True")
    with torn_down(admin(sb), "authed", lambda: run_ok(ip, "%arkouda_teardown authed")):
        error, out = run(ip, f"%arkouda_deploy --name authed --locales 1 {E2E_SIZE}")
        assert isinstance(error, ArkoudaError), error
        (line,) = error._render_traceback_()
        assert line.startswith("SessionError: the installed arkouda client 2020.07.07 cannot send")
        assert "--no-auth" in line
        assert "Traceback" not in shown(out)
        assert_no_secrets([out], secret_material(sb, "authed"))
    assert instance_objects(sb, "authed") == []


def test_deploy_waits_for_capacity_when_asked(
    sandbox_ip: tuple[InteractiveShell, Any], deployed: Any
) -> None:
    """--unschedulable-wait, as in the CLI: a pod may wait for a cluster autoscaler to add
    a node, the progress says so, and the failure after the wait is one line."""
    from _support.lifecycle import cluster, spec

    ip, sb = sandbox_ip
    run_ok(ip, "%config ArkoudaMagics.short_errors = True")
    full = cluster(sb, spec("m-full", locales=2, memory="100Gi"))
    with deployed(full, deploy=False):
        full.deploy(wait=False)
        started = time.monotonic()
        error, out = run(
            ip, "%arkouda_deploy --name m-late --locales 2 --memory 100Gi --unschedulable-wait 3s"
        )
        waited = time.monotonic() - started
        assert isinstance(error, ArkoudaError), error
        (line,) = error._render_traceback_()
        assert line.startswith("UnschedulableError:") and "(for 3s)" in line, line
        assert "waiting up to 3s for capacity" in shown(out)
        assert waited >= 3
        assert instance_objects(sb, "m-late") == []
    assert instance_objects(sb, "m-full") == []


def test_deploy_form_and_live_panel(sandbox_ip: tuple[InteractiveShell, Any]) -> None:
    ip, sb = sandbox_ip
    m = the_magics(ip)
    run_ok(ip, "%config ArkoudaMagics.widgets = True")
    run_ok(ip, "%config ArkoudaMagics.context = 'sandbox'")
    out = run_ok(ip, "%arkouda_deploy")  # no options in a widget front end: the form
    form = m.form
    assert form is not None and "Arkouda deploy form" in shown(out)
    assert "sandbox" in form.context.options
    from arkouda_k8s.session import matching_release

    assert form.fields["release"].value == matching_release()  # the installed client's
    form.fields["name"].value = "formed"
    form.fields["authenticate"].value = False
    form.fields["cpu"].value = "100m"
    form.fields["memory"].value = "64Ki"  # too small: Deploy is disabled and says why
    assert form.deploy_button.disabled and form.error.startswith("memory")
    form.fields["memory"].value = "256Mi"
    assert not form.deploy_button.disabled
    outputs = [out]

    def teardown_unless_done() -> None:  # the panel's button tears down when all went well
        if "formed" in m.clusters:
            run_ok(ip, "%arkouda_teardown formed")

    with torn_down(admin(sb), "formed", teardown_unless_done):
        with capture_output() as shown_by_deploy:
            form.deploy_button.click()
        outputs.append(shown_by_deploy)
        assert form.state == "deployed", form.output.outputs
        assert form.progress.state == "ready" and form.progress.bar.bar_style == "success"
        assert ip.user_ns["ak"].__name__ == "arkouda"
        panel = m.panels[-1]
        assert panel.cluster.name == "formed"
        assert "Ready" in panel.text() and "Ready" in panel._repr_mimebundle_()["text/html"]

        # the tunnel drops and cannot come back (port-forward refused): the panel says so
        seen: list[str] = []
        panel.cluster.on_tunnel_state.append(seen.append)
        sb.faults.deny("*", "pods/portforward", user="*")
        try:
            assert sb.faults.drop_portforward_streams() >= 1
            eventually(
                lambda: "failed" in panel.text(),
                20,
                message=lambda: f"the panel to show the tunnel failed; it shows {panel.text()!r}",
            )
            assert "failed" in seen
            assert "tunnel       failed" in panel.text()
            assert "failed" in panel._repr_mimebundle_()["text/html"]
        finally:
            sb.faults.clear()
        panel.reconnect_button.click()  # a new tunnel, a new session, `ak` rebound
        assert seen[-1] == "ready" and "tunnel       ready" in panel.text()
        out = run_ok(ip, "%%arkouda\nint(ak.arange(0, 4, 1).sum())")
        outputs.append(out)
        assert out.result == 6  # type: ignore[attr-defined]
        outputs.append(run_ok(ip, "%arkouda_status formed"))
        # the newer card is the live one; the first one says so
        assert m.panels[-1] is not panel and m.panels[-1].cluster is panel.cluster
        assert panel._thread is None and "newer card" in panel.text()
        panel = m.panels[-1]
        assert_no_secrets(outputs, secret_material(sb, "formed"))

        panel.teardown_button.click()
        assert "formed: deleted" in panel.status_line.value
        assert re.search(r"stage\s+Gone", panel.text()), panel.text()
        assert panel.teardown_button.disabled
        assert "formed" not in m.clusters and "ak" not in ip.user_ns
    assert instance_objects(sb, "formed") == []


def test_create_namespace_from_the_magic_and_the_form(
    sandbox_ip: tuple[InteractiveShell, Any],
) -> None:
    """--create-namespace in %arkouda_deploy and its box in the form: the namespace is
    made when missing, and teardown leaves it."""
    from _support.lifecycle import labelled

    ip, sb = sandbox_ip
    kube = admin(sb)
    run_ok(ip, "%config ArkoudaMagics.short_errors = True")
    line = f"--mode smp --locales 1 --no-auth {E2E_SIZE}"
    with torn_down(kube, "m-ns", lambda: run_ok(ip, "%arkouda_teardown m-ns"), "m-made-ns"):
        run_ok(ip, f"%arkouda_deploy --name m-ns {line} -n m-made-ns --create-namespace")
        assert kube.get("Namespace", "m-made-ns") is not None
    assert labelled(kube, "m-ns", "m-made-ns") == []
    assert kube.get("Namespace", "m-made-ns") is not None

    m = the_magics(ip)
    run_ok(ip, "%config ArkoudaMagics.widgets = True")
    run_ok(ip, "%config ArkoudaMagics.context = 'sandbox'")

    def widgets_off_and_teardown() -> None:
        run_ok(ip, "%config ArkoudaMagics.widgets = False")
        if "m-formns" in m.clusters:
            run_ok(ip, "%arkouda_teardown m-formns")

    with torn_down(kube, "m-formns", widgets_off_and_teardown, "m-form-ns"):
        run_ok(ip, "%arkouda_deploy")
        form = m.form
        assert form is not None  # the deploy form, shown
        values = {"name": "m-formns", "namespace": "m-form-ns", "mode": "smp", "locales": 1}
        values |= {"authenticate": False, "cpu": "100m", "memory": "256Mi"}
        for field, value in values.items():
            form.fields[field].value = value
        form.create_namespace.value = True
        with capture_output():
            form.deploy_button.click()
        assert form.state == "deployed", form.message
        assert kube.get("Namespace", "m-form-ns") is not None
    assert kube.get("Namespace", "m-form-ns") is not None


def test_arkouda_sandbox_magic_runs_a_sandbox_for_the_kernel(ip: InteractiveShell) -> None:
    pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")
    out = run_ok(ip, "%arkouda_sandbox")
    m = the_magics(ip)
    sb = m.sandbox
    assert sb is not None and "simulated Kubernetes" in out.stdout
    assert m.kubeconfig == str(sb.kubeconfig_path) and m.context == "sandbox"
    for name in ("box-a", "box-b"):
        run_ok(ip, f"%arkouda_deploy --sandbox --name {name} --no-auth --locales 1 {E2E_SIZE}")
    # %%arkouda --cluster runs one cell on another cluster; `ak` stays on the current one
    assert m.current == "box-b"
    out = run_ok(ip, "%%arkouda --cluster box-a\nint(ak.arange(0, 5, 1).sum())")
    assert out.result == 10  # type: ignore[attr-defined]
    assert "[arkouda box-a]" in out.stdout and m.current == "box-b"
    out = run_ok(ip, "%%arkouda\nint(ak.arange(0, 7, 1).sum())")
    assert out.result == 21 and "[arkouda box-b]" in out.stdout  # type: ignore[attr-defined]
    out = run_ok(ip, "%arkouda_teardown --all")
    assert "default/box-a: deleted" in out.stdout and "default/box-b: deleted" in out.stdout
    assert m.clusters == {} and "ak" not in ip.user_ns
    assert "no arkouda-k8s deployments" in shown(run_ok(ip, "%arkouda_list"))
    run_ok(ip, f"%arkouda_deploy --sandbox --name kernelbox --no-auth --locales 1 {E2E_SIZE}")
    out = run_ok(ip, "%%arkouda\nint(ak.arange(0, 3, 1).sum())")
    assert out.result == 3  # type: ignore[attr-defined]
    pids = sb.pod_processes()
    assert pids
    # kernel shutdown (here: unloading the extension) closes the tunnel and the sandbox
    ip.run_line_magic("unload_ext", "arkouda_k8s")
    assert m.sandbox is None and m.clusters == {}
    assert settled(lambda: alive(pids), 10) == []
    ip.run_line_magic("load_ext", "arkouda_k8s")  # the fixture unloads it


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        out.append(pid)
    return out


def test_quickstart_notebook_runs_in_a_shell(ip: InteractiveShell) -> None:
    import json
    from pathlib import Path

    pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")
    path = (
        Path(magics_module.__file__).resolve().parent.parent / "notebooks" / "01-quickstart.ipynb"
    )
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    shown_text = []
    for cell in code:
        source = "".join(cell["source"])
        if source.strip() == "%load_ext arkouda_k8s":
            continue  # the fixture loaded it
        shown_text.append(shown(run_ok(ip, source)))
    text = "\n".join(shown_text)
    assert "simulated Kubernetes" in text and "Arkouda cluster quickstart" in text
    assert "[arkouda quickstart]" in text and "quickstart: deleted" in text
    assert the_magics(ip).clusters == {}


def test_expired_deployments_are_announced_at_load_and_removed(
    lifecycle_sandbox: Any, deployed: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from _support.lifecycle import spec

    from arkouda_k8s.cluster import HEARTBEAT_ANNOTATION

    sb = lifecycle_sandbox
    # the fixture's teardown is for when the magic failed to
    with deployed(spec("stale", locales=1, ttl_seconds=60, authenticate=False)) as stale:
        stale.close()  # the kernel that held it died...
        admin(sb).patch(  # ...long ago
            "ConfigMap",
            "stale-state",
            {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z"}}},
        )
        monkeypatch.setenv("KUBECONFIG", sb.kubeconfig_path)
        monkeypatch.setenv("ARKOUDA_K8S_CONFIG", str(tmp_path / "absent.toml"))
        monkeypatch.chdir(tmp_path)
        ip = fresh_shell()
        try:
            # the notice shows under the first cell that ends after the check finished
            # (the first cluster magic's cell itself when the cluster answers fast)
            texts = [run_ok(ip, "%load_ext arkouda_k8s").stdout]
            texts.append(run_ok(ip, "%arkouda_list").stdout)
            check = the_magics(ip)._expired_check
            if check is not None:
                check.join(30)
            texts += [run_ok(ip, "2").stdout, run_ok(ip, "3").stdout]
            notice = "1 deployment(s) with an expired heartbeat: stale"
            assert sum(notice in t for t in texts) == 1, texts  # said once
            assert "`%arkouda_teardown --expired`" in "".join(texts)
            out = run_ok(ip, "%arkouda_teardown --expired")
            assert out.stdout.strip().endswith("default/stale: deleted")
        finally:
            ip.run_line_magic("unload_ext", "arkouda_k8s")
        assert instance_objects(sb, "stale") == []


# == in a real Jupyter kernel ============================================================


def kernel_env(tmp_path: Any) -> dict[str, str]:
    """A kernel environment that finds this checkout and leaves the user's dirs alone."""
    from pathlib import Path

    root = str(Path(magics_module.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    for var, sub in (
        ("IPYTHONDIR", "ipython"),
        ("JUPYTER_CONFIG_DIR", "jupyter-config"),
        ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
        ("JUPYTER_DATA_DIR", "jupyter-data"),
    ):
        env[var] = str(tmp_path / sub)
    env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
    env["ARKOUDA_K8S_CONFIG"] = str(tmp_path / "absent.toml")
    for key in magics_module.SETTINGS:
        env.pop(f"ARKOUDA_K8S_{key.upper()}", None)
    return env


def test_quickstart_notebook_in_a_real_kernel_under_nbclient(tmp_path: Any) -> None:
    from pathlib import Path

    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")
    path = (
        Path(magics_module.__file__).resolve().parent.parent / "notebooks" / "01-quickstart.ipynb"
    )
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=kernel_env(tmp_path))  # raises CellExecutionError if a cell fails
    code = [c for c in nb.cells if c.cell_type == "code"]
    by_source = {"".join(c.source).splitlines()[0]: c.outputs for c in code}
    displays = [o for c in code for o in c.outputs if o.output_type == "display_data"]
    # widgets in a kernel: each has a widget view plus readable text and HTML
    assert displays
    for o in displays:
        assert "application/vnd.jupyter.widget-view+json" in o.data
        assert "VBox(children" not in o.data["text/plain"]
        assert o.data["text/html"].startswith("<div class='arkouda-k8s-card'>")
    deploy = by_source[
        "%arkouda_deploy --name quickstart --no-auth --locales 2 --cpu 500m --memory 1Gi"
    ]
    assert any("Ready" in o.get("data", {}).get("text/plain", "") for o in deploy)
    cell = by_source["%%arkouda"]
    text = "".join(o.get("text", "") for o in cell)
    assert "[arkouda quickstart]" in text
    assert any(o.output_type == "execute_result" for o in cell)
    teardown = "".join(o.get("text", "") for o in by_source["%arkouda_teardown quickstart"])
    assert "quickstart: deleted" in teardown


def test_error_policy_in_a_real_kernel(tmp_path: Any) -> None:
    pytest.importorskip("ipykernel")
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=kernel_env(tmp_path))
    try:
        streams: list[str] = []

        def execute(code: str, allow_stdin: bool) -> tuple[str, dict[str, Any] | None]:
            streams.clear()
            msg_id = kc.execute(code, allow_stdin=allow_stdin, stop_on_error=False)
            reply = kc.get_shell_msg(timeout=120)
            while reply["parent_header"].get("msg_id") != msg_id:  # an earlier request's
                reply = kc.get_shell_msg(timeout=120)
            error = None
            while True:
                msg = kc.get_iopub_msg(timeout=30)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "error":
                    error = msg["content"]
                if msg["msg_type"] == "stream":
                    streams.append(msg["content"]["text"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return reply["content"]["status"], error

        assert execute("%load_ext arkouda_k8s", True) == ("ok", None)
        assert execute("%arkouda_sandbox", True) == ("ok", None)
        # a notebook front end (it offers stdin): one line with the hint, the cell fails
        status, error = execute("%arkouda_connect nobody", True)
        assert status == "error" and error is not None
        assert error["ename"] == "ArkoudaError"
        assert len(error["traceback"]) == 1
        assert error["traceback"][0].startswith("ClusterNotFound: no arkouda-k8s deployment")
        assert "(hint: " in error["traceback"][0]
        # a batch client (papermill, nbval: no stdin): the exception with its traceback
        status, error = execute("%arkouda_connect nobody", False)
        assert status == "error" and error is not None
        assert error["ename"] == "ClusterNotFound" and len(error["traceback"]) > 3
        # bad arguments are a one-line UsageError either way (IPython prints it itself)
        status, error = execute("%arkouda_deploy --locales 0", False)
        assert status == "error" and error is None
        assert "".join(streams).strip() == (
            "UsageError: %arkouda_deploy: --locales: invalid value 0; an integer from 1 to "
            "1024 (hint: see `%arkouda_deploy?`)"
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_a_deploy_the_cluster_cannot_take_is_one_line_and_leaves_nothing(
    sandbox_ip: tuple[InteractiveShell, Any],
) -> None:
    ip, sb = sandbox_ip
    run_ok(ip, "%config ArkoudaMagics.short_errors = True")
    error, out = run(ip, "%arkouda_deploy --name huge --no-auth --locales 2 --memory 100Ti")
    assert isinstance(error, ArkoudaError), error
    (line,) = error._render_traceback_()
    assert line.startswith("PreflightError: ") and "memory" in line and "(hint: " in line
    assert "Traceback" not in shown(out)
    assert instance_objects(sb, "huge") == []
    assert "huge" not in the_magics(ip).clusters and "ak" not in ip.user_ns


def test_status_of_a_deployment_this_kernel_holds_no_tunnel_to_shows_memory_and_version(
    sandbox_ip: tuple[InteractiveShell, Any], deployed: Any
) -> None:
    """`%arkouda_status NAME` of a deployment made elsewhere (the CLI, another kernel)
    reads the server's memory and version through a short-lived tunnel, as
    `arkouda-k8s status` does, and leaves no tunnel behind."""
    from _support.lifecycle import spec

    ip, _ = sandbox_ip
    with deployed(spec("st-elsewhere", locales=2)) as c:
        c.close()  # the deployment stays; this process holds no tunnel to it
        out = run_ok(ip, "%arkouda_status st-elsewhere")
        card = shown(out)
        assert "Ready" in card and c.spec.release in card, card
        assert re.search(r"\d+(\.\d+)? [KMGT]?i?B used", card), card
        assert "st-elsewhere" not in the_magics(ip).clusters
