"""Pull the Arkouda image onto nodes ahead of a deploy (``arkouda-k8s prepull``).

On a real cluster most of a deploy's wall time is the pull of the server image (a
Chapel build with its libraries: gigabytes) on each node. A DaemonSet runs one small pod
of that image on every matching node; a pod that runs has its image on its node. Once
every node's pod runs, the DaemonSet is deleted (its pods go with it) and the next
deploy on those nodes starts at once (``imagePullPolicy: IfNotPresent``).

Progress is reported like a deploy's (stage ``prepull``): which image, on how many
nodes, for how long. A pod that cannot pull fails the prepull with Kubernetes' reason,
and the DaemonSet is removed in every case (also on Ctrl-C).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import manifests
from .errors import ImagePullError, StageTimeout
from .inventory import IMAGE_PULL_REASONS
from .kube import Kube, WatchDeadline
from .pull_clock import PULL_TICK, PullClock, Ticker, pulling
from .spec import ClusterSpec
from .stages import Progress

COMPONENT = "prepull"


def daemonset(
    spec: ClusterSpec, node_selector: Mapping[str, str] | None = None, name: str | None = None
) -> dict[str, Any]:
    """The DaemonSet that pulls ``spec.server_image`` on every node matching
    ``node_selector`` (the spec's own when None) and then only waits."""
    name = name or f"arkouda-prepull-{secrets.token_hex(3)}"
    labels = {
        "app.kubernetes.io/name": "arkouda",
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": manifests.MANAGED_BY,
    }
    selector = dict(spec.node_selector if node_selector is None else node_selector)
    pod: dict[str, Any] = {
        "containers": [
            {
                "name": "pull",
                "image": spec.server_image,
                "imagePullPolicy": spec.pull_policy,
                # The image is on the node once this runs; then it only waits to be
                # removed (a DaemonSet's pods must keep running).
                "command": ["sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 5; done"],
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "50m", "memory": "32Mi"},
                },
            }
        ],
        "terminationGracePeriodSeconds": 1,
        # Nothing here talks to the API: no token to steal.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    if selector:
        pod["nodeSelector"] = selector
    if spec.tolerations:
        pod["tolerations"] = [dict(t) for t in spec.tolerations]
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/instance": name}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def prepull(
    kube: Kube,
    spec: ClusterSpec,
    *,
    node_selector: Mapping[str, str] | None = None,
    timeout: float = 900.0,
    on_progress: Callable[[Progress], None] | None = None,
) -> int:
    """Pull the image of ``spec`` on every matching node; the number of nodes that
    have it. The DaemonSet is removed before this returns or raises."""
    report = on_progress or (lambda _p: None)
    image = spec.server_image
    namespace = spec.namespace or kube.namespace
    obj = daemonset(spec, node_selector)
    name = obj["metadata"]["name"]
    deadline = time.monotonic() + timeout
    report(Progress(COMPONENT, 0, 1, f"creating DaemonSet {name} to pull {image}"))
    created = kube.create(obj, deadline=deadline)
    clock = PullClock()
    last: dict[str, Any] = {"text": None, "running": 0, "pods": 0}

    def say() -> None:
        text = clock.text()
        message = f"{last['running']}/{last['pods']} nodes have {image}" + (
            f"; {text}" if text else ""
        )
        if message != last["text"]:
            last["text"] = message
            report(Progress(COMPONENT, last["running"], max(last["pods"], 1), message))

    def check(objs: dict[str, dict[str, Any]]) -> int | None:
        pods = list(objs.values())
        for p in pods:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in IMAGE_PULL_REASONS:
                    raise ImagePullError(
                        f"node {p['spec'].get('nodeName')} cannot pull image {image}: "
                        f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": "),
                        "check --release / --image-repository and the image pull secrets "
                        "(imagePullSecrets) of the namespace",
                        stage=COMPONENT,
                        reason=waiting["reason"],
                        pod=p["metadata"]["name"],
                    )
        running = {
            (p.get("spec") or {}).get("nodeName")
            for p in pods
            if (p.get("status") or {}).get("phase") == "Running"
        }
        clock.update(pulling(pods))
        last["running"], last["pods"] = len(running), len(pods)
        say()
        return len(running) if pods and len(running) >= len(pods) else None

    try:
        # Pods appear once the controller runs: wait until there are as many as the
        # DaemonSet wants (status.desiredNumberScheduled), each Running.
        desired = _desired(kube, name, namespace, created, deadline)
        if desired == 0:
            report(Progress(COMPONENT, 0, 0, "no node matches the node selector"))
            return 0

        def enough(objs: dict[str, dict[str, Any]]) -> int | None:
            got = check(objs)
            return got if got is not None and got >= desired else None

        # a pull's seconds go on while no pod changes: shown without requests
        ticker = Ticker(lambda: say() if clock.images else None, PULL_TICK)
        ticker.start()
        try:
            done = kube.wait_for(
                "Pod",
                enough,
                namespace,
                label_selector=f"app.kubernetes.io/instance={name}",
                deadline=deadline,
            )
        except WatchDeadline:
            raise StageTimeout(
                f"{image} is not on every node after {timeout:.0f}s ({last['text']})",
                f"see `kubectl describe pods -n {namespace} -l app.kubernetes.io/instance={name}`",
                stage=COMPONENT,
                reason="Timeout",
            ) from None
        finally:
            ticker.stop()
        report(Progress(COMPONENT, done, done, f"{image} is on {done} node(s)"))
        return done
    finally:
        kube.delete(
            "DaemonSet",
            name,
            namespace,
            uid=created["metadata"]["uid"],
            propagation="Background",
            deadline=time.monotonic() + 30,
        )
        report(Progress(COMPONENT, 1, 1, f"DaemonSet {name} removed"))


def _desired(
    kube: Kube, name: str, namespace: str, created: dict[str, Any], deadline: float
) -> int:
    """How many nodes the DaemonSet runs on, once its controller has counted them."""

    def counted(objs: dict[str, dict[str, Any]]) -> int | None:
        ds = next(iter(objs.values()), None) or {}
        status = ds.get("status") or {}
        # counted by the controller for this very spec (the API server's zeros before)
        generation = (ds.get("metadata") or {}).get("generation") or 1
        if (status.get("observedGeneration") or 0) < generation:
            return None
        return int(status.get("desiredNumberScheduled") or 0)

    try:
        return kube.wait_for(
            "DaemonSet",
            counted,
            namespace,
            field_selector=f"metadata.name={name}",
            deadline=min(deadline, time.monotonic() + 60),
        )
    except WatchDeadline:
        raise StageTimeout(
            f"DaemonSet {name} was not counted by a controller within 60s",
            "is the cluster's controller manager running?",
            stage=COMPONENT,
            reason="Timeout",
        ) from None
