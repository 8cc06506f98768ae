"""The inventory of deployments on a cluster: the labels and annotations that mark ours,
each deployment's state ConfigMap (read, and its heartbeat renewed), the one reader of a
deployment's spec annotation, ``list_clusters()`` and the summary of each deployment's
pods and state ConfigMap (stage, heartbeat, expiry), what changed between two specs, the
tunnels held to a deployment by this user's processes, and where a deployment's server
answers from inside the cluster."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import failed_pods, manifests
from .errors import ArkoudaK8sError, ClusterNotFound, SpecConflict
from .kube import Kube
from .spec import ClusterSpec
from .status import ClusterInfo
from .syntax import parse_time as _parse_time

if TYPE_CHECKING:
    from .connection import ServerConnection

ANNOTATION_PREFIX = "arkouda-k8s.dev/"
HEARTBEAT_ANNOTATION = manifests.HEARTBEAT_ANNOTATION
TTL_ANNOTATION = manifests.TTL_ANNOTATION
EPHEMERAL_ANNOTATION = manifests.EPHEMERAL_ANNOTATION
# A failed deploy kept for debugging (--keep-on-failure): its one-line reason.
FAILED_ANNOTATION = "arkouda-k8s.dev/failed"
SPEC_ANNOTATION = manifests.SPEC_ANNOTATION
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=arkouda-k8s"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
INSTANCE_ID_LABEL = manifests.INSTANCE_ID_LABEL
COMPONENT_LABEL = "app.kubernetes.io/component"
# Kinds an instance may own, deleted (and waited for) on teardown; the ReplicaSets
# carry the locale template's labels, so they count as labelled objects too.
OWNED_KINDS = (
    "Pod",
    "Deployment",
    "ReplicaSet",
    "Service",
    "Endpoints",
    "ConfigMap",
    "Secret",
    "NetworkPolicy",
    "RoleBinding",
    "Role",
    "ServiceAccount",
)
# The ReplicaSets go with their Deployment (garbage collector): not deleted directly, so
# the deployer needs no delete right on them, but waited for.
# The Deployment goes first: deleting its pods first would only make its ReplicaSet
# create new ones.
DELETED_KINDS = ("Deployment",) + tuple(
    k for k in OWNED_KINDS if k not in ("ReplicaSet", "Deployment")
)
IMAGE_PULL_REASONS = {"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}

log = logging.getLogger(__name__)

# The connections of this process that hold a tunnel, by (API server, namespace, name):
# what `list_clusters()` shows as the tunnel address. Weak: a dropped one holds nothing.
_HELD_TUNNELS: weakref.WeakValueDictionary[tuple[str, str, str], ServerConnection] = (
    weakref.WeakValueDictionary()
)


def held_tunnel(server: str, namespace: str, name: str) -> tuple[str, int] | None:
    """The local address of a tunnel to that deployment held by this process or by
    another one of this user on this machine (`arkouda-k8s forward` in another
    terminal, a notebook's kernel), if any."""
    held = _HELD_TUNNELS.get((server, namespace, name))
    if held is not None and held.address is not None:
        return held.address
    folder = _tunnel_records()
    if folder is None:
        return None
    prefix = _record_prefix((server, namespace, name))
    with contextlib.suppress(OSError):
        for entry in sorted(os.listdir(folder)):
            if not entry.startswith(prefix):
                continue
            path = os.path.join(folder, entry)
            try:
                with open(path, encoding="utf-8") as fh:
                    record = json.load(fh)
                pid = int(record["pid"])
                os.kill(pid, 0)  # raises when the holder is gone
                started = record.get("started")
                if started is not None and _process_started(pid) != started:
                    raise ValueError("the holder died and its pid was reused")
                host, port = record["address"]
                return str(host), int(port)
            except (OSError, ValueError, KeyError, TypeError):
                with contextlib.suppress(OSError):
                    os.unlink(path)  # a holder that died without cleaning up
    return None


# Where held tunnels are recorded for other processes of the user: a private folder
# (0700, ours) under $XDG_RUNTIME_DIR or the temp directory. A record holds the API
# server, namespace, name, local address and pid: nothing secret.
def _tunnel_records() -> str | None:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    mine = os.path.join(base, f"arkouda-k8s-{os.getuid()}")
    folder = os.path.join(mine, "tunnels")
    try:
        for path in (mine, folder):  # makedirs gives parents the umask's mode, not 0700
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
        info = os.stat(mine)
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None  # made by someone else, or readable by others: not ours to trust
    return folder


def _record_prefix(key: tuple[str, str, str]) -> str:
    import hashlib

    return hashlib.sha256("|".join(key).encode()).hexdigest()[:20] + "-"


def _process_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where
    there is no /proc or no such process: with the pid, who holds a record (pids are
    reused, after 32768 processes on many Linux machines)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _record_tunnel(key: tuple[str, str, str], address: tuple[str, int]) -> None:
    folder = _tunnel_records()
    if folder is None:
        return
    server, namespace, name = key
    record = {
        "server": server,
        "namespace": namespace,
        "name": name,
        "address": list(address),
        "pid": os.getpid(),
        "started": _process_started(os.getpid()),
    }
    filename = f"{_record_prefix(key)}{os.getpid()}.json"
    path = os.path.join(folder, filename)
    # Written whole under a name no reader looks at, then renamed: a reader in another
    # process never sees half a record (it removes a record it cannot read as broken).
    # 0600 like every file we write (the umask gave 0644): nothing secret, still the
    # user's own business which deployments they reach and where
    part = os.path.join(folder, f".{filename}.{threading.get_ident()}.part")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(part, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(part)


def _forget_tunnel(key: tuple[str, str, str]) -> None:
    folder = _tunnel_records()
    if folder is not None:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, f"{_record_prefix(key)}{os.getpid()}.json"))


def list_clusters(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
    *,
    kube: Kube | None = None,
    timeout: float | None = None,
) -> list[ClusterInfo]:
    """Every arkouda-k8s deployment visible to the user (two list requests).

    ``timeout`` bounds the whole call (retries included; default 30 s per request).
    """
    deadline = time.monotonic() + timeout if timeout is not None else None
    kube = kube or Kube.connect(kubeconfig, context, namespace)
    ns = None if all_namespaces else (namespace or kube.namespace)
    pods = kube.list(
        "Pod", ns, label_selector=MANAGED_SELECTOR, all_namespaces=all_namespaces, deadline=deadline
    )["items"]
    states = kube.list(
        "ConfigMap",
        ns,
        label_selector=MANAGED_SELECTOR,
        all_namespaces=all_namespaces,
        deadline=deadline,
    )["items"]
    by_instance: dict[tuple[str, str], dict[str, Any]] = {}
    for cm in states:
        meta = cm["metadata"]
        inst = (meta.get("labels") or {}).get(INSTANCE_LABEL)
        if inst and SPEC_ANNOTATION in (meta.get("annotations") or {}):
            by_instance.setdefault((meta.get("namespace", ""), inst), {"pods": [], "state": None})[
                "state"
            ] = cm
    for pod in pods:
        meta = pod["metadata"]
        inst = (meta.get("labels") or {}).get(INSTANCE_LABEL)
        if inst:
            by_instance.setdefault((meta.get("namespace", ""), inst), {"pods": [], "state": None})[
                "pods"
            ].append(pod)
    out = []
    for (ns_name, inst), parts in sorted(by_instance.items()):
        spec = _spec_of(parts["state"]) or _spec_of(
            next(
                (
                    p
                    for p in parts["pods"]
                    if SPEC_ANNOTATION in (p["metadata"].get("annotations") or {})
                ),
                None,
            )
        )
        info = _summarize(inst, ns_name, parts["pods"], parts["state"], spec)
        server_pod = next(
            (
                p["metadata"]["name"]
                for p in parts["pods"]
                if (p["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == "server"
            ),
            None,
        )
        out.append(
            ClusterInfo(
                name=inst,
                namespace=ns_name,
                stage=info.stage,
                locales_ready=info.locales_ready,
                locales_total=info.locales_total,
                mode=spec.mode if spec else None,
                release=spec.release if spec else None,
                age=info.age,
                heartbeat=info.heartbeat,
                expires_at=info.expires_at,
                heartbeat_expired=info.heartbeat_expired,
                context=kube.context,
                server_pod=server_pod,
                memory=spec.memory if spec else None,
                memory_max=spec.effective_mem_max * spec.locales if spec else None,
                tunnel_address=held_tunnel(kube.server, ns_name, inst),
            )
        )
    return out


@dataclass
class _Summary:
    stage: str
    locales_ready: int
    locales_total: int
    age: float | None
    heartbeat: datetime | None
    expires_at: datetime | None
    heartbeat_expired: bool
    extra: dict[str, Any] = field(default_factory=dict)
    # every Failed pod, judged (which decide the stage, which were replaced)
    failures: list[failed_pods.FailedPod] = field(default_factory=list)


def _summarize(
    name: str,
    namespace: str,
    pods: list[dict[str, Any]],
    state: dict[str, Any] | None,
    spec: ClusterSpec | None,
) -> _Summary:
    servers = [
        p for p in pods if (p["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == "server"
    ]
    locales = [
        p for p in pods if (p["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == "locale"
    ]
    server = servers[0] if servers else None
    # Locale pods (udp: locales - 1; smp: none), as the front ends show them.
    total = spec.locale_pods if spec else len(locales)
    ready = sum(1 for p in locales if _running_with_ip(p))
    # A Failed locale pod its ReplicaSet replaced before the server started its locales
    # is a warning, not the deployment's failure (failed_pods.py says when it is).
    judged = failed_pods.judge(pods, total)
    failed = any(f.counts for f in judged) or any(
        ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        # ErrImagePull too: the kubelet alternates it with ImagePullBackOff, and a
        # status taken in between must not call the deployment healthy again.
        in IMAGE_PULL_REASONS | {"ErrImagePull", "CrashLoopBackOff"}
        for p in pods
        for cs in (p.get("status") or {}).get("containerStatuses") or []
    )
    if not pods and state is None:
        stage = "Gone"
    elif failed:
        stage = "Failed"
    elif server is not None and _ready(server):
        stage = "Ready"
    elif server is not None:
        stage = "Server"
    elif locales or (spec is not None and spec.locale_pods):
        stage = "Locales"
    else:
        stage = "Pending"
    created = _parse_time(
        ((state or server or (pods[0] if pods else {})).get("metadata") or {}).get(
            "creationTimestamp"
        )
    )
    annotations = ((state or {}).get("metadata") or {}).get("annotations") or {}
    heartbeat = _parse_time(annotations.get(HEARTBEAT_ANNOTATION)) or created
    ttl = annotations.get(TTL_ANNOTATION) or (
        str(spec.ttl_seconds) if spec and spec.ttl_seconds else None
    )
    expires_at = None
    if ttl and heartbeat:
        with contextlib.suppress(ValueError):
            expires_at = datetime.fromtimestamp(heartbeat.timestamp() + float(ttl), UTC)
    now = datetime.now(UTC)
    return _Summary(
        stage=stage,
        locales_ready=ready,
        locales_total=total,
        age=(now - created).total_seconds() if created else None,
        heartbeat=heartbeat,
        expires_at=expires_at,
        heartbeat_expired=bool(expires_at and expires_at <= now),
        failures=judged,
    )


def _looks_ours(state: dict[str, Any], name: str) -> bool:
    """A state ConfigMap of instance ``name``: our labels and an instance id.

    Labels can be planted; what they protect is narrow: deleting goes only to objects
    whose ownerReferences name this ConfigMap's uid, which a planted one never owns.
    """
    labels = state["metadata"].get("labels") or {}
    return (
        labels.get(MANAGED_BY_LABEL) == manifests.MANAGED_BY
        and labels.get(INSTANCE_LABEL) == name
        and bool(labels.get(INSTANCE_ID_LABEL))
    )


def _spec_of(obj: dict[str, Any] | None) -> ClusterSpec | None:
    text = ((obj or {}).get("metadata", {}).get("annotations") or {}).get(SPEC_ANNOTATION)
    if not text:
        return None
    try:
        return ClusterSpec.from_dict(json.loads(text))
    except (ValueError, ArkoudaK8sError):
        return None


# Which objects a changed setting forces to be recreated.
_RECREATE = {
    "locales": "the locale Deployment and the server pod",
    "mode": "every object",
    "threads": "every pod",
    "cpu": "every pod",
    "memory": "every pod",
    "mem_max": "the server pod",
    "release": "every pod",
    "image_repository": "every pod",
    "pull_policy": "every pod",
    "authenticate": "the server pod",
    "metrics": "the server pod and its Services",
    "log_level": "the server pod",
    "persistence": "every pod",
    "node_selector": "every pod",
    "tolerations": "every pod",
    "image_pull_secrets": "every pod",
    "service_account": "every pod",
    "server_port": "the server pod",
    "annotations": "every pod",
    "labels": "every object",
    "network_policy": "the NetworkPolicy",
}


def spec_changes(old: ClusterSpec, new: ClusterSpec) -> dict[str, tuple[Any, Any]]:
    """Settings that differ (ttl_seconds ignored: it changes nothing running)."""
    a, b = old.to_dict(), new.to_dict()
    return {
        k: (a.get(k), b.get(k))
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k) and k not in ("ttl_seconds", "namespace")
    }


def _check_same_spec(existing: ClusterSpec, wanted: ClusterSpec) -> None:
    changes = spec_changes(existing, wanted)
    if not changes:
        return
    what = "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())
    recreate = sorted({_RECREATE.get(k, "every object") for k in changes})
    raise SpecConflict(
        f"deployment {existing.name!r} exists with different settings ({what}); "
        f"applying them means recreating {', '.join(recreate)}",
        f"tear it down first (`arkouda-k8s teardown {existing.name}`) and deploy again, "
        "or deploy with the same settings to connect to it",
    )


def _running_with_ip(pod: dict[str, Any]) -> bool:
    """Running, with an IP, and every container up (not between two crashes)."""
    status = pod.get("status") or {}
    return (
        status.get("phase") == "Running"
        and bool(status.get("podIP"))
        and all(
            "running" in (cs.get("state") or {}) for cs in status.get("containerStatuses") or []
        )
    )


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- one deployment's state ConfigMap -------------------------------------------------------


def read_state(
    kube: Kube, name: str, namespace: str, deadline: float | None = None
) -> dict[str, Any] | None:
    """Instance ``name``'s state ConfigMap as the API has it (anyone's, if planted)."""
    return kube.get("ConfigMap", manifests.state_name(name), namespace, deadline=deadline)


def beat(kube: Kube, name: str, namespace: str) -> None:
    """Renew the heartbeat annotation of instance ``name`` now."""
    kube.patch(
        "ConfigMap",
        manifests.state_name(name),
        {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: _now_text()}}},
        namespace,
    )


class Heartbeat(threading.Thread):
    """Calls ``beat`` every ``interval`` seconds until stopped (while a cluster object
    is open); a failed beat is logged and the next one tried."""

    def __init__(self, beat: Callable[[], None], name: str, interval: float) -> None:
        super().__init__(name=f"arkouda-k8s-heartbeat-{name}", daemon=True)
        self.beat = beat
        self.instance = name
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # keep beating; the next renewal may work
                log.debug("heartbeat of %s failed: %s", self.instance, exc)

    def stop(self) -> None:
        self._stop_event.set()
        if self is not threading.current_thread():
            self.join(timeout=5)


def existing_spec(
    kube: Kube, name: str, namespace: str, deadline: float | None = None
) -> ClusterSpec | None:
    """The spec instance ``name`` was deployed with, if it exists (both places that
    record it, the state ConfigMap and the server pod, are read side by side).

    The annotation is data anyone with write access to a ConfigMap can plant: the name
    asked for and the namespace the object lives in win, and an annotation that names
    another instance is an error (nothing is done elsewhere because of it).
    """
    server_pod = manifests.names(ClusterSpec(name=name, namespace=namespace)).server_pod
    for obj in kube.concurrently(
        [
            functools.partial(read_state, kube, name, namespace, deadline),
            functools.partial(kube.get, "Pod", server_pod, namespace, deadline=deadline),
        ]
    ):
        if obj is None:
            continue
        spec = _spec_of(obj)
        if spec is None:
            continue
        md = obj["metadata"]
        where = md.get("namespace") or namespace
        if spec.namespace is None:
            spec = spec.with_namespace(where)
        if (spec.name, spec.namespace) != (name, where):
            raise ArkoudaK8sError(
                f"{obj['kind']} {where}/{md['name']}: its {SPEC_ANNOTATION} annotation "
                f"names {spec.namespace}/{spec.name}, not {where}/{name}: refusing "
                "to act on it",
                "the annotation was edited or planted; inspect it with `kubectl get "
                f"{obj['kind'].lower()} {md['name']} -n {where} -o yaml`",
            )
        return spec
    return None


def instance_exists(
    kube: Kube, spec: ClusterSpec, namespace: str, deadline: float | None = None
) -> bool:
    """Whether any pod carries instance ``spec.name``'s labels."""
    pods = kube.list("Pod", namespace, label_selector=manifests.selector(spec), deadline=deadline)
    return bool(pods["items"])


def kube_in(kube: Kube, namespace: str) -> Kube:
    """``kube`` acting in ``namespace`` (a copy when it differs: an ArkoudaCluster sets
    its Kube's namespace, so clusters of several namespaces never share one)."""
    if kube.namespace == namespace:
        return kube
    return Kube(
        kube.configuration,
        namespace=namespace,
        context=kube.context,
        user=kube.user,
        cluster=kube.cluster,
        source=kube.source,
    )


# -- from inside the cluster ----------------------------------------------------------------


@dataclass(frozen=True)
class ServerAddress:
    """Where a deployment's Arkouda server answers from inside the cluster, and its token.

    The token is held for the caller to hand to the client; it is never in the repr.
    """

    host: str
    port: int
    token: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def server_address_in_cluster(
    name: str, namespace: str | None = None, *, kube: Kube | None = None
) -> ServerAddress:
    """The server of deployment ``name``, found from inside a pod with its service account.

    Reads only the Service ``{name}-arkouda``, its Endpoints and the token Secret
    ``{name}-token`` (what ``manifests.runner_rbac`` grants by name). The address is a
    ready endpoint of that Service: a pod address, reachable from every pod, and the
    same whether the Service has a selector or the server registered it itself.
    :class:`ClusterNotFound` while the Service has no ready endpoint yet (the caller may
    wait); :class:`KubeError` (403) when the pod's service account lacks the grant.
    """
    kube = kube or Kube.in_cluster(namespace)
    ns = namespace or kube.namespace
    n = manifests.names(ClusterSpec(name=name, namespace=ns))
    where = f"in namespace {ns} ({kube.describe()})"
    service = kube.get("Service", n.self_service, ns)
    if service is None:
        raise ClusterNotFound(
            f"no Service {n.self_service} {where}: deployment {name!r} is not up (yet)",
            f"deploy it (`arkouda-k8s deploy --name {name} --namespace {ns}`), or check "
            f"`arkouda-k8s status {name}`",
        )
    endpoints = kube.get("Endpoints", n.self_service, ns) or {}
    for subset in endpoints.get("subsets") or []:
        ports = subset.get("ports") or []
        addresses = subset.get("addresses") or []
        if not ports or not addresses:
            continue
        port = next((p for p in ports if p.get("name") == "arkouda"), ports[0])
        host = str(addresses[0]["ip"])
        break
    else:
        raise ClusterNotFound(
            f"Service {n.self_service} {where} has no ready endpoint: the server of "
            f"{name!r} is not ready (yet)",
            f"check `arkouda-k8s status {name}`",
        )
    secret = kube.get("Secret", n.token_secret, ns)
    token = None
    data = (secret or {}).get("data") or {}
    if "token" in data:
        token = base64.b64decode(data["token"]).decode() or None
    return ServerAddress(host, int(port["port"]), token)
