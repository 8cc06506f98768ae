"""A kernel's link to the ``arkouda_k8s`` extension of the Jupyter server it runs under.

The magics ask here first when they need a tunnel: under a Jupyter server with the
extension, the server's tunnel (one per deployment, kept across kernel restarts) is
used; anywhere else (a terminal IPython, nbclient, a server without the extension, a
server that reaches another Kubernetes API) nothing changes and the kernel opens its
own. The server is found without the user typing anything: the kernel's parent is the
server (``JPY_PARENT_PID``, set by jupyter_client), whose ``jpserver-<pid>.json``
runtime file holds its URL and token; ``JUPYTER_SERVER_URL`` and
``JUPYTER_SERVER_TOKEN`` name one explicitly.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ArkoudaK8sError, ClusterNotFound, UsageError

if TYPE_CHECKING:
    from .cluster import ArkoudaCluster

log = logging.getLogger(__name__)

API = "arkouda-k8s/api"
API_VERSION = "arkouda-k8s.dev/v1"  # jupyter_extension.API_VERSION (not imported: no server here)
# Opening a tunnel the server does not hold yet includes Arkouda's handshake.
TUNNEL_TIMEOUT = 150.0


@dataclass(frozen=True)
class JupyterServer:
    """A Jupyter server's base URL and token (never in the repr)."""

    url: str
    token: str = field(default="", repr=False)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status, decoded JSON or None when the answer is not JSON); ``path`` is
        relative to the server's base URL."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            urllib.parse.urljoin(self.url.rstrip("/") + "/", path),
            data=data,
            method=method,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                **(headers or {}),
            },
        )
        if self.token:  # token auth: Jupyter skips the XSRF check for it
            req.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None

    def tunnel(self, namespace: str, name: str, api_server: str) -> dict[str, Any] | None:
        """The server's tunnel to ``namespace/name`` (opened if needed), or None when
        this server has no extension or reaches another Kubernetes API."""
        status, doc = self.request(
            "POST",
            f"{API}/clusters/{namespace}/{name}/tunnel",
            {"apiServer": api_server},
            timeout=TUNNEL_TIMEOUT,
        )
        if not isinstance(doc, dict):
            return None  # not our extension: a 404 page of the server itself
        if status == 200 and doc.get("apiVersion") == API_VERSION:
            return doc
        if status == 409 and doc.get("kind") == "OtherApiServer":
            return None
        message = str(doc.get("message") or f"HTTP {status}")
        hint = doc.get("hint")
        if status == 404:
            raise ClusterNotFound(message, hint)
        if status == 400:
            raise UsageError(message, hint)
        raise ArkoudaK8sError(f"Jupyter server: {message}", hint)


def _runtime_dir() -> str | None:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return None
    return str(jupyter_runtime_dir())


def find_server(environ: dict[str, str] | None = None) -> JupyterServer | None:
    """The Jupyter server this process (a kernel) runs under, if any."""
    env = os.environ if environ is None else environ
    if env.get("ARKOUDA_K8S_SERVER_TUNNEL", "").lower() in ("0", "false", "no"):
        return None
    if env.get("JUPYTER_SERVER_URL"):
        return JupyterServer(env["JUPYTER_SERVER_URL"], env.get("JUPYTER_SERVER_TOKEN", ""))
    parent = env.get("JPY_PARENT_PID")
    folder = _runtime_dir()
    if not parent or not parent.isdigit() or folder is None:
        return None
    path = os.path.join(folder, f"jpserver-{parent}.json")
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        return None  # a kernel started by something other than a Jupyter server
    url = info.get("url")
    if not url:
        return None
    return JupyterServer(str(url), str(info.get("token") or ""))


_SERVER: list[JupyterServer | None] = []


def this_server() -> JupyterServer | None:
    """``find_server()``, looked up once per process."""
    if not _SERVER:
        _SERVER.append(find_server())
    return _SERVER[0]


def through_server(cluster: ArkoudaCluster) -> bool:
    """Switch ``cluster`` to the server's tunnel (the server opens one if it holds none,
    and takes over the heartbeat); False, and nothing changed, without such a server."""
    server = this_server()
    if server is None:
        return False
    try:
        doc = server.tunnel(cluster.namespace, cluster.name, cluster.kube.server)
    except OSError as exc:  # the server went away: the kernel's own tunnel, as before
        log.debug("Jupyter server at %s: %s", server.url, exc)
        return False
    if doc is None:
        return False
    host, port = doc["address"]
    cluster.use_tunnel((str(host), int(port)), doc.get("token"))
    return True


def connect_through_server(
    name: str,
    namespace: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> ArkoudaCluster | None:
    """A deployment reached through the server's tunnel (after a kernel restart: the
    live one, at once), or None to connect as without a server."""
    server = this_server()
    if server is None:
        return None
    from .cluster import ArkoudaCluster, DeployMode
    from .kube import Kube
    from .spec import ClusterSpec

    kube = Kube.connect(kubeconfig, context, namespace)
    ns = namespace or kube.namespace
    try:
        doc = server.tunnel(ns, name, kube.server)
    except OSError as exc:
        log.debug("Jupyter server at %s: %s", server.url, exc)
        return None
    if doc is None:
        return None
    spec = ClusterSpec.from_dict(doc["spec"])
    cluster = ArkoudaCluster(spec, kube=kube, mode=DeployMode.CONNECT_ONLY)
    host, port = doc["address"]
    cluster.use_tunnel((str(host), int(port)), doc.get("token"))
    if isinstance(doc.get("config"), dict):
        cluster.config = doc["config"]
    return cluster
