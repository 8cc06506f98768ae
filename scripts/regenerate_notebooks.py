"""Run the tutorial notebooks and store their outputs (what nbval then compares).

    python scripts/regenerate_notebooks.py                  # every notebooks/*.ipynb
    python scripts/regenerate_notebooks.py notebooks/02-analysis.ipynb

Each notebook runs top to bottom in a fresh kernel of this Python (the sandbox and the
stand-in server start inside it, as on Binder); cells tagged ``nbval-skip`` (they need a
real cluster) are not run and keep no output. A failing cell stops the script and the
notebook file is left as it was. Run it after changing a notebook or anything its
outputs show, then review the diff: the outputs are part of the tutorial.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SKIP_TAG = "nbval-skip"
CELL_TIMEOUT = 600


def kernel_env(scratch: Path) -> dict[str, str]:
    """This checkout first on the path; no user config, kubeconfig or settings leak in."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # `arkouda-k8s` in a notebook's %%bash cell: this Python's scripts, as an activated venv has them
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for var in ("IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR"):
        env[var] = str(scratch / var.lower())
    env["KUBECONFIG"] = str(scratch / "no-kubeconfig")
    env["ARKOUDA_K8S_CONFIG"] = str(scratch / "no-settings.toml")
    for key in list(env):
        if key.startswith("ARKOUDA_K8S_") and key != "ARKOUDA_K8S_CONFIG":
            del env[key]
    return env


class PlainOutputClient(NotebookClient):
    """Output printed inside an Output widget stays a cell output.

    nbval (and any plain kernel client) records it that way; storing it inside the
    widget's state instead, as nbclient does by default, would make every such cell
    differ from what nbval sees. Lab still shows it inside the widget when run live.
    """

    def register_output_hook(self, msg_id: str, hook: Any) -> None:
        return None

    def remove_output_hook(self, msg_id: str, hook: Any) -> None:
        return None


def merge_adjacent_streams(outputs: list[Any]) -> list[Any]:
    """One output per run of same-stream chunks (a %%bash cell's reader hands them over in
    whatever pieces its pipe gave): the order of stdout and stderr is kept, and nbval,
    which joins each stream's chunks before comparing, sees the same text."""
    merged: list[Any] = []
    for out in outputs:
        last = merged[-1] if merged else None
        if (
            last is not None
            and out.get("output_type") == "stream"
            and last.get("output_type") == "stream"
            and out.get("name") == last.get("name")
        ):
            last["text"] = last["text"] + out["text"]
        else:
            merged.append(out)
    return merged


def regenerate(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    skipped = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and SKIP_TAG in cell.metadata.get("tags", []):
            skipped[index] = cell
    runnable = nbformat.from_dict(
        dict(nb, cells=[c for c in nb.cells if c not in skipped.values()])
    )
    with tempfile.TemporaryDirectory(prefix="nb-regen-") as scratch:
        client = PlainOutputClient(
            runnable,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute(env=kernel_env(Path(scratch)))
    ran = iter(runnable.cells)
    count = 0
    for index, cell in enumerate(nb.cells):
        if index in skipped:
            cell.outputs, cell.execution_count = [], None
            continue
        done = next(ran)
        if cell.cell_type == "code":
            count += 1
            cell.outputs = merge_adjacent_streams(done.outputs)
            cell.execution_count = count
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = count
        cell.metadata.pop("execution", None)  # run timestamps: noise in every diff
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"{path.relative_to(ROOT)}: {count} cells run, {len(skipped)} skipped (real cluster)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    sys.path.insert(0, str(ROOT / "notebooks"))
    from conftest import warm_matplotlib  # what `pytest --nbval notebooks/` does first

    warm_matplotlib()  # the kernels then find the font cache and log nothing about it
    for path in paths:
        regenerate(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
