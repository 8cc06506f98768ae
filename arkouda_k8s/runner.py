"""Run Arkouda code against a server address: ``arkouda-k8s run`` for pipeline containers.

The code runs with ``ak`` bound to the installed ``arkouda`` client, connected through
:class:`arkouda_k8s.session.Session` (probe first, so a halted server is an error, not a
hang). Bad input (a malformed HOST:PORT, code that does not compile, a missing file) is
a :class:`UsageError` (exit 2); a failure while running, an Arkouda error included, is a
:class:`RunFailed` (exit 1) whose one line names the exception.

    run_code("print(ak.arange(0, 10, 1).sum())", server="127.0.0.1:5555", token=None)
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from types import CodeType

from .errors import ArkoudaK8sError, UsageError
from .session import Session


class RunFailed(ArkoudaK8sError):
    """The code raised an exception while running (exit 1)."""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as (host, port); UsageError otherwise."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"--server: {text!r} is not HOST:PORT",
            "e.g. --server 127.0.0.1:5555 (the address `arkouda-k8s forward NAME` prints)",
        )
    return host, int(port)


def compile_code(code: str, filename: str) -> CodeType:
    try:
        return compile(code, filename, "exec")
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.lineno else str(exc.filename)
        raise UsageError(f"the code does not compile: {exc.msg} ({where})") from None


def read_code(code: str | None, file: str | None) -> tuple[str, str]:
    """(source, filename) from exactly one of ``-c CODE`` and ``FILE``."""
    if (code is None) == (file is None):
        raise UsageError(
            "give exactly one of -c CODE and FILE",
            "e.g. arkouda-k8s run --server 127.0.0.1:5555 -c 'print(ak.get_config())'",
        )
    if code is not None:
        return code, "<string>"
    assert file is not None
    path = Path(file)
    try:
        return path.read_text(), str(path)
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None


def run_code(
    code: str,
    *,
    server: str,
    token: str | None = None,
    filename: str = "<string>",
    timeout: float = 10.0,
) -> None:
    """Compile ``code``, bind a session to ``server`` and run the code with ``ak`` bound."""
    host, port = parse_address(server)
    compiled = compile_code(code, filename)
    session = Session.bind(host, port, token=token, timeout=timeout)
    namespace = {"__name__": "__main__", "__file__": filename, "ak": session.ak}
    try:
        exec(compiled, namespace)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise RunFailed(f"the code exited with status {exc.code}") from None
    except Exception as exc:
        if os.environ.get("ARKOUDA_K8S_DEBUG"):
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise RunFailed(f"{type(exc).__name__}: {message}") from exc
    finally:
        session.close()
