"""The notebook experience in a real front end: JupyterLab, a real kernel, Chromium.

One JupyterLab and one Chromium for the whole module (each costs tens of seconds):

- the tour: load the extension, start the sandbox, fill the deploy form and click
  Deploy, watch the panel turn Ready, compute with ``%%arkouda``, tear down with the
  magic (the panel then shows the cluster Gone, its buttons off), save the notebook;
- the panel's own Teardown button, on a second small deployment made by the magic;
- the widgets tutorial (notebooks/03-widgets.ipynb) run as a reader runs it: the form
  its code fills and submits, the live panel, teardown; screenshots of form and panel.

The assertions are what the page shows (rendered widgets, not their text repr; the
panel's stage and locale count; the computed value; no traceback, no secret) and what
the saved notebook holds. Skipped, loudly, only when Chromium, Playwright or
JupyterLab cannot be had (CI installs them). How the browser and Lab are set up (flags,
private Jupyter dirs, waiting for the kernel's "Idle"): docs/architecture.md, "Testing".
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import eventually

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Generous: a loaded 2-core machine starts Lab, a kernel, a sandbox and three pods.
STEP_TIMEOUT_MS = 120_000
# Unique per run: the leftover-process check looks for pods by this name, and another
# engineer's browser test may run a sandbox at the same time.
NAME = f"browser-{secrets.token_hex(3)}"
PANEL_NAME = f"panel-{secrets.token_hex(3)}"  # the second deployment: the panel's Teardown
LOCALES = 3  # not the form's default (2): the count shown proves the typed value arrived
CELLS = [
    "%load_ext arkouda_k8s",
    "%arkouda_sandbox",
    "%arkouda_deploy",  # no options in a notebook: the deploy form
    "%%arkouda\ntotal = ak.arange(0, 10, 1).sum()\nprint(f'sum of 0..9 on the server: {total}')",
    f"%arkouda_teardown {NAME}",
]
PANEL_CELLS = [
    "%load_ext arkouda_k8s",
    "%arkouda_sandbox",
    f"%arkouda_deploy --name {PANEL_NAME} --no-auth --locales 2 --cpu 100m --memory 256Mi",
]
# A kernel restart: the notebook reattaches through the tunnel the Jupyter server holds
# (the arkouda_k8s server extension, on the shared test sandbox Lab was pointed at).
RESTART_NAME = f"restart-{secrets.token_hex(3)}"


def _restart_cells(kubeconfig: str) -> list[str]:
    return [
        "%load_ext arkouda_k8s",
        f"%config ArkoudaMagics.kubeconfig = {kubeconfig!r}",
        f"%arkouda_deploy --name {RESTART_NAME} --no-auth --locales 2 --cpu 100m --memory 256Mi",
        "%%arkouda\nprint('sum before the restart:', ak.arange(0, 10, 1).sum())",
        f"%arkouda_connect {RESTART_NAME}",
        "%%arkouda\nprint('sum after the restart:', ak.arange(0, 10, 1).sum())",
        f"%arkouda_teardown {RESTART_NAME}",
    ]


# The widgets tutorial, as a reader runs it in Lab (its fixed deployment name).
WIDGETS_TUTORIAL = ROOT / "notebooks" / "03-widgets.ipynb"
WIDGETS_NAME = "widgets-demo"
# What must never be on screen or in the saved notebook.
SECRET_PATTERNS = [
    re.compile(r"(?i)token="),
    re.compile(r"BEGIN [A-Z ]*KEY|BEGIN CERTIFICATE"),
    re.compile(r"PRIVATE KEY"),
]


def _missing_tools() -> str | None:
    """Why the browser test cannot run here, or None."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    for module in ("playwright", "jupyterlab", "ipykernel"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{module} (pip install -e '.[browser]')")
    try:
        __import__("arkouda")
    except ImportError:
        missing.append("the arkouda client (python scripts/install_arkouda_client.py)")
    return ", ".join(missing) or None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after "(comm)", which may hold spaces
        children.setdefault(ppid, []).append(int(entry))
    return children


def _descendants(pid: int) -> set[int]:
    children, out, todo = _children_of(), set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie is gone, its parent only has to reap it
        except OSError:
            continue
        left.add(pid)
    return left


def _pod_processes(name: str) -> set[int]:
    """Processes of the sandbox's pods of instance ``name`` (found by their environment)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(b"SANDBOX_POD_IP=") for v in env) and any(
            name.encode() in v for v in env
        ):
            found.add(int(entry))
    return _alive(found)


def _wait_until(check: Any, seconds: float, what: str) -> None:
    eventually(check, seconds, 0.1, what)


def _notebook(cells: list[str]) -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell{i}",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _cleared(path: Path) -> dict[str, Any]:
    """A tutorial notebook without its stored outputs: what the page shows is this run's."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    return dict(nb)


def _cell_index(path: Path, starts: str) -> int:
    cells = json.loads(path.read_text())["cells"]
    found = [i for i, c in enumerate(cells) if "".join(c["source"]).startswith(starts)]
    assert len(found) == 1, (starts, found)
    return found[0]


pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory, lifecycle_sandbox: Any
) -> Iterator[dict[str, Any]]:
    """JupyterLab on loopback with isolated dirs; stopped, with everything below it."""
    why = _missing_tools()
    if why:
        message = f"BROWSER TEST NOT RUN: missing {why}"
        print(message, file=sys.stderr)
        warnings.warn(message, pytest.PytestWarning, stacklevel=1)
        pytest.skip(message)

    tmp_path = tmp_path_factory.mktemp("lab")
    work = tmp_path / "work"
    work.mkdir()
    (work / "sandbox-tour.ipynb").write_text(json.dumps(_notebook(CELLS), indent=1))
    (work / "panel.ipynb").write_text(json.dumps(_notebook(PANEL_CELLS), indent=1))
    restart_cells = _restart_cells(str(lifecycle_sandbox.kubeconfig_path))
    (work / "restart.ipynb").write_text(json.dumps(_notebook(restart_cells), indent=1))
    (work / WIDGETS_TUTORIAL.name).write_text(json.dumps(_cleared(WIDGETS_TUTORIAL), indent=1))
    settings = tmp_path / "settings"
    notification = settings / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARKOUDA_K8S_")}
    for var in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTER_DATA_DIR",
        "IPYTHONDIR",
        "HOME",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
    ):
        env[var] = str(tmp_path / var.lower())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")  # the sandbox is the only cluster
    env["ARKOUDA_K8S_CONFIG"] = str(tmp_path / "no-config.toml")
    token, port = secrets.token_hex(16), _free_port()
    log_path = tmp_path / "lab.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in the finally below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--ServerApp.token={token}",
            "--ServerApp.ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={work}",
            # jupyter_lsp shells out to npm at start: slow, and not ours to test
            "--ServerApp.jpserver_extensions={'jupyter_lsp': False}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            f"--LabApp.user_settings_dir={settings}",
            # the server extension holds tunnels on the shared sandbox (restart test)
            f"--ArkoudaK8s.kubeconfig={lifecycle_sandbox.kubeconfig_path}",
        ],
        env=env,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped as one below
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"JupyterLab exited: {log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                return True
        except OSError:
            return False

    try:
        _wait_until(up, 90, "JupyterLab to answer /api/status")
        yield {"base": base, "token": token, "env": env, "work": work, "log": log_path}
    finally:
        below = _descendants(server.pid)
        # Kernels first, politely: a kernel's exit stops its sandbox and the sandbox's pods.
        try:
            with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as r:
                kernels = json.load(r)
            for kernel in kernels:
                request = urllib.request.Request(
                    f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE"
                )
                urllib.request.urlopen(request, timeout=60).close()
        except OSError as exc:
            print(f"could not shut kernels down through Lab: {exc}", file=sys.stderr)
        with contextlib.suppress(AssertionError):  # reported below as stray processes
            _wait_until(lambda: not _alive(below), 30, "the kernel and its sandbox to exit")
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
        stray = _alive(
            below | _pod_processes(NAME) | _pod_processes(PANEL_NAME) | _pod_processes(RESTART_NAME)
        )
        for pid in stray:  # leave nothing running, but fail the test for it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not stray, f"processes left running after Lab stopped: {sorted(stray)}"


@pytest.fixture(scope="module")
def browser(lab: dict[str, Any]) -> Iterator[Any]:
    """One headless Chromium for the module's tests (each opens its own page)."""
    from playwright.sync_api import sync_playwright

    browser_env = {k: lab["env"][k] for k in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "PATH")}
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS, env=browser_env
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        pw.stop()


@contextlib.contextmanager
def _notebook_page(
    browser: Any, lab: dict[str, Any], notebook: str, screenshot: Path
) -> Iterator[Any]:
    """A page with ``notebook`` open in Lab; on failure, what the user saw goes to stderr."""
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        # A workspace of its own: the default one would reopen the earlier test's notebook.
        workspace = Path(notebook).stem
        page.goto(f"{lab['base']}/lab/workspaces/{workspace}/tree/{notebook}?token={lab['token']}")
        yield page
    except Exception:  # assertions and Playwright's timeouts alike
        # what the user would have seen: the first thing to read when this fails in CI
        shown = page.locator(".jp-OutputArea-output").all_inner_texts()
        print("OUTPUTS:\n" + "\n---\n".join(shown), file=sys.stderr)
        print("LAB LOG (tail):\n" + lab["log"].read_text()[-4000:], file=sys.stderr)
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"screenshot: {screenshot}", file=sys.stderr)
        raise
    finally:
        page.close()


def _run_menu(page: Any, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def _assert_clean(page: Any, lab: dict[str, Any]) -> None:
    """No widget shown as text, no traceback or error, nothing secret-like on the page."""
    outputs = page.locator(".jp-OutputArea-output")
    shown = outputs.all_inner_texts()
    markup = [o.inner_html() for o in outputs.all()]
    everything = "\n".join(shown + markup)
    for repr_text in ("VBox(children", "HBox(children", "Accordion(children"):
        assert repr_text not in everything, f"a widget shown as text: {repr_text}"
    assert "Traceback" not in everything
    errors = re.findall(r"\b\w+(?:Error|Exception)\b", "\n".join(shown))
    assert not errors, f"errors shown: {errors}\n" + "\n---\n".join(shown)
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(everything), f"secret-like text shown: {pattern}"
    assert lab["token"] not in everything


@pytest.mark.timeout(300)
def test_notebook_deploy_form_compute_and_teardown_in_jupyterlab(
    lab: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from arkouda_k8s.session import matching_release
    from arkouda_k8s.spec import ClusterSpec

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    locale_pods = ClusterSpec(locales=LOCALES).locale_pods
    screenshot = tmp_path / "notebook.png"
    with _notebook_page(browser, lab, "sandbox-tour.ipynb", screenshot) as page:
        cells = page.locator(".jp-Notebook .jp-Cell")
        expect(cells).to_have_count(len(CELLS))
        # Cells sent before the kernel connects are dropped without a word.
        expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle")

        # Up to the form: the form waits for the user, so the rest runs after Deploy.
        cells.nth(3).locator(".jp-InputPrompt").click()
        _run_menu(page, "Run All Above Selected Cell")
        expect(cells.nth(1).locator(".jp-Cell-outputArea")).to_contain_text(
            "sandbox (simulated Kubernetes, not a real cluster)"
        )
        form = cells.nth(2).locator(".jp-Cell-outputArea")
        deploy = form.locator("button.widget-button", has_text="Deploy")
        expect(deploy).to_be_visible()
        expect(form.locator(".widget-html", has_text="Deploy Arkouda")).to_be_visible()

        def field(label: str) -> Any:
            return (
                form.locator(".widget-text, .widget-combobox")
                .filter(has=page.locator(".widget-label", has_text=re.compile(f"^{label}$")))
                .locator("input")
            )

        field("name").fill(NAME)
        field("locales").fill(str(LOCALES))
        field("locales").press("Tab")  # an IntText sends its value on blur or Enter
        field("CPU").fill("100m")  # small pods: the sandbox's node is this machine
        field("memory").fill("64Ki")  # below the minimum: Deploy turns off, says why
        expect(deploy).to_be_disabled()
        expect(form).to_contain_text("memory: invalid value '64Ki'")
        field("memory").fill("256Mi")
        expect(deploy).to_be_enabled()
        form.get_by_text("more settings").click()
        # the installable 2020.7.7 arkouda client cannot send a token
        form.locator(".widget-checkbox", has_text="token auth").locator("input").uncheck()
        # the summary is computed in the kernel: every typed value made the round trip
        expect(form).to_contain_text(f"{NAME}: {LOCALES} locales (udp, 1 server pod + ")
        expect(form).to_contain_text("no auth")
        # the release defaults to the installed client's: no version-mismatch warning
        expect(form).to_contain_text(f"arkouda-udp-server:{matching_release()}")
        deploy.click()

        expect(form.locator(".widget-html", has_text=re.compile(r"^ready\b"))).to_have_text(
            f"ready {NAME} is ready"
        )
        # the form's closing line: its own widget, so the Output area's sync cannot drop it
        expect(form.locator(".arkouda-k8s-status").first).to_have_text(
            f"{NAME}: ready; `ak` is bound to it"
        )
        panel = form.locator(".widget-html", has_text=f"Arkouda cluster {NAME}")
        expect(panel).to_contain_text(re.compile(r"stage\s*Ready"))
        expect(panel).to_contain_text(re.compile(rf"locale pods\s*{locale_pods}/{locale_pods}"))
        expect(panel).to_contain_text(re.compile(r"tunnel\s*ready 127\.0\.0\.1:\d+"))
        buttons = [
            form.locator("button.widget-button", has_text=label)
            for label in ("Logs", "Reconnect", "Teardown")
        ]
        for button in buttons:
            expect(button).to_be_enabled()
        page.screenshot(path=str(tmp_path / "deployed.png"), full_page=True)

        # The rest of the notebook, as a user would after the deploy.
        cells.nth(3).locator(".jp-InputPrompt").click()
        _run_menu(page, "Run Selected Cell and All Below")
        compute = cells.nth(3).locator(".jp-Cell-outputArea")
        expect(compute).to_contain_text("sum of 0..9 on the server: 45")
        expect(compute).to_contain_text(
            re.compile(rf"\[arkouda {NAME}\] cell \d+\.\d+ s, server \d+\.\d+ s in \d+ requests")
        )
        expect(cells.nth(4).locator(".jp-Cell-outputArea")).to_contain_text(f"{NAME}: deleted")
        expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle")
        # the magic's teardown reaches the panel: the deleted cluster, its buttons off
        expect(panel).to_contain_text(re.compile(r"stage\s*Gone"))
        expect(panel).to_contain_text(re.compile(rf"locale pods\s*0/{locale_pods}"))
        for button in buttons:
            expect(button).to_be_disabled()
        _wait_until(lambda: not _pod_processes(NAME), 60, f"the pods of {NAME} to stop")

        _assert_clean(page, lab)
        assert "does not match the server's release" not in "\n".join(
            page.locator(".jp-OutputArea-output").all_inner_texts()
        )
        page.screenshot(path=str(screenshot), full_page=True)

        # Saved as a user would share it: the outputs are there, secrets are not.
        cells.nth(4).locator(".jp-InputPrompt").click()
        page.keyboard.press("Control+s")
        expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
        notebook = lab["work"] / "sandbox-tour.ipynb"
        _wait_until(
            lambda: "sum of 0..9 on the server: 45" in notebook.read_text(),
            60,
            "the saved notebook to hold the outputs",
        )
        saved = notebook.read_text()
        for pattern in SECRET_PATTERNS:
            assert not pattern.search(saved), f"secret-like text saved: {pattern}"
    print(f"screenshots: {tmp_path / 'deployed.png'} {screenshot}")


@pytest.mark.timeout(300)
def test_panel_teardown_button_in_jupyterlab(
    lab: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    """A deploy by the magic shows the live panel; its Teardown button deletes the cluster."""
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with _notebook_page(browser, lab, "panel.ipynb", tmp_path / "panel.png") as page:
        cells = page.locator(".jp-Notebook .jp-Cell")
        expect(cells).to_have_count(len(PANEL_CELLS))
        expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle")
        _run_menu(page, "Run All Cells")
        out = cells.nth(2).locator(".jp-Cell-outputArea")
        panel = out.locator(".widget-html", has_text=f"Arkouda cluster {PANEL_NAME}")
        expect(panel).to_contain_text(re.compile(r"stage\s*Ready"))
        expect(panel).to_contain_text(re.compile(r"locale pods\s*1/1"))
        expect(panel).to_contain_text(re.compile(r"tunnel\s*ready 127\.0\.0\.1:\d+"))
        expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle")

        teardown = out.locator("button.widget-button", has_text="Teardown")
        teardown.click()
        expect(out.locator(".arkouda-k8s-status")).to_have_text(f"{PANEL_NAME}: deleted")
        expect(panel).to_contain_text(re.compile(r"stage\s*Gone"))
        for label in ("Logs", "Reconnect", "Teardown"):
            expect(out.locator("button.widget-button", has_text=label)).to_be_disabled()
        _wait_until(lambda: not _pod_processes(PANEL_NAME), 60, f"the pods of {PANEL_NAME} to stop")
        _assert_clean(page, lab)


@pytest.mark.timeout(300)
def test_widgets_tutorial_renders_the_form_and_the_panel_in_jupyterlab(
    lab: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    """notebooks/03-widgets.ipynb in Lab: the form filled from code, the live panel, teardown."""
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    form_cell = _cell_index(WIDGETS_TUTORIAL, "%arkouda_deploy")
    deploy_cell = _cell_index(WIDGETS_TUTORIAL, "form.deploy()")
    status_cell = _cell_index(WIDGETS_TUTORIAL, "%arkouda_status")
    teardown_cell = _cell_index(WIDGETS_TUTORIAL, "%arkouda_teardown")
    screenshot = tmp_path / "widgets-tutorial.png"
    with _notebook_page(browser, lab, WIDGETS_TUTORIAL.name, screenshot) as page:
        cells = page.locator(".jp-Notebook .jp-Cell")
        expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle")
        # Everything up to the teardown, as a reader who runs the cells one by one.
        cells.nth(teardown_cell).locator(".jp-InputPrompt").click()
        _run_menu(page, "Run All Above Selected Cell")

        form = cells.nth(form_cell).locator(".jp-Cell-outputArea")
        expect(form.locator(".widget-html", has_text="Deploy Arkouda")).to_be_visible()
        name = (
            form.locator(".widget-text")
            .filter(has=page.locator(".widget-label", has_text=re.compile("^name$")))
            .locator("input")
        )
        expect(name).to_have_value(WIDGETS_NAME)  # filled by the notebook's code
        expect(form).to_contain_text(f"{WIDGETS_NAME}: 3 locales (udp, 1 server pod + 2")
        # the panel that form.deploy() shows lands in the form, as after a click
        panel = form.locator(".widget-html", has_text=f"Arkouda cluster {WIDGETS_NAME}")
        expect(panel).to_contain_text(re.compile(r"stage\s*Ready"))
        expect(panel).to_contain_text(re.compile(r"locale pods\s*2/2"))
        expect(form.locator(".arkouda-k8s-status").first).to_have_text(
            f"{WIDGETS_NAME}: ready; `ak` is bound to it"
        )
        expect(cells.nth(deploy_cell).locator(".jp-Cell-outputArea")).to_contain_text(
            f"{WIDGETS_NAME}: ready; `ak` is bound to it"
        )
        status = cells.nth(status_cell).locator(".jp-Cell-outputArea")
        live = status.locator(".widget-html", has_text=f"Arkouda cluster {WIDGETS_NAME}")
        expect(live).to_contain_text(re.compile(r"tunnel\s*ready 127\.0\.0\.1:\d+"))
        for label in ("Logs", "Reconnect", "Teardown"):
            expect(status.locator("button.widget-button", has_text=label)).to_be_enabled()
        expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle")
        cells.nth(form_cell).scroll_into_view_if_needed()
        cells.nth(form_cell).screenshot(path=str(tmp_path / "widgets-form.png"))
        cells.nth(status_cell).screenshot(path=str(tmp_path / "widgets-panel.png"))

        cells.nth(teardown_cell).locator(".jp-InputPrompt").click()
        _run_menu(page, "Run Selected Cell")  # the last cell: "... and All Below" is off
        expect(cells.nth(teardown_cell).locator(".jp-Cell-outputArea")).to_contain_text(
            f"{WIDGETS_NAME}: deleted"
        )
        expect(live).to_contain_text(re.compile(r"stage\s*Gone"))
        for label in ("Logs", "Reconnect", "Teardown"):
            expect(status.locator("button.widget-button", has_text=label)).to_be_disabled()
        _assert_clean(page, lab)
        page.screenshot(path=str(screenshot), full_page=True)
    for shot in ("widgets-form.png", "widgets-panel.png"):
        assert (tmp_path / shot).stat().st_size > 5_000, shot  # a rendered picture
    print(f"screenshots: {tmp_path / 'widgets-form.png'} {tmp_path / 'widgets-panel.png'}")


def _run_cell(page: Any, cells: Any, index: int) -> None:
    cells.nth(index).locator(".jp-InputPrompt").click()
    _run_menu(page, "Run Selected Cell")


@pytest.mark.timeout(300)
def test_restarted_kernel_computes_again_through_the_servers_tunnel(
    lab: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    """Deploy, compute, restart the kernel from Lab's menu, ``%arkouda_connect``: the
    notebook computes again through the same tunnel, held by the Jupyter server."""
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    address = re.compile(r"tunnel\s*shared (127\.0\.0\.1:\d+)")
    with _notebook_page(browser, lab, "restart.ipynb", tmp_path / "restart.png") as page:
        cells = page.locator(".jp-Notebook .jp-Cell")
        expect(cells).to_have_count(7)
        expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle")
        cells.nth(4).locator(".jp-InputPrompt").click()
        _run_menu(page, "Run All Above Selected Cell")
        deployed = cells.nth(2).locator(".jp-Cell-outputArea")
        panel = deployed.locator(".widget-html", has_text=f"Arkouda cluster {RESTART_NAME}")
        expect(panel).to_contain_text(re.compile(r"stage\s*Ready"))
        expect(panel).to_contain_text(address)  # handed to the server after the deploy
        expect(cells.nth(3).locator(".jp-Cell-outputArea")).to_contain_text(
            "sum before the restart: 45"
        )
        match = address.search(panel.inner_text())
        assert match, panel.inner_text()
        before = match.group(1)

        # Kernel > Restart Kernel..., confirmed, as a user does it
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel")).first.click()
        page.locator(".jp-Dialog-button.jp-mod-accept", has_text="Restart").click()
        expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle")
        for index in (0, 1, 4, 5):
            _run_cell(page, cells, index)
        connected = cells.nth(4).locator(".jp-Cell-outputArea")
        live = connected.locator(".widget-html", has_text=f"Arkouda cluster {RESTART_NAME}")
        expect(live).to_contain_text(re.compile(r"stage\s*Ready"))
        expect(live).to_contain_text(f"shared {before}")  # the same, live tunnel
        expect(cells.nth(5).locator(".jp-Cell-outputArea")).to_contain_text(
            "sum after the restart: 45"
        )
        page.screenshot(path=str(tmp_path / "restart.png"), full_page=True)

        _run_cell(page, cells, 6)
        expect(cells.nth(6).locator(".jp-Cell-outputArea")).to_contain_text(
            f"{RESTART_NAME}: deleted"
        )
        _wait_until(
            lambda: not _pod_processes(RESTART_NAME), 60, f"the pods of {RESTART_NAME} to stop"
        )
        _assert_clean(page, lab)
