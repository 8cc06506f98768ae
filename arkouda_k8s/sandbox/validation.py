"""What the sandbox API server checks and fills in on incoming objects.

Schema validation uses the official schemas ``kubernetes-validate`` carries (the
newest version, strict variant: unknown fields are found in the same pass), compiled
once per kind and cached. On top of the schema: the name, label and field rules the
real registry enforces for the kinds we use (422 Invalid), and the defaults the real
API server fills in (Pod, Deployment, Service), so controllers and clients see the
objects they would see from a real cluster.
"""

from __future__ import annotations

import base64
import binascii
import importlib.resources
import ipaddress
import json
import re
from decimal import Decimal
from functools import cache
from typing import Any

import jsonschema
from referencing import Registry
from referencing import Resource as RefResource

from ..syntax import parse_quantity
from .resources import Resource
from .store import ApiError, bad_request, invalid

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# Kinds whose names are DNS-1123 labels rather than subdomains.
_LABEL_NAMED = frozenset({"namespaces", "services"})
# RBAC and CSR names may hold colons (path segment names).
_PATH_NAMED = frozenset(
    {"roles", "rolebindings", "clusterroles", "clusterrolebindings", "certificatesigningrequests"}
)


# ---------------------------------------------------------------------------------------
# Schema


def _schema_dir() -> Any:
    from kubernetes_validate import utils

    version = utils.latest_version()
    return (
        importlib.resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{version}-local-strict"
    )


@cache
def _registry() -> Registry:
    defs = json.loads((_schema_dir() / "_definitions.json").read_text())
    return RefResource.from_contents(defs) @ Registry()  # type: ignore[no-any-return]


@cache
def _validator(kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_dir() / f"{kind.lower()}-{short}.json"
    try:
        schema = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    registry = RefResource.from_contents(schema) @ _registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def warm_up(resources: list[Resource]) -> None:
    """Compile the validators now (about 10 ms each) rather than on first use."""
    for r in resources:
        _validator(r.kind, r.api_version)


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_GO_TYPES = {
    "integer": "int64",
    "string": "string",
    "boolean": "bool",
    "object": "map",
    "array": "slice",
}


def _type_names(schema_type: Any) -> list[str]:
    types = schema_type if isinstance(schema_type, list) else [schema_type]
    return [t for t in types if t != "null"]


def schema_check(res: Resource, obj: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """Validate against the official schema: (invalid (field, message), unknown fields).

    Type mismatches raise a 400 BadRequest at once, as the real decoder does.
    """
    validator = _validator(res.kind, res.api_version)
    if validator is None:
        return [], []
    causes: list[tuple[str, str]] = []
    unknown: list[str] = []
    for err in validator.iter_errors(obj):
        where = _path(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set((err.schema or {}).get("properties", {}))
            for key in err.instance:
                if key not in known:
                    unknown.append(f"{where}.{key}" if where else key)
        elif err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            causes.append((f"{where}.{missing}" if where else missing, "Required value"))
        elif err.validator == "type":
            want = _type_names(err.validator_value)
            go = _GO_TYPES.get(want[0], want[0]) if want else "value"
            got = type(err.instance).__name__
            got = {
                "str": "string",
                "int": "number",
                "float": "number",
                "dict": "object",
                "list": "array",
                "bool": "bool",
            }.get(got, got)
            raise bad_request(
                f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                f"json: cannot unmarshal {got} into Go struct field {where} of type {go}"
            )
        elif err.validator == "enum" and where in ("apiVersion", "kind"):
            continue  # routed by the URL; checked by the caller with a better message
        elif err.validator == "enum":
            allowed = ", ".join(f'"{v}"' for v in err.validator_value if v is not None)
            causes.append(
                (
                    where,
                    f"Unsupported value: {json.dumps(err.instance)}: supported values: {allowed}",
                )
            )
        else:
            causes.append(
                (where, f"Invalid value: {json.dumps(err.instance)[:80]}: {err.message[:120]}")
            )
    return causes, unknown


def prune(obj: dict[str, Any], fields: list[str]) -> None:
    """Drop unknown fields (dotted paths with [i] indexes), as the real decoder does."""
    for f in fields:
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", f)
        node: Any = obj
        for p in parts[:-1]:
            node = node[int(p[1:-1])] if p.startswith("[") else node.get(p)
            if node is None:
                break
        else:
            last = parts[-1]
            if isinstance(node, dict):
                node.pop(last, None)


# ---------------------------------------------------------------------------------------
# Registry rules beyond the schema


def _name_rule(res: Resource, name: str) -> str | None:
    if res.plural in _PATH_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return f"Invalid value: \"{name}\": may not contain '/' or '%'"
        return None
    if res.plural in _LABEL_NAMED:
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            return (
                f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                "alphanumeric characters or '-', and must start and end with an alphanumeric "
                "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
        return None
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return (
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return None


def _label_rules(where: str, labels: Any, causes: list[tuple[str, str]]) -> None:
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        name = key.split("/", 1)[-1]
        prefix = key.split("/", 1)[0] if "/" in key else ""
        if (
            not name
            or len(name) > 63
            or not _QUALIFIED_NAME.match(name)
            or (prefix and not _DNS1123_SUBDOMAIN.match(prefix))
        ):
            causes.append(
                (
                    where,
                    f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
        if isinstance(value, str) and (len(value) > 63 or not _LABEL_VALUE.match(value)):
            causes.append(
                (
                    f"{where}",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist '
                    "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )


def _no_backsteps(at: str, path: Any, causes: list[tuple[str, str]]) -> None:
    if isinstance(path, str) and ".." in path.replace("\\", "/").split("/"):
        causes.append((at, f"Invalid value: \"{path}\": must not contain '..'"))


def _local_descending(at: str, path: Any, causes: list[tuple[str, str]]) -> None:
    """The API server's rule for item paths and subPath: relative, no '..' element."""
    if not isinstance(path, str):
        return
    if path.startswith("/"):
        causes.append((at, f'Invalid value: "{path}": must be a relative path'))
    _no_backsteps(at, path, causes)
    if path.startswith("..") and not path.startswith("../"):
        causes.append((at, f"Invalid value: \"{path}\": must not start with '..'"))


def _volume_path_rules(where: str, spec: dict[str, Any], causes: list[tuple[str, str]]) -> None:
    """Paths in volumes and mounts, as the real API server checks them (no '..' escapes)."""
    for i, vol in enumerate(spec.get("volumes") or []):
        if not isinstance(vol, dict):
            continue
        at = f"{where}.volumes[{i}]"
        if isinstance(vol.get("hostPath"), dict):
            _no_backsteps(f"{at}.hostPath.path", vol["hostPath"].get("path"), causes)
        sources = [(k, vol[k]) for k in ("secret", "configMap", "downwardAPI") if k in vol]
        for j, src in enumerate((vol.get("projected") or {}).get("sources") or []):
            for k in ("secret", "configMap", "downwardAPI"):
                if isinstance(src, dict) and k in src:
                    sources.append((f"projected.sources[{j}].{k}", src[k]))
        for kind, src in sources:
            for n, item in enumerate((src or {}).get("items") or []):
                if isinstance(item, dict):
                    _local_descending(f"{at}.{kind}.items[{n}].path", item.get("path"), causes)
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            for j, vm in enumerate((c or {}).get("volumeMounts") or []):
                if isinstance(vm, dict) and vm.get("subPath"):
                    at = f"{where}.{group}[{i}].volumeMounts[{j}].subPath"
                    _local_descending(at, vm["subPath"], causes)


def _pod_spec_rules(where: str, spec: Any, causes: list[tuple[str, str]]) -> None:
    if not isinstance(spec, dict):
        return
    _volume_path_rules(where, spec, causes)
    containers = spec.get("containers")
    if not containers:
        causes.append((f"{where}.containers", "Required value"))
        return
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            if not isinstance(c, dict):
                continue
            at = f"{where}.{group}[{i}]"
            name = c.get("name") or ""
            if name and (len(name) > 63 or not _DNS1123_LABEL.match(name)):
                causes.append(
                    (
                        f"{at}.name",
                        f"Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
                    )
                )
            if name in seen:
                causes.append((f"{at}.name", f'Duplicate value: "{name}"'))
            seen.add(name)
            if not c.get("image"):
                causes.append((f"{at}.image", "Required value"))
            for j, p in enumerate(c.get("ports") or []):
                port = p.get("containerPort") if isinstance(p, dict) else None
                if isinstance(port, int) and not 0 < port < 65536:
                    causes.append(
                        (
                            f"{at}.ports[{j}].containerPort",
                            f"Invalid value: {port}: must be between 1 and 65535, inclusive",
                        )
                    )


# What kube-apiserver's decoder says of a quantity it cannot read (a 400, not a 422).
_QUANTITY_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"


def _resource_rules(res: Resource, where: str, spec: Any, causes: list[tuple[str, str]]) -> None:
    """Container resources: quantities the decoder reads (else 400 at once), none
    negative, no request above its limit (422 causes), as the real API server checks."""
    if not isinstance(spec, dict):
        return
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            resources = c.get("resources") if isinstance(c, dict) else None
            if not isinstance(resources, dict):
                continue
            at = f"{where}.{group}[{i}].resources"
            given: dict[str, dict[str, tuple[Any, Decimal]]] = {}
            for kind in ("requests", "limits"):
                values = resources.get(kind)
                for name, value in (values if isinstance(values, dict) else {}).items():
                    try:
                        q = parse_quantity(value)
                    except ValueError:
                        raise bad_request(
                            f'{res.kind} in version "{res.version}" cannot be handled as a '
                            f"{res.kind}: quantities must match the regular expression "
                            f"'{_QUANTITY_PATTERN}'"
                        ) from None
                    if q < 0:
                        causes.append(
                            (
                                f"{at}.{kind}[{name}]",
                                f'Invalid value: "{value}": must be greater than or equal to 0',
                            )
                        )
                    given.setdefault(kind, {})[name] = (value, q)
            limits = given.get("limits", {})
            for name, (value, q) in given.get("requests", {}).items():
                if name in limits and q > limits[name][1]:
                    causes.append(
                        (
                            f"{at}.requests",
                            f'Invalid value: "{value}": must be less than or equal to {name} '
                            f"limit of {limits[name][0]}",
                        )
                    )


def _label_selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    from .store import match_label_selector_obj

    return match_label_selector_obj(selector, labels)


def semantic_check(res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """The registry's rules for the kinds we serve; raises 422 Invalid (or 400)."""
    md = obj.get("metadata") or {}
    name = md.get("name") or ""
    causes: list[tuple[str, str]] = []
    if name and (problem := _name_rule(res, name)):
        causes.append(("metadata.name", problem))
    _label_rules("metadata.labels", md.get("labels"), causes)
    raw_spec = obj.get("spec")
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    key = res.key
    if key == "pods":
        _resource_rules(res, "spec", spec, causes)
    elif key in ("deployments.apps", "replicasets.apps", "daemonsets.apps", "jobs.batch"):
        template = spec.get("template")
        pod_spec = template.get("spec") if isinstance(template, dict) else None
        _resource_rules(res, "spec.template.spec", pod_spec, causes)
    if key == "pods":
        _pod_spec_rules("spec", spec, causes)
        if old is not None and _pod_spec_core(old.get("spec")) != _pod_spec_core(spec):
            causes.append(
                (
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*]"
                    ".image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                    "`spec.tolerations` (only additions to existing tolerations),"
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                    "previously negative)",
                )
            )
    elif key in ("deployments.apps", "replicasets.apps", "daemonsets.apps"):
        tmpl = spec.get("template") or {}
        _pod_spec_rules("spec.template.spec", tmpl.get("spec"), causes)
        _label_rules(
            "spec.template.metadata.labels", (tmpl.get("metadata") or {}).get("labels"), causes
        )
        selector = spec.get("selector") or {}
        labels = (tmpl.get("metadata") or {}).get("labels") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(
                (
                    "spec.selector",
                    "Invalid value: empty selector is invalid for "
                    + ("daemonset" if key == "daemonsets.apps" else "deployment"),
                )
            )
        elif not _label_selector_matches(selector, labels):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {json.dumps(labels)}: `selector` does not match template "
                    "`labels`",
                )
            )
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            causes.append(
                ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
            )
        if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
            causes.append(
                ("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable")
            )
    elif key == "jobs.batch":
        _job_rules(spec, old, causes)
    elif key == "services":
        headless = spec.get("clusterIP") == "None"
        ports = spec.get("ports") or []
        if not ports and not headless and spec.get("type") != "ExternalName":
            causes.append(("spec.ports", "Required value"))
        for i, p in enumerate(ports):
            port = p.get("port") if isinstance(p, dict) else None
            if isinstance(port, int) and not 0 < port < 65536:
                causes.append(
                    (
                        f"spec.ports[{i}].port",
                        f"Invalid value: {port}: must be between 1 and 65535, inclusive",
                    )
                )
        if len(ports) > 1 and any(isinstance(p, dict) and not p.get("name") for p in ports):
            causes.append(("spec.ports[0].name", "Required value"))
        if old is not None:
            old_ip = (old.get("spec") or {}).get("clusterIP")
            new_ip = spec.get("clusterIP")
            if old_ip and new_ip and old_ip != new_ip:
                causes.append(("spec.clusterIP", f'Invalid value: "{new_ip}": field is immutable'))
    elif key in ("configmaps", "secrets"):
        for field in ("data", "binaryData", "stringData"):
            for k in obj.get(field) or {}:
                if not _CONFIG_KEY.match(k) or len(k) > 253:
                    causes.append(
                        (
                            f"{field}[{k}]",
                            f'Invalid value: "{k}": a valid config key must consist of '
                            "alphanumeric characters, '-', '_' or '.'",
                        )
                    )
        if (
            old is not None
            and old.get("immutable")
            and any(obj.get(f) != old.get(f) for f in ("data", "binaryData"))
        ):
            causes.append(("data", "Forbidden: field is immutable when `immutable` is set"))
        if key == "secrets":
            for k, v in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(v, validate=True)
                except (binascii.Error, TypeError, ValueError):
                    raise bad_request(
                        f'Secret in version "v1" cannot be handled as a Secret: illegal base64 '
                        f"data in data[{k}]"
                    ) from None
    elif key == "certificatesigningrequests.certificates.k8s.io":
        if not spec.get("signerName"):
            causes.append(("spec.signerName", "Required value"))
        request = spec.get("request")
        if request:
            try:
                pem = base64.b64decode(request, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise bad_request(
                    'CertificateSigningRequest in version "v1" cannot be handled as a '
                    "CertificateSigningRequest: illegal base64 data in spec.request"
                ) from None
            if b"CERTIFICATE REQUEST" not in pem:
                causes.append(
                    (
                        "spec.request",
                        "Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST",
                    )
                )
        if old is not None and (old.get("spec") or {}).get("request") != request:
            causes.append(("spec.request", "Invalid value: field is immutable"))
    elif key in (
        "rolebindings.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
    ):
        if old is not None and old.get("roleRef") != obj.get("roleRef"):
            causes.append(("roleRef", "Invalid value: cannot change roleRef"))
    elif key == "endpoints":
        for i, subset in enumerate(obj.get("subsets") or []):
            for j, addr in enumerate(subset.get("addresses") or []):
                ip = addr.get("ip", "") if isinstance(addr, dict) else ""
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    causes.append(
                        (
                            f"subsets[{i}].addresses[{j}].ip",
                            f'Invalid value: "{ip}": must be a valid IP address',
                        )
                    )
    if causes:
        raise invalid(res, name, causes)


def _pod_spec_core(spec: Any) -> Any:
    """A pod spec without the fields an update may change."""
    if not isinstance(spec, dict):
        return spec
    out = json.loads(json.dumps(spec))
    for group in ("containers", "initContainers"):
        for c in out.get(group) or []:
            if isinstance(c, dict):
                c.pop("image", None)
    for f in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "nodeName"):
        out.pop(f, None)
    return out


# ---------------------------------------------------------------------------------------
# Defaults


def _default_container(c: dict[str, Any]) -> None:
    image = str(c.get("image") or "")
    tag = image.rsplit("/", 1)[-1]
    if "imagePullPolicy" not in c:
        latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
        c["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    resources = c.setdefault("resources", {})
    if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
        requests = resources.setdefault("requests", {})
        for k, v in resources["limits"].items():
            requests.setdefault(k, v)  # requests default to limits
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)


def default_pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            if isinstance(c, dict):
                _default_container(c)
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        for src in ("secret", "configMap"):
            if isinstance(v.get(src), dict):
                v[src].setdefault("defaultMode", 420)


def _job_rules(
    spec: dict[str, Any], old: dict[str, Any] | None, causes: list[tuple[str, str]]
) -> None:
    """batch/v1 Job: the template's pod spec, a restart policy a Job can finish with,
    non-negative counts, and a template that stays as created."""
    tmpl = spec.get("template") or {}
    _pod_spec_rules("spec.template.spec", tmpl.get("spec"), causes)
    _label_rules(
        "spec.template.metadata.labels", (tmpl.get("metadata") or {}).get("labels"), causes
    )
    policy = (tmpl.get("spec") or {}).get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        causes.append(
            (
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
            )
        )
    for count in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(count)
        if isinstance(value, int) and value < (1 if count == "activeDeadlineSeconds" else 0):
            bound = (
                "greater than 0"
                if count == "activeDeadlineSeconds"
                else "greater than or equal to 0"
            )
            causes.append((f"spec.{count}", f"Invalid value: {value}: must be {bound}"))
    if old is not None:
        old_spec = old.get("spec") or {}
        for immutable in ("template", "completions", "selector"):
            if old_spec.get(immutable) != spec.get(immutable):
                causes.append((f"spec.{immutable}", "Invalid value: field is immutable"))


def apply_defaults(res: Resource, obj: dict[str, Any]) -> None:
    """Fill in what the real API server defaults for the kinds we serve."""
    key = res.key
    spec = obj.get("spec")
    if key == "pods" and isinstance(spec, dict):
        default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("priority", 0)
        spec.setdefault(
            "tolerations",
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        )
    elif key in ("deployments.apps", "replicasets.apps") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if key == "deployments.apps":
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if (
                isinstance(strategy, dict)
                and strategy.get("type", "RollingUpdate") == "RollingUpdate"
            ):
                strategy.setdefault("type", "RollingUpdate")
                ru = strategy.setdefault("rollingUpdate", {})
                if isinstance(ru, dict):
                    ru.setdefault("maxSurge", "25%")
                    ru.setdefault("maxUnavailable", "25%")
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            tmpl.setdefault("metadata", {})
            default_pod_spec(tmpl.get("spec"))
    elif key == "daemonsets.apps" and isinstance(spec, dict):
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if isinstance(strategy, dict) and strategy.get("type") == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxUnavailable", 1)
                ru.setdefault("maxSurge", 0)
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            tmpl.setdefault("metadata", {})
            default_pod_spec(tmpl.get("spec"))
    elif key == "jobs.batch" and isinstance(spec, dict):
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            tmpl.setdefault("metadata", {})
            default_pod_spec(tmpl.get("spec"))
    elif key == "services" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p:
                    p.setdefault("targetPort", p["port"])
    elif key == "secrets":
        obj.setdefault("type", "Opaque")
    elif key == "certificatesigningrequests.certificates.k8s.io" and isinstance(spec, dict):
        spec.setdefault("usages", ["digital signature", "key encipherment"])


def check_kind(res: Resource, obj: dict[str, Any]) -> None:
    """The body's apiVersion/kind must match the URL (400 like the real decoder)."""
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if kind is None and api_version is None:
        return
    if api_version is not None and api_version != res.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({res.api_version})"
        )
    if kind is not None and kind != res.kind:
        raise bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({res.kind})"
        )


__all__ = [
    "ApiError",
    "apply_defaults",
    "check_kind",
    "prune",
    "schema_check",
    "semantic_check",
    "warm_up",
]


# ---------------------------------------------------------------------------------------
# Pod Security admission (the namespace labels pod-security.kubernetes.io/<mode>)

PSA_PREFIX = "pod-security.kubernetes.io/"


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for group in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in spec.get(group) or [] if isinstance(c, dict)]
    return out


def _names(cs: list[dict[str, Any]]) -> str:
    quoted = ", ".join(f'"{c.get("name", "")}"' for c in cs)
    return f"container {quoted}" if len(cs) == 1 else f"containers {quoted}"


def pod_security_violations(level: str, spec: dict[str, Any]) -> list[str]:
    """The checks a pod spec fails at ``baseline`` or ``restricted``, in the real wording."""
    if level not in ("baseline", "restricted") or not isinstance(spec, dict):
        return []
    out: list[str] = []
    cs = _containers(spec)
    pod_sc = spec.get("securityContext") or {}

    def sc(c: dict[str, Any]) -> dict[str, Any]:
        return c.get("securityContext") or {}

    privileged = [c for c in cs if sc(c).get("privileged")]
    if privileged:
        out.append(
            f"privileged ({_names(privileged)} must not set securityContext.privileged=true)"
        )
    host = [f for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f)]
    if host:
        out.append(f"host namespaces ({', '.join(f'{h}=true' for h in host)})")
    host_path = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in (v or {})]
    if host_path:
        out.append(
            f'hostPath volumes (volume{"s" if len(host_path) > 1 else ""} "{", ".join(host_path)}")'
        )
    host_ports = [c for c in cs if any((p or {}).get("hostPort") for p in c.get("ports") or [])]
    if host_ports:
        out.append(f"hostPort ({_names(host_ports)} uses hostPort)")
    allowed_caps = {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }  # fmt: skip
    added = [
        c for c in cs if set((sc(c).get("capabilities") or {}).get("add") or []) - allowed_caps
    ]
    if added:
        out.append(
            f"capabilities ({_names(added)} must not include capabilities beyond the baseline set)"
        )
    if level == "baseline":
        return out
    escalation = [c for c in cs if sc(c).get("allowPrivilegeEscalation") is not False]
    if escalation:
        out.append(
            f"allowPrivilegeEscalation != false ({_names(escalation)} must set "
            "securityContext.allowPrivilegeEscalation=false)"
        )
    caps = [
        c
        for c in cs
        if "ALL" not in ((sc(c).get("capabilities") or {}).get("drop") or [])
        or set((sc(c).get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}
    ]
    if caps:
        out.append(
            f"unrestricted capabilities ({_names(caps)} must set "
            'securityContext.capabilities.drop=["ALL"])'
        )
    if pod_sc.get("runAsNonRoot") is not True:
        root = [c for c in cs if sc(c).get("runAsNonRoot") is not True]
        if root:
            out.append(
                f"runAsNonRoot != true (pod or {_names(root)} must set "
                "securityContext.runAsNonRoot=true)"
            )
    if (pod_sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        seccomp = [
            c
            for c in cs
            if (sc(c).get("seccompProfile") or {}).get("type")
            not in ("RuntimeDefault", "Localhost")
        ]
        if seccomp:
            out.append(
                f"seccompProfile (pod or {_names(seccomp)} must set "
                'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
            )
    return out


def pod_security(namespace: dict[str, Any] | None, spec: Any, mode: str) -> str | None:
    """``violates PodSecurity "<level>:<version>": ...`` for the namespace's ``mode`` label
    (enforce, warn or audit), or None when the pod spec passes."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(PSA_PREFIX + mode)
    if not level or not isinstance(spec, dict):
        return None
    found = pod_security_violations(level, spec)
    if not found:
        return None
    version = labels.get(f"{PSA_PREFIX}{mode}-version", "latest")
    return f'PodSecurity "{level}:{version}": ' + ", ".join(found)


# ---------------------------------------------------------------------------------------
# OpenAPI v3 component schemas (for ``kubectl explain``), from the same schema files


def _openapi_node(node: Any) -> Any:
    """JSON-schema (2020-12, nullable type arrays) -> OpenAPI 3.0 shapes kubectl reads."""
    if isinstance(node, list):
        return [_openapi_node(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace("#/$defs/", "#/components/schemas/")
        elif key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            out[key] = kinds[0] if len(kinds) == 1 else kinds
        else:
            out[key] = _openapi_node(value)
    return out


@cache
def _plain_definitions() -> dict[str, Any]:
    from kubernetes_validate import utils

    base = (
        importlib.resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{utils.latest_version()}-local"
    )
    defs: dict[str, Any] = json.loads((base / "_definitions.json").read_text())["$defs"]
    return defs


def openapi_components(gvks: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The component schemas of these (group, version, kind)s and everything they use."""
    defs = _plain_definitions()
    wanted = set(gvks)
    roots = [
        name
        for name, schema in defs.items()
        if any(
            (g.get("group", ""), g.get("version", ""), g.get("kind", "")) in wanted
            for g in schema.get("x-kubernetes-group-version-kind") or []
        )
    ]
    seen: dict[str, Any] = {}
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in defs:
            continue
        seen[name] = _openapi_node(defs[name])
        stack += re.findall(r'"#/\$defs/([^"]+)"', json.dumps(defs[name]))
    return seen
