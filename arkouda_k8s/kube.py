"""Cluster access: the only module that imports the official ``kubernetes`` client.

A small adapter that loads a kubeconfig (path, context, namespace, exec auth) or the
in-cluster config and speaks plain dicts to the layers above: server-side apply,
delete by label (and wait until gone), list + watch with one overall deadline, events,
logs, CertificateSigningRequests, SelfSubjectRulesReviews and SelfSubjectAccessReviews,
and several requests side by side (``apply_all``, ``concurrently``). Transient API failures
(429/5xx, dropped connections) are retried with backoff inside the caller's deadline; a
403 fails at once, naming the verb and resource. ``kubernetes`` is imported lazily so
that importing arkouda_k8s stays fast.
"""

from __future__ import annotations

import base64
import builtins
import functools
import json
import logging
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import KubeError, UsageError

log = logging.getLogger(__name__)

FIELD_MANAGER = "arkouda-k8s"
# Status codes worth another try: throttling and the API server's own trouble.
TRANSIENT = frozenset({429, 500, 502, 503, 504})
# Budget for a single request made without a caller's deadline.
DEFAULT_REQUEST_WINDOW = 30.0
CONNECT_TIMEOUT = 5.0
# A watch is re-opened at least this often, so a silent stream cannot hang a wait.
WATCH_CHUNK = 60.0
# A followed log may stay silent for as long as the server computes: like kubectl, no
# practical read timeout (the reader stops it, or the server ends it with the pod).
FOLLOW_READ_TIMEOUT = 7 * 86400.0
# Requests in flight at once from one Kube (the client's connection pool holds more).
MAX_PARALLEL = 16
CSR_SIGNER = "kubernetes.io/kube-apiserver-client"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API: enough to build its URLs without discovery."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        return base


_KINDS = (
    Kind("Namespace", "", "v1", "namespaces", False),
    Kind("Node", "", "v1", "nodes", False),
    Kind("Pod", "", "v1", "pods"),
    Kind("Service", "", "v1", "services"),
    Kind("Endpoints", "", "v1", "endpoints"),
    Kind("ConfigMap", "", "v1", "configmaps"),
    Kind("Secret", "", "v1", "secrets"),
    Kind("ServiceAccount", "", "v1", "serviceaccounts"),
    Kind("Event", "", "v1", "events"),
    Kind("ResourceQuota", "", "v1", "resourcequotas"),
    Kind("LimitRange", "", "v1", "limitranges"),
    Kind("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims"),
    Kind("Deployment", "apps", "v1", "deployments"),
    Kind("ReplicaSet", "apps", "v1", "replicasets"),
    Kind("DaemonSet", "apps", "v1", "daemonsets"),
    Kind("Job", "batch", "v1", "jobs"),
    Kind("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies"),
    Kind("Role", "rbac.authorization.k8s.io", "v1", "roles"),
    Kind("RoleBinding", "rbac.authorization.k8s.io", "v1", "rolebindings"),
    Kind("ClusterRole", "rbac.authorization.k8s.io", "v1", "clusterroles", False),
    Kind("ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", "clusterrolebindings", False),
    Kind(
        "CertificateSigningRequest",
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        False,
    ),
    Kind(
        "SelfSubjectAccessReview", "authorization.k8s.io", "v1", "selfsubjectaccessreviews", False
    ),
    Kind("SelfSubjectRulesReview", "authorization.k8s.io", "v1", "selfsubjectrulesreviews", False),
)
KINDS: dict[str, Kind] = {k.kind: k for k in _KINDS}


def kind_of(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise KubeError(f"kind {kind!r} is not known to arkouda-k8s") from None


@dataclass
class ApiEndpoint:
    """How to reach the API server with a plain HTTP client (aiohttp): the tunnel uses it."""

    server: str
    ssl_context: ssl.SSLContext | None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    # The name the server's certificate must carry and the SNI to send: the kubeconfig's
    # tls-server-name, else the server URL's host. Every dial passes it as
    # server_hostname, with the context's hostname check on.
    server_name: str | None = None

    def __repr__(self) -> str:  # never show the Authorization header
        return f"ApiEndpoint(server={self.server!r})"


@dataclass(frozen=True)
class Access:
    """One permission: ``verb`` on ``resource[/subresource]`` of ``group``, in a namespace."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespaced: bool = True
    name: str = ""

    def __str__(self) -> str:
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        if self.group:
            res += f".{self.group}"
        return f"{self.verb} {res}"


def default_kubeconfig() -> str:
    """$KUBECONFIG (first entry), else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    return os.path.expanduser("~/.kube/config")


def list_contexts(path: str | None = None) -> tuple[list[tuple[str, str]], str | None]:
    """([(context, namespace)], current context) of a kubeconfig, for pickers.

    Reads the file only (no API call); an absent file gives ([], None).
    """
    from kubernetes import config

    path = path or default_kubeconfig()
    if not os.path.exists(path):
        return [], None
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
    except Exception as exc:  # the loader raises plain exceptions for bad files
        raise UsageError(f"kubeconfig: cannot read {path}: {exc}") from None
    out = [
        (str(c["name"]), str((c.get("context") or {}).get("namespace") or "default"))
        for c in contexts
    ]
    return out, (current or {}).get("name")


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


class WatchDeadline(Exception):
    """Internal: a wait ran out of time; the caller turns it into its own error."""


class Kube:
    """One cluster connection: an ApiClient plus the context it came from.

    >>> kube = Kube.from_kubeconfig(context="sandbox")           # doctest: +SKIP
    >>> kube.apply({"apiVersion": "v1", "kind": "ConfigMap",       # doctest: +SKIP
    ...             "metadata": {"name": "x"}, "data": {"a": "1"}})
    >>> kube.get("ConfigMap", "x")["data"]                          # doctest: +SKIP
    {'a': '1'}
    """

    def __init__(
        self,
        configuration: Any,
        *,
        namespace: str,
        context: str | None,
        user: str | None,
        cluster: str | None = None,
        source: str | None = None,
    ) -> None:
        from kubernetes import client

        self.configuration = configuration
        # Room for every request sent side by side (the default is 5 per CPU).
        # (Twice: batches of side-by-side requests may themselves run side by side.)
        configuration.connection_pool_maxsize = max(
            2 * MAX_PARALLEL, configuration.connection_pool_maxsize or 0
        )
        self.api_client = client.ApiClient(configuration)
        self.namespace = namespace
        self.context = context
        self.user = user
        self.cluster = cluster
        # Where the configuration came from (kubeconfig path or "in-cluster"), for messages.
        self.source = source
        self.requests = 0  # API requests sent (benchmarks compare this with the server's count)
        # Requests sent while none of ours was waiting for its answer: the round trips a
        # caller waited for one after another (what a distant API server makes slow).
        self.round_trips = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"Kube(server={self.server!r}, context={self.context!r}, "
            f"namespace={self.namespace!r}, user={self.user!r})"
        )

    @property
    def server(self) -> str:
        return str(self.configuration.host)

    def describe(self) -> str:
        """The one line a user sees before anything is created: where we are about to act."""
        ctx = self.context or "in-cluster"
        return (
            f"context {ctx} (cluster {self.cluster or '?'} at {self.server}, "
            f"user {self.user or '?'}), namespace {self.namespace}"
        )

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, namespace: str | None = None
    ) -> Kube:
        from kubernetes import client, config

        path = path or default_kubeconfig()
        if not os.path.exists(path):
            raise UsageError(
                f"kubeconfig: file {path} does not exist",
                "pass --kubeconfig FILE, set $KUBECONFIG, or start a sandbox with `arkouda-k8s sandbox`",
            )
        try:
            contexts, current = config.list_kube_config_contexts(config_file=path)
        except Exception as exc:  # the loader raises plain exceptions for bad files
            raise UsageError(f"kubeconfig: cannot read {path}: {exc}") from None
        names = [c["name"] for c in contexts]
        if context is not None and context not in names:
            raise UsageError(
                f"context: {context!r} is not in {path}", f"choose one of: {', '.join(names)}"
            )
        active = next(c for c in contexts if c["name"] == context) if context else current
        ctx = (active or {}).get("context", {}) or {}
        configuration = client.Configuration()
        try:
            config.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except Exception as exc:
            raise KubeError(
                f"kubeconfig: cannot load context {context or (active or {}).get('name')}: {exc}"
            ) from None
        return cls(
            configuration,
            namespace=namespace or ctx.get("namespace") or "default",
            context=(active or {}).get("name"),
            user=ctx.get("user"),
            cluster=ctx.get("cluster"),
            source=path,
        )

    @classmethod
    def in_cluster(
        cls,
        namespace: str | None = None,
        *,
        root: str = SERVICE_ACCOUNT_DIR,
        environ: Mapping[str, str] | None = None,
    ) -> Kube:
        """The pod's own service account (token, CA, namespace under ``root``)."""
        from kubernetes import client
        from kubernetes.config.incluster_config import InClusterConfigLoader

        configuration = client.Configuration()
        try:
            InClusterConfigLoader(
                token_filename=os.path.join(root, "token"),
                cert_filename=os.path.join(root, "ca.crt"),
                environ=dict(os.environ if environ is None else environ),
            ).load_and_set(configuration)
        except Exception as exc:
            raise UsageError(
                f"in-cluster config: {exc}", "outside a pod, pass --kubeconfig FILE"
            ) from None
        ns_file = os.path.join(root, "namespace")
        if namespace is None and os.path.exists(ns_file):
            with open(ns_file) as fh:
                namespace = fh.read().strip()
        return cls(
            configuration,
            namespace=namespace or "default",
            context=None,
            user="serviceaccount",
            cluster="in-cluster",
            source="in-cluster",
        )

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
    ) -> Kube:
        """A kubeconfig when one exists (or was named), else the in-cluster config."""
        path = kubeconfig or default_kubeconfig()
        if (
            kubeconfig
            or context
            or os.path.exists(path)
            or "KUBERNETES_SERVICE_HOST" not in os.environ
        ):
            return cls.from_kubeconfig(kubeconfig, context, namespace)
        return cls.in_cluster(namespace)

    def endpoint(self) -> ApiEndpoint:
        """The server URL, TLS context and auth headers, for clients other than ``kubernetes``."""
        cfg = self.configuration
        headers: dict[str, str] = {}
        # get_api_key_with_prefix runs the refresh hook, so exec-auth tokens are fresh.
        token = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        elif cfg.username and cfg.password:
            headers["Authorization"] = cfg.get_basic_auth_token()
        ctx: ssl.SSLContext | None = None
        if cfg.host.startswith("https"):
            ctx = (
                ssl.create_default_context(cafile=cfg.ssl_ca_cert)
                if cfg.verify_ssl
                else ssl._create_unverified_context()
            )
            if cfg.cert_file and cfg.key_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        # tls-server-name replaces the host in the certificate check, as kubectl does; it
        # never turns the check off.
        return ApiEndpoint(cfg.host, ctx, headers, server_name=cfg.tls_server_name or None)

    # -- raw requests ---------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str | None = None,
        deadline: float | None = None,
        read_timeout: float | None = None,
        stream: bool = False,
        raw: bool = False,
    ) -> Any:
        """One API call, retried on transient failures until ``deadline`` (monotonic).

        Returns the decoded JSON (or text with ``raw``; the open response with ``stream``).
        Raises KubeError with ``status`` set; 404/409 are left to the caller to interpret.
        """
        import urllib3
        from kubernetes.client.exceptions import ApiException

        if deadline is None:
            deadline = time.monotonic() + DEFAULT_REQUEST_WINDOW
        headers = {"Accept": "text/plain" if raw else "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        attempt = 0
        last_status: int | None = None
        while True:
            attempt += 1
            left = max(0.5, deadline - time.monotonic())
            timeout = (min(CONNECT_TIMEOUT, left), read_timeout or left)
            problem: str
            retry_after = 0.0
            try:
                params = self.api_client.param_serialize(
                    method,
                    path,
                    query_params=[(k, v) for k, v in query if v is not None],
                    header_params=dict(headers),
                    body=body,
                    auth_settings=["BearerToken"],
                )
                with self._lock:
                    self.requests += 1
                    if self._in_flight == 0:
                        self.round_trips += 1
                    self._in_flight += 1
                try:
                    resp = self.api_client.call_api(*params, _request_timeout=timeout)
                finally:
                    with self._lock:
                        self._in_flight -= 1
            except (urllib3.exceptions.HTTPError, ConnectionError, ApiException) as exc:
                problem = _connection_problem(exc)
                if _is_tls_failure(exc):
                    # A certificate problem does not heal by retrying.
                    raise KubeError(
                        f"cannot talk TLS to the Kubernetes API {self.server}: {_tls_reason(exc)}",
                        "check the cluster's certificate-authority in the kubeconfig "
                        f"({self.source or 'in-cluster'})",
                        reason="TLSError",
                    ) from None
            else:
                status = resp.status
                if 200 <= status < 300:
                    if stream:
                        return resp.response
                    data = resp.read()
                    if raw:
                        return data.decode("utf-8", "replace")
                    return json.loads(data) if data else {}
                data = resp.read()
                if status not in TRANSIENT:
                    raise self._error(method, path, status, data)
                problem = f"HTTP {status}"
                last_status = status
                try:
                    retry_after = float(resp.headers.get("Retry-After") or 0)
                except ValueError:
                    retry_after = 0.0
            pause = max(retry_after, min(1.0, 0.05 * 2**attempt)) * (0.8 + 0.4 * random.random())
            if time.monotonic() + pause >= deadline:
                raise KubeError(
                    f"Kubernetes API {self.server} kept failing ({problem}) for "
                    f"{method} {path}; gave up after {attempt} attempts",
                    "check that the API server is up and reachable (kubectl get --raw /version)",
                    status=last_status,
                    reason="Unavailable",
                )
            # otherwise invisible: a slow deploy shows its retries at INFO (no headers logged)
            log.info(
                "%s %s: %s (attempt %d), retrying in %.2fs", method, path, problem, attempt, pause
            )
            time.sleep(pause)

    def _error(self, method: str, path: str, status: int, data: bytes) -> KubeError:
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        text = str(doc.get("message") or data[:200].decode("utf-8", "replace")).strip()
        reason = str(doc.get("reason") or "")
        if status == 403:
            who = f"user {self.user}" if self.user else "the current user"
            return KubeError(
                f"forbidden: {text or f'{method} {path}'}",
                f"{who} lacks this permission; ask an administrator to grant it "
                "(`arkouda-k8s deploy --print-rbac` prints every rule the deploy needs)",
                status=403,
                reason=reason or "Forbidden",
            )
        if status == 401:
            return KubeError(
                f"unauthorized at {self.server}: {text}",
                "the kubeconfig's credentials were refused; log in again or pick another context",
                status=401,
                reason=reason or "Unauthorized",
            )
        return KubeError(f"{method} {path}: {text} (HTTP {status})", status=status, reason=reason)

    # -- objects --------------------------------------------------------------------

    def _ns(self, kind: Kind, namespace: str | None) -> str | None:
        return (namespace or self.namespace) if kind.namespaced else None

    def get(
        self, kind: str, name: str, namespace: str | None = None, *, deadline: float | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        k = kind_of(kind)
        try:
            obj: dict[str, Any] = self.request(
                "GET", k.path(self._ns(k, namespace), name), deadline=deadline
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        all_namespaces: bool = False,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """The List object (``items`` and ``metadata.resourceVersion``)."""
        k = kind_of(kind)
        ns = None if all_namespaces else self._ns(k, namespace)
        out: dict[str, Any] = self.request(
            "GET",
            k.path(ns),
            query=[("labelSelector", label_selector), ("fieldSelector", field_selector)],
            deadline=deadline,
        )
        out.setdefault("items", [])
        for item in out["items"]:  # list items omit kind/apiVersion
            item.setdefault("kind", k.kind)
            item.setdefault("apiVersion", k.api_version)
        return out

    def apply(
        self, obj: dict[str, Any], *, deadline: float | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply with field manager ``arkouda-k8s`` (creates when absent).

        Never forced: a field another manager owns is a 409 conflict, not taken over.
        """
        k = kind_of(obj["kind"])
        meta = obj.get("metadata", {})
        ns = self._ns(k, meta.get("namespace"))
        if k.namespaced:
            obj = {**obj, "metadata": {**meta, "namespace": ns}}
        out: dict[str, Any] = self.request(
            "PATCH",
            k.path(ns, meta["name"]),
            query=[
                ("fieldManager", FIELD_MANAGER),
                ("dryRun", "All" if dry_run else None),
            ],
            body=obj,
            content_type="application/apply-patch+yaml",
            deadline=deadline,
        )
        return out

    def create(self, obj: dict[str, Any], *, deadline: float | None = None) -> dict[str, Any]:
        k = kind_of(obj["kind"])
        ns = self._ns(k, obj.get("metadata", {}).get("namespace"))
        out: dict[str, Any] = self.request(
            "POST",
            k.path(ns),
            query=[("fieldManager", FIELD_MANAGER)],
            body=obj,
            deadline=deadline,
        )
        return out

    def patch(
        self,
        kind: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        *,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch (small changes such as an annotation, without owning fields)."""
        k = kind_of(kind)
        out: dict[str, Any] = self.request(
            "PATCH",
            k.path(self._ns(k, namespace), name),
            body=patch,
            content_type="application/merge-patch+json",
            deadline=deadline,
        )
        return out

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        uid: str,
        propagation: str = "Background",
        grace_seconds: int | None = None,
        deadline: float | None = None,
    ) -> bool:
        """Delete the object ``name`` only if it still is the one with ``uid``.

        False when it is gone, or when that name now holds another object (the uid
        precondition failed): a name alone never decides what is deleted.
        """
        k = kind_of(kind)
        try:
            self.request(
                "DELETE",
                k.path(self._ns(k, namespace), name),
                query=[
                    ("propagationPolicy", propagation),
                    ("gracePeriodSeconds", grace_seconds),
                ],
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "preconditions": {"uid": uid},
                },
                deadline=deadline,
            )
        except KubeError as exc:
            if exc.status == 404 or (exc.status == 409 and "recondition" in str(exc)):
                return False
            raise
        return True

    def delete_owned(
        self,
        kinds: Iterable[str],
        label_selector: str,
        owner_uid: str,
        namespace: str | None = None,
        *,
        wait: bool = True,
        deadline: float | None = None,
        grace_seconds: int | None = None,
    ) -> builtins.list[tuple[str, str]]:
        """Delete every object of ``kinds`` that matches the selector AND names ``owner_uid``
        in its ownerReferences, each with a uid precondition; optionally wait until gone.

        Labels alone can be copied onto anything; the owner reference cannot be set
        without write access to the object itself. Returns the (kind, name) deleted.
        """
        deleted: builtins.list[tuple[str, str]] = []
        for kind in kinds:
            for item in self.list(
                kind, namespace, label_selector=label_selector, deadline=deadline
            )["items"]:
                md = item["metadata"]
                refs = md.get("ownerReferences") or []
                if not any(r.get("uid") == owner_uid for r in refs):
                    continue
                if self.delete(
                    kind,
                    md["name"],
                    md.get("namespace") or namespace,
                    uid=md["uid"],
                    grace_seconds=grace_seconds,
                    deadline=deadline,
                ):
                    deleted.append((kind, md["name"]))
        if wait:
            for kind in kinds:
                self.wait_gone(kind, namespace, label_selector=label_selector, deadline=deadline)
        return deleted

    def wait_gone(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        deadline: float | None = None,
    ) -> None:
        """Block until no object of ``kind`` matches (watching, not polling)."""
        if deadline is None:
            deadline = time.monotonic() + DEFAULT_REQUEST_WINDOW
        try:
            self.wait_for(
                kind,
                lambda objs: True if not objs else None,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                deadline=deadline,
            )
        except WatchDeadline:
            left = self.list(
                kind, namespace, label_selector=label_selector, field_selector=field_selector
            )["items"]
            names = ", ".join(i["metadata"]["name"] for i in left[:5])
            raise KubeError(
                f"{kind} objects still present after the deadline: {names}",
                "check finalizers and the pods' termination (kubectl describe)",
                reason="Timeout",
            ) from None

    # -- watch ----------------------------------------------------------------------

    def watch(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        deadline: float,
        all_namespaces: bool = False,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) events from ``resource_version`` on, until ``deadline``.

        Re-opens the stream when the server ends it; an ``ERROR`` event (410 Gone) is
        passed on to the caller, who must re-list.
        """
        k = kind_of(kind)
        ns = None if all_namespaces else self._ns(k, namespace)
        rv = resource_version
        while True:
            left = _remaining(deadline)
            if left is None or left <= 0:
                return
            chunk = max(1, int(min(left, WATCH_CHUNK)) + 1)
            resp = self.request(
                "GET",
                k.path(ns),
                query=[
                    ("watch", "true"),
                    ("labelSelector", label_selector),
                    ("fieldSelector", field_selector),
                    ("resourceVersion", rv),
                    ("allowWatchBookmarks", "true"),
                    ("timeoutSeconds", chunk),
                ],
                deadline=deadline,
                read_timeout=max(0.05, min(left, WATCH_CHUNK + 5)),
                stream=True,
            )
            complete = False
            try:
                for event in _json_lines(resp):
                    etype = event.get("type", "")
                    obj = event.get("object") or {}
                    if etype == "ERROR":
                        yield etype, obj
                        return
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if etype == "BOOKMARK":
                        continue
                    obj.setdefault("kind", k.kind)
                    obj.setdefault("apiVersion", k.api_version)
                    yield etype, obj
                complete = True
            except _StreamBroken:
                pass  # read timeout at the deadline, or a dropped stream: re-open or stop
            finally:
                if not complete:
                    # Unread watch data must not reach the next request on this
                    # connection: close it instead of returning it to the pool.
                    resp.close()
                resp.release_conn()

    def wait_for(
        self,
        kind: str,
        check: Callable[[dict[str, dict[str, Any]]], T | None],
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        deadline: float,
        all_namespaces: bool = False,
        recheck: float | None = None,
        since: str | None = None,
    ) -> T:
        """List, then watch, calling ``check(objects by key)`` after every change.

        Returns the first non-None result of ``check``; exceptions from ``check`` (the
        caller's typed errors) propagate. ``recheck``: also call it every so many seconds
        without a change (for conditions that depend on time). Raises WatchDeadline at
        the deadline. The number of requests does not grow with the number of objects.
        ``since``: a resourceVersion at which no object matched yet (the answer to the
        create that makes them): watch from there, without the list's round trip.
        """
        while True:
            if since is not None:
                objs: dict[str, dict[str, Any]] = {}
                rv: str | None = since
                since = None  # a 410 Gone below re-lists
            else:
                listed = self.list(
                    kind,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    all_namespaces=all_namespaces,
                    deadline=deadline,
                )
                objs = {_key(o): o for o in listed["items"]}
                rv = listed.get("metadata", {}).get("resourceVersion")
            result = check(objs)
            if result is not None:
                return result
            expired = False
            while not expired:
                now = time.monotonic()
                if now >= deadline:
                    raise WatchDeadline(kind)
                until = deadline if recheck is None else min(deadline, now + recheck)
                for etype, obj in self.watch(
                    kind,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    resource_version=rv,
                    deadline=until,
                    all_namespaces=all_namespaces,
                ):
                    if etype == "ERROR":
                        expired = True  # 410 Gone: our resourceVersion is too old; re-list
                        break
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if etype == "DELETED":
                        objs.pop(_key(obj), None)
                    else:
                        objs[_key(obj)] = obj
                    result = check(objs)
                    if result is not None:
                        return result
                if recheck is not None and not expired:
                    result = check(objs)
                    if result is not None:
                        return result

    # -- pods -----------------------------------------------------------------------

    def events(
        self, kind: str, name: str, namespace: str | None = None, *, deadline: float | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Events about one object, oldest first."""
        items = self.list(
            "Event",
            namespace,
            field_selector=f"involvedObject.kind={kind},involvedObject.name={name}",
            deadline=deadline,
        )["items"]
        # Filter again: not every server applies these field selectors.
        items = [
            e
            for e in items
            if (e.get("involvedObject") or {}).get("name") == name
            and (e.get("involvedObject") or {}).get("kind", kind) == kind
        ]

        def when(e: dict[str, Any]) -> str:
            return str(
                e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""
            )

        return sorted(items, key=when)

    def logs(
        self,
        pod: str,
        namespace: str | None = None,
        *,
        container: str | None = None,
        tail: int | None = None,
        previous: bool = False,
        since_seconds: int | None = None,
        timestamps: bool = False,
        deadline: float | None = None,
    ) -> str:
        text: str = self.request(
            "GET",
            KINDS["Pod"].path(namespace or self.namespace, pod) + "/log",
            query=_log_query(container, tail, previous, since_seconds, timestamps),
            raw=True,
            deadline=deadline,
        )
        return text

    def follow_logs(
        self,
        pod: str,
        namespace: str | None = None,
        *,
        container: str | None = None,
        tail: int | None = None,
        since_seconds: int | None = None,
        timestamps: bool = False,
        deadline: float | None = None,
    ) -> Any:
        """The open response of ``pods/log?follow=true``: read it with
        :func:`log_lines`; the server ends it when the container ends or the pod goes.

        ``deadline`` bounds opening the stream only: a log may stay quiet for hours.
        """
        return self.request(
            "GET",
            KINDS["Pod"].path(namespace or self.namespace, pod) + "/log",
            query=[
                *_log_query(container, tail, False, since_seconds, timestamps),
                ("follow", "true"),
            ],
            raw=True,
            stream=True,
            deadline=deadline,
            read_timeout=FOLLOW_READ_TIMEOUT,
        )

    # -- certificates ---------------------------------------------------------------

    def create_csr(self, obj: dict[str, Any], *, deadline: float | None = None) -> dict[str, Any]:
        """Create a CertificateSigningRequest, replacing a leftover of the same name."""
        name = obj["metadata"]["name"]
        try:
            return self.create(obj, deadline=deadline)
        except KubeError as exc:
            if exc.status != 409:
                raise
        current = self.get("CertificateSigningRequest", name, deadline=deadline)
        if (
            current is not None
            and (current.get("spec") or {}).get("request") == obj["spec"]["request"]
        ):
            return current  # a create retried after a lost answer found its first attempt
        # A CSR's request is immutable: a leftover from an earlier attempt must go first,
        # but only one that is ours (same managed-by and instance labels).
        if current is not None:
            theirs = (current["metadata"].get("labels") or {}).items()
            if not set((obj["metadata"].get("labels") or {}).items()) <= set(theirs):
                raise KubeError(
                    f"CertificateSigningRequest {name} already exists and was not made by "
                    "this deployment: refusing to replace it",
                    "choose another name, or delete that request yourself if it is a leftover",
                    status=409,
                    reason="AlreadyExists",
                )
            self.delete(
                "CertificateSigningRequest", name, uid=current["metadata"]["uid"], deadline=deadline
            )
        self.wait_gone(
            "CertificateSigningRequest", field_selector=f"metadata.name={name}", deadline=deadline
        )
        return self.create(obj, deadline=deadline)

    def approve_csr(
        self,
        name: str,
        *,
        reason: str = "ArkoudaK8sApprove",
        message: str = "approved by arkouda-k8s for its own Arkouda server",
        current: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """Approve; ``current``: the CSR as just created (saves reading it first)."""
        k = KINDS["CertificateSigningRequest"]
        csr = current or self.request("GET", k.path(None, name), deadline=deadline)
        csr = {**csr, "status": dict(csr.get("status") or {})}
        conditions = [
            c
            for c in (csr.get("status") or {}).get("conditions") or []
            if c.get("type") != "Approved"
        ]
        conditions.append(
            {
                "type": "Approved",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastUpdateTime": _now_rfc3339(),
            }
        )
        csr["status"]["conditions"] = conditions
        try:
            out: dict[str, Any] = self.request(
                "PUT", k.path(None, name) + "/approval", body=csr, deadline=deadline
            )
        except KubeError as exc:
            if exc.status != 409 or current is None:
                raise
            # changed since it was created (by whom?): approve what is there now
            return self.approve_csr(name, reason=reason, message=message, deadline=deadline)
        return out

    def wait_for_certificate(self, name: str, *, deadline: float) -> bytes:
        """The signed certificate (PEM) once the CSR is approved and issued.

        Raises KubeError when the CSR is denied or failed, WatchDeadline at the deadline.
        """

        def issued(objs: dict[str, dict[str, Any]]) -> bytes | None:
            csr = objs.get(name)
            if csr is None:
                return None
            status = csr.get("status") or {}
            for cond in status.get("conditions") or []:
                if (
                    cond.get("type") in ("Denied", "Failed")
                    and cond.get("status", "True") == "True"
                ):
                    raise KubeError(
                        f"certificate request {name} was {cond['type'].lower()}: "
                        f"{cond.get('message') or cond.get('reason') or 'no reason given'}",
                        "ask an administrator why, then deploy again",
                        reason=cond["type"],
                    )
            cert = status.get("certificate")
            return base64.b64decode(cert) if cert else None

        return self.wait_for(
            "CertificateSigningRequest",
            issued,
            field_selector=f"metadata.name={name}",
            deadline=deadline,
        )

    # -- access reviews ---------------------------------------------------------------

    def can_i(
        self, access: Access, namespace: str | None = None, *, deadline: float | None = None
    ) -> bool:
        """SelfSubjectAccessReview: may the current user do this?"""
        attrs: dict[str, Any] = {
            "verb": access.verb,
            "resource": access.resource,
            "group": access.group,
        }
        if access.subresource:
            attrs["subresource"] = access.subresource
        if access.name:
            attrs["name"] = access.name
        if access.namespaced:
            attrs["namespace"] = namespace or self.namespace
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        out = self.request(
            "POST", KINDS["SelfSubjectAccessReview"].path(), body=review, deadline=deadline
        )
        return bool((out.get("status") or {}).get("allowed"))

    def rules_review(
        self, namespace: str | None = None, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """SelfSubjectRulesReview: every rule the current user holds in ``namespace``.

        The status: ``resourceRules``, ``nonResourceRules`` and ``incomplete`` (true when
        an authorizer other than RBAC, e.g. a cloud's webhook, may allow more).
        """
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace or self.namespace},
        }
        out = self.request(
            "POST", KINDS["SelfSubjectRulesReview"].path(), body=review, deadline=deadline
        )
        status: dict[str, Any] = out.get("status") or {}
        return status

    def missing_access(
        self,
        needs: Iterable[Access],
        namespace: str | None = None,
        *,
        deadline: float | None = None,
    ) -> builtins.list[Access]:
        """The subset of ``needs`` the current user lacks (reviews sent concurrently)."""
        needs = list(needs)
        allowed = self.concurrently(
            [functools.partial(self.can_i, a, namespace, deadline=deadline) for a in needs]
        )
        return [a for a, ok in zip(needs, allowed, strict=True) if not ok]

    # -- several requests side by side --------------------------------------------------

    def concurrently(self, calls: Iterable[Callable[[], T]]) -> builtins.list[T]:
        """Run independent API calls side by side; their results in order.

        Against a distant API server a deploy waits for round trips, not bandwidth:
        requests that do not depend on each other share one. The first exception (in
        the order given) is raised once every call has finished.
        """
        calls = builtins.list(calls)
        if len(calls) <= 1:
            return [c() for c in calls]
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(calls))) as pool:
            futures = [pool.submit(c) for c in calls]
            errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err
        return [f.result() for f in futures]

    def apply_all(
        self, objs: Iterable[dict[str, Any]], *, deadline: float | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Server-side apply of independent objects, side by side (see ``concurrently``)."""
        return self.concurrently(
            [functools.partial(self.apply, o, deadline=deadline) for o in objs]
        )


def _connection_problem(exc: BaseException) -> str:
    """The innermost cause of a failed connection, without urllib3's wrapping."""
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    text = " ".join(str(inner).split())
    # "HTTPSConnection(host=..., port=...): Failed to establish ...: [Errno 111] ..."
    text = re.sub(r"^\S*Connection\(host=[^)]*\): ", "", text)
    text = re.sub(r"^<[^>]*>: ", "", text)
    return text[:200] or type(exc).__name__


def _is_tls_failure(exc: BaseException) -> bool:
    import urllib3

    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib3.exceptions.SSLError) or isinstance(
        reason, urllib3.exceptions.SSLError | ssl.SSLError
    ):
        return True
    # The client turns urllib3's SSLError into ApiException(status=0, "SSLError\n...").
    return getattr(exc, "status", None) == 0 and "SSLError" in str(reason or "")


def _tls_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    inner = getattr(reason, "args", None)
    text = str(inner[0] if inner else reason)
    return " ".join(text.split())[:200]


class _StreamBroken(Exception):
    pass


def _lines(resp: Any) -> Iterator[bytes]:
    """Lines (without the newline) of a streaming urllib3 response as they arrive, the
    last one even without a newline; _StreamBroken when the stream breaks or is closed
    under the reader (urllib3 then drops the response's file object: AttributeError)."""
    import urllib3

    buf = b""
    try:
        for chunk in resp.stream(65536, decode_content=True):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line
    except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError) as exc:
        raise _StreamBroken(str(exc)) from None
    if buf:
        yield buf


def _json_lines(resp: Any) -> Iterator[dict[str, Any]]:
    """JSON objects, one per line, from a streaming urllib3 response."""
    for line in _lines(resp):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise _StreamBroken(str(exc)) from None


def _log_query(
    container: str | None,
    tail: int | None,
    previous: bool,
    since_seconds: int | None,
    timestamps: bool,
) -> list[tuple[str, Any]]:
    return [
        ("container", container),
        ("tailLines", tail),
        ("previous", "true" if previous else None),
        ("sinceSeconds", since_seconds),
        ("timestamps", "true" if timestamps else None),
    ]


def log_lines(resp: Any) -> Iterator[str]:
    """Lines (without their newline) of a followed log, as they arrive; a last line
    without a newline is given when the stream ends. Ends quietly when the stream is
    closed from another thread (the reader stopped following)."""
    try:
        for line in _lines(resp):
            yield line.decode("utf-8", "replace")
    except _StreamBroken:
        pass  # a reset, or the reader closed it: the log ends here either way
    finally:
        resp.release_conn()


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
