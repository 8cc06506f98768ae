"""The CLI's cluster commands against the sandbox: deploy, status, logs, list, forward,
teardown (NAME, --all, --expired), exit codes, and no secret on the terminal."""

from __future__ import annotations

import signal
import sys
import time

import pytest
from _support import settled
from _support.lifecycle import cli_process, cli_torn_down, labelled, token_of, torn_down
from _support.lifecycle import run_cli as run

from arkouda_k8s.cli import main
from arkouda_k8s.cluster import HEARTBEAT_ANNOTATION


@pytest.fixture(scope="module")
def cli_made(sb, kube):
    """One deployment made with `arkouda-k8s deploy`, shared by the read-only commands."""
    code = main(
        [
            "deploy",
            "--name",
            "cli-a",
            "--locales",
            "3",
            "--cpu",
            "100m",
            "--memory",
            "256Mi",
            "--release",
            "v2023.05.05",
            "--kubeconfig",
            sb.kubeconfig_path,
            "--ttl",
            "10m",
        ]
    )
    assert code == 0
    with torn_down(
        kube, "cli-a", lambda: main(["teardown", "cli-a", "--kubeconfig", sb.kubeconfig_path])
    ):
        yield "cli-a"


def test_deploy_prints_progress_and_status(sb, kube, capsys):
    code, out, err = run(
        capsys,
        "deploy",
        "--name",
        "cli-d",
        "--locales",
        "2",
        "--mode",
        "smp",
        "--cpu",
        "100m",
        "--memory",
        "256Mi",
        "--release",
        "v2023.05.05",
        "--kubeconfig",
        sb.kubeconfig_path,
    )
    # An explicit teardown, not cli_torn_down: the test asserts on what it prints.
    try:
        assert code == 0, err
        assert "preflight: using context sandbox" in err
        assert "handshake: Arkouda v2023.05.05 answered" in err
        assert "stage    Ready" in out and "version  v2023.05.05" in out
        assert token_of(kube, "cli-d") not in out + err
    finally:
        code, out, err = run(capsys, "teardown", "cli-d", "--kubeconfig", sb.kubeconfig_path)
    assert code == 0 and "deleted default/cli-d" in out
    assert labelled(kube, "cli-d") == []


def test_status_shows_locales_memory_version(sb, kube, cli_made, capsys):
    code, out, err = run(capsys, "status", cli_made, "--kubeconfig", sb.kubeconfig_path)
    assert code == 0, err
    assert "locales  3: 1 in the server pod + 2/2 locale pods running" in out
    assert "version  v2023.05.05" in out
    assert "used of" in out and "memMax" in out
    assert "expires" in out and "never" not in out.split("expires")[1]
    assert token_of(kube, cli_made) not in out + err


def test_logs_mask_the_token(sb, kube, cli_made, capsys):
    code, out, err = run(capsys, "logs", cli_made, "--kubeconfig", sb.kubeconfig_path)
    assert code == 0, err
    assert "server listening on" in out
    assert token_of(kube, cli_made) not in out
    code, out, err = run(
        capsys,
        "logs",
        cli_made,
        "--component",
        "locale",
        "--tail",
        "5",
        "--kubeconfig",
        sb.kubeconfig_path,
    )
    assert code == 0 and "==> cli-a-locale-" in out


def test_list_shows_the_deployment(sb, cli_made, capsys):
    code, out, err = run(capsys, "list", "--kubeconfig", sb.kubeconfig_path)
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split()[:4] == ["NAMESPACE", "NAME", "STAGE", "LOCALE-PODS"]
    row = next(r.split() for r in rows if r.split()[1] == cli_made)
    assert row[0] == "default" and row[2] == "Ready" and row[3] == "2/2" and row[4] == "udp"


def test_unknown_name_exits_1_and_bad_input_exits_2(sb, capsys):
    code, out, err = run(capsys, "status", "nope", "--kubeconfig", sb.kubeconfig_path)
    assert code == 1 and "no arkouda-k8s deployment 'nope'" in err
    code, out, err = run(capsys, "teardown", "--kubeconfig", sb.kubeconfig_path)
    assert code == 2 and "exactly one of NAME, --all or --expired" in err
    code, out, err = run(capsys, "deploy", "--ttl", "soon", "--kubeconfig", sb.kubeconfig_path)
    assert code == 2 and "--ttl" in err


def test_deploy_waits_for_capacity_only_when_asked(sb, kube, capsys):
    """--unschedulable-wait gives a cluster autoscaler time to add a node; without it a
    pod the scheduler cannot place fails the deploy at once. Both roll back."""

    base = ["--locales", "2", "--memory", "100Gi", "--kubeconfig", sb.kubeconfig_path]
    assert main(["deploy", "--name", "cli-full", *base, "--no-wait"]) == 0
    with cli_torn_down(sb, capsys, "cli-full"):
        started = time.monotonic()
        code, out, err = run(capsys, "deploy", "--name", "cli-late", *base)
        at_once = time.monotonic() - started
        assert code == 1 and "Insufficient memory" in err, err
        started = time.monotonic()
        code, out, err = run(
            capsys, "deploy", "--name", "cli-late", *base, "--unschedulable-wait", "3s"
        )
        waited = time.monotonic() - started
        assert code == 1 and "Insufficient memory" in err and "(for 3s)" in err, err
        assert "waiting up to 3s for capacity" in err
        assert waited >= 3 and waited > at_once
        assert labelled(kube, "cli-late") == []
    code, out, err = run(
        capsys, "deploy", "--name", "x", "--unschedulable-wait", "later", *base[-2:]
    )
    assert code == 2 and "--unschedulable-wait: 'later' is not a duration" in err
    assert labelled(kube, "x") == []


def test_print_rbac(sb, capsys):
    code, out, err = run(
        capsys, "deploy", "--name", "x", "--print-rbac", "--kubeconfig", sb.kubeconfig_path
    )
    assert code == 0
    # The default registration needs namespace permissions only.
    assert "kind: Role" in out and "pods/portforward" in out and "serviceaccounts" in out
    assert "ClusterRole" not in out and "certificatesigningrequests" not in out
    code, out, err = run(
        capsys,
        "deploy",
        "--name",
        "x",
        "--registration",
        "server",
        "--print-rbac",
        "--kubeconfig",
        sb.kubeconfig_path,
    )
    assert code == 0
    assert "kind: ClusterRole" in out and "certificatesigningrequests" in out


def test_forward_holds_a_tunnel_and_prints_a_connect_line(sb, kube, cli_made):
    import socket

    with socket.socket() as s:  # a free port for --local-port
        s.bind(("127.0.0.1", 0))
        wanted = s.getsockname()[1]
    proc = cli_process(
        "forward", cli_made, "--local-port", str(wanted), "--kubeconfig", sb.kubeconfig_path
    )
    try:
        first = proc.stdout.readline()
        lines = [first, proc.stdout.readline(), proc.stdout.readline()]
        assert first.startswith("forwarding 127.0.0.1:"), (
            proc.stderr.read() if proc.poll() else first
        )
        port = int(first.split()[1].split(":")[1])
        assert port == wanted
        assert "kubectl get secret cli-a-token" in lines[1]
        assert f'ak.connect("127.0.0.1", {port}' in lines[2]
        token = token_of(kube, cli_made)
        assert token not in "".join(lines)
        # The address answers Arkouda's protocol, with the token from the Secret.
        from arkouda_k8s.protocol import ArkoudaProbe

        assert ArkoudaProbe("127.0.0.1", port, token=token).handshake()["numLocales"] == 3
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0


def test_teardown_expired_and_all(sb, kube, capsys):
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cli-ns"}})
    where = ["--kubeconfig", sb.kubeconfig_path, "-n", "cli-ns"]
    for name in ("cli-old", "cli-new"):
        args = ["deploy", "--name", name, "--locales", "1", "--cpu", "100m", "--memory", "256Mi"]
        assert main([*args, "--ttl", "1h", "--no-wait", *where]) == 0
    capsys.readouterr()
    kube.patch(
        "ConfigMap",
        "cli-old-state",
        {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z"}}},
        "cli-ns",
    )
    code, out, err = run(capsys, "teardown", "--expired", *where)
    assert code == 0 and out.strip() == "deleted cli-ns/cli-old"
    assert labelled(kube, "cli-old", "cli-ns") == []
    assert labelled(kube, "cli-new", "cli-ns") != []
    code, out, err = run(capsys, "teardown", "--all", *where)
    assert code == 0 and out.strip() == "deleted cli-ns/cli-new"
    assert labelled(kube, "cli-new", "cli-ns") == []


def test_terminal_progress_draws_a_bar_on_a_tty(monkeypatch):
    import io

    from arkouda_k8s.cli import _TerminalProgress
    from arkouda_k8s.cluster import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    screen = Tty()
    monkeypatch.setattr(sys, "stderr", screen)
    progress = _TerminalProgress()
    progress(Progress("preflight", 0, 1, "using context sandbox"))
    for n in range(4):
        progress(Progress("locales", n, 3, f"locales {n}/3 running"))
    progress(Progress("server", 1, 1, "server pod ready"))
    progress.close()
    text = screen.getvalue()
    assert "locales: 100%" in text and "3/3" in text and "locales 3/3 running" in text


def test_status_of_a_failed_deployment_says_why(sb, kube, capsys):
    from _support.lifecycle import FAULT, cluster, spec

    from arkouda_k8s.errors import ImagePullError

    s = spec(
        "cli-bad", locales=2, annotations={"sandbox.arkouda-k8s.dev/fault": "ImagePullBackOff"}
    )
    with pytest.raises(ImagePullError):
        cluster(sb, s, timeouts=FAULT, keep_on_failure=True).deploy()
    with cli_torn_down(sb, capsys, "cli-bad"):
        code, out, err = run(capsys, "status", "cli-bad", "--kubeconfig", sb.kubeconfig_path)
        assert code == 0, err
        assert "stage    Failed: cli-bad-locale-" in out
        # The kubelet alternates the two reasons while it retries the pull.
        assert "ImagePullBackOff" in out or "ErrImagePull" in out
        # the server pod, created with its locale, cannot pull either
        assert "0/1 locale pods running" in out and "server   Pending, not ready" in out
        code, out, err = run(capsys, "list", "--kubeconfig", sb.kubeconfig_path)
        assert any(r.split()[1:3] == ["cli-bad", "Failed"] for r in out.splitlines()[1:])
    assert labelled(kube, "cli-bad") == []


def test_remains_without_their_marker_go_with_it(sb, kube, capsys):
    """Every object of a deployment is owned by its state ConfigMap: with the marker
    gone (a rollback that failed half-way), the garbage collector removes the rest, and
    `teardown NAME` finds nothing of ours to delete."""
    from _support.lifecycle import FAULT, cluster, spec

    from arkouda_k8s.errors import ImagePullError

    s = spec(
        "cli-rem", locales=2, annotations={"sandbox.arkouda-k8s.dev/fault": "ImagePullBackOff"}
    )
    with pytest.raises(ImagePullError):
        cluster(sb, s, timeouts=FAULT, keep_on_failure=True).deploy()
    state = kube.get("ConfigMap", "cli-rem-state")
    kube.delete("ConfigMap", "cli-rem-state", uid=state["metadata"]["uid"])
    assert settled(lambda: labelled(kube, "cli-rem"), 30, 0.2) == []
    code, out, err = run(capsys, "teardown", "cli-rem", "--kubeconfig", sb.kubeconfig_path)
    assert code == 1 and "no arkouda-k8s deployment 'cli-rem'" in err


def test_deploy_without_release_matches_the_installed_client(sb, kube, capsys):
    """DESIGN: no --release given and a client installed -> that client's release, said."""
    from arkouda_k8s.session import matching_release

    release = matching_release()
    if release is None:
        pytest.skip("no arkouda client installed (scripts/install_arkouda_client.py)")
    args = ["--name", "cli-rel", "--mode", "smp", "--locales", "1", "--cpu", "100m"]
    code, out, err = run(
        capsys,
        "deploy",
        *args,
        "--memory",
        "256Mi",
        "--no-auth",
        "--kubeconfig",
        sb.kubeconfig_path,
    )
    with cli_torn_down(sb, capsys, "cli-rel"):
        assert code == 0, err
        assert f"release: {release}, the release of the installed arkouda client" in err
        pod = kube.get("Pod", "cli-rel-server", "default")
        images = [c["image"] for c in pod["spec"]["containers"]]
        assert images == [f"bearsrus/arkouda-smp-server:{release}"]
        assert f"version  {release}" in out  # the stand-in serves the release it was given
    # An explicit release wins and no note is printed.
    code, out, err = run(capsys, "render", *args, "--release", "v2023.05.05")
    assert code == 0 and "arkouda-smp-server:v2023.05.05" in out
    assert "installed arkouda client" not in err


def test_deploy_create_namespace_creates_it_once_and_teardown_keeps_it(sb, kube, capsys):
    """Helm's --create-namespace: a missing namespace is created (the deploy says so);
    teardown removes the deployment and leaves the namespace (other things may live in
    it); without the flag a missing namespace is a preflight error that names the flag."""
    ns = "cli-made-ns"
    assert kube.get("Namespace", ns) is None
    base = ["--kubeconfig", sb.kubeconfig_path, "--namespace", ns]
    code, out, err = run(capsys, "deploy", "--name", "cli-nsless", "--mode", "smp", *base)
    assert code == 1 and "--create-namespace" in err and kube.get("Namespace", ns) is None
    argv = ["deploy", "--name", "cli-ns", "--mode", "smp", "--locales", "1", "--no-auth"]
    code, out, err = run(
        capsys, *argv, "--cpu", "100m", "--memory", "256Mi", "--create-namespace", *base
    )
    assert code == 0, err
    assert f"namespace {ns} created" in err
    assert kube.get("Namespace", ns) is not None
    code, out, err = run(capsys, "teardown", "cli-ns", *base)
    assert code == 0, err
    assert labelled(kube, "cli-ns", ns) == []
    namespace = kube.get("Namespace", ns)
    assert namespace is not None and not namespace["metadata"].get("deletionTimestamp")


def test_registration_option(capsys):
    from arkouda_k8s.cli import build_parser, spec_from_args

    args = build_parser().parse_args(["render", "--registration", "server"])
    assert spec_from_args(args)[0].registration == "server"
    args = build_parser().parse_args(["render"])
    assert spec_from_args(args)[0].registration == "client"
    code, out, err = run(capsys, "render", "--registration", "cluster")
    assert code == 2 and "--registration" in err
