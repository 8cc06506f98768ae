"""`arkouda-k8s doctor`: with no kubeconfig, with a dead API address, on the sandbox (as
admin and as a user without permissions), each with its lines and exit code; the
client, kubectl and pump lines; colour only on a terminal and never with NO_COLOR."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import jsonschema
import pytest
from _support.lifecycle import dead_kubeconfig, on_a_terminal

from arkouda_k8s import doctor

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "..", "docs", "cli-output.schema.json")


def run_doctor(*argv, env=None, stdout=subprocess.PIPE):
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "NO_COLOR")}
    base.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.run(
        [sys.executable, "-m", "arkouda_k8s.cli", "doctor", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=stdout == subprocess.PIPE,
        env={**base, "PYTHONPATH": os.getcwd(), **(env or {})},
        timeout=120,
    )


def lines_of(out):
    """{check name: (level, message)} of the text report."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^(ok|warning|problem|skipped)\s+(\S+(?: \S+)?)\s{2,}(.*)$", line)
        if m:
            found.setdefault(m.group(2), (m.group(1), m.group(3)))
    return found


def test_no_kubeconfig(tmp_path):
    absent = tmp_path / "absent.kubeconfig"
    proc = run_doctor(env={"KUBECONFIG": str(absent), "HOME": str(tmp_path)})
    assert proc.returncode == 1, proc.stderr
    checks = lines_of(proc.stdout)
    assert checks["kubeconfig"] == ("problem", f"no kubeconfig at {absent} ($KUBECONFIG)")
    assert "fix: pass --kubeconfig FILE or set $KUBECONFIG" in proc.stdout
    assert "arkouda-k8s sandbox --kubeconfig-out" in proc.stdout
    for name in ("context", "api", "permissions"):
        assert checks[name][0] == "skipped"
    # The machine's own checks still run.
    assert {"arkouda client", "kubectl", "tunnel pump"} <= set(checks)
    proc = run_doctor(env={"HOME": str(tmp_path)})  # no $KUBECONFIG: ~/.kube/config
    assert proc.returncode == 1
    assert lines_of(proc.stdout)["kubeconfig"] == (
        "problem",
        f"no kubeconfig at {tmp_path}/.kube/config",
    )


def test_dead_api_address(tmp_path):
    config, port = dead_kubeconfig(tmp_path, namespace="team")
    started = time.monotonic()
    proc = run_doctor("--kubeconfig", str(config))
    assert time.monotonic() - started < 60
    assert proc.returncode == 1, proc.stderr
    checks = lines_of(proc.stdout)
    assert checks["kubeconfig"] == ("ok", str(config))
    assert checks["context"][0] == "ok" and "context dead (cluster gone" in checks["context"][1]
    # nothing listens there: said after a few refused attempts, not after the 8 s window
    assert checks["api"][0] == "problem"
    assert checks["api"][1].startswith(
        f"nothing answers at the Kubernetes API https://127.0.0.1:{port}: "
    ), checks["api"]
    assert "Connection refused (5 attempts)" in checks["api"][1]
    assert f"fix: start the cluster, or check the server address of the context in {config}" in (
        proc.stdout
    )
    assert checks["permissions"][0] == "skipped"
    assert "not-a-secret" not in proc.stdout + proc.stderr
    # A context the file does not have: the fix names those it has.
    proc = run_doctor("--kubeconfig", str(config), "--context", "prod")
    assert proc.returncode == 1
    checks = lines_of(proc.stdout)
    assert checks["context"][0] == "problem" and "'prod' is not in" in checks["context"][1]
    assert "choose one of: dead" in proc.stdout and checks["api"][0] == "skipped"


def test_expired_client_certificate_is_named(sb, tmp_path):
    import datetime

    import yaml

    cert, key = sb.ca.issue_client(
        "sandbox-admin", ["system:masters"], lifetime=datetime.timedelta(minutes=-1)
    )
    config = tmp_path / "expired.kubeconfig"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(sb.kubeconfig_dict(client_certificate=cert, client_key=key), fh)
    proc = run_doctor("--kubeconfig", str(config))
    assert proc.returncode == 1, proc.stderr
    level, message = lines_of(proc.stdout)["api"]
    assert level == "problem"
    assert "the client certificate of user sandbox-admin of context sandbox expired at" in message
    assert "fix: renew the credentials" in proc.stdout


def test_sandbox_is_ready(sb):
    proc = run_doctor("--kubeconfig", sb.kubeconfig_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = lines_of(proc.stdout)
    assert checks["kubeconfig"] == ("ok", sb.kubeconfig_path)
    assert checks["context"][0] == "ok" and "context sandbox" in checks["context"][1]
    assert checks["api"] == (
        "ok",
        f"{sb.url} answers: Kubernetes v1.32.0+arkouda-k8s-sandbox",
    )
    assert checks["permissions"] == (
        "ok",
        "a default deploy (udp, 2 locales, 2Gi a pod) may run in namespace default (rules review)",
    )
    assert "problem" not in proc.stdout
    assert "\x1b[" not in proc.stdout  # a pipe gets no colour

    proc = run_doctor("--kubeconfig", sb.kubeconfig_path, "-o", "json")
    assert proc.returncode == 0
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        schema = json.load(fh)
    doc = json.loads(proc.stdout)
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["kind"] == "DoctorReport" and doc["ok"] is True
    assert [c["name"] for c in doc["checks"]][:4] == [
        "kubeconfig",
        "context",
        "api",
        "permissions",
    ]


def test_sandbox_user_without_permissions(sb, kube):
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doc-locked"}})
    config = sb.kubeconfig_for_user("doc-nobody")
    proc = run_doctor("--kubeconfig", config, "-n", "doc-locked")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = lines_of(proc.stdout)
    assert checks["api"][0] == "ok"
    level, message = checks["permissions"]
    assert level == "problem"
    assert message.startswith("a default deploy (udp, 2 locales, 2Gi a pod) lacks, for doc-nobody")
    assert "in namespace doc-locked:" in message and "pods" in message
    assert "fix: ask an administrator to apply `arkouda-k8s deploy -n doc-locked --print-rbac`" in (
        proc.stdout
    )


def test_colour_on_a_terminal_only_and_never_with_no_color(sb):
    argv = [sys.executable, "-m", "arkouda_k8s.cli", "doctor"]
    argv += ["--kubeconfig", sb.kubeconfig_path]
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TERM": "xterm"}
    coloured = on_a_terminal(argv, {**env, "NO_COLOR": ""})  # empty: not set (no-color.org)
    assert "\x1b[32mok" in coloured
    plain = on_a_terminal(argv, {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain and "ok       api" in plain


def test_client_lines(monkeypatch):
    from arkouda_k8s import session

    report = doctor.Report()
    monkeypatch.setattr(session, "client_version", lambda: None)
    doctor._client_check(report)
    monkeypatch.setattr(session, "client_version", lambda: "2023.5.5")
    monkeypatch.setattr(session, "matching_release", lambda: "v2023.05.05")
    doctor._client_check(report)
    monkeypatch.setattr(session, "client_version", lambda: "2020.7.7")
    monkeypatch.setattr(session, "matching_release", lambda: "v2020.07.07")
    doctor._client_check(report)
    missing, known, unknown = report.checks
    assert missing.level == "warning" and missing.message.startswith("not installed")
    assert (
        known.level == "ok" and "release v2023.05.05, whose images are published" in known.message
    )
    assert (
        unknown.level == "warning" and "v2020.07.07 has no known bearsrus image" in unknown.message
    )
    assert "--release" in (unknown.fix or "") and report.ok  # warnings do not fail


def test_pump_and_kubectl_lines(monkeypatch):
    from arkouda_k8s import tunnel

    monkeypatch.setattr(tunnel.spdy_path, "_native", None)
    report = doctor.Report()
    doctor._pump_check(report)
    (pump,) = report.checks
    assert pump.level == "warning" and pump.message.startswith("not built")
    assert "gcc libssl-dev" in (pump.fix or "")
    monkeypatch.setenv("PATH", "/nonexistent")
    doctor._kubectl_check(report)
    kubectl = report.checks[-1]
    assert kubectl.level == "warning" and kubectl.message.startswith("not found on PATH")


@pytest.mark.parametrize("level", doctor.LEVELS)
def test_every_level_is_in_the_schema(level):
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        schema = json.load(fh)
    report = doctor.Report()
    report.add("x", level, "m", None if level == "ok" else "f")
    jsonschema.Draft202012Validator(schema).validate(report.to_dict())
    assert report.ok == (level != "problem")
