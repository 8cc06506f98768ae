# PYTHON_ARGCOMPLETE_OK (argcomplete's global completion looks for this marker)
"""The ``arkouda-k8s`` command: a thin front end over the library.

Exit codes: 0 success, 1 the operation failed, 2 bad input. Errors are printed as
one line on stderr (no traceback); ``ARKOUDA_K8S_DEBUG=1`` shows the traceback.
Results go to stdout, progress and warnings to stderr; ``-o json|yaml`` prints the
library's own objects serialised (``ClusterStatus.to_dict()``, versioned, documented in
docs/cli-output.md), never a re-parse of the text.
Shell completion (argcomplete): ``eval "$(arkouda-k8s completion bash)"`` (or ``zsh``)
completes commands, options and the deployment names of the current context.
Each ``_cmd_*`` function holds the glue for one subcommand and nothing else; the
subcommands' options, help and name completion are cli_parser.py's.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .cli_parser import build_parser
from .errors import ArkoudaK8sError, UsageError
from .options import (
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


def _print_document(doc: dict[str, Any], fmt: str) -> None:
    """``doc`` on stdout as JSON or YAML (no colour, no progress: a script reads it)."""
    import json

    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
    sys.stdout.flush()


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

        if event.note:
            # a notice of its own (a locale pod being replaced): a line above the bar,
            # never thinned out; the bar and its count stay as they are
            line = f"{event.stage}: {event.message}"
            if self.bar is not None:
                tqdm.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr, flush=True)
            return
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
