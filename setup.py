"""The tunnel's native byte pump (arkouda_k8s/_pump.c), built when a C compiler and the
OpenSSL headers are there; without them the package installs anyway and the tunnel moves
bytes with its asyncio path (slower: see benchmarks/tunnel.py)."""

import sys

from setuptools import Extension, setup

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

setup(ext_modules=ext_modules)
