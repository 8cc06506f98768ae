"""What `arkouda-k8s doctor` checks: is this machine ready to deploy Arkouda?

Each check gives one line, ``ok`` / ``warning`` (works, with a caveat) / ``problem`` (a
deploy would fail) / ``skipped`` (an earlier problem makes it meaningless), and for
anything short of ok the fix. Checks, in order: the kubeconfig, its context, the API
server reachable (and its version), the namespace's permissions and limits for a
default deploy (the library's own preflight: one rules review, nothing created), the
installed arkouda client and whether images exist for its release (the offline table
``spec.KNOWN_RELEASES``), kubectl (the commands we print use it), and the tunnel's
native byte pump.

    report = diagnose(kubeconfig="~/.kube/config")
    print(report.to_text())
    sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import ArkoudaK8sError, KubeError
from .spec import DEFAULT_RELEASE, KNOWN_RELEASES, ClusterSpec

LEVELS = ("ok", "warning", "problem", "skipped")


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    level: str
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "message": self.message, "fix": self.fix}


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No check found a problem (warnings allowed)."""
        return all(c.level != "problem" for c in self.checks)

    def add(self, name: str, level: str, message: str, fix: str | None = None) -> Check:
        check = Check(name, level, message, fix)
        self.checks.append(check)
        return check

    def to_dict(self) -> dict[str, Any]:
        """The versioned document of ``doctor -o json`` (kind DoctorReport)."""
        from .cluster import OUTPUT_API_VERSION

        return {
            "apiVersion": OUTPUT_API_VERSION,
            "kind": "DoctorReport",
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_text(self, paint: Any = None) -> str:
        """One line a check, its fix indented below; ``paint(level, text)`` colours the
        level word (the CLI passes one on a colour terminal)."""
        width = max((len(c.name) for c in self.checks), default=0)
        lines = []
        for c in self.checks:
            word = f"{c.level:<8}"
            lines.append(
                f"{paint(c.level, word) if paint else word} {c.name:<{width}}  {c.message}"
            )
            if c.fix:
                lines.append(f"{'':<8} {'':<{width}}  fix: {c.fix}")
        return "\n".join(lines)


def diagnose(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    *,
    timeout: float = 8.0,
) -> Report:
    """Run every check; never raises for what it finds (that is the report's job)."""
    report = Report()
    kube = _cluster_checks(report, kubeconfig, context, namespace, timeout)
    if kube is not None:
        _permission_check(report, kube, timeout)
    _client_check(report)
    _kubectl_check(report)
    _pump_check(report)
    return report


def _cluster_checks(
    report: Report,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    timeout: float,
) -> Any:
    """kubeconfig, context, API: the Kube to go on with, or None."""
    from .kube import Kube, default_kubeconfig

    path = os.path.expanduser(kubeconfig) if kubeconfig else default_kubeconfig()
    in_cluster = (
        not kubeconfig
        and not os.path.exists(path)
        and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    )
    if in_cluster:
        report.add("kubeconfig", "ok", "none: in a pod, using its service account")
    elif not os.path.exists(path):
        report.add(
            "kubeconfig",
            "problem",
            f"no kubeconfig at {path}"
            + (" ($KUBECONFIG)" if not kubeconfig and os.environ.get("KUBECONFIG") else ""),
            "pass --kubeconfig FILE or set $KUBECONFIG; to try arkouda-k8s without a cluster: "
            "arkouda-k8s sandbox --kubeconfig-out sandbox.kubeconfig",
        )
        _skip(report, "context", "api", "permissions")
        return None
    else:
        report.add("kubeconfig", "ok", path)
    try:
        kube = Kube.connect(kubeconfig, context, namespace)
    except ArkoudaK8sError as exc:
        report.add("context", "problem", exc.message, exc.hint or _pick_context(path))
        _skip(report, "api", "permissions")
        return None
    report.add("context", "ok", kube.describe())
    try:
        version = kube.request("GET", "/version", deadline=time.monotonic() + timeout)
    except KubeError as exc:
        if exc.status in (401, 403) or exc.reason == "Unreachable":
            # refused credentials, or nothing listens there: the error says which
            fix = exc.hint or "log in again or pick another context (--context)"
            report.add("api", "problem", exc.message, fix)
        else:
            report.add(
                "api",
                "problem",
                f"cannot reach the Kubernetes API at {kube.server} within {timeout:g}s",
                "check that the cluster is up and reachable from here (VPN, proxy, "
                "firewall), or pick another context (--context, kubectl config get-contexts)",
            )
        _skip(report, "permissions")
        return None
    report.add(
        "api",
        "ok",
        f"{kube.server} answers: Kubernetes {version.get('gitVersion') or '?'}",
    )
    return kube


def _permission_check(report: Report, kube: Any, timeout: float) -> None:
    from . import preflight

    spec = ClusterSpec().with_namespace(kube.namespace)
    what = f"a default deploy ({spec.mode}, {spec.locales} locales, {spec.memory} a pod)"
    try:
        found = preflight.check(kube, spec, kube.namespace, deadline=time.monotonic() + timeout)
    except KubeError as exc:
        report.add("permissions", "problem", f"cannot review permissions: {exc.message}", exc.hint)
        return
    if found.missing:
        report.add(
            "permissions",
            "problem",
            f"{what} lacks, for {kube.user or 'the current user'} in namespace "
            f"{kube.namespace}: {preflight.grouped(found.missing)}",
            f"ask an administrator to apply `arkouda-k8s deploy -n {kube.namespace} --print-rbac`",
        )
    for problem in found.problems:
        report.add("namespace", "problem", problem, "see the message; nothing was created")
    for warning in found.warnings:
        report.add("namespace", "warning", warning)
    if not found.missing:
        report.add(
            "permissions", "ok", f"{what} may run in namespace {kube.namespace} (rules review)"
        )


def _client_check(report: Report) -> None:
    from .session import INSTALL_HINT, client_version, matching_release

    version = client_version()
    if version is None:
        report.add(
            "arkouda client",
            "warning",
            "not installed: deploy, status, logs and tunnels work; connecting a session does not",
            INSTALL_HINT,
        )
        return
    release = matching_release()
    if release is None:
        report.add(
            "arkouda client",
            "warning",
            f"arkouda {version} is not a release version: no image tag matches it",
            f"deploy with --release (e.g. {DEFAULT_RELEASE}) and a client of that release",
        )
    elif release in KNOWN_RELEASES:
        report.add(
            "arkouda client",
            "ok",
            f"arkouda {version}: release {release}, whose images are published",
        )
    else:
        report.add(
            "arkouda client",
            "warning",
            f"arkouda {version}: release {release} has no known bearsrus image "
            "(a deploy without --release would use that tag; the sandbox serves any)",
            f"on a real cluster install a client of a published release (e.g. "
            f"{DEFAULT_RELEASE}), or deploy with --release from: " + ", ".join(KNOWN_RELEASES),
        )


def _kubectl_check(report: Report) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        report.add(
            "kubectl",
            "warning",
            "not found on PATH: the commands arkouda-k8s prints (kubectl get secret ...) "
            "need it; arkouda-k8s itself does not",
            "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
        )
        return
    version = "?"
    try:
        out = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        version = json.loads(out)["clientVersion"]["gitVersion"]
    except (OSError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
        pass
    report.add("kubectl", "ok", f"{kubectl} ({version})")


def _pump_check(report: Report) -> None:
    from .tunnel import native_pump_status

    usable, why = native_pump_status()
    if usable:
        report.add("tunnel pump", "ok", why)
    else:
        report.add(
            "tunnel pump",
            "warning",
            why,
            "install a C compiler and the OpenSSL headers (Debian: gcc libssl-dev), then "
            "reinstall arkouda-k8s"
            if "not built" in why
            else None,
        )


def _skip(report: Report, *names: str) -> None:
    for name in names:
        report.add(name, "skipped", "needs the checks above")


def _pick_context(path: str) -> str:
    from .kube import list_contexts

    try:
        contexts, current = list_contexts(path)
    except Exception:
        return "check the kubeconfig file"
    names = ", ".join(n for n, _ in contexts) or "none"
    return f"pick one of its contexts with --context: {names}"
