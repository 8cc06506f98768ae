"""The sandbox: a simulated Kubernetes cluster for tests, tutorials and trying things out.

It is not Kubernetes. It is an HTTPS API server (aiohttp, its own CA, loopback only)
that the official ``kubernetes`` client and kubectl accept unmodified, an in-memory
object store, RBAC, a CSR signer, and (when those modules are present) a simulated
kubelet that runs pods as local processes and the controllers that drive them.

Use it as a context manager::

    from arkouda_k8s.sandbox import Sandbox
    with Sandbox() as sb:
        print(sb.url, sb.kubeconfig_path)      # KUBECONFIG=sb.kubeconfig_path kubectl get ns

or explicitly (``sb = Sandbox(port=6443); sb.start(); ...; sb.stop()``), with options
``Sandbox(node_cpu="8", node_memory="32Gi", nodes=2)``, ``api_latency=0.03`` to
answer every API request 30 ms late (a remote cluster's round trip), and
``pull_seconds=8`` (or ``{"image:tag": 8, "*": 1}``) for the time an image pull takes,
once per node and image (each node has its own image cache, ``sb.pulls``). The server listens on
127.0.0.1 only. Keys and tokens stay in memory; the kubeconfig files it writes live in
a private directory on tmpfs (mode 0600) that ``stop()`` removes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import functools
import inspect
import logging
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

import yaml

from ..errors import UsageError
from .auth import (
    ADMIN_USER,
    MASTERS,
    RBAC,
    Attributes,
    Authenticator,
    CertificateAuthority,
    UserInfo,
    aggregate,
    default_rbac,
)
from .pulls import Pulls
from .store import ApiError, Store

log = logging.getLogger(__name__)

T = TypeVar("T")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


class Faults:
    """Failures a test asks for; every method may be called from any thread.

    - ``fail_requests(n, status=500)``: the next ``n`` resource requests (discovery and
      ``/version`` excluded) answer that Status (500 InternalError, 503
      ServiceUnavailable, 429 TooManyRequests, ...).
    - ``deny(verb, resource, user=None, namespace=None)``: 403 for that verb ("*" = any)
      on that resource (``pods``, ``pods/portforward``, ``deployments.apps``, "*").
      ``user=None`` applies to every user except system:masters (the admin);
      ``user="*"`` to everyone including the admin; otherwise to that user name.
      Access reviews (``kubectl auth can-i``) and rules reviews report the denial too
      (a rules review keeps a rule that grants the verb through wildcard resources).
    - ``drop_portforward_streams()``: close every open port-forward now.
    - ``reset_connections(n, when="before")``: the next ``n`` resource requests have their
      TCP connection aborted, ``before`` the server acts on them or ``after`` (the change
      is made, its answer lost: what a client's retry of a create runs into).
    - ``restart_api(down_s=1.0)``: the API server restarts: every connection (watches,
      log streams, port-forwards, requests in flight) is cut, the port refuses
      connections for ``down_s`` seconds, then it serves again from the same store
      (etcd survives a restart; resourceVersions go on). The kubelet and controllers,
      separate programs on a real cluster, keep running. Returns when it serves again.
    - ``evict(namespace, label_selector=None, resource="memory")``: the node's kubelet
      evicts those pods under ``resource`` pressure (Failed, reason Evicted, an Evicted
      event; a ReplicaSet replaces its pod, a bare pod stays Failed). Returns the names.
    - ``clear()``: remove every fault.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._lock = threading.Lock()
        self._fail_left = 0
        self._fail_status = 500
        self._deny: list[tuple[str, str, str | None, str | None]] = []
        self._resets: list[str] = []

    def fail_requests(self, n: int, status: int = 500) -> None:
        with self._lock:
            self._fail_left, self._fail_status = int(n), int(status)

    def deny(
        self, verb: str, resource: str, user: str | None = None, namespace: str | None = None
    ) -> None:
        with self._lock:
            self._deny.append((verb, resource, user, namespace))

    def reset_connections(self, n: int, when: str = "before") -> None:
        if when not in ("before", "after"):
            raise ValueError(f"when: {when!r} is not 'before' or 'after'")
        with self._lock:
            self._resets = [when] * int(n)

    def take_reset(self, path: str) -> str | None:
        """Called by the API server for each request: the reset to apply, if any."""
        if path.count("/") < (3 if path.startswith("/api/") else 4):
            return None  # discovery and /version, like fail_requests
        with self._lock:
            return self._resets.pop() if self._resets else None

    def drop_portforward_streams(self) -> int:
        registry = self._sandbox.portforward_registry
        return int(registry.drop_all()) if registry is not None else 0

    def restart_api(self, down_s: float = 1.0) -> None:
        restart = functools.partial(self._sandbox._restart_api, down_s)
        _ = self._sandbox.call(restart, timeout=down_s + 30)  # (awaited by call)

    def evict(
        self, namespace: str, label_selector: str | None = None, resource: str = "memory"
    ) -> list[str]:
        kubelet = self._sandbox.kubelet
        if kubelet is None:
            return []
        return list(self._sandbox.call(lambda: kubelet.evict(namespace, label_selector, resource)))

    def clear(self) -> None:
        with self._lock:
            self._fail_left = 0
            self._deny.clear()
            self._resets.clear()

    # called by the API server on its loop
    def check_fail(self) -> None:
        with self._lock:
            if self._fail_left <= 0:
                return
            self._fail_left -= 1
            status = self._fail_status
        from .apiserver import status_error

        raise status_error(status, f"sandbox fault injection: this request fails with {status}")

    def filter_rules(
        self, user: UserInfo, namespace: str, rules: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """A rules review's resourceRules without the verbs a deny fault takes away."""
        with self._lock:
            denies = [
                (verb, resource)
                for verb, resource, who, ns in self._deny
                if (ns is None or ns == namespace)
                and not (who is None and user.is_admin)
                and who in (None, "*", user.name)
            ]
        for verb, denied in denies:
            rules = [part for rule in rules for part in _without(rule, verb, denied)]
        return rules

    def denied(self, user: UserInfo, attrs: Attributes) -> str | None:
        """The 403 message when a deny fault matches the request, else None."""
        with self._lock:
            rules = list(self._deny)
        if not rules or not attrs.is_resource:
            return None
        full = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        grouped = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
        for verb, resource, who, namespace in rules:
            if verb not in ("*", attrs.verb):
                continue
            if resource not in ("*", full, grouped, f"{grouped}/{attrs.subresource}"):
                continue
            if namespace is not None and namespace != attrs.namespace:
                continue
            if who is None and user.is_admin:
                continue
            if who not in (None, "*", user.name):
                continue
            from .auth import forbidden_message

            return forbidden_message(user, attrs) + " (sandbox fault injection)"
        return None


# The verbs a "*" in a rule stands for, when a fault takes one of them away.
_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def _without(rule: dict[str, Any], verb: str, denied: str) -> list[dict[str, Any]]:
    """``rule`` split so that it no longer grants ``verb`` on ``denied`` (a fault's
    resource: "pods", "pods/log", "deployments.apps", "*")."""
    resource, _, sub = denied.partition("/")
    plural, _, group = resource.partition(".")
    named = f"{plural}/{sub}" if sub else plural
    verbs = rule.get("verbs") or []
    if verb != "*" and "*" not in verbs and verb not in verbs:
        return [rule]
    groups = rule.get("apiGroups") or []
    if denied != "*" and "*" not in groups and group not in groups:
        return [rule]
    resources = rule.get("resources") or []
    hit = list(resources) if denied == "*" else [r for r in resources if r == named]
    if not hit:
        return [rule]
    rest = [r for r in resources if r not in hit]
    kept = [v for v in (_VERBS if "*" in verbs else verbs) if verb not in ("*", v)]
    out = []
    if rest:
        out.append({**rule, "resources": rest})
    if kept:
        out.append({**rule, "resources": hit, "verbs": kept})
    return out


class Stats:
    """API request counts by verb (get, list, watch, create, update, patch, delete, ...)
    and ``total``; ``discovery`` counts /api, /apis, /version and /openapi requests
    (not part of the total)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()

    @property
    def requests(self) -> Counter[str]:
        with self._lock:
            return Counter(self._requests)

    def count(self, verb: str) -> None:
        with self._lock:
            self._requests[verb] += 1
            if verb != "discovery":
                self._requests["total"] += 1

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()


class Sandbox:
    """A simulated Kubernetes cluster on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        port: int = 0,
        *,
        node_cpu: str = "64",
        node_memory: str = "256Gi",
        nodes: int = 1,
        kubelet: bool = True,
        controllers: bool = True,
        api_latency: float = 0.0,
        pull_seconds: float | Mapping[str, float] = 0.0,
    ) -> None:
        if api_latency < 0:
            raise UsageError(f"api_latency: {api_latency!r} is negative", "use 0 or more seconds")
        if nodes < 1:
            raise UsageError(f"nodes: {nodes!r} is less than 1", "use 1 or more nodes")
        try:
            self.pulls = Pulls(pull_seconds)
        except ValueError as exc:
            raise UsageError(str(exc), "use 0 or more seconds") from None
        self.requested_port = port
        # Seconds added to every API request (a client far from its cluster): what a
        # lifecycle costs in sequential round trips shows in time here.
        self.api_latency = float(api_latency)
        # False: approved kubernetes.io/kube-apiserver-client CSRs are never signed, as
        # on a cluster without that signer (EKS).
        self.signs_client_csrs = True
        self.port = 0
        self.node_cpu = node_cpu
        self.node_memory = node_memory
        self.node_names = ["sandbox-node"] + [f"sandbox-node-{i}" for i in range(2, nodes + 1)]
        self._want_kubelet = kubelet
        self._want_controllers = controllers
        self.store = Store()
        self.ca = CertificateAuthority()
        self.ca_pem = self.ca.ca_pem.decode()
        self.api_service_ip: str | None = None
        self.authenticator = Authenticator()
        self._admin_token = self.authenticator.add_token_user(ADMIN_USER, [MASTERS])
        self._sa_tokens: dict[tuple[str, str], str] = {}
        self.faults = Faults(self)
        self.stats = Stats()
        self.kubelet: Any = None
        self.controllers: Any = None
        self.portforward_registry: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._api: Any = None
        self._ssl_ctx: Any = None
        self._dir: str | None = None
        self.kubeconfig_path = ""
        self._started = False

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self._started else "stopped"
        return f"Sandbox({state}, simulated Kubernetes API, not a real cluster)"

    # -- public properties -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}" if self.port else ""

    @property
    def admin_token(self) -> str:
        return self._admin_token

    def host_aliases(self) -> str:
        """``SANDBOX_HOST_ALIASES`` for pod processes: the in-cluster API name -> us."""
        return f"kubernetes.default.svc:443=127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Sandbox:
        if self._started:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                with contextlib.suppress(Exception):
                    loop.run_until_complete(self._astop())
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        self._thread = threading.Thread(target=run, name="arkouda-k8s-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT):
            raise RuntimeError(f"the sandbox did not start within {START_TIMEOUT:.0f} s")
        if failure:
            self._thread.join(STOP_TIMEOUT)
            self._cleanup_files()
            exc = failure[0]
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port: 127.0.0.1:{self.requested_port} is already in use",
                    "choose another port, or 0 for a free one",
                ) from None
            raise exc
        self._started = True
        return self

    def stop(self) -> None:
        """Stop the server, the kubelet's processes and the loop thread (within 5 s)."""
        if not self._started or self.loop is None or self._thread is None:
            self._cleanup_files()
            return
        self._started = False
        loop = self.loop
        try:
            fut = asyncio.run_coroutine_threadsafe(self._astop(), loop)
            fut.result(timeout=STOP_TIMEOUT - 0.5)
        except Exception as exc:  # still stop the loop; report what went wrong
            log.warning("sandbox: unclean stop: %r", exc)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(STOP_TIMEOUT)
            self._cleanup_files()

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn()`` on the sandbox loop thread and return its result.

        A coroutine function's coroutine is awaited there.
        """
        loop = self.loop
        if loop is None or not self._started:
            raise RuntimeError("the sandbox is not running; call start() first")
        if threading.current_thread() is self._thread:
            raise RuntimeError("Sandbox.call() from the loop thread would deadlock; call fn()")

        async def runner() -> Any:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
            return result

        fut: Future[Any] = asyncio.run_coroutine_threadsafe(runner(), loop)
        return fut.result(timeout=timeout)  # type: ignore[no-any-return]

    def pod_processes(self) -> list[int]:
        """PIDs of the simulated pods' processes (empty without a kubelet)."""
        if self.kubelet is None or not hasattr(self.kubelet, "pod_processes"):
            return []
        return list(self.call(self.kubelet.pod_processes))

    # -- credentials -------------------------------------------------------------------

    def kubeconfig_dict(
        self,
        *,
        user: str = ADMIN_USER,
        token: str | None = None,
        client_certificate: bytes | None = None,
        client_key: bytes | None = None,
        namespace: str = "default",
    ) -> dict[str, Any]:
        """A kubeconfig for this sandbox (admin by default; or a token / client cert)."""
        creds: dict[str, str] = {}
        if client_certificate is not None and client_key is not None:
            creds["client-certificate-data"] = base64.b64encode(client_certificate).decode()
            creds["client-key-data"] = base64.b64encode(client_key).decode()
        else:
            creds["token"] = token if token is not None else self._admin_token
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [
                {
                    "name": "sandbox",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(
                            self.ca_pem.encode()
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": creds}],
            "contexts": [
                {
                    "name": "sandbox",
                    "context": {"cluster": "sandbox", "user": user, "namespace": namespace},
                }
            ],
            "current-context": "sandbox",
        }

    def write_kubeconfig(self, config: dict[str, Any], filename: str) -> str:
        """Write a kubeconfig into the sandbox's private directory (0600); its path."""
        if self._dir is None:
            base = "/dev/shm" if os.path.isdir("/dev/shm") else None
            self._dir = tempfile.mkdtemp(prefix="arkouda-k8s-sandbox-", dir=base)
            os.chmod(self._dir, 0o700)
        path = os.path.join(self._dir, filename)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        return path

    def kubeconfig_for_user(self, name: str, groups: Iterable[str] = ()) -> str:
        """A kubeconfig path for a new non-admin token user (RBAC applies to it)."""
        if MASTERS in groups:
            raise ValueError("kubeconfig_for_user is for non-admin users; use kubeconfig_path")
        token = self.authenticator.add_token_user(name, groups)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.write_kubeconfig(
            self.kubeconfig_dict(user=name, token=token), f"kubeconfig-{safe}-{token[:6]}"
        )

    def service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token for ``system:serviceaccount:<namespace>:<name>``."""
        key = (namespace, name)
        if key not in self._sa_tokens:
            self._sa_tokens[key] = self.authenticator.add_token_user(
                f"system:serviceaccount:{namespace}:{name}",
                ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
            )
        return self._sa_tokens[key]

    # -- on the loop -------------------------------------------------------------------

    def _seed(self) -> None:
        s = self.store
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            s.create("namespaces", {"metadata": {"name": ns}})
        for key, obj in default_rbac():
            s.create(key, obj)
        for role in aggregate(s):  # admin, edit, view get their rules (the API hook
            s.update(f"clusterroles.{RBAC}", role)  # keeps them current afterwards)
        for name in self.node_names:
            resources = {
                "cpu": self.node_cpu,
                "memory": self.node_memory,
                "pods": "256",
                "ephemeral-storage": "100Gi",
            }
            node = s.create(
                "nodes",
                {
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "sandbox.arkouda-k8s.dev/simulated": "true",
                        },
                    },
                    "spec": {},
                },
            )
            node["status"] = {
                "capacity": resources,
                "allocatable": dict(resources),
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "simulated node (arkouda-k8s sandbox)",
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": name},
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": f"sandbox-{name}",
                    "containerRuntimeVersion": "sandbox://local-processes",
                    "kernelVersion": os.uname().release,
                    "kubeProxyVersion": "",
                    "kubeletVersion": "v1.32.0-sandbox",
                    "machineID": f"sandbox-{name}",
                    "operatingSystem": "linux",
                    "osImage": "arkouda-k8s sandbox (simulated node)",
                    "systemUUID": f"sandbox-{name}",
                },
            }
            s.update("nodes", node, subresource="status")
        s.create(
            "services",
            {
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": "10.96.0.1",
                    "clusterIPs": ["10.96.0.1"],
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}
                    ],
                    "sessionAffinity": "None",
                },
            },
        )
        s.create(
            "endpoints",
            {
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "subsets": [
                    {
                        "addresses": [{"ip": "127.0.0.1"}],
                        "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
                    }
                ],
            },
        )

    async def _astart(self) -> None:
        from . import validation
        from .apiserver import ApiServer
        from .resources import RESOURCES

        try:
            from .portforward import PortForwardRegistry

            self.portforward_registry = PortForwardRegistry()
        except ImportError:
            self.portforward_registry = None
        api = ApiServer(self)
        self._api = api
        self.store.subscribe_full(api.on_change)
        if self._want_kubelet:
            try:
                from .kubelet import reserve_service_address
            except ImportError:
                pass
            else:
                # kubernetes.default.svc for pods (containers over image models only).
                self.api_service_ip = reserve_service_address()
        ssl_ctx = self.ca.server_context((self.api_service_ip,) if self.api_service_ip else ())
        ssl_ctx.set_alpn_protocols(["http/1.1"])
        self._ssl_ctx = ssl_ctx
        await self._serve(self.requested_port)
        self._seed()
        await asyncio.sleep(0)  # let the namespace bootstrap run
        self.kubeconfig_path = self.write_kubeconfig(self.kubeconfig_dict(), "kubeconfig")
        await asyncio.get_running_loop().run_in_executor(
            None, validation.warm_up, [r for r in RESOURCES if r.plural in _WARM]
        )
        if self._want_kubelet:
            try:
                from .kubelet import Kubelet
            except ImportError as exc:
                log.info("sandbox: no kubelet (%s); pods will stay Pending", exc)
            else:
                self.kubelet = Kubelet(self)
                await self.kubelet.start()
        if self._want_controllers:
            try:
                from .controllers import Controllers
            except ImportError as exc:
                log.info("sandbox: no controllers (%s)", exc)
            else:
                self.controllers = Controllers(self)
                await self.controllers.start()

    async def _serve(self, port: int) -> None:
        from aiohttp import web

        runner = web.AppRunner(self._api.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=self._ssl_ctx)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]

    async def _restart_api(self, down_s: float) -> None:
        """Faults.restart_api on the loop: cut everything, stay down, serve again."""
        api = self._api
        await api.shutdown()  # watches and log streams end (their connections close)
        if self.portforward_registry is not None:
            self.portforward_registry.drop_all()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._runner.cleanup(), 3.0)
        self._runner = None
        await asyncio.sleep(down_s)  # the simulated downtime, not a wait for a condition
        api.resume()
        await self._serve(self.port)

    async def _astop(self) -> None:
        if self._api is not None:
            await self._api.shutdown()
        if self.portforward_registry is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.portforward_registry.close(), 1.5)
        if self.controllers is not None:
            try:
                await asyncio.wait_for(self.controllers.stop(), 1.0)
            except Exception as exc:
                log.warning("sandbox: controllers did not stop cleanly: %r", exc)
        if self.kubelet is not None:
            try:
                await asyncio.wait_for(self.kubelet.stop(), 3.0)
            except Exception as exc:
                log.warning("sandbox: kubelet did not stop cleanly: %r", exc)
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._runner.cleanup(), 1.5)

    def _cleanup_files(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


# Kinds whose validators are compiled at start (the rest compile on first use).
_WARM = frozenset(
    {
        "pods",
        "namespaces",
        "services",
        "secrets",
        "configmaps",
        "deployments",
        "roles",
        "rolebindings",
        "certificatesigningrequests",
        "endpoints",
        "serviceaccounts",
    }
)

__all__ = ["ApiError", "Faults", "Sandbox", "Stats"]
