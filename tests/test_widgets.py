"""The notebook displays: deploy form validation, the live panel, progress and text cards.

No cluster here: the panel is driven by a fake cluster whose status the test changes,
the form's Deploy hands its spec to a recording callback (the end-to-end deploy through
the form against the sandbox is in test_magics.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from _support import eventually
from _support.notebook import cluster_info, cluster_status

from arkouda_k8s.cluster import list_contexts
from arkouda_k8s.credentials import MASK
from arkouda_k8s.errors import DeployError, TunnelError
from arkouda_k8s.interfaces import ShownCluster
from arkouda_k8s.spec import ClusterSpec
from arkouda_k8s.status import ClusterStatus
from arkouda_k8s.widgets import (
    ClusterPanel,
    ClusterTable,
    DeployForm,
    DeployProgress,
    StatusCard,
    TextProgress,
)

TOKEN = "f00dfeedc0ffee1234567890abcdef00"


@dataclass
class FakeProgress:
    stage: str
    done: int
    total: int
    message: str
    note: bool = False


@dataclass
class FakeCluster:
    """Stands in for ArkoudaCluster: what a panel needs of it (``ShownCluster``)."""

    status_now: ClusterStatus = field(default_factory=cluster_status)
    name: str = "demo"
    torn_down: bool = False
    connects: int = 0
    on_tunnel_state: list[Callable[[str], None]] = field(default_factory=list)
    fail_status: Exception | None = None
    # False: like an ArkoudaCluster whose process holds no tunnel to it, the server's
    # numbers come only with handshake=True (a short-lived port-forward each time)
    tunnel_held: bool = True
    handshakes: int = 0  # statuses read with handshake=True
    reads: int = 0

    def status(self, probe: bool = True, *, handshake: bool = False) -> ClusterStatus:
        if self.fail_status is not None:
            raise self.fail_status
        self.reads += 1
        self.handshakes += handshake
        if self.tunnel_held or (handshake and self.status_now.server_ready):
            return self.status_now
        return dataclasses.replace(
            self.status_now, memory_used=None, arkouda_version=None, warnings=()
        )

    def logs(self, component: str, tail: int | None) -> str:
        return f"arkouda server listening on tcp://10.0.0.5:5555?token={TOKEN}\nready"

    def connect(self) -> object:
        self.connects += 1
        return object()

    def teardown(self) -> None:
        self.torn_down = True


# Checked by mypy: the stand-in offers what a panel needs of an ArkoudaCluster, as that does
_A_SHOWN_CLUSTER: type[ShownCluster] = FakeCluster


def _output_text(out: Any) -> str:
    return "".join(o.get("text", "") for o in out.outputs)


# -- the deploy form -------------------------------------------------------------------


def test_form_defaults_are_a_valid_spec_and_deploy_is_enabled() -> None:
    form = DeployForm()
    assert form.spec == ClusterSpec()
    assert not form.deploy_button.disabled
    assert form.error == ""
    assert "2 locales" in form.summary.value


@pytest.mark.parametrize(
    ("field_name", "bad", "needle"),
    [
        ("locales", 0, "locales"),
        ("memory", "lots", "memory"),
        ("cpu", "-1", "cpu"),
        ("name", "Bad_Name", "name"),
        ("threads", "many", "threads"),
        ("labels", "no equals sign", "labels"),
        ("tolerations", "key: [unclosed", "tolerations"),
        ("mem_max", "4Gi", "mem_max"),  # above the 2Gi memory limit: OOM
    ],
)
def test_invalid_value_disables_deploy_and_says_why(field_name: str, bad: Any, needle: str) -> None:
    form = DeployForm()
    form.fields[field_name].value = bad
    assert form.deploy_button.disabled
    assert form.spec is None
    assert form.error.startswith(needle)
    assert needle in form.error_label.value
    assert "arkouda-invalid" in form.fields[field_name]._dom_classes
    # typing a good value again re-enables Deploy
    good = ClusterSpec()
    form.fields[field_name].value = {
        "locales": 2,
        "memory": "2Gi",
        "cpu": "1",
        "name": "good-name",
        "threads": "",
        "labels": "team=data",
        "tolerations": "",
        "mem_max": "",
    }[field_name]
    assert not form.deploy_button.disabled, form.error
    assert form.spec is not None and form.spec.locales == good.locales
    assert "arkouda-invalid" not in form.fields[field_name]._dom_classes


def test_clicking_deploy_hands_the_typed_spec_and_context_to_the_callback() -> None:
    calls: list[tuple[ClusterSpec, str | None]] = []

    def on_deploy(form: DeployForm, spec: ClusterSpec, context: str | None) -> None:
        calls.append((spec, context))
        form.progress.update(FakeProgress("server", 3, 4, "server pod starting"))

    form = DeployForm(
        contexts=([("prod", "analytics"), ("sandbox", "default")], "sandbox"),
        on_deploy=on_deploy,
    )
    form.context.value = "prod"
    form.fields["name"].value = "demo"
    form.fields["locales"].value = 4
    form.fields["memory"].value = "4Gi"
    form.fields["authenticate"].value = False
    form.fields["labels"].value = "team=data\ncost-center=42"
    form.fields["image_pull_secrets"].value = "regcred, other"
    form.fields["persistence"].value = "/mnt/arkouda"
    form.fields["ttl_seconds"].value = "7200"
    form.deploy_button.click()
    assert len(calls) == 1
    spec, context = calls[0]
    assert context == "prod"
    assert (spec.name, spec.locales, spec.memory, spec.authenticate) == ("demo", 4, "4Gi", False)
    assert dict(spec.labels) == {"team": "data", "cost-center": "42"}
    assert spec.image_pull_secrets == ("regcred", "other")
    assert spec.persistence is not None and spec.persistence.host_path == "/mnt/arkouda"
    assert spec.ttl_seconds == 7200
    assert form.state == "deployed"
    # the closing line is its own widget, not a line in the Output area
    assert form.message == "demo: ready; `ak` is bound to it"
    assert "demo: ready; `ak` is bound to it" in form.status_line.value
    assert "demo: ready" in form.text() and "demo: ready" not in _output_text(form.output)
    assert form.progress.bar.value == 3 and form.progress.bar.max == 4


def test_clicking_deploy_while_invalid_does_nothing() -> None:
    calls: list[Any] = []
    form = DeployForm(on_deploy=lambda *a: calls.append(a))
    form.fields["locales"].value = -3
    form.deploy_button.click()
    assert calls == []


def test_a_failed_deploy_shows_one_line_under_the_form() -> None:
    def on_deploy(form: DeployForm, spec: ClusterSpec, context: str | None) -> None:
        raise DeployError("locale pods unschedulable", "lower --memory", stage="locales")

    form = DeployForm(on_deploy=on_deploy)
    form.deploy_button.click()
    text = form.status_line.value
    assert "DeployError: locale pods unschedulable (hint: lower --memory)" in text
    assert "color:#b00" in text  # shown as a failure
    assert "Traceback" not in text + _output_text(form.output)
    assert form.state == "failed"
    assert not form.deploy_button.disabled  # the user can fix and try again


def test_context_picker_and_namespace_choices_come_from_the_kubeconfig(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"
        "contexts:\n"
        "- name: dev\n  context: {cluster: c1, user: u1, namespace: analytics}\n"
        "- name: prod\n  context: {cluster: c2, user: u2}\n"
        "clusters:\n"
        "- {name: c1, cluster: {server: 'https://127.0.0.1:6443'}}\n"
        "- {name: c2, cluster: {server: 'https://127.0.0.2:6443'}}\n"
        "users: [{name: u1, user: {}}, {name: u2, user: {}}]\n"
    )
    contexts = list_contexts(str(kubeconfig))
    assert contexts == ([("dev", "analytics"), ("prod", "default")], "dev")
    form = DeployForm(contexts=contexts)
    assert list(form.context.options) == ["dev", "prod"]
    assert form.context.value == "dev"
    assert set(form.fields["namespace"].options) == {"analytics", "default"}
    assert "analytics" in form.fields["namespace"].placeholder
    form.context.value = "prod"
    assert "blank: default" in form.fields["namespace"].placeholder


def test_form_reprs_are_readable_cards() -> None:
    form = DeployForm()
    form.fields["name"].value = "demo"
    bundle = form._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Arkouda deploy form" in bundle["text/plain"] and "demo" in bundle["text/plain"]
    assert "<table>" in bundle["text/html"] and "demo" in bundle["text/html"]
    assert not repr(form).startswith("DeployForm(") and "VBox" not in repr(form)


# -- the cluster panel -----------------------------------------------------------------


def test_panel_shows_the_status_and_follows_stage_changes() -> None:
    cluster = FakeCluster(
        cluster_status(stage="Locales", locales_ready=1, tunnel_state=None, address=None)
    )
    panel = ClusterPanel(cluster)
    assert "Locales" in panel.text() and "1/2 running" in panel.text()
    cluster.status_now = cluster_status(stage="Ready", locales_ready=2)
    panel.refresh()
    text = panel.text()
    assert "Ready" in text and "2/2 running" in text
    assert "up 127.0.0.1:40123" in text
    assert "3.0 MiB used of 1.0 GiB" in text
    assert "Ready" in panel.view.value  # the widget view shows the same card


def test_panel_reflects_a_tunnel_drop_pushed_by_the_tunnel() -> None:
    cluster = FakeCluster()
    panel = ClusterPanel(cluster, interval=60)
    panel.start()
    try:
        assert cluster.on_tunnel_state == [panel.set_tunnel_state]
        for cb in cluster.on_tunnel_state:
            cb("reconnecting")
        assert "tunnel" in panel.text() and "reconnecting" in panel.text()
        assert "reconnecting" in panel._repr_mimebundle_()["text/html"]
        # the next status poll carries the tunnel's own state again
        cluster.status_now = cluster_status(tunnel_state="up")
        panel.refresh()
        assert "reconnecting" not in panel.text()
    finally:
        panel.stop()
    assert cluster.on_tunnel_state == []


def test_panel_polls_in_the_background_until_stopped() -> None:
    cluster = FakeCluster(cluster_status(stage="Server"))
    panel = ClusterPanel(cluster, interval=0.05)
    panel.start()
    try:
        cluster.status_now = cluster_status(stage="Ready")
        eventually(
            lambda: panel.view.value,
            5,
            0.02,
            "the panel showing Ready",
            until=lambda text: "Ready" in text,
        )
        assert "Ready" in panel.view.value
    finally:
        panel.stop()
    assert panel._thread is None


def test_a_panel_without_a_tunnel_asks_the_server_once_not_at_every_poll() -> None:
    """Asking a server the kernel holds no tunnel to opens a port-forward: the first read
    asks, the polls show that answer (the memory marked with its age) and do not ask."""
    cluster = FakeCluster(cluster_status(tunnel_state=None, address=None), tunnel_held=False)
    panel = ClusterPanel(cluster, interval=0.01)
    assert cluster.handshakes == 1 and "3.0 MiB used of 1.0 GiB" in panel.text()
    panel.start()
    try:
        eventually(lambda: cluster.reads, 10, 0.01, "ten polls", until=lambda n: n >= 11)
    finally:
        panel.stop()
    assert cluster.handshakes == 1, f"{cluster.handshakes} asks in {cluster.reads} reads"
    text = panel.text()
    assert re.search(r"memory\s+3\.0 MiB used of 1\.0 GiB \(read \d+s ago\)", text), text
    assert "v2023.05.05" in text
    panel.refresh()  # an explicit refresh asks again
    assert cluster.handshakes == 2 and "(read" not in panel.text()


def test_a_panel_asks_again_when_the_server_becomes_ready_and_after_its_interval() -> None:
    cluster = FakeCluster(
        cluster_status(stage="Server", server_ready=False, tunnel_state=None, address=None),
        tunnel_held=False,
    )
    panel = ClusterPanel(cluster, interval=0.01, numbers_interval=3600)
    assert "MiB" not in panel.text()
    panel.start()
    try:
        cluster.status_now = cluster_status(tunnel_state=None, address=None)
        eventually(panel.text, 10, 0.01, "the memory once Ready", until=lambda t: "3.0 MiB" in t)
        asked = cluster.handshakes
        reads = cluster.reads
        eventually(lambda: cluster.reads, 10, 0.01, "more polls", until=lambda n: n >= reads + 5)
        assert cluster.handshakes == asked  # once Ready and answered: no more asks
        panel.numbers_interval = 0.05  # the slow rate: asks again now and then
        eventually(lambda: cluster.handshakes, 10, 0.01, "another ask", until=lambda n: n > asked)
    finally:
        panel.stop()


def test_the_cards_show_why_the_servers_numbers_are_missing() -> None:
    why = "the API server refused the port-forward to demo-server: forbidden"
    status = cluster_status(
        tunnel_state=None, address=None, memory_used=None, arkouda_version=None, warnings=(why,)
    )
    for display in (StatusCard(status), ClusterPanel(FakeCluster(status))):
        assert re.search(r"warning\s+the API server refused the port-forward", display.text())
        assert "forbidden" in display._repr_mimebundle_()["text/html"]


def test_a_frozen_panel_stops_polling_and_says_why() -> None:
    cluster = FakeCluster()
    panel = ClusterPanel(cluster, interval=0.05)
    panel.start()
    panel.freeze("live updates continue in a newer card")
    assert panel._thread is None and cluster.on_tunnel_state == []
    assert "live updates continue in a newer card" in panel.text()
    assert "newer card" in panel.view.value


def test_panel_status_failure_is_one_line_on_the_card() -> None:
    cluster = FakeCluster(fail_status=TunnelError("tunnel closed", "run %arkouda_connect demo"))
    panel = ClusterPanel(cluster)
    assert "tunnel closed (hint: run %arkouda_connect demo)" in panel.text()


def test_panel_buttons_logs_reconnect_teardown() -> None:
    cluster = FakeCluster()
    torn: list[Any] = []
    reconnected: list[Any] = []

    def teardown(c: FakeCluster) -> None:
        c.teardown()
        torn.append(c)

    panel = ClusterPanel(cluster, on_reconnect=reconnected.append, on_teardown=teardown)
    panel.logs_button.click()
    logs = _output_text(panel.output)
    assert "listening on" in logs and TOKEN not in logs and MASK in logs
    panel.reconnect_button.click()
    assert reconnected == [cluster]
    assert "reconnected" in panel.status_line.value
    panel.teardown_button.click()
    assert cluster.torn_down and torn == [cluster]
    assert panel.teardown_button.disabled and panel.reconnect_button.disabled
    assert panel.logs_button.disabled
    assert "demo: deleted" in panel.status_line.value and "demo: deleted" in panel.text()


def test_a_failed_panel_action_says_so_under_the_buttons() -> None:
    def refuse(c: FakeCluster) -> None:
        raise TunnelError("port-forward refused", "check your RBAC")

    panel = ClusterPanel(FakeCluster(), on_reconnect=refuse)
    panel.reconnect_button.click()
    assert "reconnect failed: port-forward refused (hint: check your RBAC)" in panel.message
    assert "color:#b00" in panel.status_line.value
    assert not panel.reconnect_button.disabled


def test_a_failed_panel_teardown_keeps_the_buttons_for_a_retry() -> None:
    def refuse(c: FakeCluster) -> None:
        raise DeployError("deleting demo-server: forbidden", "ask for delete rights")

    cluster = FakeCluster()
    panel = ClusterPanel(cluster, on_teardown=refuse)
    cluster.status_now = cluster_status(stage="Locales", locales_ready=1)  # half deleted
    panel.teardown_button.click()
    assert "teardown failed: deleting demo-server: forbidden" in panel.status_line.value
    assert not panel.teardown_button.disabled and not panel.deleted
    assert "Locales" in panel.text() and "1/2 running" in panel.text()


def test_mark_deleted_shows_the_final_state_and_turns_the_buttons_off() -> None:
    """What %arkouda_teardown does to a live panel of the cluster it deleted."""
    cluster = FakeCluster()
    panel = ClusterPanel(cluster, interval=60)
    panel.start()
    assert "2/2 running" in panel.text()
    cluster.status_now = cluster_status(
        stage="Gone", locales_ready=0, tunnel_state=None, address=None
    )
    panel.mark_deleted()
    assert panel._thread is None and cluster.on_tunnel_state == []
    text = panel.text()
    assert "Gone" in text and "0/2 running" in text and "demo: deleted" in text
    assert "Gone" in panel.view.value
    buttons = (panel.logs_button, panel.reconnect_button, panel.teardown_button)
    assert all(b.disabled for b in buttons)
    panel.mark_deleted()  # again (the panel's own Teardown, then the magic's): no harm
    assert panel.text().count("demo: deleted") == 1


def test_panel_and_card_reprs_carry_the_state_and_no_secret() -> None:
    status = cluster_status(message=f"connect with tcp://127.0.0.1:1?token={TOKEN}")
    for display in (StatusCard(status), ClusterPanel(FakeCluster(status))):
        bundle = display._repr_mimebundle_()
        for mime in ("text/plain", "text/html"):
            assert "Ready" in bundle[mime] and "demo" in bundle[mime]
            assert TOKEN not in bundle[mime]
        assert "VBox" not in repr(display)


@pytest.mark.parametrize(
    "leak",
    [
        f'{{"token": "{TOKEN}"}}',  # JSON: escaped to &quot; before masking, it slipped
        f"{{'token': '{TOKEN}'}}",  # a Python repr
        f"Authorization: Bearer {TOKEN}",
    ],
)
def test_every_form_of_a_token_is_masked_in_text_and_html(leak: str) -> None:
    from arkouda_k8s.widgets import TextCard

    for display in (StatusCard(cluster_status(message=leak)), TextCard("config", leak)):
        bundle = display._repr_mimebundle_()
        for mime in ("text/plain", "text/html"):
            assert TOKEN not in bundle[mime], (mime, bundle[mime])
            assert MASK in bundle[mime]


def test_pod_logs_reach_the_output_without_escape_sequences() -> None:
    class Hostile(FakeCluster):
        def logs(self, component: str, tail: int | None) -> str:
            # retitle the terminal, a hyperlink that hides its target, clear the screen
            return "\x1b]0;owned\x07ready \x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\\x1b[2J\rdone"

    panel = ClusterPanel(Hostile(), on_reconnect=lambda c: None, on_teardown=lambda c: None)
    panel.logs_button.click()
    logs = _output_text(panel.output)
    assert "ready" in logs and "click" in logs and "done" in logs
    assert "\x1b" not in logs and "\x07" not in logs and "\r" not in logs
    assert "owned" not in logs and "evil" not in logs


def test_cluster_table_lists_deployments() -> None:
    items = [cluster_info(name="a"), cluster_info(name="b", stage="Failed", heartbeat_expired=True)]
    table = ClusterTable(items, current="a")
    text = table.text()
    assert "team/a (current)" in text
    assert "team/b" in text and "heartbeat expired" in text
    assert "no arkouda-k8s deployments" in ClusterTable([]).text()


# -- progress --------------------------------------------------------------------------


def test_text_progress_prints_one_line_per_change() -> None:
    lines: list[str] = []
    progress = TextProgress(lines.append)
    for p in [
        FakeProgress("preflight", 0, 4, "checking permissions"),
        FakeProgress("preflight", 0, 4, "checking permissions"),
        FakeProgress("locales", 1, 4, "1/1 locale pods running"),
    ]:
        progress.update(p)
    progress.finish(True, "demo is ready")
    progress.update(FakeProgress("teardown", 0, 1, "deleting demo"))  # not the deploy's
    assert lines == [
        "  preflight (0/4): checking permissions",
        "  locales (1/4): 1/1 locale pods running",
        "  done: demo is ready",
    ]
    failing = TextProgress(lines.append)
    failing.finish(False, "image pull failed")  # the error itself follows, once
    assert lines[-1] == "  done: demo is ready"


def test_widget_progress_bar_and_failure() -> None:
    progress = DeployProgress()
    progress.update(FakeProgress("locales", 2, 5, "waiting for locale pods"))
    assert (progress.bar.value, progress.bar.max) == (2, 5)
    assert "waiting for locale pods" in progress.label.value
    progress.finish(False, "image pull failed")
    progress.update(FakeProgress("teardown", 1, 1, "demo: 13 objects deleted"))
    assert progress.bar.bar_style == "danger" and "teardown" not in progress.text()
    assert "failed" in progress.text() and "image pull failed" in progress._repr_html_()


# -- on the sandbox --------------------------------------------------------------------


def test_a_live_panel_opens_no_port_forward_per_poll(sb: Any, deployed: Any) -> None:
    """A panel of a deployment its kernel holds no tunnel to: the first read opens a
    short-lived port-forward (the server's memory and version), the polls after it none
    (the sandbox's API server counts the port-forwards it accepts)."""
    from _support.lifecycle import admin, spec

    from arkouda_k8s.cluster import ArkoudaCluster

    with deployed(spec("panel-pf", locales=1)) as held:
        held.close()  # the deploy's own tunnel: this process now holds none
        shown = ArkoudaCluster.from_name("panel-pf", "default", kube=admin(sb), connect=False)
        reads: list[bool] = []
        status = shown.status

        def counted(probe: bool = True, *, handshake: bool = False) -> ClusterStatus:
            reads.append(handshake)
            return status(probe, handshake=handshake)

        shown.status = counted  # type: ignore[method-assign]
        registry = sb.portforward_registry
        before = registry.opened
        panel = ClusterPanel(shown, interval=0.05)
        first = registry.opened - before
        assert first >= 1, "the first read asks the server through a short-lived tunnel"
        assert re.search(r"memory\s+\S+ \S+ used", panel.text()), panel.text()
        panel.start()
        try:
            eventually(lambda: len(reads), 60, 0.05, "six polls", until=lambda n: n >= 7)
        finally:
            panel.stop()
        opened = registry.opened - before
        assert opened == first, f"{opened - first} port-forwards in {len(reads) - 1} polls"
        text = panel.text()
        assert re.search(r"memory\s+.* used .*\(read \d+s ago\)", text), text
        assert "v2023.05.05" in text and "warning" not in text
