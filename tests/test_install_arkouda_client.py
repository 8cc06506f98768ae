"""scripts/install_arkouda_client.py places the 2020.7.7 client into an environment.

A fresh virtual environment (seeing this interpreter's numpy, pyzmq and setuptools,
so nothing large is downloaded) gets the client from the PyPI sdist; afterwards
``import arkouda`` works there, reads its VERSION file, and pip knows the package.
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_arkouda_client.py"


@pytest.mark.slow
def test_places_the_client_into_a_fresh_environment(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    # --force: the outer environment may already have a client; this one must get its own.
    run = subprocess.run(
        [python, str(SCRIPT), "--force"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert (Path(site) / "arkouda" / "client.py").is_file()
    assert (Path(site) / "VERSION").read_text().strip() == "2020.07.07"

    probe = subprocess.run(
        [
            python,
            "-W",
            "ignore",
            "-c",
            "import arkouda; print(arkouda.__version__, arkouda.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    version, path = probe.stdout.split()
    assert version == "2020.07.07" and path.startswith(site)
    shown = subprocess.run(
        [python, "-m", "pip", "show", "-f", "arkouda"], capture_output=True, text=True
    )
    assert "Version: 2020.7.7" in shown.stdout and f"Location: {site}" in shown.stdout

    # Idempotent and quick the second time: nothing is downloaded again.
    again = subprocess.run([python, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "placing" not in again.stderr
