"""Watching the Kubernetes API: a watch stream re-opened until a deadline, the
list-then-watch wait that every readiness check is built on, and the line readers of
streamed responses (watch events, followed logs).

The functions take the ``Kube`` whose requests they send as their first argument:
``Kube`` holds them as its ``watch`` and ``wait_for`` methods.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .kube_kinds import kind_of

if TYPE_CHECKING:
    from .kube import Kube

log = logging.getLogger(__name__)

# A watch is re-opened at least this often, so a silent stream cannot hang a wait.
WATCH_CHUNK = 60.0

T = TypeVar("T")


class WatchDeadline(Exception):
    """Internal: a wait ran out of time; the caller turns it into its own error."""


class StreamBroken(Exception):
    """A streamed response ended mid-way: reset, timed out, or closed under its reader."""


def lines(resp: Any) -> Iterator[bytes]:
    """Lines (without the newline) of a streaming urllib3 response as they arrive, the
    last one even without a newline; StreamBroken when the stream breaks or is closed
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
        raise StreamBroken(str(exc)) from None
    if buf:
        yield buf


def json_lines(resp: Any) -> Iterator[dict[str, Any]]:
    """JSON objects, one per line, from a streaming urllib3 response."""
    for line in lines(resp):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise StreamBroken(str(exc)) from None


def log_lines(resp: Any) -> Iterator[str]:
    """Lines (without their newline) of a followed log, as they arrive; a last line
    without a newline is given when the stream ends. Ends quietly when the stream is
    closed from another thread (the reader stopped following)."""
    try:
        for line in lines(resp):
            yield line.decode("utf-8", "replace")
    except StreamBroken as exc:
        # a reset, or the reader closed it: the log ends here either way
        log.debug("followed log ended: %s", exc)
    finally:
        resp.release_conn()


def object_key(obj: dict[str, Any]) -> str:
    """namespace/name (name alone for cluster-scoped objects): how a wait indexes objects."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def watch(
    kube: Kube,
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
    ns = None if all_namespaces else kube.namespace_of(k, namespace)
    rv = resource_version
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        chunk = max(1, int(min(left, WATCH_CHUNK)) + 1)
        resp = kube.request(
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
            for event in json_lines(resp):
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
        except StreamBroken as exc:
            # a read timeout at the deadline, or a dropped stream: re-open or stop
            log.debug("watch of %s ended early: %s", k.plural, exc)
        finally:
            if not complete:
                # Unread watch data must not reach the next request on this
                # connection: close it instead of returning it to the pool.
                resp.close()
            resp.release_conn()


def wait_for(
    kube: Kube,
    kind: str,
    check: Callable[[dict[str, dict[str, Any]]], T | None],
    namespace: str | None = None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
    deadline: float,
    all_namespaces: bool = False,
    recheck: float | Callable[[], float | None] | None = None,
    since: str | None = None,
) -> T:
    """List, then watch, calling ``check(objects by key)`` after every change.

    Returns the first non-None result of ``check``; exceptions from ``check`` (the
    caller's typed errors) propagate. ``recheck``: also call it every so many seconds
    without a change (for conditions that depend on time; a callable is asked before
    each watch, so a check can ask for rechecks only while it needs them). Raises WatchDeadline at
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
            listed = kube.list(
                kind,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                all_namespaces=all_namespaces,
                deadline=deadline,
            )
            objs = {object_key(o): o for o in listed["items"]}
            rv = listed.get("metadata", {}).get("resourceVersion")
        result = check(objs)
        if result is not None:
            return result
        expired = False
        while not expired:
            now = time.monotonic()
            if now >= deadline:
                raise WatchDeadline(kind)
            every = recheck() if callable(recheck) else recheck
            until = deadline if every is None else min(deadline, now + every)
            for etype, obj in watch(
                kube,
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
                    objs.pop(object_key(obj), None)
                else:
                    objs[object_key(obj)] = obj
                result = check(objs)
                if result is not None:
                    return result
                if callable(recheck):
                    sooner = recheck()
                    if sooner is not None and (every is None or sooner < every):
                        break  # the check now depends on time: watch again, with rechecks
            if every is not None and not expired:
                result = check(objs)
                if result is not None:
                    return result
