"""An echo server for a sandbox pod, shared by the port-forward and tunnel tests.

It answers every connection in its own thread and half-closes after the client's EOF,
so a transfer can be checked end to end; it prints "listening" once bound. A connection
whose first bytes are ``RESET`` is reset (RST, not a clean close): a pod's connection
failing mid-stream.

An exception in a connection's thread ends that connection as a clean close would (the
server half-closes and closes it after any error), so the server records each one as a
line of its pod's log (``ERROR_MARK``). The tests that use it check the log after each
test (``no_recorded_errors``): an echo server that failed fails the test with its error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

ECHO_PORT = 7000
ERROR_MARK = "echo server error: "
# The client (or a fault a test injects) going away mid-transfer: what a test that drops
# or resets connections on purpose expects the echo server to meet.
PEER_GONE = ("ConnectionResetError", "BrokenPipeError")

ECHO = f"""
import errno, os, socket, socketserver, struct, sys, traceback
ERROR_MARK = {ERROR_MARK!r}
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        buf = bytearray(1 << 18)
        view = memoryview(buf)
        n = self.request.recv_into(buf)
        if view[:5] == b"RESET":
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()
            return
        while n:
            self.request.sendall(view[:n])
            n = self.request.recv_into(buf)
        try:
            self.request.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
            # reset after the client's end arrived (FIN, then RST before this shutdown):
            # the peer went away, as a reset while reading says
            raise ConnectionResetError(errno.ECONNRESET, "reset after the peer's end") from None
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    def handle_error(self, request, client_address):
        # One line in the pod's log: the tests read it (tests/_support/echo.py).
        kind, exc, tb = sys.exc_info()
        line = traceback.extract_tb(tb)[-1].lineno
        text = " ".join(str(exc).split())
        print(ERROR_MARK + kind.__name__ + ": " + text + " (echo line " + str(line) + ")", flush=True)
server = Server((os.environ["SANDBOX_POD_IP"], {ECHO_PORT}), Echo)
print("listening", flush=True)
server.serve_forever()
"""


def recorded_errors(log: str) -> list[str]:
    """The errors an echo server recorded in its pod's ``log``, oldest first."""
    return [line.split(ERROR_MARK, 1)[1] for line in log.splitlines() if ERROR_MARK in line]


@contextlib.contextmanager
def no_recorded_errors(
    read_logs: Callable[[], dict[str, str]], allow: Iterable[str] = ()
) -> Iterator[None]:
    """Around a test: the echo pods whose logs ``read_logs()`` returns (pod -> log) must
    record no error during it, other than those whose type ``allow`` names.

    Errors recorded before the block (by an earlier test) are not this test's.
    """
    allowed = tuple(f"{kind}:" for kind in allow)
    before = {pod: len(recorded_errors(log)) for pod, log in read_logs().items()}
    yield
    failed = [
        f"{pod}: {error}"
        for pod, log in read_logs().items()
        for error in recorded_errors(log)[before.get(pod, 0) :]
        if not error.startswith(allowed)
    ]
    assert not failed, "the echo server failed: " + "; ".join(failed)
