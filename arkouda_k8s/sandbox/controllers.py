"""The sandbox's control plane loops: what kube-controller-manager and the scheduler do.

Deployment -> ReplicaSet -> pods (ownerReferences, scaling, status and conditions), Job
-> pods (parallelism, completions, backoffLimit, activeDeadlineSeconds; the conditions
Complete and Failed), DaemonSet -> one pod per matching node, a
scheduler (node selection by resources, nodeSelector, taints, required and preferred
pod anti-affinity; the real
``FailedScheduling`` messages), Service -> Endpoints for selector services, the
ownerReference garbage collector (background and foreground), namespace termination,
and the Event recorder (``primitives``, shared with the kubelet). Everything is level-triggered: store changes
enqueue keys, one task reconciles them, and a slow resync retries what waits on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from . import quota
from .primitives import EventRecorder, now, parse_quantity, pod_resources, qos_class
from .resources import BY_KEY
from .store import ApiError, match_label_selector_obj

log = logging.getLogger(__name__)

FAULT_PREFIX = "sandbox.arkouda-k8s.dev/"
RESYNC_SECONDS = 1.0
SCHEDULER = "default-scheduler"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _ts(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def owner_ref(obj: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def template_hash(template: dict[str, Any], collisions: int = 0) -> str:
    """A stable short hash of a pod template, spelled like the pod-template-hash label."""
    digest = hashlib.sha256(
        (json.dumps(template, sort_keys=True) + str(collisions)).encode()
    ).digest()
    n = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(10):
        n, r = divmod(n, len(_HASH_ALPHABET))
        out.append(_HASH_ALPHABET[r])
    return "".join(out)


def pod_requests(pod: dict[str, Any]) -> dict[str, Decimal]:
    """cpu/memory the scheduler counts: sum over containers, max with init containers."""
    got = pod_resources(pod)
    return {"cpu": got["requests.cpu"], "memory": got["requests.memory"]}


Key = tuple[str, str, str]  # (what, namespace, name)


class Controllers:
    """All control loops of the sandbox, on its event loop (see the module docstring)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        kubelet = getattr(sandbox, "kubelet", None)
        self.events: EventRecorder = getattr(kubelet, "events", None) or EventRecorder(self.store)
        self._queue: dict[Key, None] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._unsubscribe: Callable[[], None] | None = None
        # ownerReference index for the garbage collector: owner uid -> dependents
        self._dependents: dict[str, set[tuple[str, str, str]]] = {}
        self._owners_of: dict[tuple[str, str, str], set[str]] = {}
        self._uids: dict[str, tuple[str, str, str]] = {}
        self._sched_events: dict[str, tuple[str, float]] = {}
        self._job_started: dict[str, float] = {}  # Job uid -> when it first synced

    # -- plumbing ----------------------------------------------------------------------

    async def start(self) -> None:
        self._unsubscribe = self.store.subscribe(self._on_change)
        for resource in BY_KEY:
            for obj in self.store.iter_raw(resource):
                self._index(resource, obj, deleted=False)
        self._resync()
        self._tasks = [
            asyncio.ensure_future(self._worker()),
            asyncio.ensure_future(self._resync_loop()),
        ]

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    def enqueue(self, what: str, namespace: str, name: str) -> None:
        self._queue[(what, namespace, name)] = None
        self._wake.set()

    async def _worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                key = next(iter(self._queue))
                del self._queue[key]
                try:
                    self._reconcile(key)
                except ApiError as exc:
                    # Conflicts and races with deletions settle on the next pass.
                    log.debug("reconcile %s: %s", key, exc.message)
                    if exc.status in (409, 500):
                        self._retry_later(key)
                except Exception:
                    log.exception("sandbox controller failed on %s", key)
                # Let the API server and kubelet run between items: 256 pods stay responsive.
                await asyncio.sleep(0)

    def _retry_later(self, key: Key, delay: float = 0.2) -> None:
        asyncio.get_running_loop().call_later(delay, self.enqueue, *key)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            self._resync()

    def _resync(self) -> None:
        """What waits on time rather than on a change: retries, deadlines, terminations."""
        for pod in self.store.iter_raw("pods"):
            if not (pod.get("spec") or {}).get("nodeName"):
                self.enqueue("schedule", pod["metadata"]["namespace"], pod["metadata"]["name"])
        for d in self.store.iter_raw("deployments.apps"):
            self.enqueue("deployment", d["metadata"]["namespace"], d["metadata"]["name"])
        for j in self.store.iter_raw("jobs.batch"):
            if not _job_finished(j):  # activeDeadlineSeconds runs out without a change
                self.enqueue("job", j["metadata"]["namespace"], j["metadata"]["name"])
        for ns in self.store.iter_raw("namespaces"):
            if ns["metadata"].get("deletionTimestamp"):
                self.enqueue("namespace", "", ns["metadata"]["name"])
        for resource in BY_KEY:
            for obj in self.store.iter_raw(resource):
                if obj["metadata"].get("deletionTimestamp") and obj["metadata"].get("finalizers"):
                    self.enqueue(
                        "finalize:" + resource,
                        obj["metadata"].get("namespace", ""),
                        obj["metadata"]["name"],
                    )

    def _index(self, resource: str, obj: dict[str, Any], deleted: bool) -> None:
        md = obj["metadata"]
        me = (resource, md.get("namespace") or "", md["name"])
        uid = md.get("uid")
        for owner in self._owners_of.pop(me, set()):
            deps = self._dependents.get(owner)
            if deps is not None:
                deps.discard(me)
                if not deps:
                    del self._dependents[owner]
        if deleted:
            if uid and self._uids.get(uid) == me:
                del self._uids[uid]
            return
        if uid:
            self._uids[uid] = me
        owners = {str(r["uid"]) for r in md.get("ownerReferences") or [] if r.get("uid")}
        if owners:
            self._owners_of[me] = owners
            for owner in owners:
                self._dependents.setdefault(owner, set()).add(me)

    def _on_change(self, kind: str, resource: str, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        ns = md.get("namespace") or ""
        name = md["name"]
        deleted = kind == "DELETED"
        self._index(resource, obj, deleted)
        if resource == "events":
            return
        if deleted and md.get("uid") in self._dependents:
            self.enqueue("orphans", ns, str(md["uid"]))
        if not deleted and md.get("deletionTimestamp") and md.get("finalizers"):
            self.enqueue("finalize:" + resource, ns, name)
        owner = controller_uid(obj)
        if resource == "deployments.apps":
            self.enqueue("deployment", ns, name)
        elif resource == "replicasets.apps":
            self.enqueue("replicaset", ns, name)
            if owner and owner in self._uids:
                self.enqueue("deployment", ns, self._uids[owner][2])
        elif resource == "jobs.batch":
            self.enqueue("job", ns, name)
        elif resource == "daemonsets.apps":
            self.enqueue("daemonset", ns, name)
        elif resource == "pods":
            if owner and owner in self._uids and self._uids[owner][0] == "replicasets.apps":
                self.enqueue("replicaset", ns, self._uids[owner][2])
            if owner and owner in self._uids and self._uids[owner][0] == "jobs.batch":
                self.enqueue("job", ns, self._uids[owner][2])
            if owner and owner in self._uids and self._uids[owner][0] == "daemonsets.apps":
                self.enqueue("daemonset", ns, self._uids[owner][2])
            if not deleted and not (obj.get("spec") or {}).get("nodeName"):
                self.enqueue("schedule", ns, name)
            if deleted:
                # Freed resources may let a pending pod fit now.
                for p in self.store.iter_raw("pods"):
                    if not (p.get("spec") or {}).get("nodeName"):
                        self.enqueue("schedule", p["metadata"]["namespace"], p["metadata"]["name"])
            self._pods_changed(ns)
        elif resource == "services":
            self.enqueue("endpoints", ns, name)
        elif resource == "namespaces" and md.get("deletionTimestamp") and not deleted:
            self.enqueue("namespace", "", name)
        elif resource == "nodes":
            for ds in self.store.iter_raw("daemonsets.apps"):
                self.enqueue("daemonset", ds["metadata"]["namespace"], ds["metadata"]["name"])
            for p in self.store.iter_raw("pods"):
                if not (p.get("spec") or {}).get("nodeName"):
                    self.enqueue("schedule", p["metadata"]["namespace"], p["metadata"]["name"])

    def _pods_changed(self, namespace: str) -> None:
        for svc in self.store.iter_raw("services"):
            if svc["metadata"].get("namespace") == namespace and (svc.get("spec") or {}).get(
                "selector"
            ):
                self.enqueue("endpoints", namespace, svc["metadata"]["name"])

    def _reconcile(self, key: Key) -> None:
        what, ns, name = key
        if what == "deployment":
            self._sync_deployment(ns, name)
        elif what == "replicaset":
            self._sync_replicaset(ns, name)
        elif what == "job":
            self._sync_job(ns, name)
        elif what == "daemonset":
            self._sync_daemonset(ns, name)
        elif what == "schedule":
            self._schedule(ns, name)
        elif what == "endpoints":
            self._sync_endpoints(ns, name)
        elif what == "orphans":
            self._collect_orphans(name)
        elif what == "namespace":
            self._terminate_namespace(name)
        elif what.startswith("finalize:"):
            self._finalize(what.split(":", 1)[1], ns, name)

    # -- Deployments ---------------------------------------------------------------------

    def _owned(self, resource: str, owner_uid: str) -> list[dict[str, Any]]:
        out = []
        for res, ns, name in sorted(self._dependents.get(owner_uid, ())):
            if res != resource:
                continue
            obj = self.store.get(res, ns, name)
            if obj is not None and controller_uid(obj) == owner_uid:
                out.append(obj)
        return out

    def _sync_deployment(self, ns: str, name: str) -> None:
        d = self.store.get("deployments.apps", ns, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        want = int(spec.get("replicas", 1))
        template = copy.deepcopy(spec.get("template") or {})
        phash = template_hash(template, int((d.get("status") or {}).get("collisionCount") or 0))
        rs_name = f"{name}-{phash}"
        owned = self._owned("replicasets.apps", d["metadata"]["uid"])
        current = next((r for r in owned if r["metadata"]["name"] == rs_name), None)
        old = [r for r in owned if r["metadata"]["name"] != rs_name]
        revision = 1 + max(
            [
                int(
                    (r["metadata"].get("annotations") or {}).get(
                        "deployment.kubernetes.io/revision", 0
                    )
                )
                for r in owned
            ]
            or [0]
        )
        if current is None:
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels["pod-template-hash"] = phash
            template.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = phash
            current = self.store.create(
                "replicasets.apps",
                {
                    "metadata": {
                        "name": rs_name,
                        "namespace": ns,
                        "labels": labels,
                        "annotations": {
                            "deployment.kubernetes.io/desired-replicas": str(want),
                            "deployment.kubernetes.io/max-replicas": str(want + 1),
                            "deployment.kubernetes.io/revision": str(revision),
                        },
                        "ownerReferences": [owner_ref(d)],
                    },
                    "spec": {
                        "replicas": 0,
                        "minReadySeconds": spec.get("minReadySeconds", 0),
                        "selector": selector,
                        "template": template,
                    },
                },
            )
            self._index("replicasets.apps", current, deleted=False)
            self._set_deployment_revision(d, str(revision))
            self._progress(
                d, "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"'
            )
        # Roll: old ReplicaSets go to zero, the current one to the wanted size.
        for r in old:
            self._scale_rs(d, r, 0)
        self._scale_rs(d, current, want)
        self._deployment_status(d, current, owned if current in owned else [*owned, current])

    def _set_deployment_revision(self, d: dict[str, Any], revision: str) -> None:
        ann = d["metadata"].setdefault("annotations", {}) or {}
        if ann.get("deployment.kubernetes.io/revision") == revision:
            return
        fresh = self.store.get(
            "deployments.apps", d["metadata"]["namespace"], d["metadata"]["name"]
        )
        if fresh is None:
            return
        fresh["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = (
            revision
        )
        fresh["metadata"].pop("resourceVersion", None)
        self.store.update("deployments.apps", fresh)

    def _scale_rs(self, d: dict[str, Any], rs: dict[str, Any], replicas: int) -> None:
        before = int((rs.get("spec") or {}).get("replicas", 0))
        if before == replicas:
            return
        rs["spec"]["replicas"] = replicas
        ann = rs["metadata"].setdefault("annotations", {})
        ann["deployment.kubernetes.io/desired-replicas"] = str(int(d["spec"].get("replicas", 1)))
        rs["metadata"].pop("resourceVersion", None)
        self.store.update("replicasets.apps", rs)
        verb = "up" if replicas > before else "down"
        self.events.record(
            d,
            "ScalingReplicaSet",
            f"Scaled {verb} replica set {rs['metadata']['name']} from {before} to {replicas}",
            component="deployment-controller",
        )

    def _progress(self, d: dict[str, Any], status: str, reason: str, message: str) -> None:
        fresh = self.store.get(
            "deployments.apps", d["metadata"]["namespace"], d["metadata"]["name"]
        )
        if fresh is None:
            return
        st = fresh.setdefault("status", {})
        st["conditions"] = _set_condition(
            st.get("conditions") or [], "Progressing", status, reason, message
        )
        self.store.update("deployments.apps", fresh, subresource="status")

    def _deployment_status(
        self, d: dict[str, Any], current: dict[str, Any], owned: list[dict[str, Any]]
    ) -> None:
        fresh = self.store.get(
            "deployments.apps", d["metadata"]["namespace"], d["metadata"]["name"]
        )
        if fresh is None:
            return
        spec = fresh.get("spec") or {}
        want = int(spec.get("replicas", 1))
        sets = [
            self.store.get("replicasets.apps", r["metadata"]["namespace"], r["metadata"]["name"])
            for r in owned
        ]
        live = [s for s in sets if s is not None]
        cur = next((s for s in live if s["metadata"]["uid"] == current["metadata"]["uid"]), current)

        def total(field: str, among: list[dict[str, Any]]) -> int:
            return sum(int((s.get("status") or {}).get(field) or 0) for s in among)

        replicas = total("replicas", live)
        updated = total("replicas", [cur])
        ready = total("readyReplicas", live)
        available = total("availableReplicas", live)
        st = dict(fresh.get("status") or {})
        st.update(
            {
                "observedGeneration": fresh["metadata"].get("generation", 1),
                "replicas": replicas,
                "updatedReplicas": updated,
                "readyReplicas": ready,
                "availableReplicas": available,
            }
        )
        unavailable = max(0, want - available)
        if unavailable:
            st["unavailableReplicas"] = unavailable
        else:
            st.pop("unavailableReplicas", None)
        for k in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if not st[k]:
                st.pop(k)  # the real API omits zero counts
        max_unavailable = _max_unavailable(spec, want)
        conds = st.get("conditions") or []
        if available >= want - max_unavailable:
            conds = _set_condition(
                conds,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            conds = _set_condition(
                conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        rs_name = cur["metadata"]["name"]
        complete = updated == want and replicas == want and available == want
        progressing = next((c for c in conds if c["type"] == "Progressing"), None)
        if complete:
            conds = _set_condition(
                conds,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif progressing is None or progressing.get("reason") != "ProgressDeadlineExceeded":
            deadline = float(spec.get("progressDeadlineSeconds", 600))
            started = _ts((progressing or {}).get("lastTransitionTime")) or time.time()
            if time.time() - started > deadline:
                conds = _set_condition(
                    conds,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs_name}" has timed out progressing.',
                )
            elif progressing is None or progressing.get("reason") == "NewReplicaSetAvailable":
                conds = _set_condition(
                    conds,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" is progressing.',
                )
        # The real controller lists Available before Progressing.
        conds.sort(key=lambda c: {"Available": 0, "Progressing": 1}.get(c["type"], 2))
        st["conditions"] = conds
        fresh["status"] = st
        self.store.update("deployments.apps", fresh, subresource="status")

    # -- ReplicaSets ---------------------------------------------------------------------

    def _sync_replicaset(self, ns: str, name: str) -> None:
        rs = self.store.get("replicasets.apps", ns, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        spec = rs.get("spec") or {}
        want = int(spec.get("replicas", 1))
        uid = rs["metadata"]["uid"]
        pods = [
            p
            for p in self.store.iter_raw("pods")
            if p["metadata"].get("namespace") == ns and controller_uid(p) == uid
        ]
        active = [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        if len(active) < want:
            for _ in range(want - len(active)):
                # Through quota admission, as a real controller's create goes through the
                # API: a full quota leaves a failed pod without a replacement.
                refused = quota.check(self.store, ns, "pods", self._pod_object(rs))
                if refused:
                    self.events.record(
                        rs,
                        "FailedCreate",
                        f'Error creating: pods "{name}-" is forbidden: {refused}',
                        warning=True,
                        component="replicaset-controller",
                    )
                    self._retry_later(("replicaset", ns, name), 1.0)
                    break
                pod = self._new_pod(rs)
                self.events.record(
                    rs,
                    "SuccessfulCreate",
                    f"Created pod: {pod['metadata']['name']}",
                    component="replicaset-controller",
                )
        elif len(active) > want:
            for p in sorted(active, key=_deletion_rank)[: len(active) - want]:
                with contextlib.suppress(ApiError):
                    self.store.delete("pods", ns, p["metadata"]["name"])
                    self.events.record(
                        rs,
                        "SuccessfulDelete",
                        f"Deleted pod: {p['metadata']['name']}",
                        component="replicaset-controller",
                    )
        min_ready = float(spec.get("minReadySeconds") or 0)
        ready = [p for p in active if _pod_ready(p)]
        available = [p for p in ready if _ready_for(p) >= min_ready]
        labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
        fully = [
            p
            for p in active
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
        ]
        fresh = self.store.get("replicasets.apps", ns, name)
        if fresh is None:
            return
        st: dict[str, Any] = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(fully),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": fresh["metadata"].get("generation", 1),
        }
        st = {k: v for k, v in st.items() if v or k == "replicas"}
        if min_ready and len(available) < len(ready):
            self._retry_later(("replicaset", ns, name), min_ready)
        fresh["status"] = st
        self.store.update("replicasets.apps", fresh, subresource="status")

    def _new_pod(self, rs: dict[str, Any], node: str | None = None) -> dict[str, Any]:
        """A pod from the template of ``rs`` (a ReplicaSet, a Job, or a DaemonSet: then
        bound to ``node``), owned by it, created."""
        return self.store.create("pods", self._pod_object(rs, node))

    def _pod_object(self, rs: dict[str, Any], node: str | None = None) -> dict[str, Any]:
        """The pod ``_new_pod`` creates, not yet created."""
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        tmd = template.get("metadata") or {}
        spec = template.get("spec") or {}
        if node:
            spec["nodeName"] = node
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", SCHEDULER)
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("securityContext", {})
        for c in spec.get("containers") or []:
            image = c.get("image") or ""
            tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            c.setdefault("imagePullPolicy", "IfNotPresent" if tagged else "Always")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
        return {
            "metadata": {
                "generateName": rs["metadata"]["name"] + "-",
                "namespace": rs["metadata"]["namespace"],
                "labels": dict(tmd.get("labels") or {}),
                "annotations": dict(tmd.get("annotations") or {}),
                "ownerReferences": [owner_ref(rs)],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": _qos(spec)},
        }

    # -- DaemonSets ----------------------------------------------------------------------

    def _sync_daemonset(self, ns: str, name: str) -> None:
        """One pod of the template on every node it may run on (the template's
        nodeSelector, NoSchedule/NoExecute taints it does not tolerate; a cordoned node
        still gets one, as DaemonSet pods tolerate node.kubernetes.io/unschedulable).

        The pod is bound to its node by the controller (``spec.nodeName``, as before
        Kubernetes 1.12; the scheduler and its node affinity are skipped). A finished
        pod (DaemonSet pods are restartPolicy Always, so only by failure) is replaced.
        """
        ds = self.store.get("daemonsets.apps", ns, name)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        spec = ds.get("spec") or {}
        tmpl_spec = (spec.get("template") or {}).get("spec") or {}
        uid = ds["metadata"]["uid"]
        pods = self._owned("pods", uid)
        by_node: dict[str, list[dict[str, Any]]] = {}
        for p in pods:
            if p["metadata"].get("deletionTimestamp"):
                continue
            if (p.get("status") or {}).get("phase") == "Failed":
                self._delete_pod(p)
                continue
            by_node.setdefault((p.get("spec") or {}).get("nodeName") or "", []).append(p)
        wanted = []
        for node in sorted(self.store.iter_raw("nodes"), key=lambda n: n["metadata"]["name"]):
            labels = node["metadata"].get("labels") or {}
            selector = tmpl_spec.get("nodeSelector") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            if any(
                t.get("effect") in ("NoSchedule", "NoExecute")
                and not _tolerated(t, tmpl_spec.get("tolerations") or [])
                for t in (node.get("spec") or {}).get("taints") or []
            ):
                continue
            wanted.append(node["metadata"]["name"])
        for node_name in wanted:
            if not by_node.get(node_name):
                pod = self._new_pod(ds, node=node_name)
                self.events.record(
                    ds,
                    "SuccessfulCreate",
                    f"Created pod: {pod['metadata']['name']}",
                    component="daemonset-controller",
                )
        for node_name, extra in by_node.items():
            for p in extra if node_name not in wanted else extra[1:]:
                self._delete_pod(p)
        pods = [p for p in self._owned("pods", uid) if not p["metadata"].get("deletionTimestamp")]
        on_wanted = [p for p in pods if (p.get("spec") or {}).get("nodeName") in wanted]
        ready = [p for p in on_wanted if _pod_ready(p)]
        fresh = self.store.get("daemonsets.apps", ns, name)
        if fresh is None:
            return
        status = {
            "currentNumberScheduled": len({(p["spec"] or {}).get("nodeName") for p in on_wanted}),
            "desiredNumberScheduled": len(wanted),
            "numberMisscheduled": len(pods) - len(on_wanted),
            "numberReady": len(ready),
            "numberAvailable": len(ready),
            "updatedNumberScheduled": len(on_wanted),
            "observedGeneration": fresh["metadata"].get("generation", 1),
        }
        if len(ready) < len(wanted):
            status["numberUnavailable"] = len(wanted) - len(ready)
        if fresh.get("status") != status:
            fresh["status"] = status
            fresh["metadata"].pop("resourceVersion", None)
            self.store.update("daemonsets.apps", fresh, subresource="status")

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        with contextlib.suppress(ApiError):
            self.store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])

    # -- Jobs ----------------------------------------------------------------------------

    def _sync_job(self, ns: str, name: str) -> None:
        """Run the template's pods until ``completions`` succeeded (Complete) or more than
        ``backoffLimit`` failed, or ``activeDeadlineSeconds`` passed (Failed).

        Failures count failed pods, plus container restarts under ``OnFailure`` (the
        kubelet restarts those in place). Replacements start at once: the real
        controller's back-off (10 s doubling) is left out of this test world.
        """
        job = self.store.get("jobs.batch", ns, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            self._job_started = {
                uid: t for uid, t in self._job_started.items() if uid in self._uids
            }
            return
        spec = job.get("spec") or {}
        uid = job["metadata"]["uid"]
        pods = [
            p
            for p in self.store.iter_raw("pods")
            if p["metadata"].get("namespace") == ns and controller_uid(p) == uid
        ]
        phase = {id(p): (p.get("status") or {}).get("phase") for p in pods}
        succeeded = sum(1 for p in pods if phase[id(p)] == "Succeeded")
        failed = sum(1 for p in pods if phase[id(p)] == "Failed")
        active = [
            p
            for p in pods
            if phase[id(p)] not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")
        ]
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy == "OnFailure":
            failed += sum(
                int(cs.get("restartCount") or 0)
                for p in active
                for cs in (p.get("status") or {}).get("containerStatuses") or []
            )
        status = copy.deepcopy(job.get("status") or {})
        stamp = now()
        status.setdefault("startTime", stamp)
        # startTime has whole seconds; the deadline counts from the first sync, precisely.
        started = self._job_started.setdefault(uid, time.time())
        conds = status.get("conditions") or []
        finished = _job_finished(job)
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        if not finished:
            failure: tuple[str, str] | None = None
            deadline = spec.get("activeDeadlineSeconds")
            if failed > int(spec.get("backoffLimit", 6)):
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif deadline is not None and time.time() - started >= deadline:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            elif deadline is not None:
                remaining = deadline - (time.time() - started)
                self._retry_later(("job", ns, name), max(0.05, remaining))
            if failure is not None:
                reason, message = failure
                for ctype in ("FailureTarget", "Failed"):
                    conds = _set_condition(conds, ctype, "True", reason, message, probe=True)
                for p in active:
                    with contextlib.suppress(ApiError):
                        self.store.delete("pods", ns, p["metadata"]["name"])
                active = []
                self.events.record(job, reason, message, warning=True, component="job-controller")
            elif completions is not None and succeeded >= int(completions):
                for ctype in ("SuccessCriteriaMet", "Complete"):
                    conds = _set_condition(
                        conds,
                        ctype,
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        probe=True,
                    )
                status["completionTime"] = stamp
                self.events.record(job, "Completed", "Job completed", component="job-controller")
            elif not spec.get("suspend"):
                want = parallelism
                if completions is not None:
                    want = min(parallelism, int(completions) - succeeded)
                for _ in range(max(0, want - len(active))):
                    pod = self._new_pod(job)
                    active.append(pod)
                    self.events.record(
                        job,
                        "SuccessfulCreate",
                        f"Created pod: {pod['metadata']['name']}",
                        component="job-controller",
                    )
        status["conditions"] = conds
        status["active"] = len(active)
        status["succeeded"] = succeeded
        status["failed"] = sum(1 for p in pods if phase[id(p)] == "Failed")
        status["ready"] = sum(1 for p in active if _pod_ready(p))
        status["terminating"] = sum(1 for p in pods if p["metadata"].get("deletionTimestamp"))
        status["uncountedTerminatedPods"] = {}
        status = {k: v for k, v in status.items() if v or k in ("ready", "uncountedTerminatedPods")}
        fresh = self.store.get("jobs.batch", ns, name)
        if fresh is None or fresh.get("status") == status:
            return
        fresh["status"] = status
        self.store.update("jobs.batch", fresh, subresource="status")

    # -- Scheduler -----------------------------------------------------------------------

    def _schedule(self, ns: str, name: str) -> None:
        pod = self.store.get("pods", ns, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or (spec.get("schedulerName") or SCHEDULER) != SCHEDULER:
            return
        nodes = sorted(self.store.iter_raw("nodes"), key=lambda n: n["metadata"]["name"])
        annotations = pod["metadata"].get("annotations") or {}
        fault = annotations.get(FAULT_PREFIX + "fault")
        if fault == "Unschedulable":
            n = len(nodes)
            message = annotations.get(FAULT_PREFIX + "unschedulable-message") or (
                f"0/{n} nodes are available: {n} node(s) didn't match Pod's node affinity/selector. "
                f"preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
            )
            self._unschedulable(pod, message)
            return
        chosen, message = self._pick_node(pod, nodes)
        if chosen is None:
            self._unschedulable(pod, message)
            return
        pod["spec"]["nodeName"] = chosen
        pod["metadata"].pop("resourceVersion", None)
        bound = self.store.update("pods", pod)
        st = bound.setdefault("status", {})
        st["conditions"] = _set_condition(
            st.get("conditions") or [], "PodScheduled", "True", None, None, probe=True
        )
        st.setdefault("phase", "Pending")
        bound["metadata"].pop("resourceVersion", None)
        self.store.update("pods", bound, subresource="status")
        self.events.record(
            bound,
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {chosen}",
            component=SCHEDULER,
        )

    def _pick_node(
        self, pod: dict[str, Any], nodes: list[dict[str, Any]]
    ) -> tuple[str | None, str]:
        spec = pod.get("spec") or {}
        need = pod_requests(pod)
        reasons: dict[str, int] = {}
        # Nodes where evicting lower-priority pods could help (resources, anti-affinity):
        # the real scheduler says "No preemption victims found" for those.
        preemptible = 0
        fits: list[tuple[int, Decimal, str]] = []
        used = self._used_by_node()
        placed = self._placed_pods(pod["metadata"].get("uid"))
        node_labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in nodes}
        for node in nodes:
            node_name = node["metadata"]["name"]
            labels = node_labels[node_name]
            why: list[str] = []
            if (node.get("spec") or {}).get("unschedulable"):
                why.append("node(s) were unschedulable")
            selector = spec.get("nodeSelector") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                why.append("node(s) didn't match Pod's node affinity/selector")
            for taint in (node.get("spec") or {}).get("taints") or []:
                if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(
                    taint, spec.get("tolerations") or []
                ):
                    value = f": {taint['value']}" if taint.get("value") else ""
                    why.append(f"node(s) had untolerated taint {{{taint['key']}{value}}}")
                    break
            hard = len(why)
            if not why:
                why += _anti_affinity_conflicts(pod, labels, placed, node_labels)
            alloc = (node.get("status") or {}).get("allocatable") or {}
            have = used.get(
                node_name, {"cpu": Decimal(0), "memory": Decimal(0), "pods": Decimal(0)}
            )
            short: list[str] = []
            if "pods" in alloc and have["pods"] + 1 > parse_quantity(alloc["pods"]):
                short.append("Too many pods")
            for res in ("cpu", "memory"):
                if (
                    need[res]
                    and res in alloc
                    and have[res] + need[res] > parse_quantity(alloc[res])
                ):
                    short.append(f"Insufficient {res}")
            why += short
            if why and not hard:
                preemptible += 1
            for w in why:
                reasons[w] = reasons.get(w, 0) + 1
            if not why:
                free = parse_quantity(alloc.get("memory", "0")) - have["memory"]
                score = _anti_affinity_score(pod, labels, placed, node_labels)
                fits.append((score, free, node_name))
        if fits:
            # preferred anti-affinity first, then the most free memory
            fits.sort(key=lambda x: (-x[0], -x[1], x[2]))
            return fits[0][2], ""
        n = len(nodes)
        if not n:
            return None, "no nodes available to schedule pods"
        parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        other = n - preemptible
        pre = []
        if preemptible:
            pre.append(f"{preemptible} No preemption victims found for incoming pod")
        if other:
            pre.append(f"{other} Preemption is not helpful for scheduling")
        return None, (
            f"0/{n} nodes are available: {parts}. preemption: 0/{n} nodes are available: "
            f"{', '.join(pre)}."
        )

    def _placed_pods(self, skip_uid: str | None) -> list[dict[str, Any]]:
        """Pods bound to a node and not finished (what inter-pod affinity looks at)."""
        return [
            p
            for p in self.store.iter_raw("pods")
            if (p.get("spec") or {}).get("nodeName")
            and p["metadata"].get("uid") != skip_uid
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]

    def _used_by_node(self) -> dict[str, dict[str, Decimal]]:
        used: dict[str, dict[str, Decimal]] = {}
        for p in self.store.iter_raw("pods"):
            node = (p.get("spec") or {}).get("nodeName")
            if not node or (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            slot = used.setdefault(
                node, {"cpu": Decimal(0), "memory": Decimal(0), "pods": Decimal(0)}
            )
            req = pod_requests(p)
            slot["cpu"] += req["cpu"]
            slot["memory"] += req["memory"]
            slot["pods"] += 1
        return used

    def _unschedulable(self, pod: dict[str, Any], message: str) -> None:
        st = pod.setdefault("status", {})
        st["phase"] = "Pending"
        st["conditions"] = _set_condition(
            st.get("conditions") or [],
            "PodScheduled",
            "False",
            "Unschedulable",
            message,
            probe=True,
        )
        pod["metadata"].pop("resourceVersion", None)
        self.store.update("pods", pod, subresource="status")
        # One event per distinct message; retries only bump its count every few seconds.
        uid = pod["metadata"]["uid"]
        last = self._sched_events.get(uid)
        if last is None or last[0] != message or time.monotonic() - last[1] >= 5:
            self._sched_events[uid] = (message, time.monotonic())
            self.events.record(pod, "FailedScheduling", message, warning=True, component=SCHEDULER)

    # -- Endpoints -----------------------------------------------------------------------

    def _sync_endpoints(self, ns: str, name: str) -> None:
        svc = self.store.get("services", ns, name)
        if svc is None:
            with contextlib.suppress(ApiError):
                self.store.delete("endpoints", ns, name)
            return
        spec = svc.get("spec") or {}
        selector = spec.get("selector")
        if not selector:
            return  # selector-less: whoever owns the Endpoints maintains them
        publish = bool(spec.get("publishNotReadyAddresses"))
        ready: list[dict[str, Any]] = []
        not_ready: list[dict[str, Any]] = []
        ports: list[dict[str, Any]] = []
        for pod in sorted(self.store.iter_raw("pods"), key=lambda p: p["metadata"]["name"]):
            md = pod["metadata"]
            if md.get("namespace") != ns or md.get("deletionTimestamp"):
                continue
            labels = md.get("labels") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            ip = (pod.get("status") or {}).get("podIP")
            if not ip or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            addr = {
                "ip": ip,
                "nodeName": pod["spec"].get("nodeName"),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": md["name"], "uid": md["uid"]},
            }
            (ready if publish or _pod_ready(pod) else not_ready).append(addr)
            if not ports:
                ports = [
                    p for p in (_endpoint_port(sp, pod) for sp in spec.get("ports") or []) if p
                ]
        subset: dict[str, Any] = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        body: dict[str, Any] = {
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": dict(svc["metadata"].get("labels") or {}),
            },
            "subsets": [dict(subset, ports=ports)] if subset else [],
        }
        existing = self.store.get("endpoints", ns, name)
        if existing is None:
            self.store.create("endpoints", body)
        elif (
            existing.get("subsets") != body["subsets"]
            or existing["metadata"].get("labels") != body["metadata"]["labels"]
        ):
            existing["subsets"] = body["subsets"]
            existing["metadata"]["labels"] = body["metadata"]["labels"]
            existing["metadata"].pop("resourceVersion", None)
            self.store.update("endpoints", existing)

    # -- Garbage collection and namespaces -----------------------------------------------

    def _collect_orphans(self, owner_uid: str) -> None:
        """The owner is gone: delete dependents that have no other live owner."""
        for res, ns, name in sorted(self._dependents.get(owner_uid, set())):
            obj = self.store.get(res, ns, name)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            if any(str(r.get("uid")) in self._uids for r in refs):
                # Another owner lives: only drop the dangling reference.
                obj["metadata"]["ownerReferences"] = [
                    r for r in refs if str(r.get("uid")) in self._uids
                ]
                obj["metadata"].pop("resourceVersion", None)
                with contextlib.suppress(ApiError):
                    self.store.update(res, obj)
                continue
            with contextlib.suppress(ApiError):
                self.store.delete(res, ns, name)

    def _finalize(self, resource: str, ns: str, name: str) -> None:
        """Owners held by the foregroundDeletion / orphan finalizers."""
        obj = self.store.get(resource, ns or None, name)
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        finalizers = list(obj["metadata"].get("finalizers") or [])
        uid = obj["metadata"]["uid"]
        deps = sorted(self._dependents.get(uid, set()))
        if "orphan" in finalizers:
            for res, dns, dname in deps:
                dep = self.store.get(res, dns, dname)
                if dep is None:
                    continue
                dep["metadata"]["ownerReferences"] = [
                    r
                    for r in dep["metadata"].get("ownerReferences") or []
                    if str(r.get("uid")) != uid
                ] or None
                if dep["metadata"]["ownerReferences"] is None:
                    del dep["metadata"]["ownerReferences"]
                dep["metadata"].pop("resourceVersion", None)
                self.store.update(res, dep)
            finalizers.remove("orphan")
        elif "foregroundDeletion" in finalizers:
            waiting = False
            for res, dns, dname in deps:
                dep = self.store.get(res, dns, dname)
                if dep is None:
                    continue
                waiting = True
                if not dep["metadata"].get("deletionTimestamp"):
                    # Dependents go the same way, so a Deployment waits for its pods too.
                    if BY_KEY[res].plural in (
                        "replicasets",
                        "deployments",
                    ) and "foregroundDeletion" not in (dep["metadata"].get("finalizers") or []):
                        dep["metadata"].setdefault("finalizers", []).append("foregroundDeletion")
                        dep["metadata"].pop("resourceVersion", None)
                        self.store.update(res, dep)
                    with contextlib.suppress(ApiError):
                        self.store.delete(res, dns, dname)
            if waiting:
                self._retry_later(("finalize:" + resource, ns, name), 0.2)
                return
            finalizers.remove("foregroundDeletion")
        else:
            return
        obj["metadata"]["finalizers"] = finalizers
        obj["metadata"].pop("resourceVersion", None)
        self.store.update(resource, obj)

    def _terminate_namespace(self, name: str) -> None:
        ns = self.store.get("namespaces", None, name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for resource, row in BY_KEY.items():
            if not row.namespaced:
                continue
            for obj in list(self.store.iter_raw(resource)):
                md = obj["metadata"]
                if md.get("namespace") != name:
                    continue
                remaining += 1
                if md.get("deletionTimestamp"):
                    continue
                with contextlib.suppress(ApiError):
                    self.store.delete(resource, name, md["name"])
        if remaining:
            self._retry_later(("namespace", "", name), 0.2)
            return
        ns["spec"]["finalizers"] = []
        ns["metadata"].pop("resourceVersion", None)
        self.store.update("namespaces", ns, subresource="finalize")


def _set_condition(
    conds: list[dict[str, Any]],
    ctype: str,
    status: str,
    reason: str | None,
    message: str | None,
    *,
    probe: bool = False,
) -> list[dict[str, Any]]:
    out = [dict(c) for c in conds]
    stamp = now()
    existing = next((c for c in out if c.get("type") == ctype), None)
    if existing is None:
        existing = {"type": ctype}
        out.append(existing)
    if existing.get("status") != status:
        existing["lastTransitionTime"] = stamp
    existing["status"] = status
    if probe:
        existing["lastProbeTime"] = None
    else:
        if (
            existing.get("reason") != reason
            or existing.get("message") != message
            or "lastUpdateTime" not in existing
        ):
            existing["lastUpdateTime"] = stamp
    for k, v in (("reason", reason), ("message", message)):
        if v is None:
            existing.pop(k, None)
        else:
            existing[k] = v
    return out


def _job_finished(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _max_unavailable(spec: dict[str, Any], want: int) -> int:
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return int(want * int(value[:-1]) // 100)
    return int(value)


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _ready_for(pod: dict[str, Any]) -> float:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return time.time() - _ts(c.get("lastTransitionTime"))
    return 0.0


def _deletion_rank(pod: dict[str, Any]) -> tuple[int, int, int, str]:
    """Which pods a scale-down removes first: unscheduled, pending, not ready, newest."""
    st = pod.get("status") or {}
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        {"Pending": 0, "Unknown": 1, "Running": 2}.get(st.get("phase", "Pending"), 0),
        1 if _pod_ready(pod) else 0,
        "".join(chr(0x10FFFF - ord(ch)) for ch in pod["metadata"].get("creationTimestamp", "")),
    )


def _tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _endpoint_port(sp: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any] | None:
    target = sp.get("targetPort", sp.get("port"))
    port: int | None = None
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        port = int(target)
    else:
        for c in pod["spec"].get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target:
                    port = int(p["containerPort"])
    if port is None:
        return None
    out: dict[str, Any] = {"port": port, "protocol": sp.get("protocol", "TCP")}
    if sp.get("name"):
        out["name"] = sp["name"]
    return out


def _qos(spec: dict[str, Any]) -> str:
    return qos_class({"spec": spec})


# -- inter-pod anti-affinity (the cases arkouda-k8s uses: topologyKey, labelSelector,
# namespaces; required and preferred) ---------------------------------------------------

ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"


def _anti_terms(pod: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    anti = ((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    return list(anti.get(f"{kind}DuringSchedulingIgnoredDuringExecution") or [])


def _term_matches(term: dict[str, Any], owner: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether ``other`` is a pod that ``owner``'s affinity term selects."""
    namespaces = term.get("namespaces") or [owner["metadata"].get("namespace")]
    if other["metadata"].get("namespace") not in namespaces:
        return False
    return match_label_selector_obj(
        term.get("labelSelector") or {"matchLabels": {"\0none": ""}},
        other["metadata"].get("labels"),
    )


def _same_domain(
    key: str, labels: dict[str, str], other: dict[str, Any], node_labels: dict[str, dict]
) -> bool:
    there = node_labels.get((other.get("spec") or {}).get("nodeName") or "") or {}
    return key in labels and labels.get(key) == there.get(key)


def _anti_affinity_conflicts(
    pod: dict[str, Any],
    labels: dict[str, str],
    placed: list[dict[str, Any]],
    node_labels: dict[str, dict],
) -> list[str]:
    """The scheduler's reasons a node fails the required anti-affinity of ``pod``, or
    of pods already placed whose own rules select ``pod``."""
    found: list[str] = []
    for term in _anti_terms(pod, "required"):
        key = term.get("topologyKey") or ""
        if any(
            _term_matches(term, pod, o) and _same_domain(key, labels, o, node_labels)
            for o in placed
        ):
            found.append(ANTI_AFFINITY)
            break
    for other in placed:
        for term in _anti_terms(other, "required"):
            key = term.get("topologyKey") or ""
            if _term_matches(term, other, pod) and _same_domain(key, labels, other, node_labels):
                found.append(EXISTING_ANTI_AFFINITY)
                return found
    return found


def _anti_affinity_score(
    pod: dict[str, Any],
    labels: dict[str, str],
    placed: list[dict[str, Any]],
    node_labels: dict[str, dict],
) -> int:
    """Preferred anti-affinity: minus the weights of the matching pods in the node's
    topology domain (higher is better)."""
    score = 0
    for pref in _anti_terms(pod, "preferred"):
        term = pref.get("podAffinityTerm") or {}
        key = term.get("topologyKey") or ""
        weight = int(pref.get("weight") or 0)
        score -= weight * sum(
            1
            for o in placed
            if _term_matches(term, pod, o) and _same_domain(key, labels, o, node_labels)
        )
    return score
