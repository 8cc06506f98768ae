"""The tutorial notebooks: stored outputs that nbval compares, and nothing secret in them.

`pytest --nbval notebooks/` (scripts/test.sh runs it) re-executes every notebook and
compares each cell's output with the stored one. These tests check what that run
cannot: that a changed computation really fails the comparison, that the stored outputs
hold what a reader is promised (a rendered figure, widgets with a readable fallback)
and no secret.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TUTORIALS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
SANITIZE = NOTEBOOKS / "nbval-sanitize.cfg"

# Secret shapes; the PEM marker is assembled here so the repository holds no key-shaped text.
PEM = "-" * 5 + "BEGIN"
SECRET_PATTERNS = [
    re.compile(re.escape(PEM)),
    re.compile(r"PRIVATE KEY"),
    re.compile(r"""(?i)token["']?\s*[=:]\s*["']?(?![*<]|\s)[^\s"'&,;)]{6,}"""),
    re.compile(r"ssh-(rsa|ed25519) AAAA"),
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # a service-account JWT
    re.compile(r"(client-key|client-certificate|certificate-authority)-data\s*:\s*\S{16,}"),
]


def _texts(value: Any) -> list[str]:
    """Every string inside an output or metadata value, images left out."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, dict):
        return [t for k, v in value.items() if not str(k).startswith("image/") for t in _texts(v)]
    return []


def secrets_in(notebook: dict[str, Any]) -> list[str]:
    """The secret-looking snippets in a notebook's outputs and metadata (widget state)."""
    texts = _texts(notebook.get("metadata", {}))
    for cell in notebook["cells"]:
        texts += _texts(cell.get("outputs", []))
    found = []
    for text in texts:
        for pattern in SECRET_PATTERNS:
            found += [text[max(0, m.start() - 20) : m.end() + 20] for m in pattern.finditer(text)]
    return found


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_the_five_tutorials_are_there_with_stored_outputs() -> None:
    names = [p.name for p in TUTORIALS]
    assert names == [
        "01-quickstart.ipynb",
        "02-analysis.ipynb",
        "03-widgets.ipynb",
        "04-from-manual-steps.ipynb",
        "05-pipelines.ipynb",
    ]
    for path in TUTORIALS:
        code = [c for c in _load(path)["cells"] if c["cell_type"] == "code"]
        ran = [c for c in code if "nbval-skip" not in c["metadata"].get("tags", [])]
        assert ran and all(c["execution_count"] for c in ran), path.name
        assert sum(bool(c["outputs"]) for c in ran) >= len(ran) // 2, path.name


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_no_stored_output_holds_a_secret(path: Path) -> None:
    assert secrets_in(_load(path)) == []


def test_the_secret_scan_finds_each_kind_of_secret() -> None:
    planted = [
        f"{PEM} RSA PRIVATE KEY-----\nMIIE",
        "server listening on tcp://10.1.2.3:5555?token=Zm9vYmFyYmF6cXV4",
        'kubectl config: {"token": "abcdef0123456789"}',
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI",
        "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0",
        "client-key-data: LS0tLS1CRUdJTiBFQyBQUklW",
    ]
    for text in planted:
        nb = {"metadata": {}, "cells": [{"outputs": [{"output_type": "stream", "text": text}]}]}
        assert secrets_in(nb), text
    masked = [
        "server listening on tcp://127.0.0.1:5555?token=<ARKOUDA_SERVER_TOKEN>",
        "connected as user jovyan with token ********",
        "tokens: read from the Secret analysis-token",
    ]
    nb = {"metadata": {}, "cells": [{"outputs": [{"text": t} for t in masked]}]}
    assert secrets_in(nb) == []


def test_the_analysis_figure_is_a_rendered_image_in_the_stored_output() -> None:
    images = [
        base64.b64decode(out["data"]["image/png"])
        for cell in _load(NOTEBOOKS / "02-analysis.ipynb")["cells"]
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 1
    png = images[0]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 600 and height >= 200 and len(png) > 10_000  # a drawn figure, not a stub


def test_shell_commands_run_in_bash_cells_whose_output_cannot_be_cut_short() -> None:
    """IPython's `!` reads a command through a terminal (pexpect), and on Linux the last
    line a command prints just before it exits can be lost when the machine is busy
    (nbval then fails on a missing "exit code 1"); a `%%bash` cell reads pipes."""
    bang, bash = [], 0
    for path in TUTORIALS:
        for index, cell in enumerate(_load(path)["cells"]):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            bash += source.startswith("%%bash")
            bang += [
                f"{path.name} cell {index}: {line.strip()[:60]}"
                for line in source.splitlines()
                if line.lstrip().startswith("!") or re.match(r"\s*\w+\s*=\s*!", line)
            ]
    assert bang == [], f"use a %%bash cell for: {bang}"
    assert bash >= 10  # the render and run walk-throughs of 04 and 05


def test_widget_outputs_keep_a_compared_text_fallback() -> None:
    widgets = [
        out["data"]
        for path in TUTORIALS
        for cell in _load(path)["cells"]
        for out in cell.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    assert len(widgets) >= 6
    for data in widgets:
        text = "".join(data["text/plain"])
        assert text.strip() and "VBox(children" not in text and "HBox(children" not in text


# -------------------------------------------------------------- nbval really compares


def _nbval(notebook: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARKOUDA_K8S_")}
    for var in ("IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "MPLCONFIGDIR"):
        env[var] = str(cwd / var.lower())
    env["KUBECONFIG"] = str(cwd / "no-kubeconfig")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(notebook), "-p", "no:cacheprovider",
         "--nbval-current-env", f"--nbval-sanitize-with={SANITIZE}", "-q", "--rootdir", str(cwd)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_nbval_fails_a_notebook_whose_computation_changed_without_new_outputs(
    tmp_path: Path,
) -> None:
    pytest.importorskip("nbval")
    pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")
    original = NOTEBOOKS / "01-quickstart.ipynb"
    same = tmp_path / "same.ipynb"
    shutil.copy(original, same)
    result = _nbval(same, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]

    nb = _load(original)
    changed = 0
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if "b = a % 7" in source:
            cell["source"] = source.replace("b = a % 7", "b = a % 5")
            changed += 1
    assert changed == 1
    edited = tmp_path / "edited.ipynb"
    edited.write_text(json.dumps(nb))
    result = _nbval(edited, tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    failed = re.findall(r"FAILED \S*edited\.ipynb::Cell (\d+)", result.stdout)
    assert failed == ["3"], result.stdout[-3000:]  # only the changed cell, by its output
    assert "Cell 3: Cell outputs differ" in result.stdout  # it ran; its output differs


def test_readme_links_every_tutorial_and_a_binder_badge_for_main() -> None:
    import tomllib

    readme = (ROOT / "README.md").read_text()
    for path in TUTORIALS:
        assert f"](notebooks/{path.name})" in readme, path.name
    repo = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    owner_name = repo.removeprefix("https://github.com/")
    badge = re.search(
        r"\(https://mybinder\.org/v2/gh/([^/]+/[^/]+)/([^?)]+)\?urlpath=([^)]+)\)", readme
    )
    assert badge is not None
    assert badge.group(1) == owner_name and badge.group(2) == "main"
    assert (ROOT / badge.group(3).removeprefix("lab/tree/")).is_file()
    assert (ROOT / "docs" / "tutorials.md").is_file()
