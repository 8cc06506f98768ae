"""The Jupyter server extension ``arkouda_k8s``: the server owns clusters and tunnels.

Kernels die and restart; the Jupyter server lives on. The extension holds one
:class:`~arkouda_k8s.cluster.ArkoudaCluster` per deployment it was asked about: its
tunnel (one per cluster, shared by every kernel of this server) and its heartbeat. At
shutdown it tears down the deployments marked ephemeral and leaves the others to their
time-to-live. A thin front end like the CLI: no Kubernetes logic here, every blocking
library call runs off the event loop.

REST, JSON, under ``{base_url}arkouda-k8s/api/`` (authenticated and XSRF-protected like
every Jupyter API)::

    GET    clusters[?namespace=N | ?all_namespaces=1]   the deployments visible
    POST   clusters          {"spec": {...}, "ephemeral": false}  -> 202 + an operation
    GET    operations/{id}   a deploy's progress, error, final status
    GET    operations/{id}/events   the same as server-sent events, until it ends
    GET    clusters/{ns}/{name}[?refresh=1]  status (a recent read shared, see below)
    POST   clusters/{ns}/{name}/tunnel   open (or return) the server-owned tunnel
    DELETE clusters/{ns}/{name}          teardown

Errors are ``{"message", "hint", "error"}`` with the CLI's one line, status 400 (bad
spec or input), 403 (refused by Kubernetes or by ``allow_deploy``), 404 (no such
deployment), 409 (exists with other settings). Settings: ``c.ArkoudaK8s.kubeconfig``,
``context``, ``namespace``, ``allow_deploy``, ``heartbeat_interval``,
``status_reuse_seconds``.

The status of a deployment the server holds no tunnel to costs a short-lived
port-forward and an Arkouda handshake: every panel or tab polling it shares one read
for ``status_reuse_seconds`` (requests arriving meanwhile await the read in flight),
``?refresh=1`` reads again, and a deploy or teardown through the server forgets it.
``readAt`` and ``readAgeSeconds`` in the document say when it was read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError
from traitlets import Bool, Float, Unicode

from .errors import (
    ArkoudaK8sError,
    ClusterNotFound,
    KubeError,
    PermissionsMissing,
    SpecConflict,
    SpecError,
    UsageError,
    one_line,
)

API = "arkouda-k8s/api"
# The tunnel answer carries the deployment's token (the kernel binds its client with it);
# a client tells the extension's own JSON from another handler's page by this field.
API_VERSION = "arkouda-k8s.dev/v1"
# Finished operations kept for polling, oldest dropped first.
KEEP_OPERATIONS = 50
# Seconds of silence after which a stream of events/ says it is still there.
SSE_KEEPALIVE = 15.0
# Seconds between looks for held deployments deleted elsewhere (default: the heartbeat's).
SWEEP_INTERVAL = 30.0
# Seconds one status read of a deployment held by no tunnel here (a short-lived
# port-forward and a handshake each) answers every GET of it. Below the live panel's
# 5 s poll, so a lone poller still gets a new read at every poll; any number of tabs
# and panels polling together cost one read per window instead of one each.
STATUS_REUSE = 4.0

R = TypeVar("R")


class OtherApiServer(ArkoudaK8sError):
    """A kernel asked about a deployment on another Kubernetes API than the server's."""


class Operation:
    """One deploy started by ``POST clusters``, polled at ``operations/{id}``."""

    def __init__(self, namespace: str, name: str) -> None:
        self.id = secrets.token_hex(8)
        self.namespace = namespace
        self.name = name
        self.state = "running"  # running | succeeded | failed
        self.progress: list[dict[str, Any]] = []
        self.error: dict[str, Any] | None = None
        self.status: dict[str, Any] | None = None
        self._lock = threading.Lock()
        # (loop, event) of each stream of events/: set on every change, from any thread
        self._watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def on_progress(self, event: Any) -> None:
        with self._lock:
            self.progress.append(
                {
                    "stage": event.stage,
                    "done": event.done,
                    "total": event.total,
                    "message": event.message,
                }
            )
        self._notify()

    def finish(
        self,
        state: str,
        status: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            self.state, self.status, self.error = state, status, error
        self._notify()

    def watch(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        """An event set (in ``loop``) whenever the operation changes."""
        event = asyncio.Event()
        with self._lock:
            self._watchers.append((loop, event))
        return event

    def unwatch(self, event: asyncio.Event) -> None:
        with self._lock:
            self._watchers = [(lp, ev) for lp, ev in self._watchers if ev is not event]

    def _notify(self) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for loop, event in watchers:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "apiVersion": API_VERSION,
                "kind": "Operation",
                "id": self.id,
                "namespace": self.namespace,
                "name": self.name,
                "state": self.state,
                "progress": list(self.progress),
                "error": self.error,
                "status": self.status,
            }


class StatusRead:
    """One status document (``readAt`` in it) and when it was read, for its age."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.read = time.monotonic()

    def answer(self) -> dict[str, Any]:
        age = int(max(0.0, time.monotonic() - self.read))
        return {**self.doc, "readAgeSeconds": age}


class HeldClusters:
    """The deployments this server holds: a tunnel and a heartbeat each.

    All methods but ``shared_status`` block (Kubernetes calls): the handlers run them in
    ``executor``.
    """

    def __init__(self, app: ArkoudaK8s) -> None:
        self.app = app
        self.clusters: dict[tuple[str, str], Any] = {}
        self.ephemeral: set[tuple[str, str]] = set()
        # uid of each held deployment's state ConfigMap: a deployment deleted elsewhere (a
        # kernel's teardown) and made again under its name is another one, not ours
        self.uids: dict[tuple[str, str], str | None] = {}
        self.operations: dict[str, Operation] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        # The last status read of each deployment held by no tunnel here, answering GETs
        # for app.status_reuse_seconds, and a generation per deployment that a deploy or
        # teardown through this server moves on: a read begun before is neither kept nor
        # joined (both under _lock: the deploy and teardown run in the executor).
        self._reads: dict[tuple[str, str], StatusRead] = {}
        self._read_generation: dict[tuple[str, str], int] = {}
        # the read in flight of each deployment, with its generation (event loop only)
        self._reads_in_flight: dict[tuple[str, str], tuple[int, asyncio.Future[StatusRead]]] = {}
        self._kube: Any = None
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="arkouda-k8s")
        self._stopping = threading.Event()
        self._sweeper = threading.Thread(
            target=self._sweep_loop, name="arkouda-k8s-sweep", daemon=True
        )
        self._sweeper.start()

    # -- Kubernetes access ------------------------------------------------------------

    def kube(self, namespace: str | None = None) -> Any:
        from .inventory import kube_in
        from .kube import Kube

        with self._lock:
            if self._kube is None:
                self._kube = Kube.connect(
                    self.app.kubeconfig or None,
                    self.app.context or None,
                    self.app.namespace or None,
                )
            kube = self._kube
        return kube_in(kube, namespace) if namespace else kube

    def default_namespace(self) -> str:
        return str(self.kube().namespace)

    def _key_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def held(self, namespace: str, name: str) -> Any:
        return self.clusters.get((namespace, name))

    def _hold(self, key: tuple[str, str], cluster: Any) -> None:
        self.forget_status(key)
        self.uids[key] = _state_uid(cluster)
        old = self.clusters.get(key)
        self.clusters[key] = cluster
        if old is not None and old is not cluster:
            old.close()

    def _replaced(self, key: tuple[str, str], cluster: Any) -> bool:
        """Whether the held deployment is gone or was made again since it was held."""
        uid = _state_uid(cluster)
        return uid is None or uid != self.uids.get(key)

    def _memory_used(self, key: tuple[str, str], cluster: Any) -> int | None:
        """getmemused of a held deployment over the connection its handshake opened and
        its ``ServerConnection`` keeps with the tunnel: through a tunnel, every new
        connection is a new port-forward stream (tens of ms)."""
        try:
            used: int | None = cluster.memory_used()
            return used
        except ArkoudaK8sError as exc:
            self.app.log.debug("arkouda-k8s: memory of %s/%s: %s", *key, one_line(exc))
            return None

    def _release(self, key: tuple[str, str]) -> None:
        self.forget_status(key)
        cluster = self.clusters.pop(key, None)
        self.ephemeral.discard(key)
        self.uids.pop(key, None)
        if cluster is not None:
            cluster.close()

    def sweep(self) -> list[str]:
        """Drop the held deployments deleted or made again behind this server's back (a
        kernel's teardown with its own credentials): their tunnel, heartbeat and kept
        connection stop, and a later request finds the new one, if any."""
        dropped = []
        for key, cluster in list(self.clusters.items()):
            try:
                with self._key_lock(key):
                    if self.clusters.get(key) is cluster and self._replaced(key, cluster):
                        self._release(key)
                        dropped.append(f"{key[0]}/{key[1]}")
            except Exception as exc:  # the API may be down for a while: look again later
                self.app.log.debug("arkouda-k8s: %s/%s: %s", *key, one_line(exc))
        return dropped

    def _sweep_loop(self) -> None:
        interval = self.app.heartbeat_interval or SWEEP_INTERVAL
        while not self._stopping.wait(interval):
            for item in self.sweep():
                self.app.log.info("arkouda-k8s: %s was deleted elsewhere: tunnel closed", item)

    def _options(self) -> dict[str, Any]:
        interval = self.app.heartbeat_interval
        return {"heartbeat_interval": interval} if interval else {}

    # -- what the handlers ask --------------------------------------------------------

    def listing(self, namespace: str | None, all_namespaces: bool) -> dict[str, Any]:
        from .cluster import cluster_list_dict, list_clusters

        kube = self.kube()
        items = list_clusters(
            namespace=namespace or kube.namespace, all_namespaces=all_namespaces, kube=kube
        )
        doc = cluster_list_dict(items)
        doc["apiServer"] = kube.server  # a kernel's list stands for its own if the same
        now = time.time()
        for item, info in zip(doc["items"], items, strict=True):
            key = (info.namespace, info.name)
            item["heartbeatAgeSeconds"] = (
                int(now - info.heartbeat.timestamp()) if info.heartbeat else None
            )
            item["heldByServer"] = key in self.clusters
            item["ephemeral"] = key in self.ephemeral
            cluster = self.clusters.get(key)
            if cluster is not None and cluster.address is not None:
                item["tunnel"] = _tunnel(cluster)
        return doc

    def forget_status(self, key: tuple[str, str]) -> None:
        """The deployment changed through this server (deploy, teardown, held or let go):
        the next GET of its status reads it again, and no read begun before is kept."""
        with self._lock:
            self._read_generation[key] = self._read_generation.get(key, 0) + 1
            self._reads.pop(key, None)

    async def shared_status(self, namespace: str, name: str, refresh: bool) -> dict[str, Any]:
        """GET status, on the event loop. A deployment held here is read each time (its
        numbers come over the connection kept for it, no port-forward); any other one
        costs a short-lived port-forward and a handshake per read, so the reads of every
        tab and panel polling it share one: the last read while it is younger than
        ``status_reuse_seconds``, else the read in flight, else a new one. ``refresh``:
        a new read all the same (which later requests share)."""
        key = (namespace, name)
        loop = asyncio.get_running_loop()
        reuse = self.app.status_reuse_seconds
        if key in self.clusters or reuse <= 0:
            read = await loop.run_in_executor(self.executor, self._read_status, key, None)
            return read.answer()
        with self._lock:
            generation = self._read_generation.get(key, 0)
            last = self._reads.get(key)
        in_flight = self._reads_in_flight.get(key)
        if not refresh:
            if last is not None and time.monotonic() - last.read < reuse:
                return last.answer()
            if in_flight is not None and in_flight[0] == generation:
                return (await asyncio.shield(in_flight[1])).answer()
        future = loop.run_in_executor(self.executor, self._read_status, key, generation)
        self._reads_in_flight[key] = (generation, future)

        def done(_: Any) -> None:
            if self._reads_in_flight.get(key, (0, None))[1] is future:
                del self._reads_in_flight[key]

        future.add_done_callback(done)
        # shielded: a caller that goes away does not cancel the read the others await
        return (await asyncio.shield(future)).answer()

    def _read_status(self, key: tuple[str, str], generation: int | None) -> StatusRead:
        read = StatusRead(self.status(*key))
        if generation is not None:
            with self._lock:
                # not kept when the deployment changed through this server meanwhile, or
                # this server holds it now (its reads are its own)
                if self._read_generation.get(key, 0) == generation and key not in self.clusters:
                    self._reads[key] = read
        return read

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        from .cluster import ArkoudaCluster

        cluster = self.held(namespace, name)
        if cluster is None:
            cluster = ArkoudaCluster.from_name(
                name, namespace, kube=self.kube(namespace), connect=False
            )
        return self._status_doc(namespace, name, cluster)

    def _status_doc(self, namespace: str, name: str, cluster: Any) -> dict[str, Any]:
        key = (namespace, name)
        held = self.clusters.get(key) is cluster
        if not held:
            # memory and version through a short-lived tunnel, as the CLI shows them
            doc: dict[str, Any] = cluster.status(handshake=True).to_dict()
        else:  # the server's memory use over the connection kept for it
            status = cluster.status(probe=False)
            if status.stage == "Ready":
                status = dataclasses.replace(status, memory_used=self._memory_used(key, cluster))
            doc = status.to_dict()
        doc["heldByServer"] = (namespace, name) in self.clusters
        doc["ephemeral"] = (namespace, name) in self.ephemeral
        doc["readAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        doc["readAgeSeconds"] = 0
        return doc

    def tunnel(self, namespace: str, name: str, api_server: str | None) -> dict[str, Any]:
        """Open the tunnel (attach, handshake, heartbeat) or return the one held."""
        from .cluster import ArkoudaCluster

        if api_server and api_server != self.kube().server:
            raise OtherApiServer(
                f"this Jupyter server reaches {self.kube().server}, not {api_server}",
                "the kernel opens its own tunnel",
            )
        key = (namespace, name)
        with self._key_lock(key):  # two kernels asking at once get one tunnel
            cluster = self.held(namespace, name)
            if cluster is not None and self._replaced(key, cluster):
                self._release(key)
                cluster = None
            if cluster is None:
                cluster = ArkoudaCluster.from_name(
                    name, namespace, kube=self.kube(namespace), connect=True, **self._options()
                )
                if cluster.marked_ephemeral():
                    self.ephemeral.add(key)
                self._hold(key, cluster)
            else:
                cluster.start_tunnel()  # the one held, restarted if it had stopped
        try:
            # the kernel's status card: what this server's warm Kubernetes client and its
            # own probe see, so the kernel makes no call of its own for it
            status: dict[str, Any] | None = self._status_doc(namespace, name, cluster)
        except Exception as exc:  # the tunnel is up: the kernel asks again for the card
            self.app.log.debug("arkouda-k8s: status of %s/%s: %s", namespace, name, exc)
            status = None
        return {
            "apiVersion": API_VERSION,
            "kind": "Tunnel",
            "name": name,
            "namespace": namespace,
            "apiServer": cluster.kube.server,
            "address": list(cluster.address),
            "token": cluster.token(),
            "spec": cluster.spec.to_dict(),
            # Arkouda's getconfig answer from the handshake: the kernel's status card
            # needs no handshake of its own
            "config": cluster.config,
            "status": status,
        }

    def check_deploy(self, spec: Any) -> None:
        """Refuse at once what the deploy would refuse later: another spec under that name."""
        from .cluster import ArkoudaCluster
        from .inventory import spec_changes

        probe = ArkoudaCluster(spec, kube=self.kube(spec.namespace))
        existing = probe._existing_spec()
        if existing is not None and spec_changes(existing, spec):
            from .inventory import _check_same_spec

            _check_same_spec(existing, spec)

    def deploy(self, op: Operation, spec: Any, ephemeral: bool) -> None:
        from .cluster import ArkoudaCluster

        key = (spec.namespace, spec.name)
        self.forget_status(key)
        try:
            with self._key_lock(key):
                cluster = ArkoudaCluster(
                    spec,
                    kube=self.kube(spec.namespace),
                    on_progress=op.on_progress,
                    ephemeral=ephemeral,
                    **self._options(),
                )
                cluster.deploy(wait=True)
                if ephemeral or cluster.marked_ephemeral():
                    self.ephemeral.add(key)
                self._hold(key, cluster)
            op.finish("succeeded", status=cluster.status(probe=False).to_dict())
        except Exception as exc:
            op.finish("failed", error=_error_body(exc))
        finally:  # what a status read saw during the deploy is past
            self.forget_status(key)

    def add_operation(self, op: Operation) -> None:
        with self._lock:
            self.operations[op.id] = op
            done = [k for k, o in self.operations.items() if o.state != "running"]
            for k in done[: max(0, len(self.operations) - KEEP_OPERATIONS)]:
                del self.operations[k]

    def teardown(self, namespace: str, name: str) -> dict[str, Any]:
        from .cluster import teardown_named

        key = (namespace, name)
        self.forget_status(key)
        try:
            with self._key_lock(key):
                cluster = self.clusters.pop(key, None)
                self.ephemeral.discard(key)
                self.uids.pop(key, None)
                if cluster is None:
                    deleted = teardown_named(name, namespace, kube=self.kube(namespace))
                else:
                    deleted = cluster.teardown()
        finally:  # a read during the teardown saw objects going
            self.forget_status(key)
        return {
            "apiVersion": API_VERSION,
            "kind": "Teardown",
            "name": name,
            "namespace": namespace,
            "deleted": [f"{kind}/{obj}" for kind, obj in deleted],
        }

    def shutdown(self) -> list[str]:
        """Server stop: ephemeral deployments torn down, the others closed (TTL applies)."""
        self._stopping.set()
        removed = []
        for key, cluster in list(self.clusters.items()):
            try:
                if key in self.ephemeral and not self._replaced(key, cluster):
                    cluster.teardown()
                    removed.append(f"{key[0]}/{key[1]}")
                else:
                    cluster.close()
            except Exception as exc:  # keep going: the others still need closing
                self.app.log.warning(
                    "arkouda-k8s: %s/%s at shutdown: %s", key[0], key[1], one_line(exc)
                )
        self.clusters.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        return removed


def _state_uid(cluster: Any) -> str | None:
    from .inventory import read_state

    state = read_state(cluster.kube, cluster.name, cluster.namespace)
    return None if state is None else str(state["metadata"]["uid"])


def _tunnel(cluster: Any) -> dict[str, Any]:
    host, port = cluster.address
    state = getattr(cluster.tunnel, "state", None)
    return {"state": str(getattr(state, "value", state)), "address": f"{host}:{port}"}


def http_status(exc: BaseException) -> int:
    """The HTTP status of a library error (the CLI's exit code has the same split)."""
    if isinstance(exc, SpecConflict | OtherApiServer):
        return 409
    if isinstance(exc, SpecError | UsageError):
        return 400
    if isinstance(exc, PermissionsMissing):
        return 403
    if isinstance(exc, ClusterNotFound):
        return 404
    if isinstance(exc, KubeError) and exc.status in (400, 403, 404, 409, 422):
        return 400 if exc.status == 422 else int(exc.status)
    return 500


def _error_body(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ArkoudaK8sError):
        return {
            "message": " ".join(exc.message.split()),
            "hint": exc.hint,
            "error": exc.one_line(),
            "kind": type(exc).__name__,
        }
    return {"message": one_line(exc), "hint": None, "error": one_line(exc), "kind": "Error"}


class _Handler(APIHandler):
    """Shared by the extension's handlers: JSON answers, library errors as statuses."""

    @property
    def held(self) -> HeldClusters:
        return self.settings["arkouda_k8s"]  # type: ignore[no-any-return]

    async def blocking(self, fn: Callable[..., R], *args: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.held.executor, fn, *args)

    def answer(self, doc: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(doc))

    def fail(self, exc: BaseException) -> None:
        status = http_status(exc)
        if status == 500:
            self.log.warning("arkouda-k8s: %s", one_line(exc))
        self.answer(_error_body(exc), status)

    def operation(self, op_id: str) -> Operation | None:
        """The operation ``op_id``, or None with a 404 answered."""
        op = self.held.operations.get(op_id)
        if op is None:
            self.fail(ClusterNotFound(f"no operation {op_id!r} on this server"))
        return op

    def refuse_unless_allowed(self, what: str) -> bool:
        if self.held.app.allow_deploy:
            return False
        self.answer(
            {
                "message": f"{what} is turned off on this Jupyter server",
                "hint": "ask its operator (c.ArkoudaK8s.allow_deploy = True)",
                "error": f"{what} is turned off on this Jupyter server (hint: ask its "
                "operator: c.ArkoudaK8s.allow_deploy = True)",
                "kind": "Forbidden",
            },
            403,
        )
        return True

    def json_body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError as exc:
            raise UsageError(f"request body: not JSON ({exc})", "send a JSON object") from None
        if not isinstance(body, dict):
            raise UsageError("request body: not a JSON object", 'send {"spec": {...}}')
        return body


class ClustersHandler(_Handler):
    @web.authenticated
    async def get(self) -> None:
        namespace = self.get_query_argument("namespace", None)
        every = self.get_query_argument("all_namespaces", "") in ("1", "true", "yes")
        try:
            self.answer(await self.blocking(self.held.listing, namespace, every))
        except Exception as exc:
            self.fail(exc)

    @web.authenticated
    async def post(self) -> None:
        from .spec import ClusterSpec

        if self.refuse_unless_allowed("deploying"):
            return
        try:
            body = self.json_body()
            unknown = sorted(set(body) - {"spec", "ephemeral"})
            if unknown:
                raise UsageError(
                    f"request body: unknown field {unknown[0]!r}", "give spec and ephemeral"
                )
            ephemeral = body.get("ephemeral", False)
            if not isinstance(ephemeral, bool):
                raise UsageError(f"ephemeral: {ephemeral!r} is not true or false")
            spec = ClusterSpec.from_dict(body.get("spec") or {})
            if spec.namespace is None:
                spec = spec.with_namespace(await self.blocking(self.held.default_namespace))
            await self.blocking(self.held.check_deploy, spec)
        except Exception as exc:
            self.fail(exc)
            return
        op = Operation(str(spec.namespace), spec.name)
        self.held.add_operation(op)
        # at once, not when the deploy's thread starts: a GET right after the 202 reads anew
        self.held.forget_status((op.namespace, op.name))
        asyncio.get_running_loop().run_in_executor(
            self.held.executor, self.held.deploy, op, spec, ephemeral
        )
        url = url_path_join(self.base_url, API, "operations", op.id)
        self.set_header("Location", url)
        self.answer(op.to_dict(), 202)


class OperationHandler(_Handler):
    @web.authenticated
    async def get(self, op_id: str) -> None:
        op = self.operation(op_id)
        if op is None:
            return
        self.answer(op.to_dict())


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


class OperationEventsHandler(_Handler):
    """A deploy's progress as server-sent events: ``progress`` per step (what the
    operation's ``progress`` list gains), then one ``succeeded`` or ``failed`` with the
    whole operation, and the stream ends; a finished operation streams all of it."""

    @web.authenticated
    async def get(self, op_id: str) -> None:
        op = self.operation(op_id)
        if op is None:
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        wake = op.watch(asyncio.get_running_loop())
        sent = 0
        try:
            while True:
                wake.clear()  # before reading: a change after the read wakes the wait
                doc = op.to_dict()
                for step in doc["progress"][sent:]:
                    self.write(_sse("progress", step))
                sent = len(doc["progress"])
                if doc["state"] != "running":
                    self.write(_sse(doc["state"], doc))
                    break
                await self.flush()
                try:
                    await asyncio.wait_for(wake.wait(), SSE_KEEPALIVE)
                except TimeoutError:
                    self.write(": still running\n\n")  # proxies keep an idle stream open
        except StreamClosedError:
            return  # the client went away
        finally:
            op.unwatch(wake)
        self.finish(set_content_type="text/event-stream")


class ClusterHandler(_Handler):
    @web.authenticated
    async def get(self, namespace: str, name: str) -> None:
        refresh = self.get_query_argument("refresh", "") in ("1", "true", "yes")
        try:
            self.answer(await self.held.shared_status(namespace, name, refresh))
        except Exception as exc:
            self.fail(exc)

    @web.authenticated
    async def delete(self, namespace: str, name: str) -> None:
        if self.refuse_unless_allowed("teardown"):
            return
        try:
            self.answer(await self.blocking(self.held.teardown, namespace, name))
        except Exception as exc:
            self.fail(exc)


class TunnelHandler(_Handler):
    @web.authenticated
    async def post(self, namespace: str, name: str) -> None:
        try:
            api_server = self.json_body().get("apiServer")
            self.answer(await self.blocking(self.held.tunnel, namespace, name, api_server))
        except Exception as exc:
            self.fail(exc)


# A Kubernetes object name (DNS label): also what keeps ".." and "/" out of the path.
_NAME = r"([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"


class ArkoudaK8s(ExtensionApp):
    """Clusters and tunnels owned by the Jupyter server (see the module docstring)."""

    name = "arkouda_k8s"
    load_other_extensions = True

    kubeconfig = Unicode(
        "", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    ).tag(config=True)
    context = Unicode("", help="kubeconfig context (default: the current one)").tag(config=True)
    namespace = Unicode(
        "", help="namespace when a request names none (default: the context's)"
    ).tag(config=True)
    allow_deploy = Bool(
        True, help="allow deploy and teardown through the REST API (False: list, status, tunnel)"
    ).tag(config=True)
    heartbeat_interval = Float(
        0.0, help="seconds between heartbeats of held deployments (0: the library's default)"
    ).tag(config=True)
    status_reuse_seconds = Float(
        STATUS_REUSE,
        help="seconds one status read of a deployment this server holds no tunnel to "
        "answers every GET of it (each read is a port-forward and a handshake; 0: none)",
    ).tag(config=True)

    def initialize_settings(self) -> None:
        self.held = HeldClusters(self)
        self.settings["arkouda_k8s"] = self.held

    def initialize_handlers(self) -> None:
        one = rf"/{API}/clusters/{_NAME}/{_NAME}"
        self.handlers.extend(
            [
                (rf"/{API}/clusters", ClustersHandler),
                (rf"/{API}/operations/([0-9a-f]+)", OperationHandler),
                (rf"/{API}/operations/([0-9a-f]+)/events", OperationEventsHandler),
                (one, ClusterHandler),
                (rf"{one}/tunnel", TunnelHandler),
            ]
        )

    async def stop_extension(self) -> None:
        held = getattr(self, "held", None)
        if held is None:
            return
        loop = asyncio.get_running_loop()
        removed = await loop.run_in_executor(None, held.shutdown)
        for item in removed:
            self.log.info("arkouda-k8s: %s (ephemeral) deleted at shutdown", item)
