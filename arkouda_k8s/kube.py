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

import builtins
import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import kube_certificates, kube_watch
from .errors import KubeError
from .kube_errors import (
    api_error,
    connection_problem,
    is_tls_failure,
    nothing_listens,
    tls_error,
    transient_reason,
    unreachable_error,
)
from .kube_kinds import KINDS, Access, Kind, kind_of
from .kube_watch import WATCH_CHUNK, WatchDeadline, log_lines
from .kubeconfig import (
    SERVICE_ACCOUNT_DIR,
    ApiEndpoint,
    LoadedConfig,
    client_certificate_problem,
    default_kubeconfig,
    endpoint_of,
    import_kubernetes,
    list_contexts,
    load_in_cluster,
    load_kubeconfig,
    wants_kubeconfig,
)

# The names the layers above import from here (the parts live in the modules above).
__all__ = [
    "FIELD_MANAGER",
    "KINDS",
    "SERVICE_ACCOUNT_DIR",
    "WATCH_CHUNK",
    "Access",
    "ApiEndpoint",
    "Kind",
    "Kube",
    "WatchDeadline",
    "default_kubeconfig",
    "kind_of",
    "list_contexts",
    "log_lines",
]

log = logging.getLogger(__name__)

FIELD_MANAGER = "arkouda-k8s"
# Status codes worth another try: throttling and the API server's own trouble.
TRANSIENT = frozenset({429, 500, 502, 503, 504})
# Budget for a single request made without a caller's deadline.
DEFAULT_REQUEST_WINDOW = 30.0
CONNECT_TIMEOUT = 5.0
# Attempts (about 1.5 s of backoff) at an API server that never answered this Kube and
# refuses connections: a wrong address or a stopped cluster is told at once, not after the
# caller's whole deadline. Once the server has answered, a refusal is a restart: retried.
UNREACHABLE_ATTEMPTS = 5
# A followed log may stay silent for as long as the server computes: like kubectl, no
# practical read timeout (the reader stops it, or the server ends it with the pod).
FOLLOW_READ_TIMEOUT = 7 * 86400.0
# Requests in flight at once from one Kube (the client's connection pool holds more).
MAX_PARALLEL = 16

T = TypeVar("T")


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
        import_kubernetes()
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
        # The server has answered (any HTTP status): from then on it exists, and a refused
        # connection means a restart worth waiting for.
        self._answered = False

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

    # -- construction (kubeconfig.py reads the configuration) ------------------------

    @classmethod
    def _of(cls, loaded: LoadedConfig) -> Kube:
        return cls(
            loaded.configuration,
            namespace=loaded.namespace,
            context=loaded.context,
            user=loaded.user,
            cluster=loaded.cluster,
            source=loaded.source,
        )

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, namespace: str | None = None
    ) -> Kube:
        return cls._of(load_kubeconfig(path, context, namespace))

    @classmethod
    def in_cluster(
        cls,
        namespace: str | None = None,
        *,
        root: str = SERVICE_ACCOUNT_DIR,
        environ: Mapping[str, str] | None = None,
    ) -> Kube:
        """The pod's own service account (token, CA, namespace under ``root``)."""
        return cls._of(load_in_cluster(namespace, root=root, environ=environ))

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
    ) -> Kube:
        """A kubeconfig when one exists (or was named), else the in-cluster config."""
        if wants_kubeconfig(kubeconfig, context):
            return cls.from_kubeconfig(kubeconfig, context, namespace)
        return cls.in_cluster(namespace)

    def endpoint(self) -> ApiEndpoint:
        """The server URL, TLS context and auth headers, for clients other than ``kubernetes``."""
        return endpoint_of(self.configuration)

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
                problem = connection_problem(exc)
                if is_tls_failure(exc):
                    # A certificate problem does not heal by retrying.
                    raise tls_error(exc, self.server, self.source) from None
                if not self._answered and attempt >= UNREACHABLE_ATTEMPTS and nothing_listens(exc):
                    raise unreachable_error(self.server, problem, attempt, self.source) from None
            else:
                self._answered = True
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
                    raise api_error(
                        method,
                        path,
                        status,
                        data,
                        user=self.user,
                        server=self.server,
                        context=self.context,
                        certificate=client_certificate_problem(self.configuration)
                        if status == 401
                        else None,
                    )
                problem = transient_reason(status, data)
                last_status = status
                try:
                    retry_after = float(resp.headers.get("Retry-After") or 0)
                except ValueError:
                    # an HTTP date instead of seconds: our own backoff decides the wait
                    log.debug(
                        "%s %s: Retry-After %r is not a number of seconds",
                        method,
                        path,
                        resp.headers.get("Retry-After"),
                    )
            pause = max(retry_after, min(1.0, 0.05 * 2**attempt)) * (0.8 + 0.4 * random.random())
            if time.monotonic() + pause >= deadline:
                raise KubeError(
                    f"Kubernetes API {self.server} kept failing ({problem}) for "
                    f"{method} {path}; gave up after {attempt} attempts",
                    "check that the API server is up and reachable (kubectl get --raw /version)",
                    status=last_status,
                    reason="Unavailable",
                )
            # Otherwise invisible: a slow deploy shows its retries at INFO. One line each:
            # what, why, which attempt, how long the wait; never headers or credentials.
            log.info(
                "%s %s failed: %s; attempt %d, retrying in %.2fs",
                method,
                path,
                problem,
                attempt,
                pause,
            )
            time.sleep(pause)

    # -- objects --------------------------------------------------------------------

    def namespace_of(self, kind: Kind, namespace: str | None) -> str | None:
        """The namespace a request about ``kind`` goes to (None: cluster-scoped)."""
        return (namespace or self.namespace) if kind.namespaced else None

    def get(
        self, kind: str, name: str, namespace: str | None = None, *, deadline: float | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        k = kind_of(kind)
        try:
            obj: dict[str, Any] = self.request(
                "GET", k.path(self.namespace_of(k, namespace), name), deadline=deadline
            )
        except KubeError as exc:
            if exc.status == 404:
                log.debug("%s %s not found", kind, name)
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
        ns = None if all_namespaces else self.namespace_of(k, namespace)
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
        ns = self.namespace_of(k, meta.get("namespace"))
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
        ns = self.namespace_of(k, obj.get("metadata", {}).get("namespace"))
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
            k.path(self.namespace_of(k, namespace), name),
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
                k.path(self.namespace_of(k, namespace), name),
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
                # gone already, or the name holds another object now: not ours to delete
                log.debug("%s %s not deleted: %s", kind, name, exc.message)
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
        """Block until no object of ``kind`` matches (watching; polling the list when the
        user may list but not watch, so a teardown or a rollback still completes)."""
        if deadline is None:
            deadline = time.monotonic() + DEFAULT_REQUEST_WINDOW
        try:
            try:
                self.wait_for(
                    kind,
                    lambda objs: True if not objs else None,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    deadline=deadline,
                )
            except KubeError as exc:
                if exc.status != 403:
                    raise
                log.debug("%s: watch refused (%s); polling the list", kind, exc.message)
                self._poll_gone(kind, namespace, label_selector, field_selector, deadline)
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

    def _poll_gone(
        self,
        kind: str,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        deadline: float,
    ) -> None:
        """wait_gone without a watch: list until empty, backing off to 1 s between lists;
        WatchDeadline at the deadline, as the watch would."""
        pause = 0.05
        while self.list(
            kind,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            deadline=deadline,
        )["items"]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WatchDeadline(kind)
            time.sleep(min(pause, left))  # the interval of a poll with a deadline
            pause = min(1.0, pause * 2)

    # -- watch (kube_watch.py): the functions are this class's methods ----------------

    watch = kube_watch.watch
    wait_for = kube_watch.wait_for

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

    # -- certificates (kube_certificates.py), likewise --------------------------------

    create_csr = kube_certificates.create_csr
    approve_csr = kube_certificates.approve_csr
    wait_for_certificate = kube_certificates.wait_for_certificate

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
