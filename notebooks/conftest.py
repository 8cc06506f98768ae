"""`pytest --nbval notebooks/` with the project's settings, so the plain command works.

The sanitize file (variable text: ports, durations, timestamps, addresses) applies
unless another is given with --nbval-sanitize-with; the kernel is this Python
(--nbval-current-env) unless --nbval-kernel-name names another, with this Python's
scripts (`arkouda-k8s`) first on its PATH, as in an activated virtual environment.
"""

import contextlib
import os
import sys
from pathlib import Path

import pytest

SANITIZE = Path(__file__).with_name("nbval-sanitize.cfg")


def warm_matplotlib() -> None:
    """Build matplotlib's font cache now, before any kernel starts.

    A kernel that builds it logs "Matplotlib is building the font cache" after 5 s (a
    loaded machine, a fresh home): a stderr output that no stored notebook has. The
    kernels inherit this process's environment, so they find the cache made here.
    """
    # without the tutorials extra there is nothing to warm: the analysis notebook says so
    with contextlib.suppress(ImportError):
        import matplotlib.font_manager  # noqa: F401


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if hasattr(option, "nbval_sanitize_with") and not option.nbval_sanitize_with:
        option.nbval_sanitize_with = str(SANITIZE)
    if hasattr(option, "nbval_current_env") and not option.nbval_kernel_name:
        option.nbval_current_env = True
    if getattr(option, "nbval", False):
        warm_matplotlib()
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After a failed comparison: how to store new outputs when the change is intended."""
    failed = {
        report.nodeid.split("::")[0]
        for report in terminalreporter.stats.get("failed", [])
        if report.nodeid.endswith(".ipynb") or ".ipynb::" in report.nodeid
    }
    if failed:
        terminalreporter.write_line(
            "A tutorial's output changed. If your change meant it (a command now prints "
            "something else), store the new outputs and commit them with your change:\n"
            f"    python scripts/regenerate_notebooks.py {' '.join(sorted(failed))}\n"
            "and read the diff (docs/tutorials.md)."
        )
