"""The ``arkouda-k8s`` command line: every subcommand with its options and help
(argparse), the options shared with the magics coming from options.py, bad input as a
``UsageError`` (exit 2, one line), ``--version``, and the completion of deployment names.
cli.py runs what it parses.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from .errors import UsageError
from .options import (
    add_cluster_options,
    add_namespace_options,
    add_sandbox_options,
    add_spec_options,
    add_wait_options,
)


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
