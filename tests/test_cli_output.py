"""Machine-readable output of the CLI (`-o json|yaml|wide`, `--version`): documents checked
against the JSON Schema in docs/ (docs/cli-output.md) on the sandbox, with a deployment
in each stage (Ready, pending, failed, expired), and never a secret in them."""

from __future__ import annotations

import json
import os
import re

import jsonschema
import pytest
import yaml
from _support.lifecycle import FAULT, cli_process, cli_torn_down, cluster, labelled, spec, token_of
from _support.lifecycle import run_cli as run

from arkouda_k8s.cli import main
from arkouda_k8s.cluster import HEARTBEAT_ANNOTATION

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "..", "docs", "cli-output.schema.json")


@pytest.fixture(scope="module")
def schema():
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        doc = json.load(fh)
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def validate(schema, doc):
    jsonschema.Draft202012Validator(schema).validate(doc)
    return doc


@pytest.fixture(scope="module")
def stages(sb, kube):
    """Four deployments: Ready (deployed by the CLI), pending (its pods cannot be
    scheduled), failed (its image cannot be pulled) and expired (heartbeat past its TTL)."""
    where = ["--kubeconfig", sb.kubeconfig_path]
    small = ["--cpu", "100m", "--memory", "256Mi", "--release", "v2023.05.05"]
    names = {
        "ready": "out-ready",
        "pending": "out-pend",
        "failed": "out-fail",
        "expired": "out-exp",
    }
    try:
        assert main(["deploy", "--name", "out-ready", "--locales", "2", *small, *where]) == 0
        # smp: the only pod is the server's, and --no-wait returns once it is created.
        cluster(
            sb,
            spec(
                "out-pend",
                mode="smp",
                locales=2,
                annotations={"sandbox.arkouda-k8s.dev/fault": "Unschedulable"},
            ),
        ).deploy(wait=False)
        with pytest.raises(Exception, match="ImagePull|image"):
            cluster(
                sb,
                spec(
                    "out-fail",
                    locales=2,
                    annotations={"sandbox.arkouda-k8s.dev/fault": "ImagePullBackOff"},
                ),
                timeouts=FAULT,
                keep_on_failure=True,
            ).deploy()
        assert (
            main(
                ["deploy", "--name", "out-exp", "--locales", "1", "--ttl", "1h", "--no-wait"]
                + small
                + where
            )
            == 0
        )
        kube.patch(
            "ConfigMap",
            "out-exp-state",
            {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z"}}},
        )
        yield names
    finally:
        for name in names.values():
            main(["teardown", name, *where])
        for name in names.values():
            assert labelled(kube, name) == []


def test_status_json_of_each_stage_matches_the_schema(sb, kube, stages, schema, capsys):
    where = ["--kubeconfig", sb.kubeconfig_path]
    docs = {}
    for key, name in stages.items():
        code, out, err = run(capsys, "status", name, "-o", "json", *where)
        assert code == 0, err
        docs[key] = validate(schema, json.loads(out))
        assert docs[key]["name"] == name and docs[key]["namespace"] == "default"
        assert docs[key]["apiVersion"] == "arkouda-k8s.dev/v1"
        assert docs[key]["kind"] == "ClusterStatus"

    ready = docs["ready"]
    assert ready["stage"] == "Ready" and ready["server"] == {"phase": "Running", "ready": True}
    assert ready["localePods"] == {"ready": 1, "total": 1} and ready["locales"] == 2
    # Memory and version come from the server itself (a short-lived tunnel).
    assert ready["arkoudaVersion"] == "v2023.05.05"
    assert ready["memory"]["usedBytes"] is not None and ready["memory"]["maxBytes"] > 0
    assert ready["expired"] is False and ready["expiresAt"] is None
    # the short-lived tunnel is stopped when status prints: none is held
    assert ready["tunnel"] is None and ready["warnings"] == []
    assert token_of(kube, "out-ready") not in json.dumps(docs)

    pending = docs["pending"]
    assert pending["stage"] == "Server" and pending["server"] == {
        "phase": "Pending",
        "ready": False,
    }
    assert pending["localePods"] == {"ready": 0, "total": 0} and pending["mode"] == "smp"
    assert "Unschedulable" in pending["message"] or "nodes are available" in pending["message"]

    failed = docs["failed"]
    assert failed["stage"] == "Failed"
    assert re.search(r"ImagePullBackOff|ErrImagePull", failed["message"]), failed["message"]

    expired = docs["expired"]
    assert expired["expired"] is True and expired["expiresAt"] == "2020-01-01T01:00:00Z"

    # YAML is the same document.
    code, out, err = run(capsys, "status", "out-ready", "-o", "yaml", *where)
    assert code == 0
    doc = validate(schema, yaml.safe_load(out))
    assert doc["stage"] == "Ready" and doc["localePods"] == ready["localePods"]


def test_status_says_why_the_servers_numbers_are_missing(sb, stages, schema, capsys):
    """The server pod is Ready but its short-lived port-forward is refused: the status
    still prints (exit 0, without memory and version), and a warning line on stderr (a
    `warnings` item of the document) names the reason."""
    where = ["--kubeconfig", sb.kubeconfig_path]
    sb.faults.deny("*", "pods/portforward", user="*")
    try:
        code, out, err = run(capsys, "status", "out-ready", *where)
        assert code == 0, err
        assert re.search(r"^stage\s+Ready$", out, re.M) and re.search(r"^version\s+-$", out, re.M)
        assert re.search(r"^tunnel\s+none$", out, re.M), out
        warnings = [line for line in err.splitlines() if line.startswith("arkouda-k8s: warning:")]
        assert len(warnings) == 1, err
        assert "forbidden" in warnings[0].lower() and "pods/portforward" in warnings[0], err

        code, out, err = run(capsys, "status", "out-ready", "-o", "json", *where)
        assert code == 0, err
        doc = validate(schema, json.loads(out))
        assert doc["stage"] == "Ready" and doc["arkoudaVersion"] is None
        assert doc["memory"]["usedBytes"] is None
        assert len(doc["warnings"]) == 1 and "pods/portforward" in doc["warnings"][0], doc
        assert "arkouda-k8s: warning:" in err and "arkouda-k8s: warning:" not in out
    finally:
        sb.faults.clear()


def test_list_json_and_wide(sb, kube, stages, schema, capsys):
    where = ["--kubeconfig", sb.kubeconfig_path]
    code, out, err = run(capsys, "list", "-o", "json", *where)
    assert code == 0, err
    doc = validate(schema, json.loads(out))
    assert doc["kind"] == "ClusterList"
    by_name = {i["name"]: i for i in doc["items"]}
    assert by_name["out-ready"]["stage"] == "Ready"
    assert by_name["out-ready"]["serverPod"] == "out-ready-server"
    assert by_name["out-ready"]["memory"]["perPod"] == "256Mi"
    assert by_name["out-ready"]["context"] == "sandbox"
    assert by_name["out-ready"]["release"] == "v2023.05.05"
    assert by_name["out-fail"]["stage"] == "Failed"
    assert by_name["out-pend"]["stage"] == "Server"
    assert by_name["out-exp"]["expired"] is True
    assert by_name["out-exp"]["heartbeat"] == "2020-01-01T00:00:00Z"
    assert token_of(kube, "out-ready") not in out

    code, out, err = run(capsys, "list", "-o", "yaml", *where)
    assert code == 0

    def timeless(items):  # a second may pass between the two calls
        return [{k: v for k, v in i.items() if k != "ageSeconds"} for i in items]

    assert timeless(validate(schema, yaml.safe_load(out))["items"]) == timeless(doc["items"])

    code, out, err = run(capsys, "list", "-o", "wide", *where)
    assert code == 0, err
    header, *rows = out.strip().splitlines()
    assert header.split()[-4:] == ["CONTEXT", "SERVER-POD", "TUNNEL", "MEMORY"]
    row = next(r.split() for r in rows if r.split()[1] == "out-ready")
    assert row[-4:] == ["sandbox", "out-ready-server", "-", "256Mi/pod"]


def test_list_shows_the_tunnel_this_process_holds(sb, stages, schema):
    """`list_clusters()` (what `list -o wide` prints) names the address of a tunnel held
    to a deployment, and forgets it once the tunnel closes."""
    from arkouda_k8s.cluster import ArkoudaCluster, cluster_list_dict, list_clusters

    held = ArkoudaCluster.from_name("out-ready", kubeconfig=sb.kubeconfig_path, connect=False)
    try:
        host, port = held.start_tunnel()
        items = {i.name: i for i in list_clusters(kubeconfig=sb.kubeconfig_path)}
        assert items["out-ready"].tunnel_address == (host, port)
        assert items["out-ready"].to_wide_row()[-2] == f"{host}:{port}"
        doc = validate(schema, cluster_list_dict(items.values()))
        tunnel = next(i["tunnel"] for i in doc["items"] if i["name"] == "out-ready")
        assert tunnel == {"state": "held", "address": f"{host}:{port}"}
        assert items["out-pend"].tunnel_address is None
    finally:
        held.close()
    items = {i.name: i for i in list_clusters(kubeconfig=sb.kubeconfig_path)}
    assert items["out-ready"].tunnel_address is None


def test_list_wide_shows_a_tunnel_held_by_forward_in_another_process(sb, stages, capsys):
    """`arkouda-k8s forward` in another terminal: `list -o wide` shows its address while
    it runs, and not once it stopped (Ctrl-C) or died (SIGKILL: a stale record)."""
    import signal

    where = ["--kubeconfig", sb.kubeconfig_path]

    def tunnel_column():
        code, out, err = run(capsys, "list", "-o", "wide", *where)
        assert code == 0, err
        return next(r.split() for r in out.splitlines() if r.split()[1] == "out-ready")[-2]

    for stop in (signal.SIGINT, signal.SIGKILL):
        proc = cli_process("forward", "out-ready", *where)
        try:
            first = proc.stdout.readline()
            assert first.startswith("forwarding 127.0.0.1:"), proc.stderr.read()
            address = first.split()[1]
            assert tunnel_column() == address
        finally:
            proc.send_signal(stop)
            proc.wait(30)
        assert tunnel_column() == "-"


def test_deploy_json_prints_only_the_final_status(sb, kube, schema, capsys):
    code, out, err = run(
        capsys,
        "deploy",
        "--name",
        "out-dep",
        "--mode",
        "smp",
        "--locales",
        "2",
        "--cpu",
        "100m",
        "--memory",
        "256Mi",
        "--release",
        "v2023.05.05",
        "-o",
        "json",
        "--kubeconfig",
        sb.kubeconfig_path,
    )
    with cli_torn_down(sb, capsys, "out-dep"):
        assert code == 0, err
        doc = validate(schema, json.loads(out))  # stdout is one document, nothing else
        assert doc["stage"] == "Ready" and doc["mode"] == "smp" and doc["locales"] == 2
        assert doc["arkoudaVersion"] == "v2023.05.05"
        assert "preflight:" in err  # progress still goes to stderr
        assert token_of(kube, "out-dep") not in out + err


def test_list_json_with_nothing_is_an_empty_list(sb, kube, schema, capsys):
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "out-empty"}})
    code, out, err = run(
        capsys, "list", "-o", "json", "-n", "out-empty", "--kubeconfig", sb.kubeconfig_path
    )
    assert code == 0 and validate(schema, json.loads(out))["items"] == []


def test_bad_output_format_exits_2(capsys):
    code, out, err = run(capsys, "status", "x", "-o", "xml")
    assert code == 2 and "--output" in err and "invalid choice: 'xml'" in err
    code, out, err = run(capsys, "status", "x", "-o", "wide")
    assert code == 2


def test_version_names_the_package_and_the_client(capsys):
    from arkouda_k8s import __version__
    from arkouda_k8s.session import client_version, matching_release

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    first, second = out.strip().splitlines()
    assert first == f"arkouda-k8s {__version__}"
    if client_version() is None:
        assert second == "arkouda client: not installed"
    else:
        # The installable 2020.7.7 client maps to a release no bearsrus image exists for.
        assert second.startswith(f"arkouda client {client_version()} -> release")
        assert matching_release() in second
        assert ("no bearsrus image known" in second) == (matching_release() == "v2020.07.07")


@pytest.mark.parametrize("where", ["pipe", "dumb terminal"])
def test_no_progress_bar_outside_a_terminal(monkeypatch, where):
    """Progress into a pipe (or a terminal that cannot redraw) is plain lines: no bar, no
    carriage return, no escape sequence."""
    import io
    import sys

    from arkouda_k8s.cli import _TerminalProgress
    from arkouda_k8s.cluster import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    screen = io.StringIO() if where == "pipe" else Tty()
    if where == "dumb terminal":
        monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setattr(sys, "stderr", screen)
    progress = _TerminalProgress()
    for n in range(4):
        progress(Progress("locales", n, 3, f"locale pods {n}/3 running"))
    progress.close()
    text = screen.getvalue()
    assert text.splitlines() == [f"locales: locale pods {n}/3 running" for n in range(4)]
    assert "\r" not in text and "\x1b" not in text


@pytest.mark.parametrize("where", ["pipe", "terminal"])
def test_a_progress_note_is_a_line_of_its_own(monkeypatch, where):
    """A notice within a stage (a locale pod being replaced) is printed as its own line:
    in a log, where counts of many pods are thinned to a line per tenth, and above a
    terminal's bar, which would otherwise show it only until the next count."""
    import io
    import sys

    from arkouda_k8s.cli import _TerminalProgress
    from arkouda_k8s.cluster import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    screen = io.StringIO() if where == "pipe" else Tty()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.delenv("TERM", raising=False)
    progress = _TerminalProgress()
    note = "locale pod p-7 evicted (The node was low on resource: memory.); waiting for its replacement"
    for n in range(6):
        progress(Progress("locales", n, 30, f"locale pods {n}/30 running"))
    progress(Progress("locales", 5, 30, note, note=True))
    progress(Progress("locales", 6, 30, "locale pods 6/30 running"))
    progress.close()
    lines = [line.strip() for line in screen.getvalue().replace("\r", "\n").splitlines()]
    assert lines.count(f"locales: {note}") == 1
    if where == "pipe":  # the counts thinned as before (a line per 3 pods of 30), the note not
        assert lines == [
            "locales: locale pods 0/30 running",
            "locales: locale pods 3/30 running",
            f"locales: {note}",
            "locales: locale pods 6/30 running",
        ]
    else:  # the bar went on counting after it
        assert "6/30" in screen.getvalue().split(note)[-1]
