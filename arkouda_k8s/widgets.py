"""Notebook displays: the deploy form, the live cluster panel, progress and text cards.

Every display has a text/plain and a text/html representation built from the same
state, so a front end without widget support (nbviewer, a terminal, GitHub) shows a
readable card instead of ``VBox(children=...)``. Nothing here talks to Kubernetes: the
panel reads the cluster's ``status()`` (what it needs of a cluster is
``interfaces.ShownCluster``), the form builds a ``ClusterSpec`` and hands it to a
callback. The rows of a status card are ``ClusterStatus.card_rows()``. No secret is
ever part of a display (the status carries none, ``ArkoudaCluster.logs()`` masks, and
every card goes through ``credentials.redact`` once more).
"""

from __future__ import annotations

import dataclasses
import html
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import ipywidgets as w

from .credentials import redact, strip_control
from .errors import ArkoudaK8sError, SpecError
from .spec import (
    LOG_LEVELS,
    MODES,
    PULL_POLICIES,
    REGISTRATIONS,
    SPREADS,
    ClusterSpec,
)
from .status import duration

if TYPE_CHECKING:
    from .interfaces import ProgressEvent, ShownCluster
    from .status import ClusterInfo, ClusterStatus

# -- cards: the same rows as text and as HTML ------------------------------------------


def _text(title: str, rows: Iterable[tuple[str, str]], note: str = "") -> str:
    rows = list(rows)
    width = max((len(k) for k, _ in rows), default=0)
    lines = [title] + [f"  {k.ljust(width)}  {v}" for k, v in rows]
    if note:
        lines.append(f"  {note}")
    return "\n".join(lines)


def _shown(text: str) -> str:
    """``text`` for HTML: masked first (escaping turns the quotes the masking looks for
    into entities), then escaped."""
    return html.escape(redact(text))


def _html(title: str, rows: Iterable[tuple[str, str]], note: str = "") -> str:
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{_shown(k)}</th>"
        f"<td style='text-align:left'>{_shown(v)}</td></tr>"
        for k, v in rows
    )
    extra = f"<div>{_shown(note)}</div>" if note else ""
    return f"<div class='arkouda-k8s-card'><b>{_shown(title)}</b><table>{body}</table>{extra}</div>"


class _Card:
    """text/plain and text/html from ``card()``; widgets keep their widget view too."""

    def card(self) -> tuple[str, list[tuple[str, str]], str]:
        raise NotImplementedError

    def text(self) -> str:
        return redact(_text(*self.card()))

    def html(self) -> str:
        return _html(*self.card())

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if isinstance(self, w.Widget):
            data.update(w.Widget._repr_mimebundle_(self, **kwargs) or {})
        data["text/plain"] = self.text()
        data["text/html"] = self.html()
        return data


class StatusCard(_Card):
    """A cluster's status as a static card (terminals, front ends without widgets)."""

    def __init__(self, status: ClusterStatus) -> None:
        self.status = status

    def card(self) -> tuple[str, list[tuple[str, str]], str]:
        return self.status.title(), self.status.card_rows(), self.status.message


class TextCard(_Card):
    """A titled block of text (the dry-run's YAML)."""

    def __init__(self, title: str, body: str) -> None:
        self.title, self.body = title, body

    def text(self) -> str:
        return redact(f"{self.title}\n{self.body}")

    def html(self) -> str:
        return f"<b>{_shown(self.title)}</b><pre>{_shown(self.body)}</pre>"

    def card(self) -> tuple[str, list[tuple[str, str]], str]:  # pragma: no cover - unused
        return self.title, [], self.body


class ClusterTable(_Card):
    """The deployments ``list_clusters`` returned, one row each."""

    def __init__(self, items: Iterable[ClusterInfo], current: str | None = None) -> None:
        self.items, self.current = list(items), current

    def card(self) -> tuple[str, list[tuple[str, str]], str]:
        rows = []
        for item in self.items:
            mark = " (current)" if item.name == self.current else ""
            rows.append((f"{item.namespace}/{item.name}{mark}", item.summary()))
        note = "" if rows else "no arkouda-k8s deployments"
        return "Arkouda deployments", rows, note


def _say(output: w.Output, text: str) -> None:
    """A message in an Output area; called inside ``with output:``.

    In a kernel the front end captures what is printed there and owns the area's
    ``outputs``: writing them from the kernel too would race with it and lose lines.
    Outside a kernel nothing captures, so the text is appended directly.
    """
    from IPython import get_ipython

    # Logs and events come from the cluster: no escape sequence of theirs reaches the
    # front end (or a terminal the kernel's output is copied to).
    text = strip_control(redact(text))
    if getattr(get_ipython(), "kernel", None) is not None:
        print(text)
    else:
        output.append_stdout(text + "\n")


def _status_html(text: str, ok: bool = True) -> str:
    """The closing line of an action (its own HTML widget, never an Output area).

    An Output area in a browser is written by the front end from what it captures and
    synced back after the click handler returns, so a line added there from the
    kernel can be overwritten; a widget's value is the kernel's alone.
    """
    color = "" if ok else " style='color:#b00'"
    return f"<span class='arkouda-k8s-status'{color}>{_shown(text)}</span>"


# -- progress -------------------------------------------------------------------------


class TextProgress:
    """Deploy progress as lines of text: one per stage or message change."""

    displayable = False

    def __init__(self, write: Callable[[str], Any] = print) -> None:
        self.write = write
        self.last: tuple[str, str] | None = None
        self.finished = False

    def update(self, progress: ProgressEvent) -> None:
        if self.finished:  # the cluster keeps reporting (teardown); this was the deploy's
            return
        key = (progress.stage, progress.message)
        if key != self.last:
            self.last = key
            count = f" ({progress.done}/{progress.total})" if progress.total else ""
            self.write(f"  {progress.stage}{count}: {redact(progress.message)}")

    def finish(self, ok: bool, message: str = "") -> None:
        self.finished = True
        if ok and message:  # a failure is the error line that follows; no need to say it twice
            self.write(f"  done: {redact(message)}")


class DeployProgress(_Card, w.VBox):
    """Deploy progress as a bar and a stage line, updated from ``on_progress``."""

    displayable = True

    def __init__(self) -> None:
        self.bar = w.IntProgress(value=0, min=0, max=1, description="deploy")
        self.label = w.HTML("waiting")
        self.stage, self.message, self.state = "", "", "waiting"
        super().__init__(children=[self.bar, self.label])

    def update(self, progress: ProgressEvent) -> None:
        if self.state in ("ready", "failed"):  # later events (teardown) are not the deploy's
            return
        self.stage, self.message, self.state = progress.stage, redact(progress.message), "running"
        self.bar.max = max(int(progress.total), 1)
        self.bar.value = min(int(progress.done), self.bar.max)
        self.label.value = f"<b>{html.escape(self.stage)}</b> {html.escape(self.message)}"

    def finish(self, ok: bool, message: str = "") -> None:
        self.state = "ready" if ok else "failed"
        self.message = redact(message)
        self.bar.bar_style = "success" if ok else "danger"
        if ok:
            self.bar.value = self.bar.max
        self.label.value = f"<b>{self.state}</b> {html.escape(self.message)}"

    def card(self) -> tuple[str, list[tuple[str, str]], str]:
        return (
            "Arkouda deploy",
            [
                ("state", self.state),
                ("stage", self.stage or "-"),
                ("progress", f"{self.bar.value}/{self.bar.max}"),
            ],
            self.message,
        )


# -- the live cluster panel -----------------------------------------------------------


# The panel's cluster: what the magics hold (a NotebookCluster) goes back to their
# callbacks as it is.
C = TypeVar("C", bound="ShownCluster")

# How often a live panel asks a server its kernel holds no tunnel to for its own numbers
# (memory in use, version): each ask opens and closes a port-forward through the API
# server. A kernel that computes on a deployment holds a tunnel, whose numbers every poll
# reads anyway; without one, only other users move the memory use, and the version only
# changes with a new server pod (which the panel sees become Ready, and asks at once).
NUMBERS_INTERVAL = 300.0


class ClusterPanel(_Card, w.VBox, Generic[C]):
    """A cluster's stage, locales, tunnel and memory, refreshed live, with actions.

    >>> panel = ClusterPanel(cluster)   # doctest: +SKIP
    >>> panel.start()                   # poll every 5 s until stop() or teardown

    The first read, ``refresh()`` and the actions ask the server for its memory and
    version also without a tunnel held (``status(handshake=True)``: a short-lived
    port-forward); the polls ask again only when the server pod has just become Ready or
    ``numbers_interval`` seconds have passed, and show the last answer meanwhile, its
    memory marked with its age.
    """

    def __init__(
        self,
        cluster: C,
        *,
        on_reconnect: Callable[[C], object] | None = None,
        on_teardown: Callable[[C], object] | None = None,
        interval: float = 5.0,
        numbers_interval: float = NUMBERS_INTERVAL,
    ) -> None:
        # on_reconnect / on_teardown replace cluster.connect() / cluster.teardown() (the
        # magics also rebind or release `ak`)
        self.cluster = cluster
        self.on_reconnect, self.on_teardown = on_reconnect, on_teardown
        self.interval, self.numbers_interval = interval, numbers_interval
        self.status: ClusterStatus | None = None
        # the last read that asked a Ready server for its numbers (or why it could not),
        # and when (time.monotonic())
        self._asked: ClusterStatus | None = None
        self._asked_at = 0.0
        self.tunnel_state: str | None = None  # pushed by the tunnel since the last status
        self.error = ""
        self.view = w.HTML()
        self.logs_button = w.Button(description="Logs", icon="file-text")
        self.reconnect_button = w.Button(description="Reconnect", icon="refresh")
        self.teardown_button = w.Button(description="Teardown", icon="trash", button_style="danger")
        self.output = w.Output()  # the logs
        self.status_line = w.HTML()  # the last action's closing line
        self.message = ""
        self.deleted = False
        self.logs_button.on_click(lambda _: self.show_logs())
        self.reconnect_button.on_click(lambda _: self.reconnect())
        self.teardown_button.on_click(lambda _: self.teardown())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        super().__init__(
            children=[
                self.view,
                w.HBox([self.logs_button, self.reconnect_button, self.teardown_button]),
                self.status_line,
                self.output,
            ]
        )
        self.refresh()

    # state -> view
    def card(self) -> tuple[str, list[tuple[str, str]], str]:
        status = self.status
        if status is None:  # no status read yet (the first read failed: see the note)
            title, rows = f"Arkouda cluster {self.cluster.name}", [("stage", "unknown")]
            if self.tunnel_state is not None:
                rows.append(("tunnel", self.tunnel_state))
        else:
            if self.tunnel_state is not None:
                status = dataclasses.replace(status, tunnel_state=self.tunnel_state)
            status, read_ago = self._with_numbers(status)
            title, rows = status.title(), status.card_rows()
            if read_ago is not None:
                rows = [
                    (k, f"{v} (read {duration(read_ago)} ago)" if k == "memory" else v)
                    for k, v in rows
                ]
        note = self.error or (status.message if status is not None else "")
        return title, rows, "; ".join(n for n in (note, self.message) if n)

    def _render(self) -> None:
        self.view.value = self.html()

    def _with_numbers(self, status: ClusterStatus) -> tuple[ClusterStatus, float | None]:
        """``status`` with the server's numbers of the last ask when this read did not
        reach the server (no tunnel held, not asked), and their age in seconds (the
        version the cluster remembers from that handshake stays its own)."""
        asked = self._asked
        if (
            asked is None
            or status is asked
            or not status.server_ready
            or status.memory_used is not None
        ):
            return status, None
        carried = dataclasses.replace(
            status,
            memory_used=asked.memory_used,
            arkouda_version=status.arkouda_version or asked.arkouda_version,
            warnings=status.warnings or asked.warnings,
        )
        return carried, time.monotonic() - self._asked_at

    def _numbers_due(self) -> bool:
        """Whether a poll asks the server for its numbers (a port-forward when no tunnel
        is held). While the server pod is not Ready asking costs nothing (there is no
        server to ask): the first poll that finds it Ready asks."""
        last = self.status
        return (
            self._asked is None
            or last is None
            or not last.server_ready
            or time.monotonic() - self._asked_at >= self.numbers_interval
        )

    def refresh(self) -> None:
        """Read the cluster's status now, the server's memory and version included (also
        without a tunnel held: a short-lived one), and show it."""
        self._read(handshake=True)

    def _read(self, handshake: bool) -> None:
        try:
            status = self.cluster.status(handshake=handshake)
        except ArkoudaK8sError as exc:
            self.error = exc.one_line()
        else:
            with self._lock:
                self.status, self.error = status, ""
                if handshake and status.server_ready:
                    self._asked, self._asked_at = status, time.monotonic()
                # a fresh status carries the tunnel state; drop an older pushed one
                if status.tunnel_state is not None:
                    self.tunnel_state = None
        self._render()

    def set_tunnel_state(self, state: str) -> None:
        """Tunnel state pushed by the tunnel (faster than the next poll)."""
        with self._lock:
            self.tunnel_state = str(state)
        self._render()

    # live updates
    def start(self) -> None:
        self.cluster.on_tunnel_state.append(self.set_tunnel_state)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._poll, name=f"arkouda-panel-{self.cluster.name}", daemon=True
            )
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._read(handshake=self._numbers_due())

    def freeze(self, note: str) -> None:
        """Stop live updates and say why on the card (its buttons keep working)."""
        self.stop()
        self.error = note
        self._render()

    def stop(self) -> None:
        self._stop.set()
        if self.set_tunnel_state in self.cluster.on_tunnel_state:
            self.cluster.on_tunnel_state.remove(self.set_tunnel_state)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 5)
        self._thread = None

    # actions
    def _say_done(self, text: str, ok: bool = True) -> None:
        self.message = redact(text)
        self.status_line.value = _status_html(text, ok)
        self._render()

    def _act(self, what: str, fn: Callable[[], Any]) -> None:
        """Run an action: what it prints goes to the Output area, its outcome to the
        status line below the buttons."""
        self.output.clear_output()
        self.status_line.value = ""
        with self.output:
            try:
                fn()
            except ArkoudaK8sError as exc:
                self._say_done(f"{what} failed: {exc.one_line()}", ok=False)

    def show_logs(self, tail: int = 50) -> None:
        # masked by the cluster (ArkoudaCluster.logs)
        self._act("logs", lambda: _say(self.output, self.cluster.logs("server", tail)))

    def reconnect(self) -> None:
        def run() -> None:
            (self.on_reconnect or (lambda c: c.connect()))(self.cluster)
            self._say_done("reconnected; `ak` is bound to this cluster")

        self._act("reconnect", run)
        self.refresh()

    def teardown(self) -> None:
        def run() -> None:
            self.stop()
            (self.on_teardown or (lambda c: c.teardown()))(self.cluster)
            self.mark_deleted()

        self._act("teardown", run)
        if not self.deleted:  # it failed: show where the deletion stopped
            self.refresh()

    def mark_deleted(self, message: str | None = None) -> None:
        """The cluster was deleted (here or by ``%arkouda_teardown``): stop live updates,
        show its final state and turn the buttons off. Idempotent."""
        self.stop()
        if not self.deleted:
            self.deleted = True
            for button in (self.logs_button, self.reconnect_button, self.teardown_button):
                button.disabled = True
            try:
                self.refresh()  # stage Gone, no locale pods
            except Exception as exc:  # the card still says deleted below
                self.error = " ".join(str(exc).split())
        self._say_done(message or f"{self.cluster.name}: deleted")


# -- the deploy form ------------------------------------------------------------------

# How each ClusterSpec field is edited: (kind, label, help).
_FIELDS: dict[str, tuple[str, str, str]] = {
    "name": ("text", "name", "instance name, prefix of every object"),
    "namespace": ("namespace", "namespace", "blank: the context's"),
    "mode": ("choice", "mode", "udp: server + locale pods; smp: one pod"),
    "locales": ("int", "locales", "total number of Arkouda locales"),
    "threads": ("optional_int", "threads", "per locale; blank: the CPU count"),
    "cpu": ("text", "CPU", "per pod, e.g. 2 or 500m"),
    "memory": ("text", "memory", "per pod, e.g. 4Gi"),
    "mem_max": ("optional_text", "memMax", "bytes or 3Gi; blank: derived"),
    "release": ("text", "release", "image tag"),
    "image_repository": ("text", "repository", "image repository"),
    "pull_policy": ("choice", "pull policy", ""),
    "authenticate": ("bool", "token auth", ""),
    "metrics": ("bool", "metrics", "Prometheus exporter"),
    "log_level": ("choice", "log level", ""),
    "persistence": ("path", "host path", "mounted at /arkouda-files; blank: none"),
    "labels": ("mapping", "labels", "key=value per line"),
    "annotations": ("mapping", "annotations", "key=value per line"),
    "node_selector": ("mapping", "node selector", "key=value per line"),
    "tolerations": ("yaml", "tolerations", "a YAML list"),
    "image_pull_secrets": ("list", "pull secrets", "comma-separated names"),
    "service_account": ("optional_text", "service account", "blank: default"),
    "server_port": ("int", "server port", ""),
    "ttl_seconds": ("optional_int", "TTL seconds", "after the last heartbeat; blank: none"),
    "registration": (
        "choice",
        "registration",
        "client: namespace permissions only; server: the charts' certificate flow",
    ),
    "spread": (
        "choice",
        "spread",
        "one locale per node: preferred (share when too few), required, or none",
    ),
}
_CHOICES = {
    "mode": MODES,
    "pull_policy": PULL_POLICIES,
    "log_level": LOG_LEVELS,
    "registration": REGISTRATIONS,
    "spread": SPREADS,
}


class DeployForm(_Card, w.VBox):
    """Every ClusterSpec field, validated as you type; Deploy calls ``on_deploy``.

    ``on_deploy(form, spec, context)`` runs the deployment (the magics bind ``ak`` and
    show the panel); what it shows goes to ``form.output``, its progress to
    ``form.progress``, the outcome to ``form.status_line`` (``form.message``). Deploy
    is disabled while a field is invalid, and ``form.error`` says why.
    """

    def __init__(
        self,
        *,
        defaults: Mapping[str, Any] | None = None,
        contexts: tuple[list[tuple[str, str]], str | None] = ([], None),
        on_deploy: Callable[[DeployForm, ClusterSpec, str | None], Any] | None = None,
    ) -> None:
        defaults = dict(defaults or {})
        self.on_deploy = on_deploy
        self.context_namespaces = dict(contexts[0])
        base = ClusterSpec()
        self.fields: dict[str, w.Widget] = {}
        for spec_field in dataclasses.fields(ClusterSpec):
            value = defaults.get(spec_field.name, getattr(base, spec_field.name))
            self.fields[spec_field.name] = self._editor(spec_field.name, value)
        names = [c for c, _ in contexts[0]]
        current = defaults.get("context") or contexts[1]
        self.context = w.Dropdown(
            options=names or [current or "(current)"],
            value=current if current in names else (names[0] if names else current or "(current)"),
            description="context",
        )
        self.context.observe(self._context_changed, names="value")
        self._context_changed()
        # Not a spec field: what the deploy does about a missing namespace.
        self.create_namespace = w.Checkbox(
            value=bool(defaults.get("create_namespace", False)),
            indent=False,
            description="create the namespace if missing",
            tooltip="like Helm's --create-namespace; teardown never deletes it",
        )
        self.error_label = w.HTML()
        self.summary = w.HTML()
        self.deploy_button = w.Button(description="Deploy", button_style="primary", icon="rocket")
        self.deploy_button.on_click(lambda _: self.deploy())
        self.progress = DeployProgress()
        self.output = w.Output()  # what on_deploy shows (the panel)
        self.status_line = w.HTML()  # the deploy's closing line
        self.message = ""
        self.spec: ClusterSpec | None = None
        self.error = ""
        self.state = "editing"
        for editor in self.fields.values():
            editor.observe(lambda _: self.validate(), names="value")
        basic = [self.context] + [
            self.fields[k] for k in ("name", "namespace", "mode", "locales", "cpu", "memory")
        ]
        basic.insert(3, self.create_namespace)  # right below the namespace
        advanced = [
            e
            for k, e in self.fields.items()
            if k not in ("name", "namespace", "mode", "locales", "cpu", "memory")
        ]
        more = w.Accordion(children=[w.VBox(advanced)], titles=("more settings",))
        more.selected_index = None
        super().__init__(
            children=[
                w.HTML("<b>Deploy Arkouda</b>"),
                *basic,
                more,
                self.error_label,
                self.summary,
                self.deploy_button,
                self.progress,
                self.status_line,
                self.output,
            ]
        )
        self.validate()

    def _editor(self, name: str, value: Any) -> w.Widget:
        kind, label, hint = _FIELDS.get(name, ("text", name, ""))
        style = {"description_width": "8em"}
        common: dict[str, Any] = {"description": label, "style": style, "tooltip": hint}
        if kind == "choice":
            return w.Dropdown(options=list(_CHOICES[name]), value=value, **common)
        if kind == "bool":
            return w.Checkbox(value=bool(value), indent=False, **common)
        if kind == "int":
            return w.IntText(value=int(value), **common)
        if kind == "namespace":
            return w.Combobox(value=value or "", placeholder=hint, ensure_option=False, **common)
        if kind in ("mapping", "yaml"):
            text = _mapping_text(value) if kind == "mapping" else _yaml_text(value)
            return w.Textarea(value=text, placeholder=hint, **common)
        if kind == "list":
            return w.Text(value=", ".join(value or ()), placeholder=hint, **common)
        if kind == "path":
            return w.Text(value=getattr(value, "host_path", "") or "", placeholder=hint, **common)
        text = "" if value is None else str(value)
        return w.Text(value=text, placeholder=hint, continuous_update=True, **common)

    def _context_changed(self, change: Any = None) -> None:
        namespaces = sorted(set(self.context_namespaces.values()) | {"default"})
        ns_box = self.fields["namespace"]
        ns_box.options = namespaces
        ns_box.placeholder = (
            f"blank: {self.context_namespaces.get(self.context.value, 'default')} (the context's)"
        )

    def values(self) -> dict[str, Any]:
        """The fields as ClusterSpec keyword arguments (raises SpecError for bad text)."""
        out: dict[str, Any] = {}
        for name, editor in self.fields.items():
            kind = _FIELDS.get(name, ("text",))[0]
            raw = editor.value
            if kind in ("optional_text", "namespace"):
                out[name] = raw.strip() or None
            elif kind == "optional_int":
                text = raw.strip()
                if not text:
                    out[name] = None
                elif text.lstrip("-").isdigit():
                    out[name] = int(text)
                else:
                    raise SpecError(name, raw, "a whole number, or blank")
            elif kind == "mapping":
                out[name] = _parse_mapping(name, raw)
            elif kind == "yaml":
                out[name] = _parse_yaml_list(name, raw)
            elif kind == "list":
                out[name] = tuple(p.strip() for p in raw.split(",") if p.strip())
            elif kind == "path":
                out[name] = {"host_path": raw.strip()} if raw.strip() else None
            else:
                out[name] = raw
        return out

    def validate(self) -> ClusterSpec | None:
        """Build the spec from the fields; show why not and disable Deploy if invalid."""
        try:
            spec = ClusterSpec(**self.values())
        except SpecError as exc:
            self.spec, self.error = None, exc.one_line()
            self.error_label.value = f"<span style='color:#b00'>{html.escape(self.error)}</span>"
            self.summary.value = ""
            for name, editor in self.fields.items():
                if exc.field.split("[")[0].split(".")[0] == name:
                    editor.add_class("arkouda-invalid")
                else:
                    editor.remove_class("arkouda-invalid")
        else:
            self.spec, self.error = spec, ""
            self.error_label.value = ""
            for editor in self.fields.values():
                editor.remove_class("arkouda-invalid")
            self.summary.value = html.escape(_spec_summary(spec))
        self.deploy_button.disabled = self.spec is None or self.state == "deploying"
        return self.spec

    def deploy(self) -> None:
        """What the Deploy button does: validate, then run ``on_deploy`` (messages in Output)."""
        spec = self.validate()
        if spec is None or self.on_deploy is None or self.state == "deploying":
            return
        self.state = "deploying"
        self.deploy_button.disabled = True
        context = self.context.value if self.context.value in self.context_namespaces else None
        self.output.clear_output()
        self.status_line.value = ""
        self.message = ""
        ok = False
        with self.output:
            try:
                self.on_deploy(self, spec, context)
            except ArkoudaK8sError as exc:
                self.state = "failed"
                self.message = redact(f"{type(exc).__name__}: {exc.one_line()}")
            else:
                self.state, ok = "deployed", True
                self.message = f"{spec.name}: ready; `ak` is bound to it"
        self.status_line.value = _status_html(self.message, ok)
        self.validate()

    def card(self) -> tuple[str, list[tuple[str, str]], str]:
        rows = [("context", str(self.context.value)), ("state", self.state)]
        if self.spec is not None:
            rows.append(("spec", _spec_summary(self.spec)))
        return "Arkouda deploy form", rows, "; ".join(n for n in (self.error, self.message) if n)


def _spec_summary(spec: ClusterSpec) -> str:
    pods = "1 pod" if spec.mode == "smp" else f"1 server pod + {spec.locale_pods} locale pods"
    auth = "token auth" if spec.authenticate else "no auth"
    return (
        f"{spec.name}: {spec.locales} locales ({spec.mode}, {pods}), {spec.cpu} CPU and "
        f"{spec.memory} per pod, {spec.server_image}, {auth}"
    )


def _mapping_text(value: Any) -> str:
    return "\n".join(f"{k}={v}" for k, v in dict(value or {}).items())


def _yaml_text(value: Any) -> str:
    if not value:
        return ""
    import yaml

    return str(yaml.safe_dump([dict(v) for v in value], sort_keys=False))


def _parse_mapping(name: str, text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise SpecError(name, line.strip(), "one key=value per line")
        out[key.strip()] = value.strip()
    return out


def _parse_yaml_list(name: str, text: str) -> tuple[Any, ...]:
    if not text.strip():
        return ()
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise SpecError(name, text.strip(), "a YAML list of mappings") from None
    if not isinstance(data, list):
        raise SpecError(name, text.strip(), "a YAML list of mappings")
    return tuple(data)
