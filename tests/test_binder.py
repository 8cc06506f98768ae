"""binder/ is complete: a fresh environment built from it alone runs every tutorial.

What Binder (repo2docker) does, without Docker: a new virtual environment of this
Python, `pip install -r binder/requirements.txt` from the repository root, then
`binder/postBuild`. Only pytest and nbval are added (the test runner, not something a
notebook needs), then `pytest --nbval notebooks/` compares every stored output. The
build works on a copy of the committed files, so a file the notebooks need but git
does not track fails here as it would on Binder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _committed_copy(dest: Path) -> None:
    """The repository's tracked files (what Binder clones), or the tree without caches."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        files = [f for f in listed.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
    if files:
        for name in files:
            src = ROOT / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
        return
    shutil.copytree(
        ROOT,
        dest,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "*.so"),
    )


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    """stdout and stderr of a command that must succeed."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout[-4000:]}\n"
        f"{result.stderr[-4000:]}"
    )
    return result.stdout + result.stderr


def test_a_venv_built_from_binder_alone_passes_nbval_on_every_notebook(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _committed_copy(repo)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    python = str(bin_dir / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env = {k: v for k, v in env.items() if not k.startswith("ARKOUDA_K8S_")}
    env.update(
        VIRTUAL_ENV=str(env_dir),
        PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        HOME=str(tmp_path / "home"),  # no user config of this machine
        PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
        MPLCONFIGDIR=str(tmp_path / "mpl"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    pip = [python, "-m", "pip", "install", "--quiet"]
    _run(pip + ["-r", "binder/requirements.txt"], repo, env, 1200)
    _run(["bash", "binder/postBuild"], repo, env, 600)
    # Lab's widget front end comes prebuilt with the packages: no node, no lab build
    labext = _run([python, "-m", "jupyter", "labextension", "list"], repo, env, 120)
    _run(pip + ["pytest", "nbval"], repo, env, 600)
    probe = "import arkouda_k8s, sys; print(arkouda_k8s.__file__)"
    where = _run([python, "-c", probe], tmp_path, env, 60)
    assert str(env_dir) in where  # the installed package, not this checkout
    result = subprocess.run(
        [python, "-m", "pytest", "--nbval", "notebooks/", "-p", "no:cacheprovider", "-q"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    assert "@jupyter-widgets/jupyterlab-manager" in labext
