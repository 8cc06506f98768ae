"""The values files of the arkouda-contrib charts (``arkouda-udp-server`` and
``arkouda-udp-locale``), both ways: spec settings and warnings about the traps a file
holds from one or both files, and the two files back from a spec, so chart users can
move in either direction. ``ClusterSpec.from_helm_values`` / ``to_helm_values`` are the
public face. Pure: no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .syntax import parse_quantity

if TYPE_CHECKING:
    from .spec import ClusterSpec

log = logging.getLogger(__name__)

# Fixed by the images, and what the charts' values carry; spec.py checks the server
# port against the two ports, manifests.py sets them.
# The address of the API server from inside any pod (the seed's minikube IP is not).
IN_CLUSTER_K8S_HOST = "https://kubernetes.default.svc"
# The metrics daemon's port (METRICS_SERVER_PORT, default 5556, ServerDaemon.chpl) and
# the exporter's scrape port (METRICS_SCRAPE_PORT, default 5080): the server port must
# differ from both, as from sshd's 22 (below 1024 anyway).
METRICS_PORT = 5556
METRICS_EXPORTER_PORT = 5080

# The server chart's server.numLocales is the TOTAL number of locales; the locale chart's
# server.numLocales counts locale pods (total - 1). Both files carry image, resources,
# threads and persistence, which must agree; where they do not, the server's wins.

_IN_CLUSTER_HOSTS = (
    "https://kubernetes.default.svc",
    "https://kubernetes.default.svc:443",
    "https://kubernetes.default.svc.cluster.local",
    "https://kubernetes.default.svc.cluster.local:443",
    "https://kubernetes.default",
    "https://kubernetes",
)
_SERVER_MARKERS_TOP = {"locale", "metricsExporter"}
_SERVER_MARKERS_SERVER = {"authenticate", "verbose", "memMax", "logLevel", "service", "metrics"}
_SERVER_MARKERS_EXTERNAL = {"k8sHost", "namespace", "service"}

_COMMON_KEYS = {
    "imageRepository",
    "releaseVersion",
    "imagePullPolicy",
    "resources.limits.cpu",
    "resources.limits.memory",
    "resources.requests.cpu",
    "resources.requests.memory",
    "server.numLocales",
    "server.threadsPerLocale",
    "server.memTrack",
    "external.persistence.enabled",
    "external.persistence.path",
    "external.persistence.hostPath",
    "secrets.tls",
    "secrets.ssh",
}
_KNOWN_KEYS = {
    "server": _COMMON_KEYS
    | {
        "server.authenticate",
        "server.verbose",
        "server.memMax",
        "server.logLevel",
        "server.service.type",
        "server.service.port",
        "server.service.nodeport",
        "server.service.name",
        "server.metrics.collectMetrics",
        "server.metrics.service.name",
        "server.metrics.service.port",
        "server.metrics.service.targetPort",
        "locale.appName",
        "locale.podMethod",
        "external.k8sHost",
        "external.namespace",
        "external.service.name",
        "external.service.port",
        "metricsExporter.imageRepository",
        "metricsExporter.releaseVersion",
        "metricsExporter.imagePullPolicy",
        "metricsExporter.service.name",
        "metricsExporter.service.port",
        "metricsExporter.pollingIntervalSeconds",
    },
    "locale": _COMMON_KEYS | {"server.port"},
}


def helm_chart_of(values: Mapping[str, Any]) -> str:
    """Which chart a values mapping is for, "server" or "locale", judged by its keys.

    Only the server chart has ``locale``, ``metricsExporter``, ``server.memMax`` and the
    like; a file with none of those is taken as locale values.
    """
    if not isinstance(values, Mapping):
        raise SpecError("values", values, "a mapping of Helm values")
    server = values.get("server")
    external = values.get("external")
    if (
        _SERVER_MARKERS_TOP & set(values)
        or (isinstance(server, Mapping) and _SERVER_MARKERS_SERVER & set(server))
        or (isinstance(external, Mapping) and _SERVER_MARKERS_EXTERNAL & set(external))
    ):
        return "server"
    return "locale"


def _dotted(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_dotted(value, path + "."))
        else:
            out[path] = value
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        # not quantities (an image tag, a policy name): plain equality decides
        log.debug("comparing %r and %r as plain values", a, b)
        return bool(a == b)


def spec_settings_from_values(
    server: Mapping[str, Any] | None, locale: Mapping[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    files: dict[str, dict[str, Any]] = {}
    for chart, values in (("server", server), ("locale", locale)):
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise SpecError(f"{chart} values", values, "a mapping of Helm values")
        files[chart] = _dotted(values)
    kwargs: dict[str, Any] = {}
    warnings: list[str] = []

    for chart, flat in files.items():
        for key in sorted(set(flat) - _KNOWN_KEYS[chart]):
            warnings.append(f"{chart} values: {key} is not a setting arkouda-k8s knows; ignored")

    def pick(key: str, charts: Sequence[str] = ("server", "locale")) -> Any:
        found = [(c, files[c][key]) for c in charts if c in files and files[c].get(key) is not None]
        if len(found) == 2 and not _same(found[0][1], found[1][1]):
            warnings.append(
                f"{key} differs between the charts (server {found[0][1]!r}, locale "
                f"{found[1][1]!r}); using the server's {found[0][1]!r} for every pod"
            )
        return found[0][1] if found else None

    for key, attr in (
        ("imageRepository", "image_repository"),
        ("releaseVersion", "release"),
        ("imagePullPolicy", "pull_policy"),
        ("server.threadsPerLocale", "threads"),
    ):
        value = pick(key)
        if value is not None:
            kwargs[attr] = value
    if isinstance(kwargs.get("release"), int | float):
        kwargs["release"] = str(kwargs["release"])
    for res, attr in (("cpu", "cpu"), ("memory", "memory")):
        limit = pick(f"resources.limits.{res}")
        request = pick(f"resources.requests.{res}")
        if limit is None:
            limit = request
        elif request is not None and not _same(limit, request):
            warnings.append(
                f"resources.requests.{res} {request!r} differs from the limit {limit!r}; "
                "arkouda-k8s requests the limit (Chapel sizes its memory and threads statically)"
            )
        if limit is not None:
            kwargs[attr] = limit

    total = files.get("server", {}).get("server.numLocales")
    pods = files.get("locale", {}).get("server.numLocales")
    if total is not None:
        kwargs["locales"] = total
        if isinstance(total, int) and pods is not None and pods != total - 1:
            warnings.append(
                f"the locale chart starts {pods} locale pod(s) but the server's numLocales "
                f"(the total, server included) is {total}; using the server's total "
                f"of {total} (the server pod and {total - 1} locale pod(s))"
            )
    elif pods is not None:
        kwargs["locales"] = (
            pods + 1 if isinstance(pods, int) and not isinstance(pods, bool) else pods
        )

    srv = files.get("server", {})
    if "server.memMax" in srv and srv["server.memMax"] is not None:
        kwargs["mem_max"] = srv["server.memMax"]
    if srv.get("server.authenticate") is not None:
        kwargs["authenticate"] = srv["server.authenticate"]
    if srv.get("server.logLevel") is not None:
        kwargs["log_level"] = srv["server.logLevel"]
    if srv.get("server.metrics.collectMetrics") is not None:
        kwargs["metrics"] = srv["server.metrics.collectMetrics"]
    if srv.get("external.namespace") is not None:
        kwargs["namespace"] = srv["external.namespace"]
    port = pick("server.service.port", ("server",))
    if port is None:
        port = pick("server.port", ("locale",))
    if port is None:
        port = pick("external.service.port", ("server",))
    if port is not None:
        kwargs["server_port"] = port

    for chart, flat in files.items():
        if flat.get("server.memTrack") is False:
            warnings.append(
                f"{chart} values: server.memTrack false is ignored; arkouda-k8s always "
                "tracks memory (memMax relies on it)"
            )
    host = srv.get("external.k8sHost")
    if host and str(host).rstrip("/") not in _IN_CLUSTER_HOSTS:
        warnings.append(
            f"external.k8sHost {host} is an address a pod may not reach (it is how you reach "
            f"the API from outside); arkouda-k8s uses {IN_CLUSTER_K8S_HOST}"
        )
    stype = srv.get("server.service.type")
    if stype not in (None, "ClusterIP"):
        warnings.append(
            f"server.service.type {stype} is not used; arkouda-k8s reaches the server "
            "through a port-forward to the server pod"
        )
    if srv.get("locale.podMethod") not in (None, "GET_POD_IPS"):
        warnings.append(
            f"locale.podMethod {srv['locale.podMethod']} is ignored; arkouda-k8s uses GET_POD_IPS"
        )

    # The secret names are "<instance>-tls" / "<instance>-ssh" in our scheme: recover
    # the instance name from them when they follow it (the seed's arkouda-tls does).
    names: set[str | None] = set()
    for flat in files.values():
        for kind in ("tls", "ssh"):
            secret = flat.get(f"secrets.{kind}")
            if isinstance(secret, str) and secret.endswith(f"-{kind}"):
                names.add(secret[: -len(kind) - 1])
            elif secret:
                names.add(None)
    if len(names) == 1 and None not in names:
        kwargs["name"] = names.pop()
    elif names:
        warnings.append(
            "secrets.tls / secrets.ssh do not share an '<name>-tls' / '<name>-ssh' prefix; "
            "arkouda-k8s generates its own secrets named after the instance"
        )
    for key in ("external.service.name", "server.service.name"):
        svc = srv.get(key)
        expected = f"{kwargs.get('name', 'arkouda')}-arkouda"
        if svc and svc != expected:
            warnings.append(
                f"{key} {svc} is replaced by {expected}: each instance registers its own "
                "service so several can share a namespace"
            )

    persist: dict[str, dict[str, Any]] = {}
    for chart, flat in files.items():
        if flat.get("external.persistence.enabled"):
            persist[chart] = {
                "host_path": flat.get("external.persistence.hostPath"),
                "mount_path": flat.get("external.persistence.path") or "/arkouda-files",
            }
    if persist:
        chosen = persist.get("server") or persist["locale"]
        if len(files) == 2 and len(persist) == 1:
            on = next(iter(persist))
            warnings.append(
                f"persistence is enabled in the {on} values only; arkouda-k8s mounts "
                f"{chosen['host_path']} at {chosen['mount_path']} on every pod"
            )
        elif len(persist) == 2 and persist["server"] != persist["locale"]:
            warnings.append(
                "persistence paths differ between the charts (they must match); using the "
                f"server's: {chosen['host_path']} at {chosen['mount_path']}"
            )
        if not chosen["host_path"]:
            warnings.append(
                "persistence is enabled without external.persistence.hostPath; "
                "turned off (set a host path to keep it)"
            )
        else:
            kwargs["persistence"] = chosen
    return kwargs, warnings


def values_from_spec(spec: ClusterSpec) -> dict[str, dict[str, Any]]:
    if spec.mode != "udp":
        raise SpecError(
            "mode", spec.mode, "udp: the arkouda-contrib charts describe udp deployments only"
        )
    resources = {
        "limits": {"cpu": spec.cpu, "memory": spec.memory},
        "requests": {"cpu": spec.cpu, "memory": spec.memory},
    }
    persistence = {
        "enabled": spec.persistence is not None,
        "path": spec.persistence.mount_path if spec.persistence else "/arkouda-files",
        "hostPath": spec.persistence.host_path if spec.persistence else None,
    }
    secrets = {"tls": f"{spec.name}-tls", "ssh": f"{spec.name}-ssh"}
    image = {
        "imageRepository": spec.image_repository,
        "releaseVersion": spec.release,
        "imagePullPolicy": spec.pull_policy,
    }
    server = {
        "resources": resources,
        **image,
        "server": {
            "numLocales": spec.locales,
            "authenticate": spec.authenticate,
            "verbose": spec.log_level == "DEBUG",
            "threadsPerLocale": spec.effective_threads,
            "memMax": spec.effective_mem_max,
            "memTrack": True,
            "logLevel": f"LogLevel.{spec.log_level}",
            "service": {
                "type": "ClusterIP",
                "port": spec.server_port,
                "nodeport": None,
                "name": f"{spec.name}-arkouda",
            },
            "metrics": {
                "collectMetrics": spec.metrics,
                "service": {
                    "name": f"{spec.name}-metrics",
                    "port": METRICS_PORT,
                    "targetPort": METRICS_PORT,
                },
            },
        },
        "locale": {"appName": f"{spec.name}-locale", "podMethod": "GET_POD_IPS"},
        "external": {
            "persistence": dict(persistence),
            "k8sHost": IN_CLUSTER_K8S_HOST,
            "namespace": spec.namespace or "default",
            "service": {"name": f"{spec.name}-arkouda", "port": spec.server_port},
        },
        "metricsExporter": {
            **image,
            "service": {
                "name": f"{spec.name}-metrics-exporter",
                "port": METRICS_EXPORTER_PORT,
            },
            "pollingIntervalSeconds": 5,
        },
        "secrets": dict(secrets),
    }
    locale = {
        **image,
        "resources": {k: dict(v) for k, v in resources.items()},
        "server": {
            "port": spec.server_port,
            "memTrack": True,
            "numLocales": spec.locale_pods,
            "threadsPerLocale": spec.effective_threads,
        },
        "external": {"persistence": dict(persistence)},
        "secrets": dict(secrets),
    }
    return {"server": server, "locale": locale}
