"""Run Arkouda code against a server: ``arkouda-k8s run``, the step of a pipeline container.

The code (``-c CODE``, a file, or ``-`` for standard input) runs with ``ak`` (the installed
``arkouda`` client, connected), ``np`` (numpy), ``input_dir`` and ``output_dir`` (``Path``
or None; for Pachyderm ``/pfs/<repo>`` and ``/pfs/out``) bound. The server is
``--server HOST:PORT`` (else ``$ARKOUDA_SERVER``) or, inside a pod, ``--in-cluster NAME``:
the deployment's Service endpoint and token Secret, read with the pod's service account
(:func:`arkouda_k8s.inventory.server_address_in_cluster`; the grant is
``arkouda-k8s render --runner-rbac NAME``). Pipelines often start before the server
answers, so the handshake is retried until ``--connect-timeout``.

Exit codes (a pipeline retries on 3 only):
    0 success; 1 the code failed (its traceback on stderr); 2 bad input;
    3 the server could not be reached or answered nothing in time.

The token comes from ``--token-file PATH`` or ``$ARKOUDA_TOKEN`` (else the deployment's
Secret with ``--in-cluster``), never from the command line, where every local user sees
it in ``ps``. It is removed from the environment before the code runs (so nothing the
code starts inherits it) and masked in everything printed while it runs.

    run_step(Step(code="print(ak.arange(0, 10, 1).sum())", server="127.0.0.1:5555"))
"""

from __future__ import annotations

import argparse
import contextlib
import io
import linecache
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any, TextIO

from .errors import (
    ArkoudaK8sError,
    ClusterNotFound,
    KubeError,
    ServerNotAnswering,
    ServerUnreachable,
    UsageError,
)

TOKEN_ENV = "ARKOUDA_TOKEN"
SERVER_ENV = "ARKOUDA_SERVER"
DEFAULT_CONNECT_TIMEOUT = 60.0
# Between handshake attempts while waiting for a server that is not up yet.
RETRY_INTERVAL = 0.25
MASK = "********"


class RunFailed(ArkoudaK8sError):
    """The code raised an exception while running (exit 1; its traceback is on stderr)."""


def parse_address(text: str, field_name: str = "--server") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as (host, port); UsageError otherwise."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"{field_name}: {text!r} is not HOST:PORT",
            "e.g. --server 127.0.0.1:5555 (the address `arkouda-k8s forward NAME` prints), "
            "or --in-cluster NAME inside a pod",
        )
    return host, int(port)


def compile_code(code: str, filename: str) -> CodeType:
    try:
        compiled = compile(code, filename, "exec")
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.lineno else str(exc.filename)
        raise UsageError(f"the code does not compile: {exc.msg} ({where})") from None
    # Tracebacks of -c and stdin code show their source lines too.
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    return compiled


def read_code(code: str | None, file: str | None, stdin: TextIO | None = None) -> tuple[str, str]:
    """(source, filename) from exactly one of ``-c CODE``, ``FILE`` and ``-`` (stdin)."""
    if (code is None) == (file is None):
        raise UsageError(
            "give exactly one of -c CODE, FILE and - (standard input)",
            "e.g. arkouda-k8s run --server 127.0.0.1:5555 -c 'print(ak.get_config())'",
        )
    if code is not None:
        return code, "<string>"
    assert file is not None
    if file == "-":
        return (stdin or sys.stdin).read(), "<stdin>"
    path = Path(file)
    try:
        return path.read_text(), str(path)
    except OSError as exc:
        raise UsageError(f"FILE: cannot read {file}: {exc.strerror or exc}") from None


def read_token(token_file: str | None, environ: dict[str, str] | Any = None) -> str | None:
    """The token from ``--token-file`` (first) or ``$ARKOUDA_TOKEN``; None if neither."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise UsageError(
                f"--token-file: cannot read {token_file}: {exc.strerror or exc}",
                "mount the deployment's token Secret as a file, or use --in-cluster NAME",
            ) from None
        if not token:
            raise UsageError(f"--token-file: {token_file} is empty", "it must hold the token")
        return token
    return environ.get(TOKEN_ENV) or None


@dataclass
class Step:
    """One run: the code, where the server is, and the pipeline folders."""

    code: str
    filename: str = "<string>"
    server: str | None = None  # HOST:PORT
    in_cluster: str | None = None  # a deployment's name
    namespace: str | None = None
    token: str | None = field(default=None, repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    input_dir: Path | None = None
    output_dir: Path | None = None
    shutdown: bool = False
    # How --in-cluster reaches the API (tests pass another); default: the pod's account.
    kube: Any = field(default=None, repr=False)


def step_from_args(args: argparse.Namespace, environ: Any = None) -> Step:
    """Check every input of ``arkouda-k8s run`` (UsageError, exit 2) before touching a server."""
    environ = os.environ if environ is None else environ
    if getattr(args, "token", None) is not None:
        raise UsageError(
            "--token: a token on the command line is visible to every local user (`ps`)",
            f"put it in a file and pass --token-file PATH, or set {TOKEN_ENV}; inside a pod "
            "--in-cluster NAME reads the deployment's token Secret",
        )
    server = args.server or (None if args.in_cluster else environ.get(SERVER_ENV) or None)
    if server is None and not args.in_cluster:
        raise UsageError(
            f"no server: give --server HOST:PORT, set {SERVER_ENV}, or --in-cluster NAME",
            "e.g. --server 127.0.0.1:5555 (the address `arkouda-k8s forward NAME` prints)",
        )
    if server is not None:
        parse_address(server, "--server" if args.server else SERVER_ENV)
    if args.namespace and not args.in_cluster:
        raise UsageError("--namespace: only with --in-cluster NAME", "drop --namespace")
    if not args.connect_timeout >= 0:
        raise UsageError(
            f"--connect-timeout: {args.connect_timeout:g} is negative",
            "seconds to wait for the server's handshake, e.g. --connect-timeout 60",
        )
    code, filename = read_code(args.code, args.file)
    compile_code(code, filename)
    input_dir = output_dir = None
    if args.input is not None:
        input_dir = Path(args.input)
        if not input_dir.is_dir():
            raise UsageError(f"--input: {args.input} is not a directory", "give the input folder")
    if args.output is not None:
        output_dir = Path(args.output)
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"--output: cannot create {args.output}: {exc.strerror or exc}",
                "give a writable folder",
            ) from None
    return Step(
        code=code,
        filename=filename,
        server=server,
        in_cluster=args.in_cluster,
        namespace=args.namespace,
        token=read_token(args.token_file, environ),
        connect_timeout=float(args.connect_timeout),
        input_dir=input_dir,
        output_dir=output_dir,
        shutdown=bool(args.shutdown),
    )


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a pod being deleted) interrupts the step like Ctrl-C: the client
    disconnects and the command exits 130. As a container's PID 1 the process would
    otherwise ignore SIGTERM and wait for the SIGKILL at the end of the grace period."""
    import signal
    import threading

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def run_from_args(args: argparse.Namespace) -> int:
    """``arkouda-k8s run``: check the input, then run the step (errors carry the exit code)."""
    step = step_from_args(args)
    # Read once; from here on nothing the code starts inherits the token.
    os.environ.pop(TOKEN_ENV, None)
    _interrupt_on_sigterm()
    run_step(step)
    return 0


# -- the server ----------------------------------------------------------------------------


def _transient(exc: BaseException) -> bool:
    """Worth another attempt before the deadline: the server or its Service is not up yet,
    or the API server did not answer (not: a refused token, a missing permission)."""
    if isinstance(exc, ServerNotAnswering | ClusterNotFound):
        return True
    return isinstance(exc, KubeError) and (exc.status is None or exc.status >= 500)


def wait_for_server(
    step: Step, clock: Callable[[], float] = time.monotonic
) -> tuple[str, int, str | None]:
    """(host, port, token) of a server that answered the handshake; retried until
    ``step.connect_timeout`` (:class:`ServerUnreachable`, exit 3, after that)."""
    from .protocol import ArkoudaProbe

    deadline = clock() + step.connect_timeout
    kube = step.kube
    where = step.server or f"deployment {step.in_cluster}"
    last: BaseException | None = None
    while True:
        try:
            token = step.token
            if step.in_cluster:
                from .inventory import server_address_in_cluster
                from .kube import Kube

                if kube is None:
                    try:
                        kube = Kube.in_cluster(step.namespace)
                    except UsageError as exc:
                        raise UsageError(
                            f"--in-cluster: this process has no pod service account ({exc.message})",
                            "run it in a pod (see `arkouda-k8s render --runner-rbac NAME`), or "
                            "give the address: --server HOST:PORT",
                        ) from None
                found = server_address_in_cluster(step.in_cluster, step.namespace, kube=kube)
                host, port = found.host, found.port
                where = f"deployment {step.in_cluster} ({found})"
                token = token or found.token
            else:
                assert step.server is not None
                host, port = parse_address(step.server)
            remaining = max(0.2, min(5.0, deadline - clock()))
            with ArkoudaProbe(host, port, token=token, timeout=remaining) as probe:
                probe.handshake()
            return host, port, token
        except KubeError as exc:
            if exc.status == 403 and step.in_cluster:
                ns = step.namespace or getattr(kube, "namespace", None) or "NS"
                raise KubeError(
                    exc.message,
                    f"grant the pod's service account what --in-cluster reads: "
                    f"`arkouda-k8s render --runner-rbac {step.in_cluster} --namespace {ns} | "
                    f"kubectl apply -f -`, and run the pod as serviceAccountName "
                    f"{step.in_cluster}-runner",
                    status=403,
                    reason=exc.reason,
                ) from None
            if not _transient(exc):
                raise
            last = exc
        except ArkoudaK8sError as exc:
            if not _transient(exc):
                raise
            last = exc
        if clock() >= deadline:
            why = getattr(last, "message", str(last))
            raise ServerUnreachable(
                f"no Arkouda server answered at {where} within {step.connect_timeout:g}s: {why}",
                "a pipeline may retry the step; raise --connect-timeout if the server starts "
                "slowly, or check `arkouda-k8s status NAME`",
            )
        time.sleep(max(0.0, min(RETRY_INTERVAL, deadline - clock())))


# -- running the code ----------------------------------------------------------------------


class _Masking(io.TextIOBase):
    """A text stream that writes through to ``stream`` with the token masked."""

    def __init__(self, stream: TextIO, secret: str) -> None:
        self._stream = stream
        self._secret = secret

    def write(self, text: str) -> int:
        self._stream.write(text.replace(self._secret, MASK))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def _masked_output(secret: str | None) -> Iterator[None]:
    if not secret:
        yield
        return
    with (
        contextlib.redirect_stdout(_Masking(sys.stdout, secret)),
        contextlib.redirect_stderr(_Masking(sys.stderr, secret)),
    ):
        yield


def _snapshot(folder: Path | None) -> dict[str, tuple[int, int]] | None:
    """Every file under ``folder`` with its size and mtime (to see whether the step wrote)."""
    if folder is None:
        return None
    out = {}
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            st = path.stat()
            out[str(path)] = (st.st_size, st.st_mtime_ns)
    return out


def _user_traceback(exc: BaseException, tb: TracebackType | None, secret: str | None) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return text.replace(secret, MASK) if secret else text


def run_step(step: Step, *, stderr: TextIO | None = None) -> None:
    """Wait for the server, bind the client, run the code; errors carry the exit code."""
    import numpy as np

    from .session import Session

    compiled = compile_code(step.code, step.filename)
    host, port, token = wait_for_server(step)
    try:
        session = Session.bind(host, port, token=token, timeout=max(1.0, step.connect_timeout))
    except ServerNotAnswering as exc:  # it answered the probe, then went away
        raise ServerUnreachable(exc.message, exc.hint) from None
    before = _snapshot(step.output_dir)
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": step.filename,
        "ak": session.ak,
        "np": np,
        "input_dir": step.input_dir,
        "output_dir": step.output_dir,
    }
    err = stderr or sys.stderr
    try:
        with _masked_output(token):
            try:
                exec(compiled, namespace)
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    raise RunFailed(f"the code exited with status {exc.code}") from None
            except Exception as exc:
                # The code's own frames only: the first frame is this exec.
                tb = exc.__traceback__.tb_next if exc.__traceback__ else None
                err.write(_user_traceback(exc, tb, token))
                message = " ".join(str(exc).split()) or type(exc).__name__
                if token:
                    message = message.replace(token, MASK)
                raise RunFailed(f"{type(exc).__name__}: {message}") from None
    finally:
        session.close()
    if step.output_dir is not None and _snapshot(step.output_dir) == before:
        err.write(
            f"arkouda-k8s: warning: the step wrote nothing to its output folder {step.output_dir}\n"
        )
    if step.shutdown:
        from .protocol import ArkoudaProbe

        with ArkoudaProbe(host, port, token=token, timeout=10.0) as probe:
            probe.shutdown()
