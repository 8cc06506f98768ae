"""The logs of one deployment's pods: which pods (the server's, every locale pod's, or
the pod that runs one Arkouda locale), read at once (tail, since, previous container)
or followed as they are written, and always masked (``credentials.redact`` and the
deployment's own secrets) before any front end sees a byte of them.

>>> logs = PodLogs(kube, spec, "default", secrets=(token,))      # doctest: +SKIP
>>> print(logs.read("locale", tail=20))                          # doctest: +SKIP
>>> for line in logs.follow("server"):                           # doctest: +SKIP
...     print(line)
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Generator
from typing import Any

from . import manifests
from .credentials import LineRedactor, redact
from .errors import ClusterNotFound, UsageError
from .kube import Kube, log_lines
from .spec import ClusterSpec

CONTAINERS = {"server": "arkouda-server", "locale": "arkouda-locale"}


class PodLogs:
    """The pods' logs of the deployment of ``spec`` in ``namespace``, with ``secrets``
    (exact strings, such as the server token) masked besides tokens and PEM blocks."""

    def __init__(
        self, kube: Kube, spec: ClusterSpec, namespace: str, secrets: tuple[str, ...] = ()
    ) -> None:
        self.kube = kube
        self.spec = spec
        self.namespace = namespace
        self.secrets = secrets

    def pods(self, component: str, locale: int | None = None) -> list[tuple[str, str]]:
        """(pod, container) to read: the component's pods by name, or the one pod that
        runs Arkouda locale ``locale``."""
        if component not in CONTAINERS:
            raise UsageError(f"component: {component!r}", "use server or locale")
        if locale is not None:
            return [self.locale_pod(locale)]
        pods = self._list(component)
        if not pods:
            raise ClusterNotFound(
                f"no {component} pod of {self.spec.name} in namespace {self.namespace}",
                f"check `arkouda-k8s status {self.spec.name}`",
            )
        names = sorted(p["metadata"]["name"] for p in pods)
        return [(n, CONTAINERS[component]) for n in names]

    def locale_pod(self, locale: int) -> tuple[str, str]:
        """(pod, container) of Arkouda locale ``locale``, numbered as the launch script
        hands the hosts to the launcher: 0 is the server pod, then the locale pods by IP
        (smp: every locale runs in the server pod)."""
        spec = self.spec
        if not 0 <= locale < spec.locales:
            raise UsageError(
                f"--locale: {locale} is not a locale of {spec.name}",
                f"give 0 (the server pod) to {spec.locales - 1}",
            )
        if locale == 0 or spec.mode == "smp":
            return manifests.names(spec).server_pod, CONTAINERS["server"]
        live = [p for p in self._list("locale") if not p["metadata"].get("deletionTimestamp")]
        live.sort(
            key=lambda p: ((p.get("status") or {}).get("podIP") or "~", p["metadata"]["name"])
        )
        if locale > len(live):
            raise ClusterNotFound(
                f"locale {locale} of {spec.name} has no pod yet ({len(live)} locale pods)",
                f"check `arkouda-k8s status {spec.name}`",
            )
        return live[locale - 1]["metadata"]["name"], CONTAINERS["locale"]

    def read(
        self,
        component: str = "server",
        tail: int | None = None,
        *,
        since: int | None = None,
        timestamps: bool = False,
        previous: bool = False,
        locale: int | None = None,
    ) -> str:
        """The logs as they are now, masked; several pods each under an ``==> pod <==``
        head line."""
        pods = self.pods(component, locale)
        parts = []
        for pod, container in pods:
            text = self.kube.logs(
                pod,
                self.namespace,
                container=container,
                tail=tail,
                previous=previous,
                since_seconds=since,
                timestamps=timestamps,
            )
            parts.append(text if len(pods) == 1 else f"==> {pod} <==\n{text}")
        return redact("\n".join(parts), self.secrets)

    def follow(
        self,
        component: str = "server",
        tail: int | None = None,
        *,
        since: int | None = None,
        timestamps: bool = False,
        locale: int | None = None,
    ) -> Generator[str, None, None]:
        """Masked lines as they are written, until every followed container ends or its
        pod is deleted; closing the generator stops early. Several pods: each line
        starts with ``[pod] ``."""
        pods = self.pods(component, locale)
        lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        streams: list[Any] = []
        stop = threading.Event()

        def read(pod: str, resp: Any) -> None:
            try:
                for line in log_lines(resp):
                    if stop.is_set():
                        break
                    lines.put((pod, line))
            finally:
                lines.put((pod, None))

        try:
            for pod, container in pods:
                streams.append(
                    self.kube.follow_logs(
                        pod,
                        self.namespace,
                        container=container,
                        tail=tail,
                        since_seconds=since,
                        timestamps=timestamps,
                    )
                )
            for (pod, _), resp in zip(pods, streams, strict=True):
                threading.Thread(
                    target=read, args=(pod, resp), name=f"logs {pod}", daemon=True
                ).start()
            # one per pod: a PEM block spans lines of one stream, not of the merged lines
            maskers = {pod: LineRedactor(self.secrets) for pod, _ in pods}
            open_streams = len(pods)
            while open_streams:
                pod, line = lines.get()
                if line is None:
                    open_streams -= 1
                    continue
                shown = maskers[pod](line)
                if shown is not None:
                    yield shown if len(pods) == 1 else f"[{pod}] {shown}"
        finally:
            stop.set()
            for resp in streams:
                _close_stream(resp)

    def _list(self, component: str) -> list[dict[str, Any]]:
        selector = manifests.selector(self.spec, component)
        return list(self.kube.list("Pod", self.namespace, label_selector=selector)["items"])


def _close_stream(resp: Any) -> None:
    """End a streaming response now, also for the thread blocked reading it: shut the
    socket down (a plain close does not wake a blocked recv)."""
    with contextlib.suppress(Exception):
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        resp.close()
