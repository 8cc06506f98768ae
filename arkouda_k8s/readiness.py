"""Readiness: waiting for a deployment's pods, and saying why a wait cannot end.

Owns the staged waits (every locale pod Running, the server pod Ready, both in one
watch when they start together), the diagnosis of a pod that cannot progress
(Unschedulable, an image that cannot be pulled, a crash, OOM, a configuration error)
into a typed error with Kubernetes' reason, the log tails and events quoted in those
errors, the progress of image pulls (read and clocked by ``pull_clock``), and the
restart of a server that exited at its self-registration on a passing API error. It
reaches the cluster through ``kube.py``, knows the deployment by its spec and its
``Ownership``, and never imports the lifecycle (``cluster.py``) that holds it.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from . import failed_pods, manifests, teardown
from .credentials import redact, strip_control
from .errors import (
    CrashError,
    DeployError,
    ImagePullError,
    KubeError,
    StageTimeout,
    UnschedulableError,
)
from .failed_pods import FailedPod
from .inventory import (
    COMPONENT_LABEL,
    IMAGE_PULL_REASONS,
    _parse_time,
    _ready,
    _running_with_ip,
    _summarize,
    read_state,
)
from .kube import Kube, WatchDeadline
from .ownership import Ownership
from .pull_clock import PULL_TICK, PullClock, Ticker, pull_text, pulling
from .spec import ClusterSpec
from .stages import Report, Timeouts
from .status import ClusterStatus

CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
LOG_TAIL_LINES = 20
# Starts of a freshly created server that exited on a passing API error (5xx, 429,
# a dropped connection) during its self-registration.
SERVER_RESTARTS = 2
# Fetching a log tail or events to explain a failure must not hold up the error long.
DIAGNOSTIC_WINDOW = 5.0
# How long a Failed locale pod (evicted, ...) may wait for its ReplicaSet's replacement
# before it fails the deploy (a controller makes one within a second; a quota or an
# admission refusal never lets it).
REPLACEMENT_GRACE = 5.0


class Readiness:
    """The waits of one deployment, from its kube client, spec, timeouts and progress.

    >>> readiness = Readiness(kube, spec, Timeouts(), report, ownership)  # doctest: +SKIP
    >>> readiness.wait_locales(time.monotonic() + 600)                 # doctest: +SKIP
    >>> pod = readiness.wait_server(time.monotonic() + 300)            # doctest: +SKIP

    A pod that cannot progress ends a wait at once with its typed error; a wait that
    runs out of time raises ``StageTimeout`` with what the pods were waiting for. The
    state kept between waits: how long each pod has been Unschedulable (the grace of
    ``Timeouts.unschedulable`` spans waits), the pulls under way, and the server pod
    last seen Ready (``ready_server_pod``, the tunnel's first target).
    """

    def __init__(
        self,
        kube: Kube,
        spec: ClusterSpec,
        timeouts: Timeouts,
        progress: Report,
        ownership: Ownership,
        secrets: Callable[[], tuple[str, ...]] = tuple,
    ) -> None:
        self.kube = kube
        # replaced by the lifecycle when it attaches to a deployment's recorded spec
        self.spec = spec
        self.timeouts = timeouts
        self._progress = progress
        # whether this session created the deployment (a restart of its server is ours
        # to make), and which objects are its own
        self.ownership = ownership
        # the secrets in memory, masked in the log tails an error quotes
        self._secrets = secrets
        self.ready_server_pod: str | None = None
        self._unschedulable_since: dict[str, float] = {}
        self._pulls = PullClock()
        self._locale_said = ""
        # Failed locale pods without a replacement yet, since when (monotonic)
        self._awaiting_replacement: dict[str, float] = {}
        # Failed locale pods the progress has named (once each: the count alone would
        # just stall while a replacement starts)
        self._replacement_said: set[str] = set()

    @property
    def namespace(self) -> str:
        return self.spec.namespace or self.kube.namespace

    def take_ready_server_pod(self) -> str | None:
        """The server pod a wait last saw Ready, once (later dials look again)."""
        pod, self.ready_server_pod = self.ready_server_pod, None
        return pod

    @property
    def names(self) -> manifests.Names:
        return manifests.names(self.spec)

    def wait_locales(self, deadline: float, since: str | None = None) -> list[dict[str, Any]]:
        """Block until every locale pod is Running with an IP (watching, not polling;
        from resourceVersion ``since`` when no locale pod existed then)."""
        total = self.spec.locale_pods
        if total == 0:
            self._progress("locales", 0, 0, "no locale pods (single-pod deployment)")
            return []
        last: dict[str, Any] = {"n": -1, "pods": {}}
        check = self._locale_check(total, last)
        ticker = self._pull_ticker(last)
        try:
            return self.kube.wait_for(
                "Pod",
                check,
                self.namespace,
                label_selector=manifests.selector(self.spec, "locale"),
                deadline=deadline,
                recheck=self._recheck(),
                since=since,
            )
        except WatchDeadline:
            raise self._locales_timeout(last) from None
        finally:
            ticker.stop()

    def _locale_check(
        self, total: int, last: dict[str, Any]
    ) -> Callable[[dict[str, dict[str, Any]]], list[dict[str, Any]] | None]:
        """A check of the locale pods for Kube.wait_for: their running ones once all
        are, else None; a stuck pod raises its typed error; progress on every change."""
        # Every event re-checks the set; a pod is examined again only when it changed
        # (its resourceVersion), so 256 locales cost O(events), not O(events x pods).
        seen: dict[tuple[str, str], bool] = {}

        def examined(p: dict[str, Any]) -> bool:
            key = (p["metadata"]["name"], str(p["metadata"].get("resourceVersion")))
            if key not in seen or _unschedulable(p) is not None:  # that one depends on time
                # A Failed locale pod its ReplicaSet replaces is judged with the others
                # (self._replacements), not on its own.
                if not _replaceable(p):
                    self._raise_if_stuck(p, "locales")
                seen[key] = not p["metadata"].get("deletionTimestamp") and _running_with_ip(p)
            return seen[key]

        def check(pods: dict[str, dict[str, Any]]) -> list[dict[str, Any]] | None:
            running = [p for p in pods.values() if examined(p)]
            lost = self._replacements(pods.values(), total)
            last["pods"] = pods
            waiting = sum(1 for p in pods.values() if _unschedulable(p) is not None)
            # the server pod pulls too when it was created with the locales
            pulls = self._pulls.update(pulling((last.get("all") or pods).values()))
            key = (len(running), waiting, pulls.shape())
            if key != last.get("key"):
                last["key"] = key
                last["n"], last["waiting"] = len(running), waiting
                last["report"] = functools.partial(
                    self._locale_progress, len(running), total, waiting, pulls
                )
                last["report"]()
            # after the count (which the loss changed), so a bar or a label shows it
            # while the replacement starts
            for note in lost:
                self._progress("locales", len(running), total, note, note=True)
            if len(running) < total:
                return None
            self._pulls.update({})  # the ticker has nothing more to show
            return running

        return check

    def _pull_ticker(self, last: dict[str, Any]) -> Ticker:
        """Shows a pull's seconds going on (every PULL_TICK s) while the watch is quiet."""

        def tick() -> None:
            if self._pulls.images and "report" in last:
                last["report"](only_if_changed=True)

        ticker = Ticker(tick, PULL_TICK)
        ticker.start()
        return ticker

    def _locale_progress(
        self,
        running: int,
        total: int,
        waiting: int,
        pulls: PullClock,
        *,
        only_if_changed: bool = False,
    ) -> None:
        note = (
            f"; {waiting} unschedulable, waiting up to "
            f"{self.timeouts.unschedulable:g}s for capacity"
            if waiting
            else ""
        )
        text = pulls.text()
        message = f"locale pods {running}/{total} running{note}" + (f"; {text}" if text else "")
        if only_if_changed and message == self._locale_said:
            return
        self._locale_said = message
        self._progress("locales", running, total, message)

    def _locales_timeout(self, last: dict[str, Any]) -> StageTimeout:
        total = self.spec.locale_pods
        pods = list(last["pods"].values())
        return StageTimeout(
            f"locale pods {max(last['n'], 0)}/{total} running after "
            f"{self.timeouts.locales:.0f}s" + _pending_summary(pods),
            f"see `kubectl describe pods -n {self.namespace} -l "
            f"{manifests.selector(self.spec, 'locale')}`",
            stage="locales",
            reason="Timeout",
        )

    def wait_server(
        self,
        deadline: float,
        since: str | None = None,
        *,
        with_locales: bool = False,
    ) -> dict[str, Any]:
        """Block until the server pod is Ready; typed errors explain a stuck pod.
        ``since``: the resourceVersion of its creation (watched from there, no list).

        A server that exits at its self-registration (--registration server) on a passing
        API error is started again, at most SERVER_RESTARTS times; any other exit there is
        explained by its log line.

        ``with_locales``: the server pod was created with its locales and waits for them
        inside; the locale pods are watched too (same watch), each stuck one fails the
        wait with its own reason, and not all running by ``deadline`` is the locales'
        timeout. Returns the server pod once it is Ready or, not yet Ready, once every
        locale runs (the server stage's own deadline starts then).
        """
        restarts = 0
        while True:
            try:
                return self._wait_server_pod(deadline, since, with_locales)
            except CrashError as exc:
                exited = _registration_exit(exc.log_tail)
                if exited is None:
                    raise self._after_locale_loss(exc) from None
                line, tail = exited
                if not self._worth_a_restart(line, restarts, "server"):
                    raise self._registration_error(line, tail, "server") from None
                restarts += 1
                self._replace_server_pod(deadline)
                since = None

    def _after_locale_loss(self, exc: CrashError) -> CrashError:
        """A server that exited after a locale pod failed (one it may have started
        with): said so, since its own log only says that a locale's ssh ended."""
        if exc.pod != self.names.server_pod or not self.spec.locale_pods:
            return exc
        try:
            pods = self.kube.list(
                "Pod",
                self.namespace,
                label_selector=manifests.selector(self.spec),
                deadline=time.monotonic() + DIAGNOSTIC_WINDOW,
            )["items"]
        except KubeError:
            return exc
        lost = [
            f
            for f in failed_pods.judge(pods, self.spec.locale_pods)
            if f.component == "locale" and (f.lost_by_server or f.server_starting)
        ]
        if not lost:
            return exc
        return CrashError(
            f"{exc.message}, after locale pod {lost[-1].name} failed: {lost[-1].why}",
            exc.hint,
            stage=exc.stage,
            reason=exc.reason,
            pod=exc.pod,
            log_tail=exc.log_tail,
        )

    def _wait_server_pod(
        self, deadline: float, since: str | None, with_locales: bool = False
    ) -> dict[str, Any]:
        last: dict[str, Any] = {"pod": None, "phase": None}
        name = self.names.server_pod
        total = self.spec.locale_pods
        with_locales = with_locales and total > 0
        locale_last: dict[str, Any] = {"n": -1, "pods": {}}
        locale_check = self._locale_check(total, locale_last)
        # "ran": every locale pod ran; "ok": that, and the server pod seen then
        locales_done = {"ok": not with_locales, "ran": not with_locales}

        def check(pods: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
            pod = next((p for p in pods.values() if p["metadata"]["name"] == name), None)
            last["pod"] = pod
            if not locales_done["ok"]:
                locale_pods = {
                    k: p
                    for k, p in pods.items()
                    if (p["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == "locale"
                }
                locale_last["all"] = pods
                if locale_check(locale_pods) is not None:
                    locales_done["ran"] = True
                    # The locales may run before the server pod's creation reaches this
                    # watch (a loaded machine): the hand-over waits for it, or the server
                    # stage would keep the locales' deadline instead of its own.
                    if pod is not None:
                        locales_done["ok"] = True
                        if not _ready(pod):
                            self._raise_if_stuck(pod, "server")
                            return pod  # the server stage goes on with its own deadline
            if pod is None:
                return None
            self._raise_if_stuck(pod, "server")
            status = pod.get("status") or {}
            phase = status.get("phase")
            if phase == "Succeeded":
                raise CrashError(
                    f"server pod {name} exited (phase Succeeded) before it was ready",
                    "see `arkouda-k8s logs " + self.spec.name + "`",
                    stage="server",
                    reason="Completed",
                    pod=name,
                    log_tail=self.log_tail(name, "arkouda-server"),
                )
            if phase != last["phase"]:
                last["phase"] = phase
                self._progress("server", 0, 1, f"server pod {phase or 'pending'}")
            if _ready(pod):
                self._progress("server", 1, 1, "server pod ready")
                self.ready_server_pod = name
                return pod
            return None

        recheck = self._recheck()
        ticker = self._pull_ticker(locale_last)
        try:
            return self.kube.wait_for(
                "Pod",
                check,
                self.namespace,
                # with the locales: every pod of the instance, in one watch
                label_selector=manifests.selector(self.spec) if with_locales else None,
                field_selector=None if with_locales else f"metadata.name={name}",
                deadline=deadline,
                recheck=recheck,
                since=since,
            )
        except WatchDeadline:
            if not locales_done["ran"]:
                raise self._locales_timeout(locale_last) from None
            pod = last["pod"]
            if pod is None:
                raise StageTimeout(
                    f"server pod {name} does not exist",
                    f"deploy again, or remove the remains with `arkouda-k8s teardown {self.spec.name}`",
                    stage="server",
                    reason="Missing",
                    pod=name,
                ) from None
            phase = (pod.get("status") or {}).get("phase") or "Pending"
            why = self._events_text(name)
            tail = self.log_tail(name, "arkouda-server") if phase == "Running" else None
            raise StageTimeout(
                f"server pod {name} is {phase} but not Ready after "
                f"{self.timeouts.server:.0f}s" + (f": {why}" if why else ""),
                f"see `arkouda-k8s logs {self.spec.name}` and `kubectl describe pod {name} -n "
                f"{self.namespace}`",
                stage="server",
                reason="NotReady",
                pod=name,
                log_tail=tail,
            ) from None
        finally:
            ticker.stop()

    def _recheck(self) -> Callable[[], float | None]:
        """How often a wait re-examines unchanged pods, asked again at each watch: the
        Unschedulable grace depends on time, and so does the wait for a Failed locale
        pod's replacement (which may never come: no event would say so)."""
        grace = self.timeouts.unschedulable
        every = max(0.5, grace / 4) if grace > 0 else None

        def interval() -> float | None:
            if self._awaiting_replacement:
                return min(every or REPLACEMENT_GRACE, REPLACEMENT_GRACE / 4)
            return every

        return interval

    def _replacements(self, locale_pods: Iterable[dict[str, Any]], total: int) -> list[str]:
        """Failed locale pods (evicted, ...) while the deployment starts: one that its
        ReplicaSet replaced does not stop the wait (the server's launch script lists
        Ready pods only, so it starts with the replacement); one with no replacement after
        REPLACEMENT_GRACE s fails the wait with the pod's reason. Returns the progress
        notes to give: one for each such pod not named before."""
        pods = list(locale_pods)
        live = sum(1 for p in pods if failed_pods.live(p))
        now = time.monotonic()
        waiting = set()
        notes = []
        for p in pods:
            if not _replaceable(p):
                continue
            name = p["metadata"]["name"]
            if name not in self._replacement_said:
                self._replacement_said.add(name)
                notes.append(_replacement_note(p))
            if live >= total:
                self._awaiting_replacement.pop(name, None)
                continue
            waiting.add(name)
            first = self._awaiting_replacement.setdefault(name, now)
            if now - first >= REPLACEMENT_GRACE:
                raise self._not_replaced(p, live, total)
        for name in set(self._awaiting_replacement) - waiting:
            del self._awaiting_replacement[name]
        return notes

    def _not_replaced(self, pod: dict[str, Any], live: int, total: int) -> CrashError:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        owner: dict[str, Any] = next(
            (r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), {}
        )
        kind, owner_name = owner.get("kind") or "ReplicaSet", owner.get("name") or "?"
        why = self._events_text(owner_name, "FailedCreate", kind=kind)
        return CrashError(
            f"pod {name} failed: {failed_pods.failure(pod)}; not replaced after "
            f"{REPLACEMENT_GRACE:.0f}s ({live}/{total} locale pods left)"
            + (f": {kind} {owner_name}: {why}" if why else ""),
            f"see `kubectl describe {kind.lower()} {owner_name} -n {self.namespace}`",
            stage="locales",
            reason=status.get("reason") or "Failed",
            pod=name,
        )

    def _raise_if_stuck(self, pod: dict[str, Any], stage: str) -> None:
        """Turn a pod that cannot progress into its typed error (Kubernetes' reason)."""
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        cond = _unschedulable(pod)
        if cond is not None:
            msg = cond.get("message") or self._events_text(name, "FailedScheduling")
            grace = self.timeouts.unschedulable
            first = self._unschedulable_since.setdefault(name, time.monotonic())
            waited = time.monotonic() - first
            if waited >= grace:
                raise UnschedulableError(
                    f"pod {name} cannot be scheduled"
                    # the wait the user gave, as the progress said it: the measured one
                    # is later by however long the next look took (a loaded machine: 4 s
                    # for a 3 s wait)
                    + (f" (for {grace:g}s)" if grace else "")
                    + f": {msg or 'no node fits'}",
                    _unschedulable_hint(self.spec, msg or ""),
                    stage=stage,
                    reason="Unschedulable",
                    pod=name,
                )
        if status.get("phase") == "Failed" and status.get("reason"):
            # The kubelet ended the pod (Evicted under node pressure, a node shutdown):
            # its reason is the cause, not the exit code 137 of the containers it killed.
            raise CrashError(
                f"pod {name} failed: {failed_pods.failure(pod)}",
                f"see `kubectl describe pod {name} -n {self.namespace}`",
                stage=stage,
                reason=status["reason"],
                pod=name,
                log_tail=self.log_tail(name, None),
            )
        inits = status.get("initContainerStatuses") or []
        for cs in inits + (status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            terminated = state.get("terminated") or {}
            if cs in inits and terminated.get("exitCode") == 0:
                continue  # an init container that did its work (persistence-owner)
            last_term = (cs.get("lastState") or {}).get("terminated") or {}
            reason = waiting.get("reason") or ""
            image = cs.get("image") or "?"
            if reason in IMAGE_PULL_REASONS:
                raise ImagePullError(
                    f"pod {name} cannot pull image {image}: {reason}"
                    + (f": {waiting['message']}" if waiting.get("message") else ""),
                    "check --release / --image-repository and the image pull secrets "
                    "(imagePullSecrets) of the namespace",
                    stage=stage,
                    reason=reason,
                    pod=name,
                )
            oom = "OOMKilled" in (terminated.get("reason"), last_term.get("reason"))
            # restartPolicy Never: a terminated container stays so, even while another
            # (the metrics exporter) keeps the pod Running.
            final = (
                status.get("phase") == "Failed"
                or (pod.get("spec") or {}).get("restartPolicy") == "Never"
            )
            crashed = reason == "CrashLoopBackOff" or bool(terminated and final)
            if oom or crashed:
                why = "OOMKilled" if oom else (reason or terminated.get("reason") or "Error")
                code = terminated.get("exitCode", last_term.get("exitCode"))
                tail = self.log_tail(name, cs.get("name"))
                hint = (
                    f"the container used more than its memory limit {self.spec.memory}; give "
                    "it more memory (--memory) or lower mem_max"
                    if oom
                    else f"see `arkouda-k8s logs {self.spec.name}`"
                )
                raise CrashError(
                    f"pod {name} container {cs.get('name')} {why}"
                    + (f" (exit code {code})" if code is not None else "")
                    + (f"; last log lines: {_last_lines(tail, 3)}" if tail else ""),
                    hint,
                    stage=stage,
                    reason=why,
                    pod=name,
                    log_tail=tail,
                )
            if reason in CONFIG_REASONS:
                raise DeployError(
                    f"pod {name} container {cs.get('name')} cannot start: {reason}: "
                    f"{waiting.get('message', '')}",
                    f"see `kubectl describe pod {name} -n {self.namespace}`",
                    stage=stage,
                    reason=reason,
                    pod=name,
                )
        if status.get("phase") == "Failed":
            raise CrashError(
                f"pod {name} failed: {status.get('reason') or ''} {status.get('message') or ''}".strip(),
                f"see `kubectl describe pod {name} -n {self.namespace}`",
                stage=stage,
                reason=status.get("reason") or "Failed",
                pod=name,
                log_tail=self.log_tail(name, None),
            )

    def log_tail(self, pod: str, container: str | None) -> str | None:
        for previous in (True, False):
            try:
                text = self.kube.logs(
                    pod,
                    self.namespace,
                    container=container,
                    tail=LOG_TAIL_LINES,
                    previous=previous,
                    deadline=time.monotonic() + DIAGNOSTIC_WINDOW,
                )
            except KubeError:
                continue
            if text.strip():
                # shown in errors on terminals: no escape sequence of the pod's
                return strip_control(redact(text, self._secrets()))
        return None

    def _events_text(self, obj_name: str, reason: str | None = None, *, kind: str = "Pod") -> str:
        try:
            events = self.kube.events(
                kind, obj_name, self.namespace, deadline=time.monotonic() + DIAGNOSTIC_WINDOW
            )
        except KubeError:
            return ""
        if reason:
            events = [e for e in events if e.get("reason") == reason]
        warn = [e for e in events if e.get("type") == "Warning"] or events
        if not warn:
            return ""
        e = warn[-1]
        return strip_control(f"{e.get('reason', '')}: {e.get('message', '')}".strip(": "))

    def restart_if_exited_at_registration(self, restarts: int, deadline: float) -> bool:
        """When the server pod's log says it exited at its self-registration: start it
        again and wait until it is Ready (True), or raise why it exited when another start
        would not help (a refusal). False: its log says no such thing. ``restarts``: how
        many times the caller restarted it already."""
        exited = _registration_exit(self.log_tail(self.names.server_pod, "arkouda-server"))
        if exited is None:
            return False
        line, tail = exited
        if not self._worth_a_restart(line, restarts, "handshake"):
            raise self._registration_error(line, tail, "handshake") from None
        self.restart_server(deadline)
        return True

    def _worth_a_restart(self, line: str, restarts: int, stage: str) -> bool:
        """A server we just created that met a passing API error is worth one more start;
        a refusal (409, 403) is not."""
        if not (self.ownership.created and restarts < SERVER_RESTARTS and _passing_failure(line)):
            return False
        self._progress(
            stage,
            0,
            1,
            f"the server exited on a passing API error; restarting it "
            f"({restarts + 1}/{SERVER_RESTARTS})",
        )
        return True

    def _registration_error(self, line: str, tail: str | None, stage: str) -> DeployError:
        return DeployError(
            f"the Arkouda server of {self.spec.name} exited at start: {line}",
            f"the server exits when it cannot register its Service "
            f"{self.names.self_service}: one left from an earlier run (teardown and deploy "
            f"again) or RBAC missing for its certificate user {self.names.user}; the default "
            "--registration client needs neither",
            stage=stage,
            reason="ExternalSystemError",
            pod=self.names.server_pod,
            log_tail=tail,
        )

    def restart_server(self, deadline: float) -> None:
        """Replace the server pod (same name) and wait for it to be Ready."""
        self._replace_server_pod(deadline)
        self.wait_server(deadline)

    def _replace_server_pod(self, deadline: float) -> None:
        """Delete the server pod, clear what it registered, create it again."""
        name = self.names.server_pod
        pod = self.kube.get("Pod", name, self.namespace, deadline=deadline)
        if pod is not None and self.ownership.owns(pod):
            self.kube.delete(
                "Pod", name, self.namespace, uid=pod["metadata"]["uid"], deadline=deadline
            )
        self.kube.wait_gone(
            "Pod", self.namespace, field_selector=f"metadata.name={name}", deadline=deadline
        )
        teardown.remove_self_registered(self.ownership, deadline, self._progress)
        self.ownership.create_owned(manifests.server_pod(self.spec), deadline)


# -- helpers -----------------------------------------------------------------------------


def _registration_exit(tail: str | None) -> tuple[str, str | None] | None:
    """(the log line, the log tail) when the server exited at its self-registration
    (its ExternalSystemError escapes main; the log is the only place that says why)."""
    lines = [ln.strip() for ln in (tail or "").splitlines() if "ExternalSystemError" in ln]
    return (lines[-1], tail) if lines else None


def _replaceable(pod: dict[str, Any]) -> bool:
    """A Failed locale pod that its controller replaces (the server pod is bare: never)."""
    return (
        (pod.get("status") or {}).get("phase") == "Failed"
        and (pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == "locale"
        and failed_pods.controlled(pod)
    )


def _replacement_note(pod: dict[str, Any]) -> str:
    """The progress line of a Failed locale pod its ReplicaSet replaces: "locale pod P
    evicted (The node was low on resource: memory.); waiting for its replacement"."""
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        what = "evicted" + (f" ({status['message'].strip()})" if status.get("message") else "")
    else:
        what = f"failed ({failed_pods.failure(pod)})"
    # the message is the node's text: shown on a terminal, so without control characters
    return strip_control(
        f"locale pod {pod['metadata']['name']} {what}; waiting for its replacement"
    )


def _unschedulable(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The PodScheduled=False/Unschedulable condition, if the pod has it."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return dict(cond)
    return None


def _unschedulable_hint(spec: ClusterSpec, message: str) -> str:
    if "anti-affinity" in message and spec.spread == "required":
        return (
            f"--spread required puts each of the {spec.locales} locales on its own node: add "
            "nodes, use fewer locales, or --spread preferred (locales share nodes when "
            "there are too few)"
        )
    return (
        f"use fewer locales or less cpu/memory (each pod asks {spec.cpu} cpu, "
        f"{spec.memory}), or add nodes"
    )


def _passing_failure(line: str) -> bool:
    """Does an exit line name an API error that may not happen again?"""
    return bool(re.search(r"HTTP (5\d\d|429)\b", line)) or " failed: " in line


def _pending_summary(pods: list[dict[str, Any]]) -> str:
    waiting: dict[str, int] = {}
    for p in pods:
        status = p.get("status") or {}
        if status.get("phase") == "Running":
            continue
        reason = status.get("phase") or "Pending"
        for cs in status.get("containerStatuses") or []:
            r = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
            if r:
                reason = r
        waiting[reason] = waiting.get(reason, 0) + 1
    if not waiting:
        return ""
    return " (" + ", ".join(f"{n} {r}" for r, n in sorted(waiting.items())) + ")"


def status_message(pods: list[dict[str, Any]], failures: Iterable[FailedPod] = ()) -> str:
    """What a deployment's pods are waiting for, in one line (status shows it);
    ``failures``: its Failed pods as ``failed_pods.judge`` sees them."""
    # A pod the node ended (Evicted under memory or disk pressure, ...) is why the
    # deployment failed, unless its ReplicaSet replaced it before the server started its
    # locales (then it is a warning, and the live pods say the rest).
    for f in failures:
        if f.counts:
            return f.message()
    # the rest speak of the live pods only
    pods = [p for p in pods if (p.get("status") or {}).get("phase") != "Failed"]
    # a pod that cannot progress says more than the others' pulls
    for p in pods:
        status = p.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("reason") == "Unschedulable":
                return f"{p['metadata']['name']}: Unschedulable: {cond.get('message', '')}"
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] != "ContainerCreating":
                return f"{p['metadata']['name']}: {waiting['reason']}"
            if (cs.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled":
                return f"{p['metadata']['name']}: OOMKilled"
    images = pulling(pods)
    if not images:
        return ""
    now = datetime.now(UTC)
    seconds = {}
    for image, nodes in images.items():
        started = [t for t in map(_parse_time, nodes.values()) if t is not None]
        if started:
            seconds[image] = max(0.0, (now - min(started)).total_seconds())
    return pull_text(images, seconds)


def _last_lines(text: str | None, n: int) -> str:
    if not text:
        return ""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def deployment_status(
    kube: Kube,
    spec: ClusterSpec,
    pods: list[dict[str, Any]],
    server: dict[str, Any] | None,
    *,
    address: tuple[str, int] | None,
    tunnel_state: str | None,
    version: str | None,
    numbers: Callable[[], tuple[int | None, str | None]] | None,
    warnings: tuple[str, ...] = (),
) -> ClusterStatus:
    """The ``ClusterStatus`` of ``spec``'s deployment from its ``pods`` and state
    ConfigMap; ``numbers`` (memory in use, version) is asked of the server through the
    tunnel at ``address`` when the deployment is Ready (None: not asked)."""
    name, namespace = spec.name, spec.namespace or kube.namespace
    info = _summarize(name, namespace, pods, read_state(kube, name, namespace), spec)
    memory_used = None
    if numbers is not None and address is not None and info.stage == "Ready":
        memory_used, version = numbers()
    stage, message = info.stage, status_message(pods, info.failures)
    # replaced locale pods: the stage is the live pods'; the user still hears of the loss
    warnings = (*warnings, *(f.warning() for f in info.failures if not f.counts))
    if server is None and address is not None and stage in ("Pending", "Locales"):
        # This session saw the server answer: its pod was deleted, not yet to start
        # (a bare pod is never recreated; calling it Pending hid the loss).
        stage = "Failed"
        message = (
            f"{manifests.names(spec).server_pod}: deleted (the server and its arrays are "
            f"gone; `arkouda-k8s teardown {name}`, then deploy again)"
        )
    return ClusterStatus(
        name=name,
        namespace=namespace,
        context=kube.context,
        stage=stage,
        locales_ready=info.locales_ready,
        locales_total=info.locales_total,
        server_phase=((server or {}).get("status") or {}).get("phase"),
        server_ready=bool(server and _ready(server)),
        address=address,
        tunnel_state=tunnel_state,
        memory_used=memory_used,
        memory_max=spec.effective_mem_max * spec.locales,
        arkouda_version=version,
        age=info.age,
        expires_at=info.expires_at,
        message=message,
        heartbeat_expired=info.heartbeat_expired,
        locales=spec.locales,
        mode=spec.mode,
        warnings=warnings,
    )
