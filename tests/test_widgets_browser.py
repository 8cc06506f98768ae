"""The deploy form and the cluster panel in a real browser (JupyterLab + Chromium).

JupyterLab runs the notebook in a real kernel; Playwright drives Debian's Chromium:
type into the form, see validation disable Deploy, deploy on the kernel's sandbox,
see the panel turn Ready, tear down with the panel's button. Skipped when JupyterLab,
Playwright or Chromium are missing (facts: shared/notes/browser-testing.md).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
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

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc: no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: set[int] = set()
    todo = [pid]
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
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        left.add(pid)
    return left


NOTEBOOK_CELLS = ["%load_ext arkouda_k8s", "%arkouda_sandbox", "%arkouda_deploy"]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    pytest.importorskip("jupyterlab")
    pytest.importorskip("playwright")
    pytest.importorskip("ipykernel")
    pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")
    work = tmp_path / "work"
    work.mkdir()
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {},
                "source": src,
                "outputs": [],
                "execution_count": None,
            }
            for i, src in enumerate(NOTEBOOK_CELLS)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (work / "form.ipynb").write_text(json.dumps(notebook))
    env = dict(os.environ)
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
    env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
    env["ARKOUDA_K8S_CONFIG"] = str(tmp_path / "absent.toml")
    token, port = secrets.token_hex(16), _free_port()
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        f"--ServerApp.token={token}",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.root_dir={work}",
        "--ServerApp.jpserver_extensions={'jupyter_lsp': False}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
        f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
    ]
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()}")
                time.sleep(0.2)
        yield {"base": base, "token": token, "env": env, "tmp": tmp_path, "server": server}
    finally:
        below = _descendants(server.pid)
        # Shut kernels down politely first: the kernel's exit stops its sandbox's pods.
        try:
            req = urllib.request.Request(f"{base}/api/kernels?token={token}")
            with urllib.request.urlopen(req, timeout=5) as resp:
                kernels = json.load(resp)
            for kernel in kernels:
                urllib.request.urlopen(
                    urllib.request.Request(
                        f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE"
                    ),
                    timeout=30,
                )
        except OSError:
            pass
        deadline = time.monotonic() + 15
        while _alive(below - {server.pid}) - _descendants(server.pid) and time.monotonic() < (
            deadline
        ):
            time.sleep(0.1)
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)
        log.close()
        stray = _alive(below)
        for pid in stray:  # never leave processes behind, but fail the test for it
            os.kill(pid, signal.SIGKILL)
        assert not stray, f"processes left behind by the kernel: {sorted(stray)}"


def test_deploy_form_and_panel_in_jupyterlab(lab: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    browser_env = {k: lab["env"][k] for k in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "PATH")}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS, env=browser_env
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{lab['base']}/lab/tree/form.ipynb?token={lab['token']}")
            # cells sent before the kernel connects are dropped: wait for "| Idle"
            expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle", timeout=90_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            outputs = page.locator(".jp-OutputArea-output")
            deploy = page.locator("button.widget-button", has_text="Deploy")
            expect(deploy).to_be_visible(timeout=90_000)
            expect(deploy).to_be_enabled()

            def field(label: str) -> Any:
                return (
                    page.locator(".widget-text, .widget-combobox")
                    .filter(has=page.locator(".widget-label", has_text=re.compile(f"^{label}$")))
                    .locator("input")
                    .first
                )

            field("name").fill("browser")
            field("CPU").fill("100m")
            field("memory").fill("64Ki")  # too small: Deploy disabled, the form says why
            expect(deploy).to_be_disabled()
            expect(outputs.filter(has_text="memory: invalid value '64Ki'")).to_have_count(1)
            field("memory").fill("256Mi")
            expect(deploy).to_be_enabled()

            page.get_by_text("more settings").click()
            auth = page.locator(".widget-checkbox", has_text="token auth").locator("input")
            auth.uncheck()  # the 2020.7.7 client cannot send a token
            expect(deploy).to_be_enabled()
            deploy.click()

            try:
                expect(outputs.filter(has_text="browser: ready").first).to_be_visible(
                    timeout=120_000
                )
            except AssertionError:  # say what the page and the kernel showed instead
                print("outputs:", outputs.all_inner_texts())
                print("lab log:", (lab["tmp"] / "lab.log").read_text()[-5000:])
                raise
            panel_view = outputs.filter(has_text="Arkouda cluster browser")
            expect(panel_view.first).to_contain_text("Ready")
            expect(panel_view.first).to_contain_text("tunnel")

            for text in outputs.all_inner_texts():
                assert "VBox(children" not in text and "HBox(children" not in text

            page.locator("button.widget-button", has_text="Teardown").first.click()
            expect(outputs.filter(has_text="browser: deleted").first).to_be_visible(timeout=60_000)
        finally:
            browser.close()
