"""The ``arkouda-k8s`` command: a thin front end over the library.

Exit codes: 0 success, 1 the operation failed, 2 bad input. Errors are printed as
one line on stderr (no traceback); ``ARKOUDA_K8S_DEBUG=1`` shows the traceback.
Each ``_cmd_*`` function holds the glue for one subcommand and nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .errors import ArkoudaK8sError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as our UsageError (exit 2, one line)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def _add_cluster_options(p: argparse.ArgumentParser, all_namespaces: bool = False) -> None:
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


def _add_spec_options(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--no-auth", action="store_true", help="turn token authentication off")
    g.add_argument("--metrics", action="store_true", help="run the Prometheus metrics exporter")
    g.add_argument(
        "-f",
        "--values",
        action="append",
        default=[],
        metavar="values.yaml",
        help="arkouda-contrib Helm values file (server and/or locale chart); repeatable",
    )


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
    ):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    if getattr(args, "no_auth", False):
        out["authenticate"] = False
    if getattr(args, "metrics", False):
        out["metrics"] = True
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="arkouda-k8s", description="Run Arkouda on Kubernetes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "sandbox", help="run the simulated Kubernetes cluster (a test world, not Kubernetes)"
    )
    p.add_argument(
        "--port", type=int, default=0, help="API port on 127.0.0.1 (default: a free one)"
    )
    p.add_argument(
        "--kubeconfig-out", metavar="FILE", help="where to write the sandbox's kubeconfig"
    )

    p = sub.add_parser(
        "render",
        help="print the Kubernetes objects (or Helm values) of a deployment",
        description="Print every Kubernetes object of a deployment as YAML (secrets as "
        "placeholders unless --include-secrets), or the arkouda-contrib charts' values. "
        "Without --namespace the objects go to namespace 'default'; another namespace "
        "is rendered with its Namespace object. Options override -f values files.",
    )
    _add_spec_options(p)
    p.add_argument(
        "--helm-values", action="store_true", help="print the two charts' values files instead"
    )
    p.add_argument(
        "--include-secrets", action="store_true", help="show generated secret material (careful)"
    )

    p = sub.add_parser("deploy", help="deploy an Arkouda cluster and wait until it answers")
    _add_spec_options(p)
    _add_cluster_options(p)
    p.add_argument(
        "--wait", dest="wait", action="store_true", default=True, help="wait until ready (default)"
    )
    p.add_argument(
        "--no-wait", dest="wait", action="store_false", help="return once the objects are created"
    )
    p.add_argument(
        "--keep-on-failure",
        action="store_true",
        help="keep what a failed deploy created, for debugging",
    )
    p.add_argument(
        "--ttl", metavar="DURATION", help="time to live after the last heartbeat (e.g. 2h)"
    )
    p.add_argument(
        "--print-rbac", action="store_true", help="print the RBAC the deploy needs and exit"
    )

    p = sub.add_parser("status", help="show a deployment's state")
    p.add_argument("name")
    _add_cluster_options(p)

    p = sub.add_parser("logs", help="print a deployment's logs")
    p.add_argument("name")
    p.add_argument("--component", choices=["server", "locale"], default="server")
    p.add_argument("--tail", type=int, metavar="N", help="last N lines")
    _add_cluster_options(p)

    p = sub.add_parser(
        "forward", help="hold a tunnel to a deployment's server and print its address"
    )
    p.add_argument("name")
    p.add_argument("--local-port", type=int, default=0, metavar="P")
    _add_cluster_options(p)

    p = sub.add_parser("list", help="list arkouda-k8s deployments")
    _add_cluster_options(p, all_namespaces=True)

    p = sub.add_parser("teardown", help="delete a deployment and everything it created")
    p.add_argument("name", nargs="?")
    p.add_argument(
        "--all", action="store_true", help="every arkouda-k8s deployment in the namespace"
    )
    p.add_argument(
        "--expired", action="store_true", help="deployments whose heartbeat and TTL expired"
    )
    _add_cluster_options(p)

    p = sub.add_parser("run", help="run Arkouda code against a server (for pipeline containers)")
    p.add_argument("--server", required=True, metavar="HOST:PORT")
    p.add_argument("--token", metavar="T", help="server token (default: $ARKOUDA_SERVER_TOKEN)")
    p.add_argument("-c", dest="code", metavar="CODE", help="code to run")
    p.add_argument("file", nargs="?", help="file of code to run")

    p = sub.add_parser(
        "quickstart", help="the whole workflow on the embedded sandbox, start to teardown"
    )
    p.add_argument("--locales", type=int, default=2, metavar="N")
    return parser


def _cmd_render(args: argparse.Namespace) -> int:
    import yaml

    from .credentials import Credentials
    from .manifests import render
    from .spec import ClusterSpec, helm_chart_of

    values: dict[str, Any] = {}
    for path in args.values:
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
    options = spec_options(args)
    if values:
        spec, warnings = ClusterSpec.from_helm_values(
            server=values.get("server"), locale=values.get("locale"), **options
        )
        for warning in warnings:
            print(f"arkouda-k8s: warning: {warning}", file=sys.stderr)
    else:
        spec = ClusterSpec(**options)
    if spec.namespace is None:
        spec = spec.with_namespace("default")

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        # Launch scripts read better as literal blocks than as escaped one-liners.
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    _Dumper.add_representer(str, _str)
    if args.helm_values:
        charts = spec.to_helm_values()
        for i, chart in enumerate(("server", "locale")):
            if i:
                sys.stdout.write("---\n")
            sys.stdout.write(f"# values for the arkouda-udp-{chart} chart (arkouda-k8s render)\n")
            sys.stdout.write(yaml.dump(charts[chart], Dumper=_Dumper, sort_keys=False))
        return 0
    credentials = Credentials.generate(spec) if args.include_secrets else None
    objects = render(spec, credentials, include_namespace=spec.namespace != "default")
    sys.stdout.write(yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False))
    return 0


def _not_built(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise ArkoudaK8sError(f"`arkouda-k8s {name}` is not available in this build")

    return run


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    fn = globals().get(f"_cmd_{command}")
    return fn if callable(fn) else _not_built(command)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(_handler(args.command)(args) or 0)
    except ArkoudaK8sError as exc:
        if os.environ.get("ARKOUDA_K8S_DEBUG"):
            raise
        print(f"arkouda-k8s: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("arkouda-k8s: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
