"""Stand-in for Chapel's launcher ``/opt/arkouda/arkouda_server`` (not Arkouda, not GASNet).

What the real launcher does that a deploy can observe, and nothing else:

- ``-nl N`` (or ``--numLocales=N``) is required; the other flags go to the program.
- GASNet/UDP images (``CHPL_LAUNCHER=amudprun``): ``SSH_SERVERS`` must name exactly N
  hosts. On each, in order, it starts a locale process over real ``ssh`` (the user's
  ``~/.ssh`` key and config; BatchMode, so a refused key, a bad key mode or a dead sshd
  fail as they would), with the whole environment copied onto the remote command line
  as ``-E NAME=VALUE`` arguments (visible in ``ps`` on that host). When every locale
  answered, it runs ``arkouda_server_real`` beside itself with the flags; a locale that
  ends ends the job.
- smp images: the program runs in place, all locales in one process.

Run by the image model's ``/opt/arkouda/arkouda_server`` (images.py); also the locale
process itself when called as ``arkouda_server_real --sandbox-locale=I/N``. Standard
library only: it starts once per locale.
"""

import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

LOCALE_FLAG = "--sandbox-locale="
READY = "stand-in locale"
LOCALE_START_SECONDS = 60.0


def _say(text):
    print(f"arkouda_server: {text}", flush=True)


def parse_nl(args):
    """(N, the other flags) from a Chapel command line; N is None without -nl."""
    rest, nl = [], None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-nl", "--numLocales") and i + 1 < len(args):
            nl, i = args[i + 1], i + 2
            continue
        if a.startswith("--numLocales="):
            nl = a.split("=", 1)[1]
        elif a.startswith("-nl") and a[3:].lstrip("=").isdigit():
            nl = a[3:].lstrip("=")
        else:
            rest.append(a)
        i += 1
    if nl is None:
        return None, rest
    if not str(nl).isdigit() or int(nl) < 1:
        raise SystemExit(
            f"arkouda_server: -nl {nl}: the number of locales must be a positive integer"
        )
    return int(nl), rest


class Locale:
    """One locale process on one host, started over ssh."""

    def __init__(self, index, count, host, real, flags):
        self.index, self.host = index, host
        remote = [real, f"{LOCALE_FLAG}{index}/{count}"]
        for k, v in sorted(os.environ.items()):
            remote += ["-E", f"{k}={v}"]
        remote += flags
        command = f"cd {shlex.quote(os.getcwd())} && exec {shlex.join(remote)}"
        self.proc = subprocess.Popen(
            ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", host, command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready = threading.Event()
        self.errors = []
        self._readers = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read_out(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            print(line, end="", flush=True)
            if line.startswith(READY):
                self.ready.set()

    def _read_err(self):
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line.rstrip())
            print(line, end="", file=sys.stderr, flush=True)

    def why(self):
        for t in self._readers:  # ssh's last words first
            t.join(2)
        tail = "; ".join(self.errors[-3:]) or "no output"
        return (
            f"locale {self.index} on {self.host}: ssh exited with {self.proc.returncode} ({tail})"
        )

    def stop(self):
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()  # the locale's stdin ends: it exits
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def launch(args):
    nl, flags = parse_nl(args)
    if nl is None:
        _say("Specify the number of locales with -nl <#> or --numLocales=<#>")
        return 1
    real = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "arkouda_server_real")
    if os.environ.get("CHPL_LAUNCHER", "amudprun") != "amudprun":
        os.execv(real, [real, "-nl", str(nl), *flags])
    hosts = os.environ.get("SSH_SERVERS", "").split()
    if len(hosts) != nl:
        _say(
            f"SSH_SERVERS names {len(hosts)} host(s) ({' '.join(hosts) or 'none'}) but -nl {nl} "
            f"needs exactly {nl}"
        )
        return 1
    locales = []
    child = None
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)
        else:
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for i, host in enumerate(hosts):
            locales.append(Locale(i, nl, host, real, flags))
        deadline = time.monotonic() + LOCALE_START_SECONDS
        for loc in locales:
            while not loc.ready.wait(0.1):
                if loc.proc.poll() is not None:
                    _say(f"could not start {loc.why()}")
                    return 1
                if time.monotonic() > deadline:
                    _say(
                        f"locale {loc.index} on {loc.host} did not start in {LOCALE_START_SECONDS:.0f}s"
                    )
                    return 1
        _say(f"{nl} locale(s) running on {' '.join(hosts)}")
        child = subprocess.Popen([real, "-nl", str(nl), *flags])
        ended: queue.Queue = queue.Queue()

        def watch(what, proc):
            proc.wait()
            ended.put(what)

        threading.Thread(target=watch, args=("server", child), daemon=True).start()
        for loc in locales:
            threading.Thread(target=watch, args=(loc, loc.proc), daemon=True).start()
        first = ended.get()
        if first == "server":
            return child.returncode
        _say(f"{first.why()}: stopping the job")
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
        return 1
    finally:
        for loc in locales:
            loc.stop()


def locale(args):
    """A locale process (started over ssh): says where it runs and lives until its stdin ends."""
    spec = next(a for a in args if a.startswith(LOCALE_FLAG))[len(LOCALE_FLAG) :]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    signal.signal(signal.SIGHUP, lambda *_: os._exit(129))
    print(
        f"{READY} {spec.replace('/', ' of ')} running on {socket.gethostname()} "
        f"as uid {os.getuid()} (pid {os.getpid()})",
        flush=True,
    )
    sys.stdin.read()
    return 0


def main():
    args = sys.argv[1:]
    if any(a.startswith(LOCALE_FLAG) for a in args):
        sys.exit(locale(args))
    sys.exit(launch(args))


if __name__ == "__main__":
    main()
