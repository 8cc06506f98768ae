"""A deployment's Failed pods, and which of them still decide its stage.

A pod the node ended (Evicted under memory or disk pressure, a node shutdown, ...)
stays in the API, phase Failed, until the pod garbage collector removes it (by default
thousands of terminated pods later): a deployment's status meets it for a long time.

The server pod is bare (restartPolicy Never, never recreated): its failure is the
deployment's. A locale pod belongs to the locale Deployment, whose ReplicaSet makes
another when one fails; whether the deployment survived depends on when the loss came,
since Arkouda's server picks its locale set once, when its launcher starts:

- before the server's container started: its launch script had not listed the locales
  yet, and lists Ready pods only (``manifest_scripts``), so it starts with the
  replacement. The loss is a warning, and the stage is what the live pods say.
- while the server was starting (container started, not yet Ready): if the lost pod was
  in its locale set, the launch fails and the server pod fails by itself. Until then
  the stage is what the live pods say (Server: not Ready), with the warning.
- once the server was Ready: the running Chapel job had that locale. Neither GASNet nor
  Arkouda lets a new process join a job, so the replacement, Ready or not, serves
  nobody; the launcher stops the job (Chapel's amudprun does, and so does the
  sandbox's stand-in), and until the server pod reports it the deployment is Failed
  all the same: it never claims Ready for a server whose locale set broke.

A Failed locale pod that nothing replaced (no controller, or its ReplicaSet could not
make another: a quota, an admission refusal) is the deployment's failure too.
Pure: reads pod dicts (Kubernetes' timestamps, whole seconds; a loss in the second the
server became Ready counts as a loss of the running server).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .syntax import parse_time

COMPONENT_LABEL = "app.kubernetes.io/component"


@dataclass(frozen=True)
class FailedPod:
    """One Failed pod of a deployment and what it means for the deployment."""

    name: str
    component: str | None
    # the kubelet's words: "Evicted: The node was low on resource: memory."
    why: str
    # a live pod of its controller took its place (locale pods only)
    replaced: bool
    # the running server had it among its locales: the job is over whatever replaced it
    lost_by_server: bool
    # the live locale pod that took its place, when it can be told
    replacement: str | None = None
    # the server had not reached Ready when the pod failed, and is still starting
    server_starting: bool = False

    @property
    def counts(self) -> bool:
        """Does it make the deployment Failed (else it is only a warning)?"""
        return not self.replaced or self.lost_by_server

    def message(self) -> str:
        """The status message of a pod that counts."""
        if self.lost_by_server:
            return (
                f"{self.name}: {self.why} (the running server had this locale: a "
                "replacement cannot join it; tear down and deploy again)"
            )
        if self.component == "locale":
            return f"{self.name}: {self.why} (not replaced: no other locale pod took its place)"
        return f"{self.name}: {self.why}"

    def warning(self) -> str:
        """The ``ClusterStatus.warnings`` line of a replaced pod."""
        by = self.replacement or "another pod of its ReplicaSet"
        then = (
            "the server, still starting, fails if it had started with it"
            if self.server_starting
            else "the server started without it"
        )
        return f"locale pod {self.name} failed: {self.why}; replaced by {by} ({then})"


def _component(pod: dict[str, Any]) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL)


def _failed(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Failed"


def live(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in (
        "Failed",
        "Succeeded",
    ) and not pod["metadata"].get("deletionTimestamp")


def _ready_since(pod: dict[str, Any]) -> tuple[bool, datetime | None]:
    """(Ready now, since when)."""
    status = pod.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return status.get("phase") == "Running", parse_time(c.get("lastTransitionTime"))
    return False, None


def _started_at(pod: dict[str, Any]) -> datetime | None:
    """When the pod's first container started (running or since terminated)."""
    times = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        for state in ((cs.get("state") or {}), (cs.get("lastState") or {})):
            for key in ("running", "terminated"):
                t = parse_time((state.get(key) or {}).get("startedAt"))
                if t is not None:
                    times.append(t)
    return min(times) if times else None


def failed_at(pod: dict[str, Any]) -> datetime | None:
    """When the pod stopped serving: the kubelet's DisruptionTarget condition, its Ready
    condition turning False, its containers' end; the latest of those it shows."""
    status = pod.get("status") or {}
    times = [
        parse_time(c.get("lastTransitionTime"))
        for c in status.get("conditions") or []
        if c.get("type") == "DisruptionTarget"
        or (c.get("type") == "Ready" and c.get("status") != "True")
    ]
    for cs in status.get("containerStatuses") or []:
        times.append(
            parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        )
    known = [t for t in times if t is not None]
    return max(known) if known else None


def failure(pod: dict[str, Any]) -> str:
    """Why a Failed pod ended, in the kubelet's words: its reason and message
    ("Evicted: The node was low on resource: memory."), else its container's."""
    status = pod.get("status") or {}
    if status.get("reason"):
        message = (status.get("message") or "").strip()
        return f"{status['reason']}: {message}" if message else str(status["reason"])
    for cs in status.get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated") or {}
        if terminated:
            return f"{terminated.get('reason') or 'Error'} (exit code {terminated.get('exitCode')})"
    return "Failed"


def _made_since(pod: dict[str, Any], when: datetime | None) -> bool:
    made = parse_time(pod["metadata"].get("creationTimestamp"))
    return when is not None and made is not None and made >= when.replace(microsecond=0)


def controlled(pod: dict[str, Any]) -> bool:
    """Does a controller (a ReplicaSet) own it, and so replace it when it fails?"""
    return any(r.get("controller") for r in pod["metadata"].get("ownerReferences") or [])


def judge(pods: list[dict[str, Any]], locale_pods: int) -> list[FailedPod]:
    """Each Failed pod of one deployment (``pods``: every pod of it), judged; the
    deployment asks for ``locale_pods`` locale pods. Locale pods first: a locale's loss
    explains a server that failed after it."""
    servers = [p for p in pods if _component(p) == "server"]
    server = servers[0] if servers else None
    live_locales = [p for p in pods if _component(p) == "locale" and live(p)]
    covered = len(live_locales) >= locale_pods
    started = _started_at(server) if server is not None else None
    ready, ready_since = _ready_since(server) if server is not None else (False, None)
    server_failed = server is not None and _failed(server)
    spare = list(live_locales)  # the replacements named, each once
    out = []
    failed = [p for p in pods if _failed(p)]
    failed.sort(key=lambda p: (_component(p) != "locale", str(failed_at(p) or "")))
    for p in failed:
        name, component = p["metadata"]["name"], _component(p)
        when = failed_at(p)
        if component != "locale":
            out.append(FailedPod(name, component, failure(p), False, False))
            continue
        # Could the server have listed it? Not when it failed before the server started.
        in_set = server is not None and started is not None and (when is None or when >= started)
        lost = in_set and (
            server_failed
            or (ready and (ready_since is None or when is None or ready_since <= when))
        )
        replaced = controlled(p) and covered
        replacement = None
        if replaced:
            # Named only when one live pod can be it: timestamps are whole seconds, and a
            # sibling made in the same second must not be named by mistake.
            made_after = [q for q in spare if _made_since(q, when)]
            if len(made_after) == 1:
                replacement = made_after[0]["metadata"]["name"]
                spare.remove(made_after[0])
        out.append(
            FailedPod(
                name,
                component,
                failure(p),
                replaced,
                lost,
                replacement,
                server_starting=in_set and not ready and not server_failed,
            )
        )
    return out
