"""ClusterSpec: every setting of one Arkouda deployment, validated on construction.

A bad value raises :class:`~arkouda_k8s.errors.SpecError` naming the field (in the
user's words), the value and what is allowed. The spec also reads and writes the values
files of the arkouda-contrib ``arkouda-udp-server`` / ``arkouda-udp-locale`` charts, so
chart users can move in either direction. Pure: no I/O, no ``kubernetes`` import.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import SpecError

DEFAULT_RELEASE = "v2023.05.05"
DEFAULT_IMAGE_REPOSITORY = "bearsrus"
# Releases with published bearsrus/arkouda-{udp,smp}-server images, as far as the project
# knows without a registry: the image tags the arkouda-contrib charts named in their
# values.yaml and Chart.yaml (history up to 2024-06). `arkouda-k8s doctor` and `--version`
# read it offline; a release not listed may still exist (a newer one, a private mirror).
KNOWN_RELEASES = (
    "v2023.03.01",
    "v2023.04.07",
    "v2023.05.05",
    "v2023.06.20",
    "v2023.09.06",
    "v2023.11.15",
    "v2024.02.02",
    "v2024.03.18",
    "v2024.04.19",
)
MODES = ("udp", "smp")
# How the in-cluster Service of the server comes to be (docs/internals.md):
# "client": arkouda-k8s creates {name}-arkouda with a selector; the server pod lists
#   locale pods with its own ServiceAccount; namespace permissions only.
# "server": the charts' flow; the server registers a selector-less Service + Endpoints
#   itself with a client certificate from a kube-apiserver-client CSR (cluster-scoped).
REGISTRATIONS = ("client", "server")
# Who may open a connection to the Arkouda port (the rendered NetworkPolicy): pods of the
# same namespace, any pod of the cluster, or no NetworkPolicy at all. sshd and the
# GASNet ports are open to the instance's own pods only, whenever a policy is rendered.
NETWORK_POLICIES = ("namespace", "cluster", "off")
# Locale placement: one locale per node (pod anti-affinity on kubernetes.io/hostname),
# required (unschedulable without a free node), preferred (when there is room) or none.
SPREADS = ("preferred", "required", "none")
NO_AUTH_WARNING = (
    "AUTHENTICATION IS OFF: anyone who can reach the Arkouda port in the cluster, or the "
    "local tunnel on this machine, can use the server and read or delete its data"
)
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# Arkouda's LogLevel enum (ServerConfig/Logging.chpl).
LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "CRITICAL")
MAX_LOCALES = 1024
# Longest suffix we append to the instance name: "-locale-headless" (16 chars). A
# Service name is a DNS-1035 label of at most 63 characters.
LONGEST_SUFFIX = "-locale-headless"
MAX_NAME_LENGTH = 63 - len(LONGEST_SUFFIX)
# Derived memMax: Arkouda's own memory plus the Chapel/GASNet runtime, sshd and the
# launch script must fit under the cgroup limit, so leave a fifth of it as headroom.
MEM_MAX_FRACTION = 0.8
MIN_MEMORY = 64 * 2**20
# The address of the API server from inside any pod (the seed's minikube IP is not).
IN_CLUSTER_K8S_HOST = "https://kubernetes.default.svc"
# The metrics daemon's port (METRICS_SERVER_PORT, default 5556, ServerDaemon.chpl) and
# the exporter's scrape port (METRICS_SCRAPE_PORT, default 5080): the server port must
# differ from both, as from sshd's 22 (below 1024 anyway).
METRICS_PORT = 5556
METRICS_EXPORTER_PORT = 5080
RESERVED_PORTS = (METRICS_PORT, METRICS_EXPORTER_PORT)

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# registry[:port]/path/components (Docker reference grammar, without tag or digest).
_REPO_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_HOST = r"[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*(?::[0-9]+)?"
_REPOSITORY = re.compile(rf"^(?:{_REPO_HOST}/)?{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*$")
_ABS_PATH = re.compile(r"^/[^\0]*$")

STANDARD_LABEL_KEYS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|([A-Za-z]{0,2}))$"
)


def parse_quantity(text: Any) -> Decimal:
    """A Kubernetes quantity ("1", "500m", "2Gi", "1.5G", "1e3") as a Decimal.

    Raises ValueError for anything Kubernetes would reject.
    """
    if isinstance(text, bool):
        raise ValueError("not a quantity")
    if isinstance(text, int | float):
        text = str(text)
    if not isinstance(text, str):
        raise ValueError("not a quantity")
    m = _QUANTITY.match(text.strip()) if text == text.strip() else None
    if not m:
        raise ValueError("not a quantity")
    number, exponent, suffix = m.group(1), m.group(2), m.group(3) or ""
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError("not a quantity") from exc
    if exponent:
        return value * (Decimal(10) ** int(exponent[1:]))
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    raise ValueError(f"unknown suffix {suffix!r}")


def format_bytes(n: int) -> str:
    """Bytes as a short human string (2.0 GiB), for messages."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@dataclass(frozen=True)
class Persistence:
    """A host directory mounted into every Arkouda pod (for reading/writing files)."""

    host_path: str
    mount_path: str = "/arkouda-files"

    def __post_init__(self) -> None:
        for fname, value in (
            ("persistence.host_path", self.host_path),
            ("persistence.mount_path", self.mount_path),
        ):
            if not isinstance(value, str) or not _ABS_PATH.match(value) or value.strip() != value:
                raise SpecError(fname, value, "an absolute path such as /mnt/arkouda")
            # The API server refuses '..' in a hostPath; a mount path that climbs is
            # refused here too, before anything reaches a cluster.
            if ".." in value.split("/"):
                raise SpecError(fname, value, "an absolute path without '..' (e.g. /mnt/arkouda)")
        if self.mount_path in ("/", "/opt/arkouda", "/etc/ssl/arkouda", "/home/ubuntu/ssh-keys"):
            raise SpecError(
                "persistence.mount_path",
                self.mount_path,
                "a directory not used by the image or the launch scripts (e.g. /arkouda-files)",
            )


def _check_name(fname: str, value: Any, max_len: int = 63, dns1035: bool = False) -> None:
    pattern = _DNS1035 if dns1035 else _DNS1123_LABEL
    first = "a letter" if dns1035 else "a letter or digit"
    if not isinstance(value, str) or not value or len(value) > max_len or not pattern.match(value):
        raise SpecError(
            fname,
            value,
            f"lower-case letters, digits and '-', starting with {first}, ending with a "
            f"letter or digit, at most {max_len} characters (RFC 1123)",
        )


def _check_subdomain(fname: str, value: Any) -> None:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 253
        or not _DNS1123_SUBDOMAIN.match(value)
    ):
        raise SpecError(
            fname, value, "a DNS subdomain name: lower-case letters, digits, '-' and '.'"
        )


def _check_label_key(fname: str, key: Any) -> None:
    ok = isinstance(key, str) and key.count("/") <= 1
    if ok:
        prefix, _, name = key.rpartition("/")
        ok = (
            (not prefix or (len(prefix) <= 253 and bool(_DNS1123_SUBDOMAIN.match(prefix))))
            and 0 < len(name) <= 63
            and bool(_LABEL_NAME.match(name))
        )
    if not ok:
        raise SpecError(
            fname,
            key,
            "a label/annotation key: [prefix/]name, name up to 63 characters of letters, "
            "digits, '-', '_', '.', prefix a DNS subdomain",
        )


def _check_label_value(fname: str, value: Any) -> None:
    if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
        raise SpecError(
            fname,
            value,
            "a label value: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (or empty)",
        )


def _check_int(fname: str, value: Any, low: int, high: int | None = None) -> None:
    bad = isinstance(value, bool) or not isinstance(value, int)
    if not bad and (value < low or (high is not None and value > high)):
        bad = True
    if bad:
        allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
        raise SpecError(fname, value, allowed)


def _mapping(fname: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(fname, value, "a mapping of key: value")
    return dict(value)


_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
_TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute", "")


def _check_toleration(i: int, tol: Any) -> dict[str, Any]:
    fname = f"tolerations[{i}]"
    if not isinstance(tol, Mapping):
        raise SpecError(fname, tol, "a mapping with key, operator, value, effect")
    tol = dict(tol)
    unknown = set(tol) - _TOLERATION_KEYS
    if unknown:
        raise SpecError(
            f"{fname}.{sorted(unknown)[0]}",
            tol[sorted(unknown)[0]],
            f"toleration fields are {', '.join(sorted(_TOLERATION_KEYS))}",
        )
    op = tol.get("operator", "Equal")
    if op not in ("Equal", "Exists"):
        raise SpecError(f"{fname}.operator", op, "Equal or Exists")
    if "key" in tol:
        _check_label_key(f"{fname}.key", tol["key"])
    elif op != "Exists":
        raise SpecError(f"{fname}.key", None, "a key (only operator Exists may omit it)")
    if "value" in tol:
        if op == "Exists" and tol["value"]:
            raise SpecError(f"{fname}.value", tol["value"], "no value with operator Exists")
        _check_label_value(f"{fname}.value", tol["value"])
    if tol.get("effect", "") not in _TOLERATION_EFFECTS:
        raise SpecError(
            f"{fname}.effect", tol.get("effect"), "NoSchedule, PreferNoSchedule or NoExecute"
        )
    if "tolerationSeconds" in tol:
        _check_int(f"{fname}.tolerationSeconds", tol["tolerationSeconds"], 0)
        if tol.get("effect") != "NoExecute":
            raise SpecError(
                f"{fname}.tolerationSeconds",
                tol["tolerationSeconds"],
                "only with effect NoExecute",
            )
    return tol


@dataclass(frozen=True)
class ClusterSpec:
    """Every setting of one Arkouda deployment; immutable, validated on construction.

    >>> spec = ClusterSpec(name="demo", locales=4, memory="4Gi")
    >>> spec.effective_mem_max < spec.memory_bytes
    True
    >>> spec.replace(locales=8).locales
    8
    """

    name: str = "arkouda"
    namespace: str | None = None
    mode: str = "udp"
    locales: int = 2
    threads: int | None = None
    cpu: str = "1"
    memory: str = "2Gi"
    mem_max: int | None = None
    release: str = DEFAULT_RELEASE
    image_repository: str = DEFAULT_IMAGE_REPOSITORY
    pull_policy: str = "IfNotPresent"
    authenticate: bool = True
    metrics: bool = False
    log_level: str = "INFO"
    persistence: Persistence | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    service_account: str | None = None
    server_port: int = 5555
    ttl_seconds: int | None = None
    registration: str = "client"
    network_policy: str = "namespace"
    spread: str = "preferred"

    # -- validation -------------------------------------------------------------------

    def __post_init__(self) -> None:
        def put(attr: str, value: Any) -> None:
            object.__setattr__(self, attr, value)

        _check_name("name", self.name, MAX_NAME_LENGTH, dns1035=True)
        if self.namespace is not None:
            _check_name("namespace", self.namespace)
        if self.mode not in MODES:
            raise SpecError("mode", self.mode, "udp (server + locale pods) or smp (one pod)")
        _check_int("locales", self.locales, 1, MAX_LOCALES)
        if self.threads is not None:
            _check_int("threads", self.threads, 1, 1024)

        # Quantities keep the user's spelling; they are compared by value.
        if isinstance(self.cpu, int | float) and not isinstance(self.cpu, bool):
            put("cpu", str(self.cpu))
        try:
            cpu = parse_quantity(self.cpu)
        except ValueError:
            cpu = Decimal(-1)
        if cpu <= 0:
            raise SpecError(
                "cpu", self.cpu, "a positive Kubernetes CPU quantity such as 1, 2 or 500m"
            )
        if isinstance(self.memory, int) and not isinstance(self.memory, bool):
            put("memory", str(self.memory))
        try:
            mem = parse_quantity(self.memory)
        except ValueError:
            mem = Decimal(-1)
        if mem < MIN_MEMORY:
            allowed = "a Kubernetes memory quantity such as 512Mi, 4Gi or 8G"
            if mem > 0:
                allowed += f", at least {format_bytes(MIN_MEMORY)}"
            raise SpecError("memory", self.memory, allowed)

        if self.mem_max is not None:
            mm = self.mem_max
            if isinstance(mm, str):
                try:
                    q = parse_quantity(mm)
                except ValueError:
                    q = Decimal(-1)
                if q != q.to_integral_value():
                    q = Decimal(-1)
                mm = int(q)
            if isinstance(mm, bool) or not isinstance(mm, int) or mm <= 0:
                raise SpecError(
                    "mem_max", self.mem_max, "a positive number of bytes (or a quantity like 3Gi)"
                )
            limit = int(mem)
            # memMax is per locale (ServerConfig.chpl); smp runs every locale in one pod.
            per_pod = self.locales if self.mode == "smp" else 1
            if mm * per_pod >= limit:
                derived = int(limit * MEM_MAX_FRACTION) // per_pod
                where = (
                    f"below the pod memory limit {self.memory} ({limit} bytes)"
                    if per_pod == 1
                    else f"per locale, times {per_pod} locales sharing the pod, below its "
                    f"memory limit {self.memory} ({limit} bytes)"
                )
                raise SpecError(
                    "mem_max",
                    self.mem_max,
                    f"{where}, or unset to derive it ({derived} bytes)",
                    "a memMax at or above the limit gets the pod OOM-killed",
                )
            put("mem_max", mm)

        if not isinstance(self.release, str) or not _TAG.match(self.release):
            raise SpecError(
                "release",
                self.release,
                "an image tag such as v2023.05.05: letters, digits, '_', '.', '-', no spaces",
            )
        if (
            not isinstance(self.image_repository, str)
            or len(self.image_repository) > 200
            or not _REPOSITORY.match(self.image_repository)
        ):
            raise SpecError(
                "image_repository",
                self.image_repository,
                "an image repository such as bearsrus or registry.local:5000/arkouda "
                "(no tag, lower-case path)",
            )
        if self.pull_policy not in PULL_POLICIES:
            raise SpecError("pull_policy", self.pull_policy, "Always, IfNotPresent or Never")
        for attr in ("authenticate", "metrics"):
            if not isinstance(getattr(self, attr), bool):
                raise SpecError(attr, getattr(self, attr), "true or false")
        level = self.log_level
        if isinstance(level, str):
            level = level.strip().upper().removeprefix("LOGLEVEL.")
            if level == "WARNING":
                level = "WARN"
        if level not in LOG_LEVELS:
            raise SpecError("log_level", self.log_level, ", ".join(LOG_LEVELS))
        put("log_level", level)

        if isinstance(self.persistence, Mapping):
            p = dict(self.persistence)
            unknown = set(p) - {"host_path", "mount_path"}
            if unknown or "host_path" not in p:
                raise SpecError(
                    "persistence", self.persistence, "{host_path: /abs/path, mount_path: /abs/path}"
                )
            put("persistence", Persistence(**p))
        elif self.persistence is not None and not isinstance(self.persistence, Persistence):
            raise SpecError(
                "persistence", self.persistence, "None or Persistence(host_path, mount_path)"
            )

        labels = _mapping("labels", self.labels)
        for k, v in labels.items():
            _check_label_key("labels", k)
            if k in STANDARD_LABEL_KEYS:
                raise SpecError(
                    "labels", k, "any key but the app.kubernetes.io/ keys arkouda-k8s sets itself"
                )
            _check_label_value(f"labels[{k}]", v)
        put("labels", labels)
        annotations = _mapping("annotations", self.annotations)
        for k, v in annotations.items():
            _check_label_key("annotations", k)
            if not isinstance(v, str):
                raise SpecError(f"annotations[{k}]", v, "a string (quote numbers and booleans)")
        put("annotations", annotations)
        node_selector = _mapping("node_selector", self.node_selector)
        for k, v in node_selector.items():
            _check_label_key("node_selector", k)
            _check_label_value(f"node_selector[{k}]", v)
        put("node_selector", node_selector)

        tols = self.tolerations
        if tols is None:
            tols = ()
        if isinstance(tols, Mapping | str) or not isinstance(tols, Sequence):
            raise SpecError("tolerations", tols, "a list of tolerations")
        put("tolerations", tuple(_check_toleration(i, t) for i, t in enumerate(tols)))

        secrets = self.image_pull_secrets
        if secrets is None:
            secrets = ()
        if isinstance(secrets, str):
            secrets = (secrets,)
        if not isinstance(secrets, Sequence):
            raise SpecError("image_pull_secrets", secrets, "a list of Secret names")
        for s in secrets:
            _check_subdomain("image_pull_secrets", s)
        put("image_pull_secrets", tuple(secrets))
        if self.service_account is not None:
            _check_subdomain("service_account", self.service_account)
        if (
            isinstance(self.server_port, bool)
            or not isinstance(self.server_port, int)
            or not 1024 <= self.server_port <= 65535
            or self.server_port in RESERVED_PORTS
        ):
            raise SpecError(
                "server_port",
                self.server_port,
                "a port from 1024 to 65535 (the server does not run as root) other than "
                f"{METRICS_PORT} (metrics) and {METRICS_EXPORTER_PORT} (metrics exporter)",
            )
        if self.registration not in REGISTRATIONS:
            raise SpecError(
                "registration",
                self.registration,
                "client (arkouda-k8s creates the Service; namespace permissions only) or "
                "server (the charts' flow: a client certificate from a cluster-wide CSR)",
            )
        if self.registration == "server" and self.mode != "udp":
            raise SpecError(
                "registration",
                self.registration,
                "client with mode smp (the charts' self-registration exists for udp only)",
            )
        if self.network_policy not in NETWORK_POLICIES:
            raise SpecError(
                "network_policy",
                self.network_policy,
                "namespace (the Arkouda port open to pods of the namespace), cluster (to any "
                "pod) or off (no NetworkPolicy)",
            )
        if self.spread not in SPREADS:
            raise SpecError(
                "spread",
                self.spread,
                "preferred (one locale per node when there is room), required (never two "
                "locales on a node) or none",
            )
        if self.ttl_seconds is not None:
            _check_int("ttl_seconds", self.ttl_seconds, 60)

    # frozen dataclasses hash their fields; ours hold dicts, so hash the canonical form.
    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    # -- derived values ---------------------------------------------------------------

    @property
    def cpu_millis(self) -> int:
        """CPU per pod in millicores."""
        return math.ceil(parse_quantity(self.cpu) * 1000)

    @property
    def memory_bytes(self) -> int:
        """Memory limit per pod in bytes."""
        return int(parse_quantity(self.memory))

    @property
    def locales_per_pod(self) -> int:
        """Locales sharing one pod's CPU and memory: all of them with smp, else one."""
        return self.locales if self.mode == "smp" else 1

    @property
    def effective_mem_max(self) -> int:
        """The server's --memMax in bytes, per locale (ServerConfig.chpl): as given, else
        a fraction of the pod's limit shared by the pod's locales."""
        if self.mem_max is not None:
            return self.mem_max
        return int(self.memory_bytes * MEM_MAX_FRACTION) // self.locales_per_pod

    @property
    def effective_threads(self) -> int:
        """Threads per locale: as given, else the pod's whole CPUs shared by its locales
        (at least 1)."""
        if self.threads is not None:
            return self.threads
        return max(1, self.cpu_millis // 1000 // self.locales_per_pod)

    @property
    def locale_pods(self) -> int:
        """Number of locale pods (udp: total - 1; smp: none)."""
        return self.locales - 1 if self.mode == "udp" else 0

    @property
    def server_image(self) -> str:
        return f"{self.image_repository}/arkouda-{self.mode}-server:{self.release}"

    @property
    def metrics_exporter_image(self) -> str:
        return f"{self.image_repository}/prometheus-arkouda-exporter:{self.release}"

    # -- copies and conversions -------------------------------------------------------

    def replace(self, **changes: Any) -> ClusterSpec:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_namespace(self, namespace: str) -> ClusterSpec:
        """A copy in ``namespace`` (for when the namespace comes from the kube context)."""
        return self.replace(namespace=namespace)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able settings; ``ClusterSpec.from_dict`` reads them back."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Persistence):
                value = dataclasses.asdict(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = [dict(v) if isinstance(v, Mapping) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterSpec:
        """Settings from a mapping (``to_dict`` output, a JSON annotation, a form)."""
        if not isinstance(data, Mapping):
            raise SpecError("spec", data, "a mapping of settings")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise SpecError(key, data[key], f"a known setting: {', '.join(sorted(known))}")
        return cls(**dict(data))

    # -- Helm values of the arkouda-contrib charts --------------------------------------

    @classmethod
    def from_helm_values(
        cls,
        server: Mapping[str, Any] | None = None,
        locale: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> tuple[ClusterSpec, list[str]]:
        """A spec from the charts' values files, plus warnings about the traps they hold.

        ``server`` is an ``arkouda-udp-server`` values mapping (its ``server.numLocales``
        is the total number of locales), ``locale`` an ``arkouda-udp-locale`` one (its
        ``server.numLocales`` counts locale pods, i.e. total - 1). ``overrides`` are
        ClusterSpec settings that win over the files (command-line options).
        """
        kwargs, warnings = _spec_kwargs_from_values(server, locale)
        kwargs.update(overrides)
        spec = cls.from_dict(kwargs)
        if spec.mem_max is not None and spec.mem_max < MIN_MEMORY:
            warnings.append(
                f"memMax {spec.mem_max} bytes is absurdly small ({format_bytes(spec.mem_max)}); "
                f"Arkouda will refuse almost every array (unset it to derive "
                f"{spec.replace(mem_max=None).effective_mem_max} bytes from the memory limit)"
            )
        return spec, warnings

    def to_helm_values(self) -> dict[str, dict[str, Any]]:
        """The two charts' values: ``{"server": {...}, "locale": {...}}`` (udp only)."""
        return _values_from_spec(self)


# -- the arkouda-contrib charts' values files ---------------------------------------------
#
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
        return bool(a == b)


def _spec_kwargs_from_values(
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


def _values_from_spec(spec: ClusterSpec) -> dict[str, dict[str, Any]]:
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
