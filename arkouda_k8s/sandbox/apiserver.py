"""The sandbox's HTTP API: the Kubernetes REST surface over the in-memory store.

One aiohttp handler takes every request through the real API server's pipeline:
parse the path (``/api/v1/namespaces/{ns}/pods/{name}/{sub}``, ``/apis/{g}/{v}/...``),
authenticate (bearer token or verified client certificate), apply injected faults,
authorize with RBAC, decode and validate the body, then get / list / watch / create /
update / patch / apply / delete. Failures are ``Status`` objects with the real codes
and wording; no input makes the server answer 500 or hang. Discovery, ``/version``
and a minimal ``/openapi/v3`` are served so kubectl works unmodified.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import inspect
import ipaddress
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import yaml
from aiohttp import web

from . import merge, protobuf, quota, remotecommand, tables, validation
from .auth import (
    ANONYMOUS_USER,
    CLIENT_SIGNER,
    Attributes,
    CertificateExpired,
    UserInfo,
    aggregate,
    authorize,
    escalation_refusal,
    forbidden_message,
    rules_review,
)
from .primitives import qos_class
from .resources import (
    BY_GVR,
    BY_KEY,
    RESOURCES,
    VIRTUAL,
    Resource,
    api_resource_list,
    group_versions,
    openapi_v3_document,
    openapi_v3_root,
)
from .store import (
    ApiError,
    bad_request,
    match_fields,
    match_labels,
    now_rfc3339,
    parse_field_selector,
    parse_label_selector,
)

if TYPE_CHECKING:
    from . import Sandbox

log = logging.getLogger(__name__)

# The real API server refuses request bodies over 3 MiB.
MAX_BODY = 3 * 1024 * 1024
# Real watches end after 30-60 minutes; clients re-establish them.
DEFAULT_WATCH_SECONDS = 1800
BOOKMARK_EVERY = 10.0
# A client that announces a body and stalls is cut off (the real server's request timeout).
BODY_TIMEOUT = 30.0
KUBE_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0+arkouda-k8s-sandbox"}

_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Gone",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_error(code: int, message: str, reason: str | None = None) -> ApiError:
    return ApiError(code, reason or _STATUS_REASONS.get(code, "Unknown"), message)


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(obj, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def status_response(err: ApiError) -> web.Response:
    return _json(err.to_status(), status=err.status)


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def _forbidden_create(
    resource: str, obj: dict[str, Any], reason: str, kind: str | None = None
) -> ApiError:
    """403 for a create that admission refuses: ``<resource> "<name>" is forbidden: ...``
    (the name is the generateName prefix when there is no name yet); details with kind."""
    name = obj["metadata"].get("name") or obj["metadata"].get("generateName", "")
    details = {"name": name, "kind": kind} if kind else None
    return ApiError(403, "Forbidden", f'{resource} "{name}" is forbidden: {reason}', details)


@dataclass
class Route:
    """A parsed resource path."""

    res: Resource
    namespace: str = ""
    name: str = ""
    sub: str = ""
    legacy_watch: bool = False


class ApiServer:
    """The request pipeline; ``app()`` builds the aiohttp application."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.store = sandbox.store
        self._watch_queues: set[asyncio.Queue[Any]] = set()
        self._log_streams: set[web.StreamResponse] = set()
        self._stopping = False
        self._cluster_ip = 10
        self._quota_dirty: set[str] = set()
        self._node_port = 30000

    # -- application -------------------------------------------------------------------

    def app(self) -> web.Application:
        # client_max_size above MAX_BODY so that we, not aiohttp, word the 413
        app = web.Application(client_max_size=MAX_BODY + 1024 * 1024, handler_args={})
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def shutdown(self) -> None:
        """End every watch and log stream now (the server is stopping)."""
        self._stopping = True
        for q in list(self._watch_queues):
            q.put_nowait(None)

    def resume(self) -> None:
        """Serve watches and log streams again (a restart: Faults.restart_api)."""
        self._stopping = False

    # -- pipeline ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.sb.api_latency:
            await asyncio.sleep(self.sb.api_latency)  # the simulated round trip, not a wait
        reset = self.sb.faults.take_reset(request.path)
        if reset == "before" and request.transport is not None:
            # the request never reaches the server: the client sees its connection reset
            request.transport.abort()
            raise ConnectionResetError("sandbox fault injection: connection reset")
        try:
            response = await self._handle(request)
            if reset == "after" and request.transport is not None:
                # done on the server, answer lost on the way: a retried create finds it
                request.transport.abort()
                raise ConnectionResetError("sandbox fault injection: answer lost")
            return response
        except ApiError as err:
            return status_response(err)
        except web.HTTPException:
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # a bug must still answer like an API server
            log.exception("sandbox API: internal error on %s %s", request.method, request.path)
            return status_response(status_error(500, f"sandbox internal error: {exc}"))

    def _user(self, request: web.Request) -> UserInfo:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise status_error(401, "Unauthorized")
            user = self.sb.authenticator.from_token(token.strip())
            if user is None:
                raise status_error(401, "Unauthorized")
            return user
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        try:
            user = self.sb.authenticator.from_peercert(peercert)
        except CertificateExpired:
            # kube-apiserver: "x509: certificate has expired or is not yet valid" -> 401
            raise status_error(401, "Unauthorized") from None
        return user or ANONYMOUS_USER

    def _impersonate(self, request: web.Request, user: UserInfo) -> UserInfo:
        """``Impersonate-User`` / ``-Group`` (kubectl --as/--as-group), RBAC-checked."""
        name = request.headers.get("Impersonate-User")
        groups = request.headers.getall("Impersonate-Group", [])
        if not name:
            if groups:
                raise bad_request("requested impersonation of groups without a user")
            return user
        checks = [Attributes(verb="impersonate", resource="users", name=name)]
        if name.startswith("system:serviceaccount:"):
            _, _, ns, sa = (name.split(":") + ["", "", "", ""])[:4]
            checks = [
                Attributes(verb="impersonate", resource="serviceaccounts", namespace=ns, name=sa)
            ]
        checks += [Attributes(verb="impersonate", resource="groups", name=g) for g in groups]
        for attrs in checks:
            if not authorize(self.store, user, attrs):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{attrs.resource} "{attrs.name}" is forbidden: User "{user.name}" cannot '
                    f'impersonate resource "{attrs.resource}" in API group "" at the cluster scope',
                )
        all_groups = tuple(dict.fromkeys([*groups, "system:authenticated"]))
        return UserInfo(name, all_groups)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # split before decoding: an escaped "/" belongs to a name, not to the path
        parts = [unquote(p) for p in request.rel_url.raw_path.split("/") if p]
        user = self._impersonate(request, self._user(request))
        if not parts or parts[0] not in ("api", "apis"):
            return self._non_resource(request, parts, user)
        route, doc = self._route(parts)
        if route is None:
            self._require_path(user, "get", request.path, request.method)
            self.sb.stats.count("discovery")
            if doc is None:
                raise _not_found_path()
            return _json(doc)
        verb = self._verb(request, route)
        self.sb.stats.count(verb)
        self.sb.faults.check_fail()
        attrs = Attributes(
            verb=verb,
            resource=route.res.plural,
            group=route.res.group,
            subresource=route.sub,
            namespace=route.namespace or (route.name if route.res.plural == "namespaces" else ""),
            name=route.name,
        )
        self._authorize(user, attrs, route, request)
        return await self._dispatch(request, route, verb, user)

    def _non_resource(self, request: web.Request, parts: list[str], user: UserInfo) -> web.Response:
        path = request.path
        self.sb.stats.count("discovery")
        if request.method not in ("GET", "HEAD"):
            raise _method_not_allowed()
        self._require_path(user, "get", path, request.method)
        if parts == ["version"]:
            return _json(
                {
                    **KUBE_VERSION,
                    "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.23.0",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            )
        if parts and parts[0] in ("healthz", "livez", "readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if parts == ["openapi", "v3"]:
            return _json(openapi_v3_root())
        if len(parts) > 2 and parts[:2] == ["openapi", "v3"]:
            body = _openapi_v3_body("/".join(parts[2:]))
            if body is None:
                raise _not_found_path()
            return web.Response(body=body, content_type="application/json")
        raise _not_found_path()

    def _require_path(self, user: UserInfo, verb: str, path: str, method: str) -> None:
        attrs = Attributes(verb=verb, path=path)
        if not authorize(self.store, user, attrs):
            raise status_error(403, forbidden_message(user, attrs))

    def _route(self, parts: list[str]) -> tuple[Route | None, Any]:
        """(a resource route, None) or (None, the discovery document or None = 404)."""
        if parts[0] == "api":
            if len(parts) == 1:
                return None, {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.sb.port}"}
                    ],
                }
            if parts[1] != "v1":
                return None, None
            group, version, rest = "", "v1", parts[2:]
        else:
            gvs = group_versions()
            if len(parts) == 1:
                return None, {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [self._group_doc(g, vs) for g, vs in gvs.items()],
                }
            group = parts[1]
            if group not in gvs:
                return None, None
            if len(parts) == 2:
                return None, {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    **self._group_doc(group, gvs[group]),
                }
            version, rest = parts[2], parts[3:]
            if version not in gvs[group]:
                return None, None
        if not rest:
            return None, api_resource_list(group, version)
        legacy_watch = False
        if rest[0] == "watch":
            legacy_watch, rest = True, rest[1:]
            if not rest:
                return None, None
        namespace = ""
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            return None, None
        res = BY_GVR.get((group, version, rest[0]))
        if res is None:
            return None, None
        route = Route(
            res,
            namespace,
            rest[1] if len(rest) > 1 else "",
            rest[2] if len(rest) > 2 else "",
            legacy_watch,
        )
        if namespace and not res.namespaced:
            return None, None
        if route.name and res.namespaced and not namespace:
            return None, None
        if route.sub and route.sub not in res.subresources:
            return None, None
        return route, None

    @staticmethod
    def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def _verb(self, request: web.Request, route: Route) -> str:
        method = request.method
        watch = route.legacy_watch or request.query.get("watch", "") in ("true", "1", "True")
        if route.sub in ("portforward", "exec"):
            return "create" if method == "POST" else "get"
        if route.sub == "log":
            return "get"
        if route.res.key in VIRTUAL:
            return "create" if method == "POST" else method.lower()
        if method in ("GET", "HEAD"):
            if watch:
                return "watch"
            return "get" if route.name else "list"
        if method == "POST":
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if route.name else "deletecollection"
        return method.lower()

    def _authorize(
        self, user: UserInfo, attrs: Attributes, route: Route, request: web.Request
    ) -> None:
        denied = self.sb.faults.denied(user, attrs)
        if denied is None and not authorize(self.store, user, attrs):
            if route.sub in ("portforward", "exec"):
                # kubectl's websocket form is a GET; accept either verb like the real one
                other = Attributes(
                    **{**attrs.__dict__, "verb": "create" if attrs.verb == "get" else "get"}
                )
                if authorize(self.store, user, other):
                    return
            denied = forbidden_message(user, attrs)
        if denied is not None:
            details: dict[str, Any] = {"kind": route.res.plural}
            if route.name:
                details["name"] = route.name
            if route.res.group:
                details["group"] = route.res.group
            raise ApiError(403, "Forbidden", denied, details)

    # -- dispatch ----------------------------------------------------------------------

    async def _dispatch(
        self, request: web.Request, route: Route, verb: str, user: UserInfo
    ) -> web.StreamResponse:
        res, method = route.res, request.method
        if res.key in VIRTUAL:
            if method != "POST" or route.name:
                raise _method_not_allowed()
            return await self._review(request, route, user)
        if verb not in res.verbs and not route.sub:
            raise _method_not_allowed()
        if route.sub:
            return await self._subresource(request, route, user)
        if verb == "watch":
            return await self._watch(request, route)
        if verb == "get":
            return self._get(request, route)
        if verb == "list":
            return self._list(request, route)
        if verb == "create":
            return await self._create(request, route, user)
        if verb == "update":
            return await self._update(request, route, user)
        if verb == "patch":
            return await self._patch(request, route, user)
        if verb == "delete":
            return await self._delete(request, route)
        if verb == "deletecollection":
            return await self._delete_collection(request, route)
        raise _method_not_allowed()

    # -- reading -----------------------------------------------------------------------

    def _must_get(self, route: Route, name: str | None = None) -> dict[str, Any]:
        name = name if name is not None else route.name
        obj = self.store.get(route.res.key, route.namespace or None, name)
        if obj is None:
            from .store import not_found

            raise not_found(route.res, name)
        return obj

    def _get(self, request: web.Request, route: Route) -> web.Response:
        obj = self._must_get(route)
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(tables.table(route.res.key, [obj], obj["metadata"]["resourceVersion"]))
        return _json(obj)

    def _list(self, request: web.Request, route: Route) -> web.Response:
        q = request.query
        items, rv = self.store.list(
            route.res.key,
            route.namespace or None,
            label_selector=q.get("labelSelector"),
            field_selector=q.get("fieldSelector"),
        )
        metadata: dict[str, Any] = {"resourceVersion": rv}
        limit = _int_param(q, "limit", 0)
        start = 0
        if q.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(q["continue"].encode()))
                start = int(token["start"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    400, "BadRequest", "continue key is not valid: incorrect encoded start"
                ) from None
        if limit > 0 or start:
            end = start + limit if limit > 0 else len(items)
            if end < len(items):
                metadata["continue"] = base64.urlsafe_b64encode(
                    json.dumps({"rv": rv, "start": end}).encode()
                ).decode()
                metadata["remainingItemCount"] = len(items) - end
            items = items[start:end]
        if tables.wants_table(request.headers.get("Accept", "")):
            doc = tables.table(route.res.key, items, rv)
            doc["metadata"].update({k: v for k, v in metadata.items() if k != "resourceVersion"})
            return _json(doc)
        return _json(
            {
                "kind": f"{route.res.kind}List",
                "apiVersion": route.res.api_version,
                "metadata": metadata,
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, route: Route) -> web.StreamResponse:
        q = request.query
        res = route.res
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(res.key, q.get("fieldSelector"))
        if route.name:  # legacy /watch/.../name
            fields = [*fields, ("metadata.name", "=", route.name)]
        namespace = route.namespace
        timeout = _int_param(q, "timeoutSeconds", DEFAULT_WATCH_SECONDS)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        rv = q.get("resourceVersion", "")
        send_initial = q.get("sendInitialEvents") in ("true", "1")

        def matches(obj: dict[str, Any] | None) -> bool:
            if obj is None:
                return False
            md = obj.get("metadata") or {}
            if namespace and md.get("namespace") != namespace:
                return False
            return match_labels(labels, md.get("labels")) and match_fields(fields, obj)

        def translate(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> str | None:
            now = matches(obj)
            if kind != "MODIFIED":
                return kind if now else None
            before = matches(old)
            if now and before:
                return "MODIFIED"
            if now:
                return "ADDED"
            return "DELETED" if before else None

        queue: asyncio.Queue[Any] = asyncio.Queue()

        def on_change(
            kind: str, resource: str, obj: dict[str, Any], old: dict[str, Any] | None
        ) -> None:
            if resource == res.key:
                queue.put_nowait((kind, obj, old))

        unsubscribe = self.store.subscribe_full(on_change)
        self._watch_queues.add(queue)
        resp: web.StreamResponse | None = None
        try:
            initial: list[tuple[str, dict[str, Any]]] = []
            error: dict[str, Any] | None = None
            if rv in ("", "0") or send_initial:
                items, _ = self.store.list(res.key, namespace or None)
                initial = [("ADDED", o) for o in items if matches(o)]
            else:
                try:
                    for kind, obj, old in self.store.events_since(res.key, rv):
                        shown = translate(kind, obj, old)
                        if shown:
                            initial.append((shown, obj))
                except ApiError as err:
                    if err.status in (410, 504):
                        error = err.to_status()
                    else:
                        raise
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)

            async def send(kind: str, obj: dict[str, Any]) -> None:
                if as_table and kind in ("ADDED", "MODIFIED", "DELETED"):
                    obj = tables.table(res.key, [obj], obj["metadata"].get("resourceVersion", ""))
                await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

            if error is not None:
                await send("ERROR", error)
                return resp
            for kind, obj in initial:
                await send(kind, obj)
            if send_initial:
                await send(
                    "BOOKMARK",
                    {
                        "kind": res.kind,
                        "apiVersion": res.api_version,
                        "metadata": {
                            "resourceVersion": self.store.resource_version,
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                )
            deadline = time.monotonic() + max(0, timeout)
            last_sent = time.monotonic()
            while not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=min(remaining, 1.0))
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    if bookmarks and time.monotonic() - last_sent > BOOKMARK_EVERY:
                        await send(
                            "BOOKMARK",
                            {
                                "kind": res.kind,
                                "apiVersion": res.api_version,
                                "metadata": {"resourceVersion": self.store.resource_version},
                            },
                        )
                        last_sent = time.monotonic()
                    continue
                if item is None:
                    break
                kind, obj, old = item
                shown = translate(kind, obj, old)
                if shown:
                    await send(shown, obj)
                    last_sent = time.monotonic()
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await resp.write_eof()
            return resp
        except (ConnectionResetError, ConnectionError):
            # the client went away mid-stream: the prepared response is all there is
            if resp is None:
                raise
            return resp
        finally:
            unsubscribe()
            self._watch_queues.discard(queue)

    # -- body decoding -----------------------------------------------------------------

    async def _body(self, request: web.Request, *, patch: bool = False) -> Any:
        try:
            raw = await _read_body(request)
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(
                413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}"
            ) from None
        if len(raw) > MAX_BODY:
            raise ApiError(
                413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}"
            )
        ctype = (request.content_type or "application/json").lower()
        if "protobuf" in ctype and not patch:
            try:
                return protobuf.decode(raw)
            except protobuf.MalformedProtobuf as exc:
                raise bad_request(f"the request body is not valid protobuf: {exc}") from None
            except protobuf.ProtobufError as exc:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format: the sandbox decodes "
                    "protobuf only for access reviews, CSRs, namespaces, configmaps and secrets, "
                    f"not {exc}; send JSON (kubectl create -f / apply -f and the Python client do)",
                ) from None
        yaml_ok = ctype in ("application/yaml", "application/apply-patch+yaml")
        allowed = {"application/json", "application/yaml", "application/octet-stream", "text/plain"}
        if patch:
            allowed = {
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            }
        if ctype not in allowed:
            accepted = ", ".join(sorted(allowed))
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {accepted}",
            )
        if not raw.strip():
            raise bad_request("the request body is empty; send a JSON object")
        try:
            return _shallow(json.loads(raw))
        except RecursionError:
            raise bad_request(_TOO_DEEP) from None
        except (ValueError, UnicodeDecodeError) as exc:
            if not yaml_ok:
                raise bad_request(f"the request body is not valid JSON: {exc}") from None
        try:
            return _shallow(yaml.load(raw, Loader=_NoAliasLoader))  # a SafeLoader subclass
        except RecursionError:
            raise bad_request(_TOO_DEEP) from None
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {' '.join(str(exc).split())}") from None

    def _field_validation(self, request: web.Request) -> str:
        value = request.query.get("fieldValidation", "Warn") or "Warn"
        if value not in ("Strict", "Warn", "Ignore"):
            raise bad_request(
                f'fieldValidation: invalid value "{value}": must be one of Ignore, Warn, Strict'
            )
        return value

    def _prepare(
        self,
        request: web.Request,
        route: Route,
        obj: Any,
        old: dict[str, Any] | None,
        warnings: list[str],
        *,
        check_kind: bool = True,
    ) -> dict[str, Any]:
        """Check, validate, prune and default an incoming object (create/update/patch)."""
        res = route.res
        if not isinstance(obj, dict):
            raise bad_request(
                f"the request body must be a JSON object ({res.kind}), not {type(obj).__name__}"
            )
        if check_kind:
            validation.check_kind(res, obj)
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if not isinstance(md, dict):
            raise bad_request(f"{res.kind}.metadata must be an object")
        if res.namespaced:
            ns = md.get("namespace")
            if ns and route.namespace and ns != route.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            md["namespace"] = route.namespace or ns or "default"
        mode = self._field_validation(request)
        causes, unknown = validation.schema_check(res, obj)
        if unknown:
            if mode == "Strict":
                raise bad_request(
                    "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
                )
            if mode == "Warn":
                warnings += [f'unknown field "{f}"' for f in unknown]
            validation.prune(obj, unknown)
        if causes:
            from .store import invalid

            raise invalid(res, md.get("name") or md.get("generateName") or "", causes)
        validation.apply_defaults(res, obj)
        if old is not None:
            self._carry_over(res, obj, old)
        validation.semantic_check(res, obj, old)
        return obj

    @staticmethod
    def _carry_over(res: Resource, obj: dict[str, Any], old: dict[str, Any]) -> None:
        """Server-set fields a PUT body may omit keep their stored values."""
        if res.key == "services":
            spec, old_spec = obj.setdefault("spec", {}), old.get("spec") or {}
            for f in ("clusterIP", "clusterIPs"):
                if f not in spec and f in old_spec:
                    spec[f] = old_spec[f]
        if res.key == "certificatesigningrequests.certificates.k8s.io":
            spec, old_spec = obj.setdefault("spec", {}), old.get("spec") or {}
            for f in ("username", "groups", "uid", "extra"):
                if f in old_spec:
                    spec[f] = old_spec[f]
        md = obj.setdefault("metadata", {})
        if "managedFields" not in md and "managedFields" in old.get("metadata", {}):
            md["managedFields"] = old["metadata"]["managedFields"]

    def _pod_security(self, res: Resource, obj: dict[str, Any], warnings: list[str]) -> None:
        """Pod Security admission: enforce on pods, warn on pods and workload templates."""
        if res.key not in (
            "pods",
            "deployments.apps",
            "replicasets.apps",
            "daemonsets.apps",
            "jobs.batch",
        ):
            return
        ns = self.store.get("namespaces", None, obj["metadata"].get("namespace", ""))
        if res.key == "pods":
            spec = obj.get("spec")
            enforced = validation.pod_security(ns, spec, "enforce")
            if enforced:
                raise _forbidden_create("pods", obj, f"violates {enforced}", "pods")
            modes: tuple[str, ...] = ("warn",)
        else:
            spec = ((obj.get("spec") or {}).get("template") or {}).get("spec")
            modes = ("enforce", "warn")
        for mode in modes:
            found = validation.pod_security(ns, spec, mode)
            if found and f"would violate {found}" not in warnings:
                warnings.append(f"would violate {found}")

    def _on_create(self, res: Resource, obj: dict[str, Any], user: UserInfo) -> None:
        """What registries fill in on create: pod phase, service IPs, CSR requester; the
        RBAC registry's escalation check."""
        key = res.key
        if res.group == RBAC_GROUP:
            refusal = escalation_refusal(self.store, user, key, obj)
            if refusal is not None:
                raise ApiError(403, "Forbidden", refusal)
        if key == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj)}
            ns = obj["metadata"]["namespace"]
            sa = (obj.get("spec") or {}).get("serviceAccountName") or "default"
            if sa != "default" and self.store.get("serviceaccounts", ns, sa) is None:
                raise _forbidden_create(
                    "pods",
                    obj,
                    f'error looking up service account {ns}/{sa}: serviceaccount "{sa}" not found',
                )
        elif key == "services":
            spec = obj.setdefault("spec", {})
            if spec.get("type") != "ExternalName":
                if not spec.get("clusterIP"):
                    spec["clusterIP"] = self._next_cluster_ip()
                if spec["clusterIP"] != "None":
                    try:
                        ipaddress.ip_address(spec["clusterIP"])
                    except ValueError:
                        from .store import invalid

                        raise invalid(
                            res,
                            obj["metadata"].get("name", ""),
                            [
                                (
                                    "spec.clusterIP",
                                    f'Invalid value: "{spec["clusterIP"]}": must be a valid IP address',
                                )
                            ],
                        ) from None
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
                if spec.get("type") in ("NodePort", "LoadBalancer"):
                    for p in spec.get("ports") or []:
                        if not p.get("nodePort"):
                            self._node_port += 1
                            p["nodePort"] = self._node_port
            obj["status"] = {"loadBalancer": {}}
        elif key == "certificatesigningrequests.certificates.k8s.io":
            spec = obj.setdefault("spec", {})
            spec["username"] = user.name
            spec["groups"] = list(user.groups)
            if user.uid:
                spec["uid"] = user.uid
            obj["status"] = {}
        elif key == "namespaces":
            obj.pop("status", None)
        elif key in ("deployments.apps", "replicasets.apps"):
            obj["status"] = {}
        elif key == "daemonsets.apps":
            # required (not omitempty) in the real API: zeros until the controller counts
            obj["status"] = {
                "currentNumberScheduled": 0,
                "numberMisscheduled": 0,
                "desiredNumberScheduled": 0,
                "numberReady": 0,
            }
        elif key == "jobs.batch":
            self._job_selector(obj)
            obj["status"] = {}

    @staticmethod
    def _job_selector(job: dict[str, Any]) -> None:
        """What the Job registry adds on create: a uid, the selector on it, and the
        labels that tie the template's pods to this Job (the Job's own labels default to
        the template's)."""
        md = job["metadata"]
        md["uid"] = str(uuid.uuid4())
        spec = job.setdefault("spec", {})
        tmd = spec.setdefault("template", {}).setdefault("metadata", {})
        tlabels = tmd.setdefault("labels", {})
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": md["uid"]}}
            tlabels.update(
                {"batch.kubernetes.io/controller-uid": md["uid"], "controller-uid": md["uid"]}
            )
        if md.get("name"):
            tlabels.update({"batch.kubernetes.io/job-name": md["name"], "job-name": md["name"]})
        if not md.get("labels"):
            md["labels"] = dict(tlabels)

    def _next_cluster_ip(self) -> str:
        # Service IPs are bookkeeping only: nothing binds or connects to them.
        used = {(s.get("spec") or {}).get("clusterIP") for s in self.store.iter_raw("services")}
        while True:
            self._cluster_ip += 1
            ip = f"10.96.{self._cluster_ip // 254}.{self._cluster_ip % 254 + 1}"
            if ip not in used:
                return ip

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for v in values:
            if v != "All":
                raise bad_request(f'dryRun: unsupported value "{v}": supported values: "All"')
        return bool(values)

    @staticmethod
    def _respond(obj: dict[str, Any], status: int, warnings: list[str]) -> web.Response:
        resp = _json(obj, status=status)
        for w in warnings:
            escaped = w.replace("\\", "\\\\").replace('"', '\\"')
            resp.headers.add("Warning", f'299 - "{escaped}"')
        return resp

    # -- writing -----------------------------------------------------------------------

    async def _create(self, request: web.Request, route: Route, user: UserInfo) -> web.Response:
        if route.name or (route.res.namespaced and not route.namespace):
            raise _method_not_allowed()
        body = await self._body(request)
        warnings: list[str] = []
        obj = self._prepare(request, route, body, None, warnings)
        return self._commit_create(request, route, obj, user, warnings)

    def _commit_create(
        self,
        request: web.Request,
        route: Route,
        obj: dict[str, Any],
        user: UserInfo,
        warnings: list[str],
    ) -> web.Response:
        res = route.res
        obj["metadata"].pop("resourceVersion", None)
        self._pod_security(res, obj, warnings)
        if res.namespaced:
            refused = quota.check(self.store, obj["metadata"]["namespace"], res.key, obj)
            if refused:
                raise _forbidden_create(res.key, obj, refused, res.plural)
        self._on_create(res, obj, user)
        manager = request.query.get("fieldManager")
        if manager and request.method == "POST":
            obj["metadata"]["managedFields"] = [
                {
                    "manager": manager,
                    "operation": "Update",
                    "apiVersion": res.api_version,
                    "time": now_rfc3339(),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": merge.to_fields_v1(merge.field_set(obj)),
                }
            ]
        if self._dry_run(request):
            md = obj["metadata"]
            if res.namespaced:
                self._check_namespace(md["namespace"])
            if not md.get("name"):
                md["name"] = (md.get("generateName") or "") + "xxxxx"
            if self.store.get(res.key, md.get("namespace"), md["name"]) is not None:
                from .store import already_exists

                raise already_exists(res, md["name"])
            md.setdefault("uid", "00000000-0000-0000-0000-000000000000")
            md["creationTimestamp"] = now_rfc3339()
            return self._respond(obj, 201, warnings)
        uid = obj["metadata"].get("uid") if res.key == "jobs.batch" else None
        created = self.store.create(res.key, obj, uid=uid)
        return self._respond(created, 201, warnings)

    def _check_namespace(self, namespace: str) -> None:
        if self.store.get("namespaces", None, namespace) is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    async def _update(self, request: web.Request, route: Route, user: UserInfo) -> web.Response:
        body = await self._body(request)
        if isinstance(body, dict):
            name = (
                (body.get("metadata") or {}).get("name")
                if isinstance(body.get("metadata"), dict)
                else None
            )
            if name and name != route.name:
                raise bad_request(
                    f"the name of the object ({name}) does not match the name on the URL "
                    f"({route.name})"
                )
            if isinstance(body.get("metadata"), dict):
                body["metadata"]["name"] = route.name
        old = self._must_get(route)
        warnings: list[str] = []
        obj = self._prepare(request, route, body, old, warnings)
        return self._commit_update(request, route, obj, warnings, None)

    def _commit_update(
        self,
        request: web.Request,
        route: Route,
        obj: dict[str, Any],
        warnings: list[str],
        subresource: str | None,
    ) -> web.Response:
        if subresource is None and route.res.key != "pods":
            self._pod_security(route.res, obj, warnings)  # pod specs cannot change
        if self._dry_run(request):
            return self._respond(obj, 200, warnings)
        updated = self.store.update(route.res.key, obj, subresource=subresource)
        return self._respond(updated, 200, warnings)

    async def _patch(self, request: web.Request, route: Route, user: UserInfo) -> web.Response:
        ctype = (request.content_type or "").lower()
        body = await self._body(request, patch=True)
        warnings: list[str] = []
        if ctype == "application/apply-patch+yaml":
            return self._apply(request, route, body, user, warnings)
        old = self._must_get(route)
        patched = self._patched(ctype, old, body)
        if isinstance(patched.get("metadata"), dict):
            # a resourceVersion in the patch is a precondition; none: patch the current one
            if not _patch_rv(body):
                patched["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            patched["metadata"]["name"] = route.name
        obj = self._prepare(request, route, patched, old, warnings)
        return self._commit_update(request, route, obj, warnings, None)

    @staticmethod
    def _patched(ctype: str, old: dict[str, Any], body: Any) -> dict[str, Any]:
        if ctype == "application/json-patch+json":
            return merge.json_patch(old, body)
        if not isinstance(body, dict):
            raise bad_request("the patch must be a JSON object")
        if ctype == "application/merge-patch+json":
            out = merge.merge_patch(old, body)
        else:
            out = merge.strategic_merge_patch(old, body)
        if not isinstance(out, dict):
            raise bad_request("the patch removes the whole object")
        return out

    def _apply(
        self,
        request: web.Request,
        route: Route,
        body: Any,
        user: UserInfo,
        warnings: list[str],
    ) -> web.Response:
        res = route.res
        manager = request.query.get("fieldManager")
        if not manager:
            raise bad_request(
                "PATCH /apply requests require the fieldManager query parameter (e.g. "
                "fieldManager=kubectl)"
            )
        if not isinstance(body, dict):
            raise bad_request(f"the apply configuration must be an object ({res.kind})")
        if not body.get("apiVersion") or not body.get("kind"):
            raise bad_request("invalid object type: apply configurations need apiVersion and kind")
        validation.check_kind(res, body)
        md = body.get("metadata")
        if not isinstance(md, dict) or (md.get("name") and md["name"] != route.name):
            raise bad_request(
                f"the name of the object ({(md or {}).get('name') if isinstance(md, dict) else ''}) "
                f"does not match the name on the URL ({route.name})"
            )
        md["name"] = route.name
        md.pop("managedFields", None)
        if res.namespaced:
            if md.get("namespace") and md["namespace"] != route.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            md["namespace"] = route.namespace
        # validate the configuration itself first: unknown fields are reported as sent
        _, unknown = validation.schema_check(res, body)
        mode = self._field_validation(request)
        if unknown and mode == "Strict":
            raise bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
            )
        if unknown:
            if mode == "Warn":
                warnings += [f'unknown field "{f}"' for f in unknown]
            validation.prune(body, unknown)
        old = self.store.get(res.key, route.namespace or None, route.name)
        merged = merge.server_side_apply(old, body, manager, res.api_version, force=_force(request))
        if old is None:
            obj = self._prepare(request, route, merged, None, warnings)
            return self._commit_create(request, route, obj, user, warnings)
        rv = md.get("resourceVersion")
        merged["metadata"]["resourceVersion"] = rv or old["metadata"]["resourceVersion"]
        obj = self._prepare(request, route, merged, old, warnings)
        return self._commit_update(request, route, obj, warnings, None)

    # -- deleting ----------------------------------------------------------------------

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if request.can_read_body:
            raw = await _read_body(request)
            if raw.strip():
                try:
                    opts = json.loads(raw)
                except ValueError as exc:
                    raise bad_request(f"the DeleteOptions body is not valid JSON: {exc}") from None
                if not isinstance(opts, dict):
                    raise bad_request("the DeleteOptions body must be a JSON object")
        for key in ("propagationPolicy", "gracePeriodSeconds"):
            if key in request.query:
                opts[key] = request.query[key]
        if opts.get("dryRun") or request.query.getall("dryRun", []):
            opts["dryRun"] = True
        policy = opts.get("propagationPolicy")
        if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
            raise bad_request(
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                '"Foreground", "Background", "Orphan"'
            )
        if opts.get("orphanDependents") is True and policy is None:
            opts["propagationPolicy"] = "Orphan"
        return opts

    def _delete_one(
        self, res: Resource, obj: dict[str, Any], opts: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        md = obj["metadata"]
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != md.get("uid"):
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                f"{md.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != md.get("resourceVersion"):
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {md.get('resourceVersion')}",
            )
        if opts.get("dryRun"):
            return obj, True
        if opts.get("propagationPolicy") == "Orphan":
            self._orphan(md.get("uid", ""), md.get("namespace"))
        elif opts.get("propagationPolicy") == "Foreground" and not md.get("deletionTimestamp"):
            # the GC deletes the dependents, then removes the finalizer (as real)
            finalizers = list(md.get("finalizers") or [])
            if "foregroundDeletion" not in finalizers:
                marked = json.loads(json.dumps(obj))
                marked["metadata"]["finalizers"] = [*finalizers, "foregroundDeletion"]
                self.store.update(res.key, marked)
        out = self.store.delete(
            res.key, md.get("namespace"), md["name"], grace_period_seconds=self._grace(obj, opts)
        )
        gone = self.store.get(res.key, md.get("namespace"), md["name"]) is None
        return out, gone

    def _grace(self, obj: dict[str, Any], opts: dict[str, Any]) -> int | None:
        """The grace period of a pod deletion; None = remove at once.

        Like the real registry: a pod bound to a node and not finished is deleted
        gracefully (its kubelet stops the processes, then removes it); others at once.
        """
        if obj.get("kind") != "Pod" or self.sb.kubelet is None:
            return None
        spec = obj.get("spec") or {}
        if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            return None
        grace = opts.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        try:
            return max(0, int(grace))
        except (TypeError, ValueError):
            raise bad_request(f'gracePeriodSeconds: invalid value "{grace}"') from None

    def _orphan(self, uid: str, namespace: str | None) -> None:
        for key in BY_KEY:
            if key in VIRTUAL:
                continue
            for o in self.store.iter_raw(key):
                refs = o["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    copy_ = json.loads(json.dumps(o))
                    kept = [r for r in refs if r.get("uid") != uid]
                    if kept:
                        copy_["metadata"]["ownerReferences"] = kept
                    else:
                        del copy_["metadata"]["ownerReferences"]
                    with contextlib.suppress(ApiError):
                        self.store.update(key, copy_)

    async def _delete(self, request: web.Request, route: Route) -> web.Response:
        opts = await self._delete_options(request)
        obj = self._must_get(route)
        out, gone = self._delete_one(route.res, obj, opts)
        if not gone:
            return _json(out)  # marked, not yet gone: the real one answers 200 too
        details: dict[str, Any] = {
            "name": route.name,
            "kind": route.res.plural,
            "uid": obj["metadata"].get("uid"),
        }
        if route.res.group:
            details["group"] = route.res.group
        if route.res.key in _RETURN_DELETED:
            return _json(out)
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        )

    async def _delete_collection(self, request: web.Request, route: Route) -> web.Response:
        opts = await self._delete_options(request)
        items, _ = self.store.list(
            route.res.key,
            route.namespace or None,
            label_selector=request.query.get("labelSelector"),
            field_selector=request.query.get("fieldSelector"),
        )
        deleted = []
        for obj in items:
            with contextlib.suppress(ApiError):
                out, _gone = self._delete_one(route.res, obj, opts)
                deleted.append(out)
        return _json(
            {
                "kind": f"{route.res.kind}List",
                "apiVersion": route.res.api_version,
                "metadata": {"resourceVersion": self.store.resource_version},
                "items": deleted,
            }
        )

    # -- subresources ------------------------------------------------------------------

    async def _subresource(
        self, request: web.Request, route: Route, user: UserInfo
    ) -> web.StreamResponse:
        sub, method = route.sub, request.method
        if sub == "log":
            if method != "GET":
                raise _method_not_allowed()
            return await self._log(request, route)
        if sub == "portforward":
            if method not in ("GET", "POST"):
                raise _method_not_allowed()
            return await self._portforward(request, route)
        if sub == "exec":
            if method not in ("GET", "POST"):
                raise _method_not_allowed()
            return await self._exec(request, route)
        if sub == "scale":
            return await self._scale(request, route)
        allowed = route.res.subresources.get(sub, ())
        if sub == "finalize" and method == "PUT":
            pass
        elif {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(method) not in allowed:
            raise _method_not_allowed()
        old = self._must_get(route)
        if method == "GET":
            return _json(old)
        warnings: list[str] = []
        if method == "PUT":
            body = await self._body(request)
        else:
            ctype = (request.content_type or "").lower()
            body_patch = await self._body(request, patch=True)
            if ctype == "application/apply-patch+yaml":
                manager = request.query.get("fieldManager") or ""
                if not manager:
                    raise bad_request(
                        "PATCH /apply requests require the fieldManager query parameter"
                    )
                body = merge.server_side_apply(
                    old, body_patch, manager, route.res.api_version, force=_force(request)
                )
            else:
                body = self._patched(ctype, old, body_patch)
                if isinstance(body.get("metadata"), dict):
                    body["metadata"]["resourceVersion"] = (
                        _patch_rv(body_patch) or old["metadata"]["resourceVersion"]
                    )
        if not isinstance(body, dict):
            raise bad_request(f"the request body must be a JSON object ({route.res.kind})")
        md = body.setdefault("metadata", {})
        if isinstance(md, dict):
            if md.get("name") and md["name"] != route.name:
                raise bad_request(
                    f"the name of the object ({md['name']}) does not match the name on the URL "
                    f"({route.name})"
                )
            md["name"] = route.name
        obj = self._prepare(request, route, body, old, warnings)
        if sub == "approval":
            for c in (obj.get("status") or {}).get("conditions") or []:
                c.setdefault("status", "True")
                c.setdefault("lastUpdateTime", now_rfc3339())
                c.setdefault("lastTransitionTime", now_rfc3339())
                if c.get("type") not in ("Approved", "Denied", "Failed"):
                    from .store import invalid

                    raise invalid(
                        route.res,
                        route.name,
                        [
                            (
                                "status.conditions[0].type",
                                f'Unsupported value: "{c.get("type")}": supported values: "Approved", "Denied", "Failed"',
                            )
                        ],
                    )
        return self._commit_update(request, route, obj, warnings, sub)

    async def _scale(self, request: web.Request, route: Route) -> web.Response:
        obj = self._must_get(route)

        def scale_of(o: dict[str, Any]) -> dict[str, Any]:
            sel = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    "name": o["metadata"]["name"],
                    "namespace": o["metadata"].get("namespace"),
                    "uid": o["metadata"].get("uid"),
                    "resourceVersion": o["metadata"].get("resourceVersion"),
                    "creationTimestamp": o["metadata"].get("creationTimestamp"),
                },
                "spec": {"replicas": (o.get("spec") or {}).get("replicas", 0)},
                "status": {
                    "replicas": (o.get("status") or {}).get("replicas", 0),
                    "selector": ",".join(f"{k}={v}" for k, v in sel.items()),
                },
            }

        if request.method == "GET":
            return _json(scale_of(obj))
        current = scale_of(obj)
        if request.method == "PUT":
            body = await self._body(request)
        elif request.method == "PATCH":
            patch = await self._body(request, patch=True)
            body = self._patched((request.content_type or "").lower(), current, patch)
        else:
            raise _method_not_allowed()
        if not isinstance(body, dict):
            raise bad_request("the Scale body must be a JSON object")
        spec = body.get("spec") or {}
        if not isinstance(spec, dict) or not isinstance(body.get("metadata") or {}, dict):
            raise bad_request("Scale.spec and Scale.metadata must be objects")
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            from .store import invalid

            raise invalid(
                route.res,
                route.name,
                [
                    (
                        "spec.replicas",
                        f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
                    )
                ],
            )
        rv = (body.get("metadata") or {}).get("resourceVersion")
        obj["spec"]["replicas"] = replicas
        obj["metadata"]["resourceVersion"] = rv or obj["metadata"]["resourceVersion"]
        if self._dry_run(request):
            return _json(scale_of(obj))
        updated = self.store.update(route.res.key, obj, subresource="scale")
        return _json(scale_of(updated))

    async def _log(self, request: web.Request, route: Route) -> web.StreamResponse:
        q = request.query
        # The real server validates the options before it looks the pod up.
        _validate_log_options(q, route.name)
        pod = self._must_get(route)
        container = q.get("container") or None
        tail = _int_param(q, "tailLines", -1)
        tail_lines = tail if tail >= 0 else None
        previous = q.get("previous") in ("true", "1")
        follow = q.get("follow") in ("true", "1")
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        if (
            container is not None
            and container not in names
            and container
            not in [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
        ):
            raise bad_request(f"container {container} is not valid for pod {route.name}")
        kubelet = self.sb.kubelet
        if kubelet is None or not hasattr(kubelet, "read_log"):
            raise status_error(
                503,
                "the sandbox's kubelet is not running; pod logs are unavailable",
                "ServiceUnavailable",
            )
        extra: dict[str, Any] = {"previous": previous}
        if q.get("timestamps") in ("true", "1"):
            extra["timestamps"] = True
        since = _int_param(q, "sinceSeconds", 0)
        if since:
            extra["since_seconds"] = float(since)
        elif q.get("sinceTime"):
            try:
                when = datetime.strptime(q["sinceTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            except ValueError:
                raise bad_request(
                    f'sinceTime: invalid value "{q["sinceTime"]}": must be RFC 3339'
                ) from None
            extra["since_seconds"] = max(0.0, (datetime.now(UTC) - when).total_seconds())
        limit = _int_param(q, "limitBytes", 0)
        if limit > 0:
            extra["limit_bytes"] = limit
        if not follow:
            data = kubelet.read_log(route.namespace, route.name, container, tail_lines, **extra)
            if inspect.isawaitable(data):
                data = await data
            if limit > 0:
                data = data[:limit]
            return web.Response(body=data, content_type="text/plain")
        if not hasattr(kubelet, "follow_log"):
            raise status_error(
                503, "the sandbox's kubelet cannot follow logs", "ServiceUnavailable"
            )
        stream = kubelet.follow_log(route.namespace, route.name, container, tail_lines, **extra)
        if inspect.isawaitable(stream):
            stream = await stream
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self._log_streams.add(resp)
        try:
            iterator = stream.__aiter__()
            while not self._stopping:
                try:
                    chunk = await asyncio.wait_for(iterator.__anext__(), timeout=1.0)
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    continue
                except StopAsyncIteration:
                    break
                await resp.write(chunk)
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._log_streams.discard(resp)
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        return resp

    async def _exec(self, request: web.Request, route: Route) -> web.StreamResponse:
        pod = self._must_get(route)
        command = request.query.getall("command", [])
        if not command:
            raise bad_request("you must specify at least 1 command")
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = request.query.get("container")
        if not container:
            if len(names) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {route.name}, choose one of: "
                    f"[{' '.join(str(n) for n in names)}]"
                )
            container = str(names[0])
        elif container not in names:
            raise bad_request(f"container {container} is not valid for pod {route.name}")
        if (pod.get("status") or {}).get("phase") != "Running":
            raise bad_request(f'unable to upgrade connection: container not found ("{container}")')
        kubelet = self.sb.kubelet
        if kubelet is None or not hasattr(kubelet, "exec_in_pod"):
            raise bad_request(
                "exec is not available: this sandbox's kubelet does not run commands in pods"
            )
        namespace, name = route.namespace, route.name

        async def start(cmd: list[str]) -> asyncio.subprocess.Process:
            proc = kubelet.exec_in_pod(namespace, name, container, cmd)
            if inspect.isawaitable(proc):
                proc = await proc
            return proc  # type: ignore[no-any-return]

        return await remotecommand.serve_exec(request, command, start)

    async def _portforward(self, request: web.Request, route: Route) -> web.StreamResponse:
        pod = self._must_get(route)
        phase = (pod.get("status") or {}).get("phase")
        if phase != "Running":
            raise bad_request(
                f"unable to upgrade connection: pod does not exist or is not running (phase "
                f"{phase or 'Pending'})"
            )
        try:
            from .portforward import handle_portforward
        except ImportError:
            raise status_error(
                503, "port-forward is not available in this sandbox build", "ServiceUnavailable"
            ) from None
        namespace, name = route.namespace, route.name

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            ip = None
            kubelet = self.sb.kubelet
            if kubelet is not None and hasattr(kubelet, "pod_ip"):
                ip = kubelet.pod_ip(namespace, name)
            if not ip:
                current = self.store.get("pods", namespace, name) or {}
                ip = (current.get("status") or {}).get("podIP")
            if not ip or not str(ip).startswith("127."):
                raise ConnectionRefusedError(f"pod {namespace}/{name} has no loopback IP")
            return await asyncio.open_connection(ip, port)

        return await handle_portforward(request, connect, self.sb.portforward_registry)

    # -- reviews -----------------------------------------------------------------------

    async def _review(self, request: web.Request, route: Route, user: UserInfo) -> web.Response:
        body = await self._body(request)
        res = route.res
        if not isinstance(body, dict):
            raise bad_request(f"the request body must be a JSON object ({res.kind})")
        validation.check_kind(res, body)
        _, unknown = validation.schema_check(
            res, {**body, "apiVersion": res.api_version, "kind": res.kind}
        )
        if unknown and self._field_validation(request) == "Strict":
            raise bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
            )
        if res.plural == "selfsubjectreviews":
            return _json(
                {
                    "kind": res.kind,
                    "apiVersion": res.api_version,
                    "metadata": {"creationTimestamp": None},
                    "status": {"userInfo": user.to_dict()},
                },
                status=201,
            )
        spec = body.get("spec")
        if not isinstance(spec, dict):
            from .store import invalid

            raise invalid(res, "", [("spec", "Required value")])
        subject = user
        if res.plural in ("subjectaccessreviews", "localsubjectaccessreviews"):
            if not spec.get("user") and not spec.get("groups"):
                from .store import invalid

                raise invalid(
                    res,
                    "",
                    [
                        (
                            "spec.user",
                            "Invalid value: at least one of user or group must be specified",
                        )
                    ],
                )
            subject = UserInfo(spec.get("user") or "", tuple(spec.get("groups") or ()))
        out = {
            "kind": res.kind,
            "apiVersion": res.api_version,
            "metadata": {"creationTimestamp": None},
            "spec": spec,
        }
        if res.plural == "selfsubjectrulesreviews":
            ns = spec.get("namespace") or ""
            rules = rules_review(self.store, subject, ns)
            rules["resourceRules"] = self.sb.faults.filter_rules(
                subject, ns, rules["resourceRules"]
            )
            out["status"] = rules
            return _json(out, status=201)
        ra = spec.get("resourceAttributes")
        nra = spec.get("nonResourceAttributes")
        if isinstance(ra, dict):
            namespace = ra.get("namespace") or ""
            if res.plural == "localsubjectaccessreviews":
                namespace = route.namespace
            attrs = Attributes(
                verb=ra.get("verb") or "",
                resource=ra.get("resource") or "",
                group=ra.get("group") or "",
                subresource=ra.get("subresource") or "",
                namespace=namespace,
                name=ra.get("name") or "",
            )
            if not attrs.resource:
                attrs = Attributes(**{**attrs.__dict__, "resource": "*"})
        elif isinstance(nra, dict):
            attrs = Attributes(verb=nra.get("verb") or "", path=nra.get("path") or "")
        else:
            from .store import invalid

            raise invalid(
                res,
                "",
                [
                    (
                        "spec.resourceAttributes",
                        "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    )
                ],
            )
        denied_fault = self.sb.faults.denied(subject, attrs)
        allowed = denied_fault is None and authorize(self.store, subject, attrs)
        status: dict[str, Any] = {"allowed": allowed}
        if allowed:
            status["reason"] = (
                "sandbox: system:masters" if subject.is_admin else "RBAC: allowed by a role binding"
            )
        elif denied_fault is not None:
            status["denied"] = True
            status["reason"] = "sandbox fault injection: denied"
        out["status"] = status
        return _json(out, status=201)

    # -- background work of the API server ---------------------------------------------

    def on_change(
        self, kind: str, resource: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """Store hook: the CSR signer, per-namespace bootstrap objects, quota usage."""
        if kind == "DELETED" and resource not in _QUOTA_TRIGGERS | {_CLUSTER_ROLES}:
            return
        loop = self.sb.loop
        if loop is None:
            return
        if resource == _CLUSTER_ROLES:
            # The aggregation controller: admin/edit/view follow the labelled roles.
            loop.call_soon_threadsafe(self._aggregate)
        if resource == "certificatesigningrequests.certificates.k8s.io":
            status = obj.get("status") or {}
            types = {c.get("type") for c in status.get("conditions") or []}
            if (
                "Approved" in types
                and not types & {"Denied", "Failed"}
                and not status.get("certificate")
                and (obj.get("spec") or {}).get("signerName") == CLIENT_SIGNER
                and self.sb.signs_client_csrs
            ):
                loop.call_soon_threadsafe(self._sign, obj["metadata"]["name"])
        elif resource == "namespaces" and kind == "ADDED":
            loop.call_soon_threadsafe(self._bootstrap_namespace, obj["metadata"]["name"])
        if resource in _QUOTA_TRIGGERS:
            if (
                resource == "resourcequotas"
                and old is not None
                and old.get("spec") == obj.get("spec")
            ):
                return  # our own status write
            ns = obj["metadata"].get("namespace") or ""
            if ns and ns not in self._quota_dirty:
                self._quota_dirty.add(ns)
                loop.call_soon_threadsafe(self._refresh_quotas, ns)

    def _aggregate(self) -> None:
        for role in aggregate(self.store):
            role["metadata"].pop("resourceVersion", None)
            with contextlib.suppress(ApiError):
                self.store.update(_CLUSTER_ROLES, role)

    def _refresh_quotas(self, namespace: str) -> None:
        """Write each quota's status (hard, used) like the quota controller."""
        self._quota_dirty.discard(namespace)
        for q in self.store.iter_raw("resourcequotas"):
            if q["metadata"].get("namespace") != namespace:
                continue
            hard = dict((q.get("spec") or {}).get("hard") or {})
            status = {"hard": hard, "used": quota.usage(self.store, namespace, hard)}
            if q.get("status") == status:
                continue
            updated = json.loads(json.dumps(q))
            updated["status"] = status
            updated["metadata"].pop("resourceVersion", None)
            with contextlib.suppress(ApiError):
                self.store.update("resourcequotas", updated, subresource="status")

    def _sign(self, name: str) -> None:
        key = "certificatesigningrequests.certificates.k8s.io"
        csr = self.store.get(key, None, name)
        if csr is None or (csr.get("status") or {}).get("certificate"):
            return
        spec = csr.get("spec") or {}
        try:
            usages = set(spec.get("usages") or [])
            if "client auth" not in usages:
                raise ValueError(
                    'spec.usages must include "client auth" for signer '
                    f"{CLIENT_SIGNER} (got {sorted(usages)})"
                )
            bad = usages - {"client auth", "digital signature", "key encipherment"}
            if bad:
                raise ValueError(
                    f"spec.usages: {sorted(bad)} not allowed for signer {CLIENT_SIGNER}"
                )
            pem = base64.b64decode(spec.get("request") or "")
            cert = self.sb.ca.sign_client_csr(pem, spec.get("expirationSeconds"))
            csr.setdefault("status", {})["certificate"] = base64.b64encode(cert).decode()
        except ValueError as exc:
            csr.setdefault("status", {}).setdefault("conditions", []).append(
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "SignerValidationFailure",
                    "message": str(exc),
                    "lastUpdateTime": now_rfc3339(),
                    "lastTransitionTime": now_rfc3339(),
                }
            )
        csr["metadata"].pop("resourceVersion", None)
        with contextlib.suppress(ApiError):
            self.store.update(key, csr, subresource="status")

    def _bootstrap_namespace(self, namespace: str) -> None:
        ns = self.store.get("namespaces", None, namespace)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return
        with contextlib.suppress(ApiError):
            if self.store.get("serviceaccounts", namespace, "default") is None:
                self.store.create(
                    "serviceaccounts", {"metadata": {"name": "default", "namespace": namespace}}
                )
            if self.store.get("configmaps", namespace, "kube-root-ca.crt") is None:
                self.store.create(
                    "configmaps",
                    {
                        "metadata": {"name": "kube-root-ca.crt", "namespace": namespace},
                        "data": {"ca.crt": self.sb.ca_pem},
                    },
                )


RBAC_GROUP = "rbac.authorization.k8s.io"
_CLUSTER_ROLES = f"clusterroles.{RBAC_GROUP}"

# Changes that move a namespace's quota usage.
_QUOTA_TRIGGERS = frozenset(
    {"pods", "services", "configmaps", "secrets", "persistentvolumeclaims", "resourcequotas"}
)

# Registries that answer a DELETE with the deleted object rather than a Status.
_RETURN_DELETED = frozenset(
    {"pods", "services", "serviceaccounts", "resourcequotas", "persistentvolumeclaims"}
)


# Kubernetes objects nest a few dozen levels; deeper bodies would only exhaust the stack
# of the copying, validating and merging code.
MAX_DEPTH = 100
_TOO_DEEP = f"the request body nests deeper than {MAX_DEPTH} levels"


def _shallow(doc: Any) -> Any:
    """``doc`` itself, or a 400 when it nests deeper than MAX_DEPTH (checked iteratively)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise bad_request(_TOO_DEEP)
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return doc


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: a few nested aliases expand to gigabytes ("billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not accepted", event.start_mark
            )
        return super().compose_node(parent, index)


@functools.cache
def _openapi_v3_body(prefix: str) -> bytes | None:
    """A group version's OpenAPI v3 document with the schemas ``kubectl explain`` reads."""
    doc = openapi_v3_document(prefix)
    if doc is None:
        return None
    gvks = [
        (r.group, r.version, r.kind)
        for r in RESOURCES
        if (f"apis/{r.group}/{r.version}" if r.group else "api/v1") == prefix
    ]
    doc["components"]["schemas"] = validation.openapi_components(gvks)
    return json.dumps(doc, separators=(",", ":")).encode()


async def _read_body(request: web.Request) -> bytes:
    """The request body, or a Status when it does not arrive in time (a stalled client)."""
    try:
        return await asyncio.wait_for(request.read(), BODY_TIMEOUT)
    except TimeoutError:
        raise ApiError(
            408,
            "Timeout",
            f"the request body did not arrive within {BODY_TIMEOUT:.0f} s",
        ) from None


def _patch_rv(patch: Any) -> Any:
    """The resourceVersion a (merge) patch carries, if any."""
    md = patch.get("metadata") if isinstance(patch, dict) else None
    return md.get("resourceVersion") if isinstance(md, dict) else None


def _force(request: web.Request) -> bool:
    value = request.query.get("force", "false")
    if value not in ("true", "false", "1", "0", ""):
        raise bad_request(f'force: invalid value "{value}": must be true or false')
    return value in ("true", "1")


def _validate_log_options(q: Any, name: str) -> None:
    """PodLogOptions validation of the real API server (ValidatePodLogOptions): 422
    Invalid, every cause at once, as a client's `kubectl logs --since=0s` gets it."""
    causes: list[dict[str, str]] = []

    def check(field: str, bad: Any, message: str) -> None:
        value = _int_param(q, field, 0) if q.get(field) not in (None, "") else None
        if value is not None and bad(value):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {value}: {message}",
                    "field": field,
                }
            )

    check("tailLines", lambda v: v < 0, "must be greater than or equal to 0")
    check("limitBytes", lambda v: v < 1, "must be greater than 0")
    if q.get("sinceSeconds") not in (None, "") and q.get("sinceTime") not in (None, ""):
        causes.append(
            {
                "reason": "FieldValueForbidden",
                "message": "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be "
                "specified",
                "field": "",
            }
        )
    else:
        check("sinceSeconds", lambda v: v < 1, "must be greater than 0")
    if causes:
        text = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        raise ApiError(
            422,
            "Invalid",
            f'PodLogOptions "{name}" is invalid: {text}',
            {"name": name, "kind": "PodLogOptions", "causes": causes},
        )


def _int_param(q: Any, name: str, default: int) -> int:
    value = q.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f'{name}: invalid value "{value}": must be an integer') from None


__all__ = ["ApiServer", "Route", "status_error", "status_response"]
