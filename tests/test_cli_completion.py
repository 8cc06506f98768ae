"""Shell completion of `arkouda-k8s` (argcomplete): the shell code `arkouda-k8s completion
bash` prints, run by a real bash as a TAB press would, completes commands, options and
the deployment names of the current context (the sandbox)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from _support.lifecycle import dead_kubeconfig, labelled

from arkouda_k8s.cli import main

BIN = os.path.dirname(sys.executable)
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def complete(line: str, **env: str) -> list[str]:
    """What bash offers for TAB at the end of ``line``."""
    if not shutil.which("arkouda-k8s", path=BIN):
        pytest.skip("the arkouda-k8s script is not installed in this environment")
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    script = (
        'eval "$(arkouda-k8s completion bash)"\n'
        f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_python_argcomplete arkouda-k8s\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"], **env},
    )
    assert proc.returncode == 0, proc.stderr
    return [w.strip() for w in proc.stdout.splitlines() if w.strip()]


@needs_bash
def test_commands_and_options_complete():
    assert complete("arkouda-k8s st") == ["status"]
    assert set(complete("arkouda-k8s ")) >= {"deploy", "status", "logs", "list", "doctor"}
    assert complete("arkouda-k8s logs demo --fol") == ["--follow"]
    assert complete("arkouda-k8s list -o ") == ["json", "yaml", "wide"]
    offered = complete("arkouda-k8s completion ")
    assert [w for w in offered if not w.startswith("-")] == ["bash", "zsh"]


@pytest.fixture(scope="module")
def two(sb, kube):
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cmp-other"}})
    made = [("cmp-alpha", "default"), ("cmp-beta", "default"), ("cmp-gamma", "cmp-other")]
    base = ["--mode", "smp", "--locales", "1", "--cpu", "100m", "--memory", "256Mi"]
    try:
        for name, ns in made:
            argv = ["deploy", "--name", name, *base, "--no-wait", "-n", ns]
            assert main([*argv, "--kubeconfig", sb.kubeconfig_path]) == 0
        yield made
    finally:
        for name, ns in made:
            main(["teardown", name, "-n", ns, "--kubeconfig", sb.kubeconfig_path])
        assert all(labelled(kube, name, ns) == [] for name, ns in made)


@needs_bash
def test_status_tab_offers_the_deployments_of_the_current_context(sb, two):
    env = {"KUBECONFIG": sb.kubeconfig_path}
    names = complete("arkouda-k8s status ", **env)
    assert {"cmp-alpha", "cmp-beta"} <= set(names) and "cmp-gamma" not in names
    assert complete("arkouda-k8s status cmp-a", **env) == ["cmp-alpha"]
    assert complete("arkouda-k8s logs cmp-b", **env) == ["cmp-beta"]
    # The namespace (and kubeconfig) given before the name are the ones asked.
    assert complete("arkouda-k8s teardown -n cmp-other cmp-", **env) == ["cmp-gamma"]
    other = complete(f"arkouda-k8s status --kubeconfig {sb.kubeconfig_path} -n cmp-other ")
    assert [w for w in other if not w.startswith("-")] == ["cmp-gamma"]


@needs_bash
def test_a_dead_cluster_completes_nothing_and_quickly(tmp_path):
    config, _ = dead_kubeconfig(tmp_path)
    started = time.monotonic()
    offered = complete("arkouda-k8s status ", KUBECONFIG=str(config))
    assert [w for w in offered if not w.startswith("-")] == []
    assert time.monotonic() - started < 30
    offered = complete("arkouda-k8s status ", KUBECONFIG=str(tmp_path / "absent"))
    assert [w for w in offered if not w.startswith("-")] == []


def zsh_candidates(line: str, **env: str) -> list[str]:
    """What `arkouda-k8s` answers the zsh function of `completion zsh` (which zsh shows
    with `_describe`): `word:description` items separated by a vertical tab."""
    if not shutil.which("arkouda-k8s", path=BIN):
        pytest.skip("the arkouda-k8s script is not installed in this environment")
    proc = subprocess.run(
        ["sh", "-c", "arkouda-k8s 8>&1 9>&2 1>/dev/null 2>&1 </dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PATH": BIN + os.pathsep + os.environ["PATH"],
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_SHELL": "zsh",
            "_ARGCOMPLETE_SUPPRESS_SPACE": "1",
            **env,
        },
    )
    return [w for w in proc.stdout.split("\v") if w]


def test_zsh_completes_commands_and_names(sb, two):
    assert zsh_candidates("arkouda-k8s st") == ["status:show a deployment's state"]
    names = zsh_candidates("arkouda-k8s status cmp-", KUBECONFIG=sb.kubeconfig_path)
    assert sorted(w.split(":")[0] for w in names) == ["cmp-alpha", "cmp-beta"]


def test_zsh_code_is_a_compdef(capsys):
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#compdef arkouda-k8s")
    if shutil.which("zsh"):
        proc = subprocess.run(["zsh", "-n"], input=out, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
