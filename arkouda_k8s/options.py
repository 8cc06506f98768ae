"""The deployment options the front ends share: their argparse definitions (the
``arkouda-k8s`` commands and the ``%arkouda_*`` magics add the same ones) and what they
become (``ClusterSpec``, ``Timeouts``, ``ArkoudaCluster`` keyword arguments).

A front end builds its own parser and calls the ``add_*`` functions on it; no front end
imports another for these.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .errors import UsageError


def add_wait_options(p: Any) -> None:
    """Deploy options that set the lifecycle's Timeouts (see :func:`timeouts_from_args`)."""
    p.add_argument(
        "--unschedulable-wait",
        metavar="DURATION",
        help="how long a pod may wait for capacity (a cluster autoscaler adding a node) "
        "before the deploy fails (default 0: fail at once)",
    )


def add_namespace_options(p: Any) -> None:
    """Deploy options about the namespace itself (see :func:`deploy_options`)."""
    p.add_argument(
        "--create-namespace",
        action="store_true",
        help="create the namespace if it does not exist (like Helm's; teardown never deletes it)",
    )
    p.add_argument(
        "--ephemeral",
        action="store_true",
        help="mark the deployment for teardown when the Jupyter server holding it stops "
        "(the arkouda_k8s server extension); otherwise its time-to-live applies",
    )


def deploy_options(args: argparse.Namespace) -> dict[str, Any]:
    """ArkoudaCluster keyword arguments from the namespace options."""
    return {
        "create_namespace": bool(getattr(args, "create_namespace", False)),
        "ephemeral": bool(getattr(args, "ephemeral", False)),
    }


def timeouts_from_args(args: argparse.Namespace) -> Any:
    """The cluster's Timeouts, with what the wait options changed."""
    from .cluster import Timeouts

    timeouts = Timeouts()
    wait = getattr(args, "unschedulable_wait", None)
    if wait:
        seconds = parse_duration(wait, "--unschedulable-wait")
        timeouts = dataclasses.replace(timeouts, unschedulable=float(seconds))
    return timeouts


def add_cluster_options(p: argparse.ArgumentParser, all_namespaces: bool = False) -> None:
    g = p.add_argument_group("cluster options")
    g.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)",
    )
    g.add_argument("--context", metavar="C", help="kubeconfig context (default: the current one)")
    if not any(a.dest == "namespace" for a in p._actions):
        g.add_argument("--namespace", "-n", metavar="N", help="namespace (default: the context's)")
    if all_namespaces:
        g.add_argument(
            "--all-namespaces", "-A", action="store_true", help="look in every namespace"
        )


def add_spec_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("deployment options")
    g.add_argument("--name", help="instance name, prefix of every object (default: arkouda)")
    g.add_argument("--namespace", "-n", metavar="N", help="namespace (default: the context's)")
    g.add_argument("--mode", help="udp (server + locale pods) or smp (one pod)")
    g.add_argument("--locales", type=int, metavar="N", help="total number of Arkouda locales")
    g.add_argument("--threads", type=int, metavar="N", help="threads per locale")
    g.add_argument("--cpu", help="CPU per pod, a Kubernetes quantity (e.g. 2, 500m)")
    g.add_argument("--memory", help="memory per pod, a Kubernetes quantity (e.g. 4Gi)")
    g.add_argument("--release", help="Arkouda release / image tag (e.g. v2023.05.05)")
    g.add_argument("--image-repository", help="image repository (default: bearsrus)")
    g.add_argument("--pull-policy", help="Always, IfNotPresent or Never")
    g.add_argument(
        "--no-auth",
        action="store_true",
        help="turn token authentication off (anyone who reaches the port can use the server)",
    )
    g.add_argument(
        "--network-policy",
        choices=["namespace", "cluster", "off"],
        help="who may connect to the Arkouda port: pods of the namespace (default), any pod "
        "of the cluster, or off (no NetworkPolicy); sshd and GASNet stay open only to the "
        "instance's own pods whenever a policy is rendered",
    )
    g.add_argument(
        "--spread",
        choices=["preferred", "required", "none"],
        help="one locale per node: preferred (default; shared nodes when there are too few), "
        "required (the deploy fails when there are too few nodes) or none",
    )
    g.add_argument("--metrics", action="store_true", help="run the Prometheus metrics exporter")
    g.add_argument(
        "--registration",
        choices=["client", "server"],
        help="client (default): arkouda-k8s creates the server's Service, namespace "
        "permissions suffice; server: the charts' flow, the server registers itself with a "
        "certificate from a cluster-wide CSR (needs a cluster-scoped grant)",
    )
    g.add_argument(
        "-f",
        "--values",
        action="append",
        default=[],
        metavar="values.yaml",
        help="arkouda-contrib Helm values file (server and/or locale chart); repeatable",
    )


def add_sandbox_options(p: argparse.ArgumentParser) -> None:
    """The options of ``arkouda-k8s sandbox`` and ``python -m arkouda_k8s.sandbox``."""
    p.add_argument(
        "--port", type=int, default=0, help="API port on 127.0.0.1 (default: a free one)"
    )
    p.add_argument(
        "--kubeconfig-out", metavar="FILE", help="where to write the sandbox's kubeconfig"
    )
    p.add_argument(
        "--api-latency",
        metavar="DELAY",
        help="answer every API request this much later (e.g. 30ms: a distant cluster)",
    )
    p.add_argument(
        "--nodes",
        type=_positive_int,
        default=1,
        help="simulated nodes, each with its own allocatable and image cache (default 1)",
    )
    p.add_argument(
        "--pull-seconds",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="how long an image pull takes, once per node and image (default 0)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def spec_options(args: argparse.Namespace) -> dict[str, Any]:
    """The spec options the user gave, as ClusterSpec keyword arguments."""
    out: dict[str, Any] = {}
    for key in (
        "name",
        "namespace",
        "mode",
        "locales",
        "threads",
        "cpu",
        "memory",
        "release",
        "image_repository",
        "pull_policy",
        "registration",
        "network_policy",
        "spread",
    ):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    if getattr(args, "no_auth", False):
        out["authenticate"] = False
    if getattr(args, "metrics", False):
        out["metrics"] = True
    return out


def parse_duration(text: str, option: str = "--ttl") -> int:
    """'90', '90s', '30m', '2h', '1d' -> seconds."""
    import re

    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text or "")
    if not m:
        raise UsageError(f"{option}: {text!r} is not a duration", "use e.g. 90s, 30m, 2h or 1d")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def spec_from_args(args: argparse.Namespace, match_client: bool = False) -> tuple[Any, list[str]]:
    """(ClusterSpec, warnings) from spec options over the -f values files (and --ttl).

    Shared by the commands and magics that build a spec from command-line options.
    With ``match_client`` and no release given (option or values file), the release is
    the installed arkouda client's, and a note says so.
    """
    import yaml

    from .spec import NO_AUTH_WARNING, ClusterSpec, helm_chart_of

    options = spec_options(args)
    if getattr(args, "ttl", None):
        options["ttl_seconds"] = parse_duration(args.ttl)
    values: dict[str, Any] = {}
    for path in getattr(args, "values", []) or []:
        try:
            with open(path, encoding="utf-8") as fh:
                docs = [d for d in yaml.safe_load_all(fh) if d is not None]
        except OSError as exc:
            raise UsageError(f"values file {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" (line {where.line + 1})" if where is not None else ""
            raise UsageError(f"values file {path}: not valid YAML{at}") from None
        for doc in docs:
            if not isinstance(doc, dict):
                raise UsageError(f"values file {path}: expected a mapping of Helm values")
            chart = helm_chart_of(doc)
            if chart in values:
                raise UsageError(
                    f"values file {path}: a second arkouda-udp-{chart} values document",
                    "give one server and at most one locale values file",
                )
            values[chart] = doc
    notes: list[str] = []
    given = "release" in options or any(v.get("releaseVersion") for v in values.values())
    if match_client and not given:
        from .session import matching_release

        release = matching_release()
        if release:
            options["release"] = release
            notes.append(
                f"release: {release}, the release of the installed arkouda client "
                "(--release chooses another)"
            )
    if values:
        spec, warnings = ClusterSpec.from_helm_values(
            server=values.get("server"), locale=values.get("locale"), **options
        )
        notes += list(warnings)
    else:
        spec = ClusterSpec(**options)
    if not spec.authenticate:  # said once, by every command that builds the spec
        notes.append(NO_AUTH_WARNING)
    return spec, notes
