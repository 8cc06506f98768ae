# PYTHON_ARGCOMPLETE_OK (argcomplete's global completion looks for this marker)
"""The ``arkouda-k8s`` command: a thin front end over the library.

Exit codes: 0 success, 1 the operation failed, 2 bad input. Errors are printed as
one line on stderr (no traceback); ``ARKOUDA_K8S_DEBUG=1`` shows the traceback.
Results go to stdout, progress and warnings to stderr; ``-o json|yaml`` prints the
library's own objects serialised (``ClusterStatus.to_dict()``, versioned, documented in
docs/cli-output.md), never a re-parse of the text.
Shell completion (argcomplete): ``eval "$(arkouda-k8s completion bash)"`` (or ``zsh``)
completes commands, options and the deployment names of the current context.
Each ``_cmd_*`` function holds the glue for one subcommand and nothing else.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import ArkoudaK8sError, UsageError
from .options import (
    add_cluster_options,
    add_namespace_options,
    add_sandbox_options,
    add_spec_options,
    add_wait_options,
    deploy_options,
    parse_duration,
    spec_from_args,
    timeouts_from_args,
)

if TYPE_CHECKING:  # the library loads only when a command needs it (--help stays fast)
    from .cluster import ArkoudaCluster
    from .interfaces import ProgressEvent
    from .kube import Kube
    from .status import ClusterStatus


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as our UsageError (exit 2, one line)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def _add_output_option(p: argparse.ArgumentParser, wide: bool = False) -> None:
    choices = ["json", "yaml"] + (["wide"] if wide else [])
    p.add_argument(
        "-o",
        "--output",
        choices=choices,
        help="print the result as a versioned document (docs/cli-output.md)"
        + ("; wide: a table with more columns" if wide else ""),
    )


def _print_document(doc: dict[str, Any], fmt: str) -> None:
    """``doc`` on stdout as JSON or YAML (no colour, no progress: a script reads it)."""
    import json

    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
    sys.stdout.flush()


class _VersionAction(argparse.Action):
    """``--version``: this package's version and the installed arkouda client's."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(version_text())
        parser.exit(0)


def version_text() -> str:
    from . import __version__
    from .session import client_version, matching_release
    from .spec import KNOWN_RELEASES

    lines = [f"arkouda-k8s {__version__}"]
    client = client_version()
    if client is None:
        lines.append("arkouda client: not installed")
    else:
        release = matching_release()
        if release is None:
            lines.append(f"arkouda client {client} (not a release version: no image tag)")
        else:
            known = (
                "bearsrus images published"
                if release in KNOWN_RELEASES
                else "no bearsrus image known for it"
            )
            lines.append(f"arkouda client {client} -> release {release} ({known})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="arkouda-k8s", description="Run Arkouda on Kubernetes.")
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the version (and the installed arkouda client's) and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "sandbox", help="run the simulated Kubernetes cluster (a test world, not Kubernetes)"
    )
    add_sandbox_options(p)

    p = sub.add_parser(
        "render",
        help="print the Kubernetes objects (or Helm values) of a deployment",
        description="Print every Kubernetes object of a deployment as YAML (secrets as "
        "placeholders unless --include-secrets), or the arkouda-contrib charts' values. "
        "Without --namespace the objects go to namespace 'default'; another namespace "
        "is rendered with its Namespace object. Options override -f values files.",
    )
    add_spec_options(p)
    p.add_argument(
        "--helm-values", action="store_true", help="print the two charts' values files instead"
    )
    p.add_argument(
        "--include-secrets", action="store_true", help="show generated secret material (careful)"
    )
    p.add_argument(
        "--runner-rbac",
        metavar="NAME",
        help="print instead the ServiceAccount NAME-runner, Role and RoleBinding that pipeline "
        "pods need for `arkouda-k8s run --in-cluster NAME`",
    )

    p = sub.add_parser("deploy", help="deploy an Arkouda cluster and wait until it answers")
    add_spec_options(p)
    add_cluster_options(p)
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
    add_wait_options(p)
    add_namespace_options(p)
    p.add_argument(
        "--print-rbac",
        action="store_true",
        help="print the RBAC the deploy needs and exit (a Role and RoleBinding in the "
        "namespace; a ClusterRole too only with --registration server)",
    )
    p.add_argument(
        "--create-only",
        action="store_true",
        help="fail if the deployment exists (default: connect to it when the spec is the same)",
    )
    _add_output_option(p)

    p = sub.add_parser("status", help="show a deployment's state")
    _add_name(p)
    _add_output_option(p)
    add_cluster_options(p)

    p = sub.add_parser(
        "logs",
        help="print a deployment's logs",
        description="Print (or follow) the logs of the server pod, of every locale pod, "
        "or of the pod of one Arkouda locale. Tokens and keys are masked; on a terminal, "
        "control characters and escape sequences are removed.",
    )
    _add_name(p)
    p.add_argument("--component", choices=["server", "locale"], default="server")
    p.add_argument(
        "--locale",
        type=int,
        metavar="N",
        help="only the pod of Arkouda locale N (0: the server pod; then the locale pods in "
        "the launcher's order)",
    )
    p.add_argument("--tail", type=int, metavar="N", help="last N lines")
    p.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new lines until Ctrl-C or the pod ends",
    )
    p.add_argument(
        "--since", metavar="DURATION", help="only lines of the last DURATION (e.g. 90s, 5m, 2h)"
    )
    p.add_argument("--timestamps", action="store_true", help="start each line with its time")
    p.add_argument(
        "-p",
        "--previous",
        action="store_true",
        help="the container that ran before the last restart",
    )
    add_cluster_options(p)

    p = sub.add_parser(
        "forward", help="hold a tunnel to a deployment's server and print its address"
    )
    _add_name(p)
    p.add_argument("--local-port", type=int, default=0, metavar="P")
    add_cluster_options(p)

    p = sub.add_parser("list", help="list arkouda-k8s deployments")
    _add_output_option(p, wide=True)
    add_cluster_options(p, all_namespaces=True)

    p = sub.add_parser(
        "prepull",
        help="pull the Arkouda image onto every (matching) node ahead of a deploy",
        description="Runs a DaemonSet of the server image until every matching node has "
        "pulled it, then deletes it: the next deploy on those nodes starts without a pull.",
    )
    p.add_argument("--release", help="Arkouda release / image tag (default: as deploy's)")
    p.add_argument("--image-repository", help="image repository (default: bearsrus)")
    p.add_argument("--mode", help="udp (default) or smp: which server image")
    p.add_argument(
        "--node-selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only nodes with this label (repeatable; default: every node)",
    )
    p.add_argument(
        "--timeout", type=float, default=900.0, metavar="S", help="give up after S seconds"
    )
    add_cluster_options(p)

    p = sub.add_parser("teardown", help="delete a deployment and everything it created")
    _add_name(p, nargs="?")
    p.add_argument(
        "--all", action="store_true", help="every arkouda-k8s deployment in the namespace"
    )
    p.add_argument(
        "--expired", action="store_true", help="deployments whose heartbeat and TTL expired"
    )
    add_cluster_options(p)

    # The run step's code is runner.py's; here only its options.
    p = sub.add_parser(
        "run",
        help="run Arkouda code against a server (the step of a pipeline container)",
        description="Run Arkouda code with `ak`, `np`, `input_dir` and `output_dir` bound. "
        "Exit codes: 0 success, 1 the code failed (traceback on stderr), 2 bad input, "
        "3 the server could not be reached in time (a pipeline may retry).",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--server", metavar="HOST:PORT", help="the server's address (default: $ARKOUDA_SERVER)"
    )
    where.add_argument(
        "--in-cluster",
        metavar="NAME",
        help="inside a pod: find deployment NAME's server and token through the API, as "
        "the pod's service account (the grant: `arkouda-k8s render --runner-rbac NAME`)",
    )
    p.add_argument(
        "--namespace", "-n", metavar="N", help="NAME's namespace (default: the pod's own)"
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding the server token (default: $ARKOUDA_TOKEN)",
    )
    # Refused with a pointer to --token-file: argv is visible to every local user.
    p.add_argument("--token", help=argparse.SUPPRESS)
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the server to answer its handshake (default 60)",
    )
    p.add_argument("--input", metavar="DIR", help="input folder, bound as input_dir")
    p.add_argument(
        "--output",
        metavar="DIR",
        help="output folder, bound as output_dir (a step that writes nothing there is reported)",
    )
    p.add_argument(
        "--shutdown", action="store_true", help="shut the server down after the code succeeded"
    )
    p.add_argument("-c", dest="code", metavar="CODE", help="code to run")
    p.add_argument("file", nargs="?", help="file of code to run, or - for standard input")

    p = sub.add_parser(
        "quickstart", help="the whole workflow on the embedded sandbox, start to teardown"
    )
    p.add_argument("--locales", type=int, default=2, metavar="N")

    p = sub.add_parser(
        "doctor",
        help="check this machine: kubeconfig, cluster, permissions, client, kubectl, tunnel",
        description="Check what a deploy needs, one line each (ok, warning, problem) with "
        "the fix: the kubeconfig and its context, the API server reachable, the "
        "namespace's permissions and limits for a default deploy, the installed arkouda "
        "client and whether images exist for its release, kubectl, and the tunnel's native "
        "byte pump. Creates nothing. Exit 0 when no check found a problem, else 1.",
    )
    _add_output_option(p)
    add_cluster_options(p)

    p = sub.add_parser(
        "completion",
        help="print the shell code that completes arkouda-k8s (bash or zsh)",
        description='Shell completion: add `eval "$(arkouda-k8s completion bash)"` to '
        '~/.bashrc (or `eval "$(arkouda-k8s completion zsh)"` to ~/.zshrc). It completes '
        "commands, options and the deployment names of the current context.",
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    return parser


# How long completing a deployment name may take: a shell must not hang on a dead cluster.
COMPLETION_TIMEOUT = 3.0


def _add_name(p: argparse.ArgumentParser, nargs: str | None = None) -> None:
    action = p.add_argument(
        "name", nargs=nargs, help="deployment name (completed from the cluster)"
    )
    action.completer = _complete_names  # type: ignore[attr-defined]


def _complete_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Deployment names in the namespace (and context) given so far on the command line."""
    from .cluster import list_clusters

    try:
        items = list_clusters(
            getattr(parsed_args, "kubeconfig", None),
            getattr(parsed_args, "context", None),
            getattr(parsed_args, "namespace", None),
            timeout=COMPLETION_TIMEOUT,
        )
    except Exception:  # no cluster, no kubeconfig: no names, and no noise in the shell
        return []
    return sorted({i.name for i in items if i.name.startswith(prefix)})


def colour_wanted(stream: Any) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (https://no-color.org) or
    TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


_LEVEL_COLOURS = {"ok": "32", "warning": "33", "problem": "31", "skipped": "2"}


def _paint(level: str, text: str) -> str:
    return f"\x1b[{_LEVEL_COLOURS.get(level, '0')}m{text}\x1b[0m"


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import diagnose

    report = diagnose(args.kubeconfig, args.context, args.namespace)
    if args.output:
        _print_document(report.to_dict(), args.output)
    else:
        print(report.to_text(_paint if colour_wanted(sys.stdout) else None))
    return 0 if report.ok else 1


def _cmd_completion(args: argparse.Namespace) -> int:
    import argcomplete

    sys.stdout.write(argcomplete.shellcode(["arkouda-k8s"], shell=args.shell))
    return 0


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox.__main__ import run_from_args

    return run_from_args(args)


def _cmd_render(args: argparse.Namespace) -> int:
    import yaml

    from .credentials import Credentials
    from .manifests import render

    spec, warnings = spec_from_args(args)
    for warning in warnings:
        print(f"arkouda-k8s: warning: {warning}", file=sys.stderr)
    if spec.namespace is None:
        spec = spec.with_namespace("default")
    if args.runner_rbac is not None:
        from .manifests import runner_rbac

        if args.helm_values or args.include_secrets:
            raise UsageError(
                "--runner-rbac: prints the runner's RBAC only",
                "drop --helm-values / --include-secrets",
            )
        grant = runner_rbac(spec.replace(name=args.runner_rbac))
        sys.stdout.write(yaml.safe_dump_all(grant, sort_keys=False))
        return 0

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


# -- deployment lifecycle: deploy, status, logs, list, teardown, forward -------------------


class _TerminalProgress:
    """Progress of a deploy/teardown on stderr: a tqdm bar per counted stage on a
    terminal, plain lines otherwise (a pipe, CI logs, TERM=dumb, which cannot redraw)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        self.bar: Any = None
        self.stage = ""
        self.last = ""

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        if event.stage != self.stage:
            self.close()
            self.stage = event.stage
            if self.tty and event.total > 1:
                self.bar = tqdm(
                    total=event.total, desc=event.stage, file=sys.stderr, leave=True, unit="pod"
                )
        if self.bar is not None:
            self.bar.n = event.done
            self.bar.set_postfix_str(event.message, refresh=True)
            return
        if event.message == self.last:
            return
        step = max(1, event.total // 10)
        if event.total > 1 and event.done not in (0, event.total) and event.done % step:
            return  # a line per tenth of the pods is enough in a log
        self.last = event.message
        print(f"{event.stage}: {event.message}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _kube(args: argparse.Namespace) -> Kube:
    from .kube import Kube

    return Kube.connect(args.kubeconfig, args.context, getattr(args, "namespace", None))


def _cmd_deploy(args: argparse.Namespace) -> int:
    from .cluster import ArkoudaCluster, DeployMode, rbac_yaml, required_access

    timeouts = timeouts_from_args(args)
    spec, warnings = spec_from_args(args, match_client=True)
    for warning in warnings:
        print(f"arkouda-k8s: warning: {warning}", file=sys.stderr)
    kube = _kube(args)
    if spec.namespace is None:
        spec = spec.with_namespace(kube.namespace)
    if args.print_rbac:
        sys.stdout.write(rbac_yaml(spec, required_access(spec), kube.user))
        return 0
    progress = _TerminalProgress()
    cluster = ArkoudaCluster(
        spec,
        kube=kube,
        mode=DeployMode.CREATE if args.create_only else DeployMode.CREATE_OR_CONNECT,
        on_progress=progress,
        keep_on_failure=args.keep_on_failure,
        timeouts=timeouts,
        **deploy_options(args),
    )
    try:
        cluster.deploy(wait=args.wait)
    finally:
        progress.close()
    try:
        _print_status(cluster.status(), args.output)
    finally:
        cluster.close()
    return 0


def _print_status(status: ClusterStatus, fmt: str | None) -> None:
    if fmt:
        _print_document(status.to_dict(), fmt)
    else:
        print(status.to_text())


def _found(args: argparse.Namespace) -> ArkoudaCluster:
    from .cluster import ArkoudaCluster

    return ArkoudaCluster.from_name(args.name, args.namespace, kube=_kube(args), connect=False)


def _cmd_status(args: argparse.Namespace) -> int:
    cluster = _found(args)
    try:
        # Memory and version come from the server itself, through a short-lived tunnel.
        status = cluster.status(handshake=True)
        for warning in status.warnings:
            print(f"arkouda-k8s: warning: {warning}", file=sys.stderr)
        _print_status(status, args.output)
    finally:
        cluster.close()
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from .credentials import strip_control

    since = parse_duration(args.since, "--since") if args.since else None
    if since == 0:
        raise UsageError("--since: must be more than 0 seconds", "e.g. --since 5m")
    if args.tail is not None and args.tail < 0:
        raise UsageError("--tail: must be 0 or more", "e.g. --tail 50")
    if args.locale is not None and args.locale < 0:
        raise UsageError("--locale: must be 0 or more", "0 is the server pod")
    # On a terminal, text from the pods must not drive it (colours, titles, cursor).
    shown = strip_control if sys.stdout.isatty() else (lambda text: text)
    cluster = _found(args)
    if args.locale is not None:
        pod, _ = cluster.locale_pod(args.locale)
        print(f"arkouda-k8s: locale {args.locale} is pod {pod}", file=sys.stderr)
    options = {"since": since, "timestamps": args.timestamps, "locale": args.locale}
    if args.follow and not args.previous:  # a previous container has ended: nothing to follow
        lines = cluster.follow_logs(args.component, args.tail, **options)
        try:
            for line in lines:
                sys.stdout.write(shown(line) + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a follow ends
        finally:
            lines.close()
        return 0
    text = shown(cluster.logs(args.component, args.tail, previous=args.previous, **options))
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .cluster import cluster_list_dict, list_clusters

    items = list_clusters(
        namespace=args.namespace, all_namespaces=args.all_namespaces, kube=_kube(args)
    )
    if args.output in ("json", "yaml"):
        _print_document(cluster_list_dict(items), args.output)
        return 0
    if not items:
        print("no arkouda-k8s deployments", file=sys.stderr)
        return 0
    header = ["NAMESPACE", "NAME", "STAGE", "LOCALE-PODS", "MODE", "RELEASE", "AGE", "EXPIRES"]
    rows = [header] + [i.to_row() for i in items]
    if args.output == "wide":
        header += ["CONTEXT", "SERVER-POD", "TUNNEL", "MEMORY"]
        rows = [header] + [i.to_wide_row() for i in items]
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _cmd_teardown(args: argparse.Namespace) -> int:
    from .cluster import teardown_all, teardown_expired, teardown_named

    if sum(bool(x) for x in (args.name, args.all, args.expired)) != 1:
        raise UsageError(
            "teardown: give exactly one of NAME, --all or --expired",
            "see `arkouda-k8s teardown --help`",
        )
    progress = _TerminalProgress()
    kube = _kube(args)
    try:
        if args.expired:
            removed = teardown_expired(namespace=args.namespace, kube=kube, on_progress=progress)
        elif args.all:
            removed = teardown_all(namespace=args.namespace, kube=kube, on_progress=progress)
        else:
            teardown_named(args.name, args.namespace, kube=kube, on_progress=progress)
            removed = [f"{args.namespace or kube.namespace}/{args.name}"]
    finally:
        progress.close()
    for item in removed:
        print(f"deleted {item}")
    if not removed:
        print("nothing to delete", file=sys.stderr)
    return 0


def _cmd_prepull(args: argparse.Namespace) -> int:
    from .prepull import prepull
    from .spec import ClusterSpec

    selector = {}
    for item in args.node_selector:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(
                f"--node-selector: {item!r} is not KEY=VALUE", "e.g. --node-selector pool=arkouda"
            )
        selector[key] = value
    options: dict[str, Any] = {
        k: v
        for k, v in (
            ("release", args.release or _client_release()),
            ("image_repository", args.image_repository),
            ("mode", args.mode),
        )
        if v is not None
    }
    kube = _kube(args)
    spec = ClusterSpec(
        namespace=args.namespace or kube.namespace, node_selector=selector, **options
    )
    progress = _TerminalProgress()
    try:
        nodes = prepull(kube, spec, timeout=args.timeout, on_progress=progress)
    finally:
        progress.close()
    print(f"{spec.server_image} is on {nodes} node(s)")
    return 0


def _client_release() -> str | None:
    """The installed client's release (deploy's default), if any."""
    from .session import matching_release

    return matching_release()


def _cmd_forward(args: argparse.Namespace) -> int:
    import threading

    from .cluster import ArkoudaCluster

    cluster = ArkoudaCluster.from_name(
        args.name, args.namespace, kube=_kube(args), connect=False, local_port=args.local_port
    )
    try:
        cluster.deploy()
        host, port = cluster.start_tunnel()  # the running tunnel's address
        print(
            f"forwarding {host}:{port} -> pod {cluster.names.server_pod} port "
            f"{cluster.spec.server_port} (Ctrl-C stops)"
        )
        if cluster.spec.authenticate:
            secret = (
                f"kubectl get secret {cluster.names.token_secret} -n {cluster.namespace} "
                "-o jsonpath='{.data.token}' | base64 -d"
            )
            print(f'export ARKOUDA_TOKEN="$({secret})"')
            print(
                f'python -c \'import os, arkouda as ak; ak.connect("{host}", {port}, '
                'access_token=os.environ["ARKOUDA_TOKEN"])\''
            )
        else:
            print(f"python -c 'import arkouda as ak; ak.connect(\"{host}\", {port})'")
        sys.stdout.flush()
        threading.Event().wait()  # hold the tunnel until interrupted
    except KeyboardInterrupt:
        pass
    finally:
        cluster.close()
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_from_args

    return run_from_args(args)


def _cmd_quickstart(args: argparse.Namespace) -> int:
    """The main job on the embedded sandbox: start it, deploy, tunnel, bind the session,
    compute a small example, show status, tear down."""
    import numpy as np

    from .cluster import ArkoudaCluster, DeployMode
    from .sandbox import Sandbox
    from .session import client_sends_token, matching_release
    from .spec import DEFAULT_RELEASE, ClusterSpec

    if args.locales < 1:
        raise UsageError("--locales: must be at least 1", "e.g. --locales 2")
    # The only client installable from PyPI (2020.7.7) cannot send a token: in that case
    # the sandbox deployment runs without authentication, and we say so.
    auth = client_sends_token()
    say = functools.partial(print, flush=True)
    say("arkouda-k8s quickstart: starting the sandbox (a simulated Kubernetes cluster with")
    say("a stand-in Arkouda server, for trying the workflow; not Kubernetes, not Arkouda)")
    if not auth:
        say("note: the installed arkouda client cannot send a token; deploying with --no-auth")
    with Sandbox() as sandbox:
        say(f"sandbox API at {sandbox.url}")
        spec = ClusterSpec(
            name="quickstart",
            namespace="default",
            locales=args.locales,
            cpu="500m",
            memory="1Gi",
            authenticate=auth,
            release=matching_release() or DEFAULT_RELEASE,
        )
        progress = _TerminalProgress()
        cluster = ArkoudaCluster(
            spec,
            kubeconfig=sandbox.kubeconfig_path,
            mode=DeployMode.CREATE,
            on_progress=progress,
        )
        try:
            try:
                cluster.deploy()
            finally:
                progress.close()
            host, port = cluster.address or ("?", 0)
            say(f"deployed {spec.locales} locale(s); tunnel at {host}:{port}")
            ak = cluster.connect()
            a = ak.arange(0, 1000, 1)
            b = ak.randint(0, 10, 1000)
            local_a, local_b = np.arange(0, 1000), b.to_ndarray()
            checks = {
                "sum(arange(1000))": (int(a.sum()), int(local_a.sum())),
                "max(a * b)": (int((a * b).max()), int((local_a * local_b).max())),
                "count(b > 4)": (int((b > 4).sum()), int((local_b > 4).sum())),
            }
            for label, (got, want) in checks.items():
                say(f"  {label} = {got}" + ("" if got == want else f"  (numpy says {want})"))
            say(cluster.status().to_text())
            if any(got != want for got, want in checks.values()):
                raise ArkoudaK8sError("the server's answers differ from NumPy's")
        finally:
            removed = cluster.teardown()
            say(f"torn down: {len(removed)} object(s) removed")
    say("quickstart finished: the sandbox is stopped and nothing is left behind")
    return 0


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    return globals()[f"_cmd_{command}"]  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answer, exit
            import argcomplete

            argcomplete.autocomplete(parser)
        args = parser.parse_args(argv)
        return int(_handler(args.command)(args) or 0)
    except ArkoudaK8sError as exc:
        if os.environ.get("ARKOUDA_K8S_DEBUG"):
            raise
        print(f"arkouda-k8s: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("arkouda-k8s: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `arkouda-k8s render | head`: the reader left; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
