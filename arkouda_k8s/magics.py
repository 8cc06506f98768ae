"""The IPython extension: ``%load_ext arkouda_k8s`` makes Arkouda on Kubernetes a notebook citizen.

A thin skin over :class:`~arkouda_k8s.cluster.ArkoudaCluster` (no Kubernetes logic here).

``%arkouda_deploy [spec options] [--context C] [--kubeconfig F] [--sandbox] [--dry-run]``
    Preflight, deploy with live progress, open the tunnel, bind the session, place ``ak``
    in the user namespace and show a status card. The spec options are the CLI's
    (``--name --namespace --mode --locales --threads --cpu --memory --release
    --image-repository --pull-policy --no-auth --metrics -f values.yaml``). ``--dry-run``
    shows the Kubernetes objects, secrets as placeholders. With no options in a notebook
    it shows the deploy form. ``--sandbox`` deploys on this kernel's sandbox.
``%%arkouda [--cluster NAME] [--timeit]``
    Runs the cell with ``ak`` bound to the cluster (the current one by default), then
    reports the cell's time, the server's time when the session counts it, and the
    server's memory change; an Arkouda server error becomes one readable line.
    ``--timeit`` times the cell with IPython's ``%%timeit``. The client keeps one
    connection per process: when ``ak`` moves to another cluster, or its cluster is
    deleted, the user's arrays of the old server leave the namespace first.
``%arkouda_status [NAME]``, ``%arkouda_logs [NAME] [--component C] [--tail N]``
    A status card; the server's (or the locales') log, secrets masked.
``%arkouda_connect NAME``
    Reattach to a running deployment (after a kernel restart): tunnel, session, ``ak``.
    Under a Jupyter server with the ``arkouda_k8s`` extension, the server's tunnel (live
    across kernel restarts, shared by its kernels; ``jupyter_link.py``); ``%arkouda_deploy``
    hands its tunnel to that server, and ``--ephemeral`` has the server delete the
    deployment when it stops.
``%arkouda_list [--all-namespaces]``, ``%arkouda_teardown [NAME | --all | --expired]``
    The arkouda-k8s deployments visible; delete one (default: the current) or several.
``%arkouda_sandbox``
    Start the simulated Kubernetes cluster for this kernel's life (a test world, not
    Kubernetes) and point the magics at it.

Settings: ``%config ArkoudaMagics.<setting> = value`` for ``namespace``, ``context``,
``kubeconfig``, ``release``, ``locales``, ``short_errors``, ``widgets``; they are also
read from ``ARKOUDA_K8S_<SETTING>`` in the environment, then ``[tool.arkouda-k8s]`` in
the nearest ``pyproject.toml``, then ``$ARKOUDA_K8S_CONFIG`` or
``~/.config/arkouda-k8s/config.toml`` (``%config`` and ipython_config win over all).
A project file never chooses ``kubeconfig`` or ``context`` (a cloned repository would
otherwise pick the credentials, and a kubeconfig's exec plugin is a command): those
come from the user's own settings only. Loading the extension contacts no cluster; the
notice about deployments whose heartbeat expired comes with the first magic that does.

Errors: bad arguments are one-line ``UsageError``s. Other failures show one line with
the reason and the hint and fail the cell, in an interactive front end; batch runs
(papermill, nbval and other clients that offer no stdin, plain test shells) and
``short_errors = False`` get the exception itself, traceback and all.

Where the parts live: the settings' sources and the options shared with the CLI in
``magic_options``, the error policy in ``magic_errors``, what ``%%arkouda`` does around
a cell in ``magic_cells``, the displays in ``widgets``, the Jupyter server's tunnels in
``jupyter_link``; what they need of a cluster is ``interfaces.NotebookCluster``.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from IPython.core import magic as ipython_magic
from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class
from IPython.core.magic_arguments import argument
from traitlets import Bool, Int, TraitError, Unicode
from traitlets.config import Configurable

from . import magic_cells, options
from .credentials import redact, strip_control
from .errors import ArkoudaK8sError
from .errors import UsageError as ArkoudaUsageError
from .magic_errors import ArkoudaError, front_end, server_errors
from .magic_options import (
    NOT_FROM_PROJECT,
    SETTINGS,
    SETTINGS_HINT,
    ClusterOptions,
    NamespaceOptions,
    SpecOptions,
    WaitOptions,
    settings_config,
    spec_with_settings,
)

__all__ = [
    "NOT_FROM_PROJECT",
    "SETTINGS",
    "ArkoudaError",
    "ArkoudaMagics",
    "load_ipython_extension",
    "unload_ipython_extension",
]

if TYPE_CHECKING:  # heavy modules load only when a magic runs
    from IPython.core.interactiveshell import InteractiveShell

    from .cluster import Timeouts
    from .interfaces import NotebookCluster
    from .sandbox import Sandbox
    from .spec import ClusterSpec
    from .widgets import ClusterPanel, DeployForm, DeployProgress, StatusCard, TextProgress

_Magic = TypeVar("_Magic", bound=Callable[..., Any])


# IPython 9 types its marker decorators as returning "the function or a decorator" (they
# also take a name), so mypy cannot call the methods they mark. These record the magic
# the same way, and keep the method's own type.
def line_magic(func: _Magic) -> _Magic:
    return cast(_Magic, ipython_magic.line_magic(func))


def cell_magic(func: _Magic) -> _Magic:
    return cast(_Magic, ipython_magic.cell_magic(func))


EXIT_WAIT = 3.0  # seconds the kernel's exit waits for the load-time check


@magics_class
class ArkoudaMagics(Magics, Configurable):
    """The ``%arkouda_*`` magics and the state of this kernel's deployments."""

    shell: InteractiveShell  # always set: the extension is loaded into a shell

    namespace = Unicode(
        None, allow_none=True, help="namespace for deployments (default: the context's)"
    ).tag(config=True)
    context = Unicode(None, allow_none=True, help="kubeconfig context (default: current)").tag(
        config=True
    )
    kubeconfig = Unicode(
        None, allow_none=True, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    ).tag(config=True)
    release = Unicode(
        None, allow_none=True, help="default Arkouda release (image tag) for deployments"
    ).tag(config=True)
    locales = Int(None, allow_none=True, help="default number of locales").tag(config=True)
    short_errors = Bool(
        None,
        allow_none=True,
        help="show failures as one line (True), raise them (False); None: one line only "
        "in an interactive front end",
    ).tag(config=True)
    widgets = Bool(
        None, allow_none=True, help="use ipywidgets displays; None: when in a Jupyter kernel"
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.clusters: dict[str, NotebookCluster] = {}
        self.current: str | None = None
        self.sandbox: Sandbox | None = None
        self.panels: list[ClusterPanel[NotebookCluster]] = []
        self.form: DeployForm | None = None  # the last deploy form shown
        self._expired_check: threading.Thread | None = None
        self._expired_wanted = False  # asked for by the first magic using a cluster
        self._expired_checked = False  # started once, when that magic's cell ended
        self._expired_notice: str | None = None
        self._closed = False

    # -- policy ------------------------------------------------------------------------

    def short_errors_now(self) -> bool:
        if self.short_errors is not None:
            return bool(self.short_errors)
        kernel = self._kernel()
        if kernel is not None:
            # Jupyter front ends offer stdin with every execute request; batch clients
            # built on nbclient (papermill, nbconvert --execute, nbval) do not.
            return bool(getattr(kernel, "_allow_stdin", True))
        return type(self.shell).__name__ == "TerminalInteractiveShell" and sys.stdin.isatty()

    def use_widgets(self) -> bool:
        if self.widgets is not None:
            return bool(self.widgets)
        return self._kernel() is not None

    def _kernel(self) -> Any:
        """The ipykernel kernel the shell runs in, or None (a terminal, a test shell)."""
        return getattr(self.shell, "kernel", None)

    def _display(self, obj: Any) -> None:
        from IPython.display import display

        display(obj)

    # -- state -------------------------------------------------------------------------

    def cluster_options(self, args: argparse.Namespace | None = None) -> dict[str, Any]:
        """kubeconfig and context: the magic's options, else the settings, else the sandbox.

        Asked for by every magic that reaches a cluster: the first one also starts the
        look for expired deployments (never at ``%load_ext``).
        """
        self._start_expired_check()
        kubeconfig = getattr(args, "kubeconfig", None) or self.kubeconfig
        context = getattr(args, "context", None) or self.context
        if getattr(args, "sandbox", False):
            self._ensure_sandbox()
            kubeconfig, context = self.kubeconfig, self.context
        return {"kubeconfig": kubeconfig, "context": context}

    def _ensure_sandbox(self) -> Sandbox:
        if self.sandbox is None:
            from .sandbox import Sandbox  # type: ignore[attr-defined,unused-ignore]

            sandbox = Sandbox()
            sandbox.__enter__()
            self.sandbox = sandbox
        self.kubeconfig = str(self.sandbox.kubeconfig_path)
        self.context = "sandbox"
        return self.sandbox

    def spec_from_args(self, args: argparse.Namespace) -> ClusterSpec:
        """The ClusterSpec of the options, the settings' defaults below them.

        See :func:`magic_options.spec_with_settings`; its notes and warnings are shown
        one line each.
        """
        spec, notes = spec_with_settings(
            args, namespace=self.namespace, release=self.release, locales=self.locales
        )
        for note in notes:
            print(f"arkouda-k8s: {note}")
        return spec

    def cluster(
        self,
        name: str | None = None,
        args: argparse.Namespace | None = None,
        *,
        connect: bool = False,
    ) -> NotebookCluster:
        """A cluster of this kernel by name (default: the current), else found by name.

        ``connect``: a cluster found by name gets its tunnel and heartbeat (reattach);
        without it, it is only found (status, logs, teardown).
        """
        name = name or self.current
        if name is None:
            raise ArkoudaUsageError(
                "no current Arkouda cluster in this kernel",
                "deploy one with %arkouda_deploy or reattach with %arkouda_connect NAME",
            )
        if name in self.clusters:
            return self.clusters[name]
        if connect and self._server_tunnels(args):
            from . import jupyter_link

            options = self.cluster_options(args)
            held = jupyter_link.connect_through_server(name, self._namespace(args), **options)
            if held is not None:  # the Jupyter server's tunnel: live across kernel restarts
                self.clusters[name] = held
                return held
        from .cluster import ArkoudaCluster

        cluster = ArkoudaCluster.from_name(
            name,
            namespace=self._namespace(args),
            connect=connect,
            **self.cluster_options(args),
        )
        if connect:
            self.clusters[name] = cluster
        return cluster

    def _namespace(self, args: argparse.Namespace | None) -> str | None:
        """The magic's --namespace, else the setting (else the context's: None)."""
        return getattr(args, "namespace", None) or self.namespace

    def _server_tunnels(self, args: argparse.Namespace | None = None) -> bool:
        """Whether to use the Jupyter server's tunnels (jupyter_link): not for this
        kernel's own sandbox, which the server cannot reach."""
        return self.sandbox is None and not getattr(args, "sandbox", False)

    def bind(self, cluster: NotebookCluster) -> Any:
        """Tunnel + session for ``cluster``; ``ak`` in the user namespace; it becomes current."""
        previous = self.clusters.get(self.current) if self.current else None
        if previous is not None and previous is not cluster:
            self._release(previous, f"`ak` moves to {cluster.name}")
        ak = cluster.connect()
        self.shell.user_ns["ak"] = ak
        self.clusters[cluster.name] = cluster
        self.current = cluster.name
        return ak

    # -- display helpers ---------------------------------------------------------------

    def progress(self) -> DeployProgress | TextProgress:
        from . import widgets

        return widgets.DeployProgress() if self.use_widgets() else widgets.TextProgress()

    def show_status(self, cluster: NotebookCluster) -> ClusterPanel[NotebookCluster] | StatusCard:
        from . import widgets

        if self.use_widgets():
            # one live panel per cluster: an older card stops polling and says so
            for old in [p for p in self.panels if p.cluster is cluster]:
                old.freeze("live updates continue in a newer card")
                self.panels.remove(old)
            panel = widgets.ClusterPanel(
                cluster, on_reconnect=self.bind, on_teardown=self.teardown_cluster
            )
            self.panels.append(panel)
            panel.start()
            self._display(panel)
            return panel
        # memory and version from the server itself, also of a cluster this kernel holds
        # no tunnel to (a short-lived one)
        card = widgets.StatusCard(cluster.status(handshake=True))
        self._display(card)
        return card

    def _release(self, cluster: NotebookCluster, why: str) -> None:
        """Drop the user's arrays of ``cluster`` while its session still reaches it.

        The arkouda client holds one connection per process and names arrays id_1,
        id_2, ... on every server: an array of another server, garbage-collected later,
        would delete the current server's array of the same name.
        """
        session = cluster.session
        if session is None or session.closed:
            return
        shown = magic_cells.remove_arrays(self.shell.user_ns)
        if shown:
            print(f"arkouda-k8s: removed {', '.join(shown)} ({why}; arrays live on {cluster.name})")

    def teardown_cluster(self, cluster: NotebookCluster) -> None:
        self._release(cluster, f"{cluster.name} is deleted")
        cluster.teardown()
        self._forget(cluster)

    def _forget(self, cluster: NotebookCluster) -> None:
        name = cluster.name
        for panel in [p for p in self.panels if p.cluster is cluster]:
            panel.mark_deleted()  # its final state, its buttons off
            self.panels.remove(panel)
        self.clusters.pop(name, None)
        if self.current == name:
            self.current = None
            if self.shell.user_ns.get("ak") is not None:
                self.shell.user_ns.pop("ak", None)

    # -- %arkouda_deploy ---------------------------------------------------------------

    @line_magic
    @front_end("arkouda_deploy")
    @magic_arguments.magic_arguments()
    @argument("--dry-run", action="store_true", help="show the objects, deploy nothing")
    @argument("--sandbox", action="store_true", help="deploy on this kernel's sandbox")
    @SpecOptions()
    @WaitOptions()
    @NamespaceOptions()
    @ClusterOptions()
    def arkouda_deploy(self, line: str = "") -> Any:
        """Deploy an Arkouda cluster, connect to it and bind ``ak``."""
        args = magic_arguments.parse_argstring(self.arkouda_deploy, line)
        if not line.strip() and self.use_widgets():
            return self.show_form()
        spec = self.spec_from_args(args)
        timeouts = options.timeouts_from_args(args)
        if args.dry_run:
            return self.dry_run(spec)
        return self.deploy(
            spec, timeouts=timeouts, **options.deploy_options(args), **self.cluster_options(args)
        )

    def dry_run(self, spec: ClusterSpec) -> Any:
        import yaml

        from . import manifests, widgets

        # Rendered without credentials: every secret value is a placeholder.
        namespace = spec.namespace or "default"
        objects = manifests.render(spec.with_namespace(namespace))
        text = yaml.safe_dump_all(objects, sort_keys=False)
        where = "" if spec.namespace else " (or the context's namespace)"
        title = f"{spec.name}: the {len(objects)} objects a deploy creates in {namespace}{where}"
        card = widgets.TextCard(title, redact(text))
        self._display(card)
        return None

    def deploy(
        self,
        spec: ClusterSpec,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        progress: DeployProgress | TextProgress | None = None,
        timeouts: Timeouts | None = None,
        create_namespace: bool = False,
        ephemeral: bool = False,
    ) -> Any:
        from .cluster import ArkoudaCluster

        self._start_expired_check()  # the form's deploy reaches the cluster too
        if progress is None:  # a form brings its own, already on screen
            progress = self.progress()
            if progress.displayable:
                self._display(progress)
        cluster = ArkoudaCluster(
            spec,
            kubeconfig=kubeconfig,
            context=context,
            on_progress=progress.update,
            timeouts=timeouts,
            create_namespace=create_namespace,
            ephemeral=ephemeral,
        )
        try:
            cluster.deploy(wait=True)
        except BaseException as exc:
            progress.finish(False, exc.one_line() if isinstance(exc, ArkoudaK8sError) else "")
            raise
        if self._server_tunnels():
            from . import jupyter_link

            jupyter_link.through_server(cluster)  # the server holds tunnel and heartbeat
        progress.finish(True, f"{spec.name} is ready")
        self.clusters[spec.name] = cluster
        self.bind(cluster)
        self.show_status(cluster)
        return None

    def show_form(self) -> Any:
        from . import widgets

        self.form = widgets.DeployForm(
            defaults=self._form_defaults(),
            contexts=self.kube_contexts(),
            on_deploy=self._deploy_from_form,
        )
        self._display(self.form)
        return None

    def _form_defaults(self) -> dict[str, Any]:
        settings = {
            "namespace": self.namespace,
            "release": self.release,
            "locales": self.locales,
            "context": self.context,
        }
        defaults: dict[str, Any] = {k: v for k, v in settings.items() if v is not None}
        if "release" not in defaults:  # as %arkouda_deploy: the installed client's release
            from .session import matching_release

            release = matching_release()
            if release:
                defaults["release"] = release
        return defaults

    def _deploy_from_form(self, form: DeployForm, spec: ClusterSpec, context: str | None) -> None:
        if not spec.authenticate:  # the form builds its spec without options.spec_from_args
            from .spec import NO_AUTH_WARNING

            print(f"arkouda-k8s: {NO_AUTH_WARNING}")
        self.deploy(
            spec,
            kubeconfig=self.kubeconfig,
            context=context or self.context,
            progress=form.progress,
            create_namespace=bool(form.create_namespace.value),
        )

    def kube_contexts(self) -> tuple[list[tuple[str, str]], str | None]:
        """(context name, its namespace) pairs of the kubeconfig, and the current context."""
        from .cluster import list_contexts

        return list_contexts(self.kubeconfig)

    # -- %%arkouda ---------------------------------------------------------------------

    @cell_magic
    @front_end("arkouda")
    @magic_arguments.magic_arguments()
    @argument("--cluster", metavar="NAME", help="the cluster to run on (default: the current)")
    @argument("--timeit", action="store_true", help="time the cell with IPython's %%timeit")
    def arkouda(self, line: str, cell: str) -> Any:
        """Run the cell with ``ak`` bound to a cluster; report time and memory change."""
        args = magic_arguments.parse_argstring(self.arkouda, line)
        cluster = self.cluster(args.cluster, connect=True)
        previous = self.clusters.get(self.current) if self.current else None
        session = cluster.session
        if previous is cluster and session is not None and not session.closed:
            self.shell.user_ns["ak"] = session.ak  # already bound: no reconnect per cell
        else:
            self.bind(cluster)
        memory_before = magic_cells.memory_used(cluster)
        server_before = magic_cells.server_time(cluster)
        started = time.perf_counter()
        try:
            if args.timeit:
                result = self.shell.run_cell_magic("timeit", "", cell)
            else:
                with server_errors(self):
                    result = magic_cells.run_cell(self.shell, cell)
        finally:
            elapsed = time.perf_counter() - started
            server_after = magic_cells.server_time(cluster)
            memory_after = magic_cells.memory_used(cluster)
            if previous is not None and previous is not cluster:
                self.bind(previous)  # the user's `ak` stays on their current cluster
        server = None
        if server_before is not None and server_after is not None:
            server = (server_after[0] - server_before[0], server_after[1] - server_before[1])
        print(magic_cells.cell_report(cluster.name, elapsed, server, memory_before, memory_after))
        return result

    # -- status, logs, connect, list, teardown, sandbox --------------------------------

    @line_magic
    @front_end("arkouda_status")
    @magic_arguments.magic_arguments()
    @argument("name", nargs="?", help="the cluster (default: the current)")
    @ClusterOptions()
    def arkouda_status(self, line: str = "") -> Any:
        """Show a cluster's status card (stage, locales, tunnel, memory)."""
        args = magic_arguments.parse_argstring(self.arkouda_status, line)
        self.show_status(self.cluster(args.name, args))

    @line_magic
    @front_end("arkouda_logs")
    @magic_arguments.magic_arguments()
    @argument("name", nargs="?", help="the cluster (default: the current)")
    @argument("--component", choices=["server", "locale"], default="server")
    @argument("--tail", type=int, metavar="N", help="the last N lines")
    @ClusterOptions()
    def arkouda_logs(self, line: str = "") -> Any:
        """Print a cluster's server (or locale) log; secrets are masked."""
        args = magic_arguments.parse_argstring(self.arkouda_logs, line)
        if args.tail is not None and args.tail < 1:
            raise UsageError(f"argument --tail: {args.tail} is not a positive number of lines")
        cluster = self.cluster(args.name, args)
        # masked by the cluster (ArkoudaCluster.logs); a terminal IPython shows the pod's
        # bytes as they are: no escape sequences
        print(strip_control(cluster.logs(args.component, args.tail)))

    @line_magic
    @front_end("arkouda_connect")
    @magic_arguments.magic_arguments()
    @argument("name", help="the deployment's name")
    @ClusterOptions()
    def arkouda_connect(self, line: str = "") -> Any:
        """Reattach to a running deployment: tunnel, session, ``ak``, status card."""
        args = magic_arguments.parse_argstring(self.arkouda_connect, line)
        cluster = self.cluster(args.name, args, connect=True)
        self.bind(cluster)
        self.show_status(cluster)

    @line_magic
    @front_end("arkouda_list")
    @magic_arguments.magic_arguments()
    @ClusterOptions(all_namespaces=True)
    def arkouda_list(self, line: str = "") -> Any:
        """List the arkouda-k8s deployments visible."""
        from . import widgets
        from .cluster import list_clusters

        args = magic_arguments.parse_argstring(self.arkouda_list, line)
        items = list_clusters(
            namespace=self._namespace(args),
            all_namespaces=args.all_namespaces,
            **self.cluster_options(args),
        )
        self._display(widgets.ClusterTable(items, current=self.current))

    @line_magic
    @front_end("arkouda_teardown")
    @magic_arguments.magic_arguments()
    @argument("name", nargs="?", help="the cluster (default: the current)")
    @argument("--all", action="store_true", help="every arkouda-k8s deployment in the namespace")
    @argument("--expired", action="store_true", help="deployments whose heartbeat expired")
    @ClusterOptions()
    def arkouda_teardown(self, line: str = "") -> Any:
        """Delete a deployment and everything it created (the tunnel and session too)."""
        args = magic_arguments.parse_argstring(self.arkouda_teardown, line)
        if sum(bool(x) for x in (args.name, args.all, args.expired)) > 1:
            raise UsageError("give one of NAME, --all or --expired")
        if args.all or args.expired:
            from .cluster import teardown_all, teardown_expired

            namespace = self._namespace(args)
            if args.all:  # ours first: their tunnels and heartbeats stop before deletion
                for cluster in list(self.clusters.values()):
                    if namespace in (None, cluster.namespace):
                        self._release(cluster, f"{cluster.name} is deleted")
                        cluster.close()
            remove = teardown_all if args.all else teardown_expired
            names = remove(namespace=namespace, **self.cluster_options(args))
            for item in names:
                cached = self.clusters.get(item.rpartition("/")[2])
                if cached is not None and cached.namespace == item.rpartition("/")[0]:
                    self._forget(cached)
                print(f"{item}: deleted")
        elif args.name and args.name not in self.clusters:
            from .cluster import teardown_named

            # by name, as the CLI does: also the remains of one whose spec is gone
            teardown_named(
                args.name, args.namespace or self.namespace, **self.cluster_options(args)
            )
            names = [args.name]
            print(f"{args.name}: deleted")
        else:
            cluster = self.cluster(args.name, args)
            self.teardown_cluster(cluster)
            names = [cluster.name]
            print(f"{cluster.name}: deleted")
        if not names:
            print("nothing to delete")

    @line_magic
    @front_end("arkouda_prepull")
    @magic_arguments.magic_arguments()
    @argument("--release", help="Arkouda release / image tag (default: as %%arkouda_deploy's)")
    @argument("--image-repository", help="image repository (default: bearsrus)")
    @argument(
        "--node-selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only nodes with this label (repeatable; default: every node)",
    )
    @argument("--timeout", type=float, default=900.0, help="give up after so many seconds")
    @ClusterOptions()
    def arkouda_prepull(self, line: str = "") -> Any:
        """Pull the Arkouda image onto every (matching) node, so a deploy starts at once."""
        from .kube import Kube
        from .prepull import prepull
        from .session import matching_release
        from .spec import ClusterSpec

        args = magic_arguments.parse_argstring(self.arkouda_prepull, line)
        selector = {}
        for item in args.node_selector:
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise UsageError(f"--node-selector: {item!r} is not KEY=VALUE")
            selector[key] = value
        options = self.cluster_options(args)
        kube = Kube.connect(options["kubeconfig"], options["context"], self._namespace(args))
        release = args.release or self.release or matching_release()
        image: dict[str, Any] = {"release": release} if release else {}
        if args.image_repository:
            image["image_repository"] = args.image_repository
        spec = ClusterSpec(
            namespace=self._namespace(args) or kube.namespace,
            node_selector=selector,
            **image,
        )
        progress = self.progress()
        if progress.displayable:
            self._display(progress)
        try:
            nodes = prepull(kube, spec, timeout=args.timeout, on_progress=progress.update)
        except BaseException as exc:
            progress.finish(False, exc.one_line() if isinstance(exc, ArkoudaK8sError) else "")
            raise
        progress.finish(True, f"{spec.server_image} is on {nodes} node(s)")

    @line_magic
    @front_end("arkouda_sandbox")
    def arkouda_sandbox(self, line: str = "") -> Any:
        """Start the simulated Kubernetes cluster for this kernel and use it."""
        if line.strip():
            raise UsageError(f"takes no arguments, got {line.strip()!r}")
        sandbox = self._ensure_sandbox()
        print(
            f"sandbox (simulated Kubernetes, not a real cluster) at {sandbox.url}; "
            f"the magics now use it (context {self.context})"
        )

    # -- life of the extension ---------------------------------------------------------

    def start(self) -> None:
        """Hooks only: loading the extension reads no kubeconfig and contacts no cluster."""
        atexit.register(self.close)
        self.shell.events.register("post_run_cell", self._post_run_cell)

    def _start_expired_check(self) -> None:
        # started when the asking cell ends: the look (a list of every deployment, maybe
        # the Kubernetes client's import) never competes with that cell's own magic
        self._expired_wanted = True

    def _check_expired(self) -> None:
        """Look for deployments whose heartbeat expired (a kernel died without teardown)."""
        path = self.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        path = path or os.path.expanduser("~/.kube/config")
        if not os.path.exists(path) and "KUBERNETES_SERVICE_HOST" not in os.environ:
            return  # nowhere to look: stay silent and cheap
        try:
            items = None
            if self._server_tunnels():  # the Jupyter server's listing: no Kubernetes client here
                from . import jupyter_link

                items = jupyter_link.list_through_server(self.namespace, **self.cluster_options())
            if items is None:
                from .cluster import list_clusters

                items = list_clusters(namespace=self.namespace, **self.cluster_options())
        except Exception:  # informational only: an unreachable cluster says so on use
            return
        expired = [i for i in items if i.heartbeat_expired]
        if expired:
            names = ", ".join(sorted(i.name for i in expired))
            self._expired_notice = (
                f"arkouda-k8s: {len(expired)} deployment(s) with an expired heartbeat: "
                f"{names}; remove them with `%arkouda_teardown --expired`"
            )

    def _post_run_cell(self, result: Any = None) -> None:
        if self._expired_wanted and not self._expired_checked:
            self._expired_checked = True
            self._expired_check = threading.Thread(
                target=self._check_expired, name="arkouda-k8s-expired-check", daemon=True
            )
            self._expired_check.start()
            return
        check = self._expired_check
        if check is None or check.is_alive():
            # not waited for: %load_ext stays instant; the notice follows a later cell
            return
        self._expired_check = None
        if self._expired_notice:
            print(self._expired_notice)

    def close(self) -> None:
        """Kernel shutdown: stop live panels, close tunnels and heartbeats, stop the sandbox."""
        if self._closed:
            return
        self._closed = True
        check = self._expired_check
        if check is not None and check.is_alive():
            # Let it finish its imports: a daemon thread frozen inside an extension
            # module's initialisation at interpreter exit aborts the process.
            check.join(timeout=EXIT_WAIT)
        for panel in self.panels:
            panel.stop()
        for cluster in list(self.clusters.values()):
            try:
                cluster.close()
            except Exception as exc:  # keep closing the others
                print(f"arkouda-k8s: closing {cluster.name}: {exc}", file=sys.stderr)
        self.clusters.clear()
        if self.sandbox is not None:
            self.sandbox.__exit__(None, None, None)
            self.sandbox = None


_LOADED: dict[int, ArkoudaMagics] = {}


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the magics (``%load_ext arkouda_k8s``); loading twice is a no-op."""
    if id(ipython) in _LOADED:
        return
    config = settings_config("ArkoudaMagics", ArkoudaMagics.class_traits(), ipython.config)
    before = list(ipython.configurables)
    try:
        magics = ArkoudaMagics(shell=ipython, config=config)
    except TraitError as exc:
        ipython.configurables[:] = before  # Magics registers itself before validating
        message = " ".join(str(exc).split())
        raise UsageError(f"arkouda_k8s: setting: {message} {SETTINGS_HINT}") from None
    ipython.register_magics(magics)
    _LOADED[id(ipython)] = magics
    magics.start()


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Unregister the magics and close what they opened (``%unload_ext arkouda_k8s``)."""
    magics = _LOADED.pop(id(ipython), None)
    if magics is None:
        return
    manager = ipython.magics_manager
    for kind, table in magics.magics.items():
        for name in table:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(type(magics).__name__, None)
    if magics in ipython.configurables:
        # IPython annotates `configurables` as a list of shells; it holds Configurables
        ipython.configurables.remove(magics)  # type: ignore[arg-type]
    ipython.events.unregister("post_run_cell", magics._post_run_cell)
    atexit.unregister(magics.close)
    magics.close()
