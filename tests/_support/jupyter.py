"""A real Jupyter server on 127.0.0.1 for the tests of the arkouda_k8s server extension
(tests/test_jupyter_extension.py, benchmarks/jupyter_reconnect.py).

The server runs in its own process with private Jupyter folders; its kernels are its
children (so they find it as a user's kernels do) and are driven with jupyter_client
through their connection files.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from arkouda_k8s import jupyter_link

from . import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterServer:
    """``python -m jupyter_server`` with the installed extensions, stopped by ``stop()``."""

    def __init__(self, folder: Path, kubeconfig: str, *options: str) -> None:
        self.folder = folder
        self.token = secrets.token_hex(16)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config"
        config.mkdir(exist_ok=True)
        # jupyter_lsp shells out to npm at start: not wanted here
        (config / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_lsp": False}}})
        )
        self.env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
            "JUPYTER_DATA_DIR": str(folder / "data"),
            "IPYTHONDIR": str(folder / "ipython"),
            "KUBECONFIG": kubeconfig,
            "HOME": str(folder),
        }
        for key in [k for k in self.env if k.startswith(("JPY_", "JUPYTER_SERVER_"))]:
            del self.env[key]  # when the tests themselves run under a Jupyter server
        # The port is free when chosen, and another process may take it before the
        # server binds it (it does not retry: port_retries=0 keeps the URL known): then
        # a new port, at most three times.
        for attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}/"
            self._start(kubeconfig, options)
            try:
                self._wait_up(time.monotonic() + 60)
                return
            except RuntimeError:
                if attempt == 2 or "already in use" not in self.log_text():
                    raise
                self.stop()  # it says so, and may linger before it exits

    def _start(self, kubeconfig: str, options: tuple[str, ...]) -> None:
        folder = self.folder
        self.log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={folder}",
                f"--ArkoudaK8s.kubeconfig={kubeconfig}",
                *options,
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=folder,
        )

    def _wait_up(self, deadline: float) -> None:
        def answers() -> bool:
            if self.process.poll() is not None or "could not be started" in self.log_text():
                raise RuntimeError(f"jupyter server did not start: {self.log_text()[-2000:]}")
            try:
                # short: whatever holds a taken port may never answer
                return self.request("GET", "api/status", timeout=5)[0] == 200
            except OSError:
                return False  # not listening yet (or slow to answer)

        eventually(
            answers,
            deadline - time.monotonic(),
            0.1,
            lambda: f"jupyter server answering api/status; its log: {self.log_text()[-2000:]}",
        )

    def log_text(self) -> str:
        self.log.flush()
        return (self.folder / "server.log").read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: bool = True,
        headers: dict[str, str] | None = None,
        timeout: float = 120.0,
    ) -> tuple[int, Any]:
        """(status, JSON answer or None); ``token=False``: an unauthenticated caller."""
        client = jupyter_link.JupyterServer(self.url, self.token if token else "")
        return client.request(method, path, body, timeout=timeout, headers=headers)

    def deploy(self, spec: dict[str, Any], ephemeral: bool = False, timeout: float = 240) -> Any:
        """POST clusters, then poll the operation until it ends; its final document."""
        status, op = self.request(
            "POST", "arkouda-k8s/api/clusters", {"spec": spec, "ephemeral": ephemeral}
        )
        assert status == 202, (status, op)

        def current() -> Any:
            status, doc = self.request("GET", f"arkouda-k8s/api/operations/{op['id']}")
            assert status == 200, doc
            return doc

        if op["state"] != "running":
            return op
        return eventually(
            current,
            timeout,
            0.2,
            f"operation {op['id']} ended",
            until=lambda doc: doc["state"] != "running",
        )

    # -- kernels ------------------------------------------------------------------------

    def start_kernel(self) -> Kernel:
        status, doc = self.request("POST", "api/kernels", {"name": "python3"})
        assert status == 201, (status, doc)
        return Kernel(self, doc["id"])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


class Kernel:
    """A kernel of the server, run through jupyter_client over its connection file."""

    def __init__(self, server: JupyterServer, kernel_id: str) -> None:
        self.server = server
        self.id = kernel_id
        self.client: Any = None
        self._connect()

    def _connect(self) -> None:
        from jupyter_client import BlockingKernelClient

        path = Path(self.server.env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{self.id}.json"
        deadline = time.monotonic() + 30
        eventually(path.exists, 30, message=f"the kernel's connection file {path}")
        while True:
            if self.client is not None:
                self.client.stop_channels()
            self.client = BlockingKernelClient(connection_file=str(path))
            self.client.load_connection_file()
            self.client.start_channels()
            try:
                self.client.wait_for_ready(timeout=60)
                return
            except RuntimeError:
                # "died before replying": a client that does not own the kernel judges
                # by heartbeats, which a kernel just restarted has not sent yet
                if time.monotonic() > deadline + 60:
                    raise

    def run(self, code: str, timeout: float = 180) -> str:
        """Run ``code``; its printed output (an error fails the test with the traceback)."""
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(content["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(content["traceback"]))
            elif msg["msg_type"] == "execute_result":
                out.append(content["data"].get("text/plain", ""))

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=hook)
        text = "".join(out)
        assert reply["content"]["status"] == "ok", text
        return text

    def restart(self) -> None:
        status, doc = self.server.request("POST", f"api/kernels/{self.id}/restart")
        assert status == 200, (status, doc)
        self._connect()

    def shutdown(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        self.server.request("DELETE", f"api/kernels/{self.id}")
