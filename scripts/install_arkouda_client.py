#!/usr/bin/env python3
"""Place the pure-Python ``arkouda`` 2020.7.7 client into the active environment.

PyPI's newest ``arkouda`` (2020.7.7) is an sdist whose install step tries to build
the Chapel server and fails, while its ``arkouda/`` package is pure Python. This
script downloads that sdist with pip (no dependencies, no build), copies the
package and its ``VERSION`` file (the client reads it from the directory above the
package) into site-packages, writes a dist-info so pip sees (and can uninstall) it,
and installs what the client imports: numpy >= 2, pyzmq and a setuptools that still
ships ``pkg_resources``. Idempotent: it returns at once when the client imports.

Used by ``scripts/test.sh`` (CI), the ``sandbox`` extra's instructions and binder/.
Usage: ``python scripts/install_arkouda_client.py [--force]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

CLIENT_REQUIREMENT = "arkouda==2020.7.7"
CLIENT_VERSION = "2020.07.07"
# pkg_resources left setuptools in release 81; the 2020 client imports it at top level.
SETUPTOOLS_REQUIREMENT = "setuptools<81"


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    subprocess.run(cmd, check=True)


def _imports(code: str) -> str | None:
    """Run ``code`` in a fresh interpreter; its stdout on success, None on failure."""
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def installed_client_version() -> str | None:
    return _imports("import arkouda; print(arkouda.__version__)")


def ensure_dependencies() -> None:
    """Install numpy>=2, pyzmq and a pkg_resources-bearing setuptools where missing."""
    missing = []
    numpy_major = _imports("import numpy; print(numpy.__version__.split('.')[0])")
    if numpy_major is None or int(numpy_major) < 2:
        # numpy 1.24-1.26 break the client's import (np.bool); 2.x restores it.
        missing.append("numpy>=2")
    if _imports("import zmq") is None:
        missing.append("pyzmq")
    if _imports("import pkg_resources") is None:
        missing.append(SETUPTOOLS_REQUIREMENT)
    if missing:
        print(f"installing {' '.join(missing)}", file=sys.stderr)
        _pip("install", *missing)


def _record_line(root: Path, path: Path) -> str:
    data = path.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path.relative_to(root).as_posix()},sha256={digest},{len(data)}"


def place_client(site: Path) -> None:
    """Download the sdist and copy ``arkouda/`` + ``VERSION`` into ``site``."""
    with tempfile.TemporaryDirectory(prefix="arkouda-sdist-") as tmp:
        _pip("download", "--no-deps", "--no-binary", ":all:", CLIENT_REQUIREMENT, "-d", tmp)
        sdists = list(Path(tmp).glob("arkouda-*.tar.gz"))
        if len(sdists) != 1:
            raise SystemExit(f"expected one arkouda sdist in {tmp}, found {sdists}")
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(tmp, filter="data")
        src = next(Path(tmp).glob("arkouda-*/arkouda"))
        version_file = src.parent / "VERSION"

        target = site / "arkouda"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copyfile(version_file, site / "VERSION")

    dist_info = site / "arkouda-2020.7.7.dist-info"
    if dist_info.exists():
        shutil.rmtree(dist_info)
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: arkouda\nVersion: 2020.7.7\n"
        "Summary: Arkouda client (pure-Python package of the PyPI sdist, placed by "
        "arkouda-k8s scripts/install_arkouda_client.py)\n"
        "Requires-Dist: numpy>=2\nRequires-Dist: pyzmq\nRequires-Dist: setuptools<81\n"
    )
    (dist_info / "INSTALLER").write_text("arkouda-k8s\n")
    files = sorted(p for p in target.rglob("*") if p.is_file())
    files += [site / "VERSION", dist_info / "METADATA", dist_info / "INSTALLER"]
    lines = [_record_line(site, p) for p in files]
    lines.append(f"{(dist_info / 'RECORD').relative_to(site).as_posix()},,")
    (dist_info / "RECORD").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="reinstall even when present")
    args = parser.parse_args(argv)

    ensure_dependencies()
    if not args.force and installed_client_version() is not None:
        return 0
    site = Path(sysconfig.get_paths()["purelib"])
    print(f"placing the arkouda {CLIENT_VERSION} client into {site}", file=sys.stderr)
    place_client(site)
    version = installed_client_version()
    if version != CLIENT_VERSION:
        print(f"error: `import arkouda` still fails after placing it in {site}", file=sys.stderr)
        return 1
    print(f"arkouda {version} client installed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
