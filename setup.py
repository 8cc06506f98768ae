"""The tunnel's native byte pump (arkouda_k8s/_pump.c), built when a C compiler and the
OpenSSL headers are there; without them the package installs anyway and the tunnel moves
bytes with its asyncio path (slower: see benchmarks/tunnel.py)."""

import sys

from setuptools import Extension, setup
from setuptools.command.editable_wheel import editable_wheel


class _EditableWithData(editable_wheel):
    """``pip install -e`` installs the data files too (pyproject's data-files: the file
    that enables the Jupyter server extension). setuptools looks for ``has_data`` where
    the distribution has ``has_data_files``, so an editable install skips them."""

    def _run_install(self, category: str) -> None:
        if category == "data" and self.distribution.has_data_files():
            self.run_command("install_data")
            return
        super()._run_install(category)


ext_modules = []
if sys.platform.startswith("linux") and sys.implementation.name == "cpython":
    ext_modules.append(
        Extension(
            "arkouda_k8s._pump",
            ["arkouda_k8s/_pump.c"],
            libraries=["ssl", "crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        )
    )

setup(ext_modules=ext_modules, cmdclass={"editable_wheel": _EditableWithData})
