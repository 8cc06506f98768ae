"""ClusterSpec: every setting of one Arkouda deployment, validated on construction.

A bad value raises :class:`~arkouda_k8s.errors.SpecError` naming the field (in the
user's words), the value and what is allowed. The spec also reads and writes the values
files of the arkouda-contrib ``arkouda-udp-server`` / ``arkouda-udp-locale`` charts, so
chart users can move in either direction. Pure: no I/O, no ``kubernetes`` import.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import SpecError
from .helm_values import (
    IN_CLUSTER_K8S_HOST,
    METRICS_EXPORTER_PORT,
    METRICS_PORT,
    helm_chart_of,
    spec_settings_from_values,
    values_from_spec,
)
from .syntax import (
    ABSOLUTE_PATH,
    IMAGE_REPOSITORY,
    IMAGE_TAG,
    check_int,
    check_label_key,
    check_label_value,
    check_name,
    check_subdomain,
    check_toleration,
    format_bytes,
    mapping_of,
    parse_quantity,
)

# Names the layers above import from here (quantities and the charts' values live in
# syntax.py and helm_values.py).
__all__ = [
    "DEFAULT_IMAGE_REPOSITORY",
    "DEFAULT_RELEASE",
    "IN_CLUSTER_K8S_HOST",
    "KNOWN_RELEASES",
    "LOG_LEVELS",
    "METRICS_EXPORTER_PORT",
    "METRICS_PORT",
    "MODES",
    "NETWORK_POLICIES",
    "NO_AUTH_WARNING",
    "PULL_POLICIES",
    "REGISTRATIONS",
    "SPREADS",
    "ClusterSpec",
    "Persistence",
    "format_bytes",
    "helm_chart_of",
    "parse_quantity",
]

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
# The server port must differ from the metrics ports (helm_values.py).
RESERVED_PORTS = (METRICS_PORT, METRICS_EXPORTER_PORT)

STANDARD_LABEL_KEYS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
)


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
            if (
                not isinstance(value, str)
                or not ABSOLUTE_PATH.match(value)
                or value.strip() != value
            ):
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

        check_name("name", self.name, MAX_NAME_LENGTH, dns1035=True)
        if self.namespace is not None:
            check_name("namespace", self.namespace)
        if self.mode not in MODES:
            raise SpecError("mode", self.mode, "udp (server + locale pods) or smp (one pod)")
        check_int("locales", self.locales, 1, MAX_LOCALES)
        if self.threads is not None:
            check_int("threads", self.threads, 1, 1024)

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

        if not isinstance(self.release, str) or not IMAGE_TAG.match(self.release):
            raise SpecError(
                "release",
                self.release,
                "an image tag such as v2023.05.05: letters, digits, '_', '.', '-', no spaces",
            )
        if (
            not isinstance(self.image_repository, str)
            or len(self.image_repository) > 200
            or not IMAGE_REPOSITORY.match(self.image_repository)
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

        labels = mapping_of("labels", self.labels)
        for k, v in labels.items():
            check_label_key("labels", k)
            if k in STANDARD_LABEL_KEYS:
                raise SpecError(
                    "labels", k, "any key but the app.kubernetes.io/ keys arkouda-k8s sets itself"
                )
            check_label_value(f"labels[{k}]", v)
        put("labels", labels)
        annotations = mapping_of("annotations", self.annotations)
        for k, v in annotations.items():
            check_label_key("annotations", k)
            if not isinstance(v, str):
                raise SpecError(f"annotations[{k}]", v, "a string (quote numbers and booleans)")
        put("annotations", annotations)
        node_selector = mapping_of("node_selector", self.node_selector)
        for k, v in node_selector.items():
            check_label_key("node_selector", k)
            check_label_value(f"node_selector[{k}]", v)
        put("node_selector", node_selector)

        tols = self.tolerations
        if tols is None:
            tols = ()
        if isinstance(tols, Mapping | str) or not isinstance(tols, Sequence):
            raise SpecError("tolerations", tols, "a list of tolerations")
        put("tolerations", tuple(check_toleration(i, t) for i, t in enumerate(tols)))

        secrets = self.image_pull_secrets
        if secrets is None:
            secrets = ()
        if isinstance(secrets, str):
            secrets = (secrets,)
        if not isinstance(secrets, Sequence):
            raise SpecError("image_pull_secrets", secrets, "a list of Secret names")
        for s in secrets:
            check_subdomain("image_pull_secrets", s)
        put("image_pull_secrets", tuple(secrets))
        if self.service_account is not None:
            check_subdomain("service_account", self.service_account)
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
            check_int("ttl_seconds", self.ttl_seconds, 60)

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
        kwargs, warnings = spec_settings_from_values(server, locale)
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
        return values_from_spec(self)
