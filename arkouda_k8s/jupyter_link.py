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

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .cluster import ArkoudaCluster, DeployMode
from .errors import ArkoudaK8sError, ClusterNotFound, UsageError
from .spec import ClusterSpec
from .status import ClusterInfo, ClusterStatus

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


# -- where a kubeconfig points, without the kubernetes client -------------------------


@dataclass(frozen=True)
class ApiTarget:
    """The API server and namespace a kubeconfig (or the pod's service account) names."""

    server: str
    namespace: str
    context: str | None


def api_target(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    environ: dict[str, str] | None = None,
    cache_dir: str | None = None,
) -> ApiTarget | None:
    """What ``Kube.connect(kubeconfig, context, namespace)`` would reach, read from the
    file alone: the kernel asks the Jupyter server for its tunnel without importing the
    ``kubernetes`` client (seconds of a fresh kernel's time). None when the file says
    anything unexpected: the caller then builds a Kube, whose errors say what is wrong.
    ``cache_dir``: see :func:`_read_kubeconfig`.
    """
    from .kubeconfig import SERVICE_ACCOUNT_DIR, default_kubeconfig

    env = os.environ if environ is None else environ
    path = kubeconfig or default_kubeconfig()
    if not (kubeconfig or context or os.path.exists(path)) and env.get("KUBERNETES_SERVICE_HOST"):
        host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "")
        if not port:
            return None
        if ":" in host or "%" in host:  # an IPv6 address, bracketed as the client does
            host = f"[{host}]"
        if namespace is None:
            try:
                with open(os.path.join(SERVICE_ACCOUNT_DIR, "namespace")) as fh:
                    namespace = fh.read().strip()
            except OSError:
                namespace = None
        return ApiTarget(f"https://{host}:{port}", namespace or "default", None)
    found = _read_kubeconfig(path, context, cache_dir)
    if found is None:
        return None
    server, name, ctx_namespace = found
    return ApiTarget(server, namespace or ctx_namespace or "default", name)


def _read_kubeconfig(
    path: str, context: str | None, cache_dir: str | None
) -> tuple[str, str, str | None] | None:
    """(API server, context, the context's namespace) of a kubeconfig file.

    With ``cache_dir`` (the Jupyter runtime folder: private to the user) the answer is
    kept there as JSON, keyed by the file's path and the context and valid while the
    file's inode, size and modification time stay: a restarted kernel then skips
    importing PyYAML (tens of ms). It holds no credentials, only what ``kubectl config
    view`` shows without them.
    """
    cache = None
    try:
        st = os.stat(path)
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns]
    except OSError:
        return None
    if cache_dir:
        key = hashlib.sha256(f"{os.path.abspath(path)}\0{context or ''}".encode()).hexdigest()
        cache = os.path.join(cache_dir, f"arkouda-k8s-kubeconfig-{key[:24]}.json")
        try:
            with open(cache, encoding="utf-8") as fh:
                kept = json.load(fh)
            if kept["stamp"] == stamp:
                ns = kept["namespace"]
                return str(kept["server"]), str(kept["context"]), None if ns is None else str(ns)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none yet, or unreadable: read the file
    try:
        import yaml

        with open(path, encoding="utf-8") as fh:
            config = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        name = str(context or config["current-context"])
        ctx = next(c for c in config["contexts"] if c["name"] == name)["context"] or {}
        cluster = next(c for c in config["clusters"] if c["name"] == ctx["cluster"])["cluster"]
        server = str(cluster["server"]).rstrip("/")
        ctx_namespace = None if ctx.get("namespace") is None else str(ctx["namespace"])
    except Exception:  # noqa: BLE001 - any surprise: the kubernetes client's own reading
        return None
    if cache is not None:
        doc = {"stamp": stamp, "server": server, "context": name, "namespace": ctx_namespace}
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(cache), suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh)
            os.replace(tmp, cache)
        except OSError as exc:  # a read-only runtime folder: read the file every time
            log.debug("kubeconfig cache %s: %s", cache, exc)
    return server, name, ctx_namespace


class _KubeOnUse:
    """Stands for a :class:`~arkouda_k8s.kube.Kube` that is built on first use.

    A deployment reached through the Jupyter server's tunnel needs no Kubernetes call
    from the kernel for connect and status; logs or teardown build the real one.
    """

    def __init__(self, target: ApiTarget, kubeconfig: str | None, context: str | None) -> None:
        self.server = target.server
        self.context = target.context
        self._namespace = target.namespace
        self._options = (kubeconfig, context)
        self._kube: Any = None

    @property
    def namespace(self) -> str:
        return str(self._kube.namespace if self._kube is not None else self._namespace)

    @namespace.setter
    def namespace(self, value: str) -> None:
        self._namespace = value
        if self._kube is not None:
            self._kube.namespace = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_kube":
            raise AttributeError(name)
        if self._kube is None:
            from .kube import Kube

            self._kube = Kube.connect(*self._options, self._namespace)
        return getattr(self._kube, name)

    def __repr__(self) -> str:
        return (
            f"Kube(server={self.server!r}, context={self.context!r}, "
            f"namespace={self.namespace!r}, not built yet)"
        )


class ServerHeldCluster(ArkoudaCluster):
    """A deployment whose tunnel and heartbeat the Jupyter server holds.

    ``connect()`` binds through the server's tunnel and trusts the handshake the
    server made (the client's own connect is the round trip that shows the server
    answers); ``status()`` is the server's, whose Kubernetes client is warm.
    """

    def __init__(self, server: JupyterServer, doc: dict[str, Any], kube: Any) -> None:
        super().__init__(
            ClusterSpec.from_dict(doc["spec"]), kube=kube, mode=DeployMode.CONNECT_ONLY
        )
        self.jupyter = server
        host, port = doc["address"]
        self.use_tunnel((str(host), int(port)), doc.get("token"))
        if isinstance(doc.get("config"), dict):
            self.config = doc["config"]
        # the status the tunnel's answer carried: the card right after connect
        self._status_doc: dict[str, Any] | None = doc.get("status")

    def connect(self, timeout: float = 10.0) -> Any:
        if self.config is None or self.address is None:
            return super().connect(timeout)
        return self.connection.connect(timeout, config=self.config)

    def teardown(self, wait: bool = True) -> list[tuple[str, str]]:
        """Through the Jupyter server, which drops its tunnel and heartbeat at once; where
        it refuses (``allow_deploy`` off) or is gone, the kernel's own teardown (the
        server then drops them at its next look)."""
        self.close()
        try:
            code, doc = self.jupyter.request(
                "DELETE",
                f"{API}/clusters/{self.namespace}/{self.name}",
                timeout=self.timeouts.teardown + 30,
            )
        except OSError as exc:
            log.debug("Jupyter server at %s: %s", self.jupyter.url, exc)
            code, doc = 0, None
        if code == 200 and isinstance(doc, dict) and doc.get("kind") == "Teardown":
            deleted = [str(item).split("/", 1) for item in doc.get("deleted") or []]
            return [(kind, name) for kind, name in deleted]
        return super().teardown(wait)

    def status(self, probe: bool = True, *, handshake: bool = False) -> ClusterStatus:
        doc, self._status_doc = self._status_doc, None
        if doc is None:
            try:
                code, doc = self.jupyter.request(
                    "GET", f"{API}/clusters/{self.namespace}/{self.name}"
                )
            except OSError as exc:
                log.debug("Jupyter server at %s: %s", self.jupyter.url, exc)
                code = 0
            if code != 200 or not isinstance(doc, dict):
                # gone, or no server: the kernel looks itself
                return super().status(probe, handshake=handshake)
        status = ClusterStatus.from_dict(doc)
        if self.address is None:
            return status
        # the kernel's view of the tunnel, as for any borrowed one: the server's
        return dataclasses.replace(status, address=self.address, tunnel_state="shared")


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
    target = api_target(kubeconfig, context, namespace, cache_dir=_runtime_dir())
    kube: Any
    if target is None:
        from .kube import Kube

        kube = Kube.connect(kubeconfig, context, namespace)
    else:
        kube = _KubeOnUse(target, kubeconfig, context)
    try:
        doc = server.tunnel(kube.namespace, name, kube.server)
    except OSError as exc:
        log.debug("Jupyter server at %s: %s", server.url, exc)
        return None
    if doc is None:
        return None
    return ServerHeldCluster(server, doc, kube)


def list_through_server(
    namespace: str | None = None,
    all_namespaces: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> list[ClusterInfo] | None:
    """The deployments the Jupyter server lists (what ``list_clusters`` would give the
    kernel, without its Kubernetes client), or None when there is no such server or it
    reaches another Kubernetes API."""
    server = this_server()
    target = api_target(kubeconfig, context, namespace, cache_dir=_runtime_dir())
    if server is None or target is None:
        return None
    query = "all_namespaces=1" if all_namespaces else f"namespace={target.namespace}"
    try:
        status, doc = server.request("GET", f"{API}/clusters?{query}")
    except OSError as exc:
        log.debug("Jupyter server at %s: %s", server.url, exc)
        return None
    if status != 200 or not isinstance(doc, dict) or doc.get("apiServer") != target.server:
        return None
    return [ClusterInfo.from_dict(item) for item in doc.get("items") or []]
