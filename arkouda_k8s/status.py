"""What a user is told about a deployment: ``ClusterStatus`` (one deployment, as
``arkouda-k8s status`` and the notebook show it) and ``ClusterInfo`` (one row of
``list_clusters()``), their text rows and their versioned documents (``-o json|yaml``).
Pure: no I/O; the lifecycle fills them in (``readiness.deployment_status``,
``inventory.list_clusters``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .spec import format_bytes

# The version of the documents ``to_dict()`` returns (docs/cli-output.md; the JSON Schema
# is docs/cli-output.schema.json). A field is only ever added within a version; removing
# or changing one makes v2.
OUTPUT_API_VERSION = "arkouda-k8s.dev/v1"


@dataclass(frozen=True)
class ClusterStatus:
    """What a user wants to know about a deployment; never holds secret material."""

    name: str
    namespace: str
    context: str | None
    stage: str  # Pending | Locales | Server | Ready | Failed | Gone
    locales_ready: int
    locales_total: int
    server_phase: str | None
    server_ready: bool
    address: tuple[str, int] | None
    tunnel_state: str | None
    memory_used: int | None
    memory_max: int | None
    arkouda_version: str | None
    age: float | None  # seconds since the deployment was created
    expires_at: datetime | None
    message: str = ""
    heartbeat_expired: bool = False
    locales: int | None = None  # Arkouda locales in all (udp: server pod + locale pods)
    mode: str | None = None
    # What kept the server's own numbers out (status(handshake=True) could not reach it),
    # and locale pods that failed but were replaced before the server started its
    # locales (failed_pods.py): a `warning` row of the card, the CLI's stderr, `warnings`
    # in the document.
    warnings: tuple[str, ...] = ()

    def title(self) -> str:
        """The heading of the notebook's status card."""
        return f"Arkouda cluster {self.name}" + (
            f" (namespace {self.namespace})" if self.namespace else ""
        )

    def card_rows(self) -> list[tuple[str, str]]:
        """The short rows of the notebook's status card (facts not known are left out);
        ``to_text()`` has the CLI's full rows."""
        rows = [
            ("stage", self.stage or "unknown"),
            ("locale pods", f"{self.locales_ready}/{self.locales_total} running"),
        ]
        if self.tunnel_state is not None or self.address is not None:
            where = f" {self.address[0]}:{self.address[1]}" if self.address else ""
            rows.append(("tunnel", f"{self.tunnel_state or 'none'}{where}"))
        if self.memory_used is not None:
            of = f" of {format_bytes(self.memory_max)}" if self.memory_max else ""
            rows.append(("memory", f"{format_bytes(self.memory_used)} used{of}"))
        if self.arkouda_version:
            rows.append(("server", self.arkouda_version))
        if self.heartbeat_expired:
            rows.append(("heartbeat", "expired"))
        # why memory and version are missing: without it the card just lacks them
        rows += [("warning", w) for w in self.warnings]
        return rows

    def _locales_text(self) -> str:
        pods = f"{self.locales_ready}/{self.locales_total} locale pods running"
        if self.mode == "smp":
            return f"{self.locales} in the server pod (smp)"
        if self.locales is None:
            return pods
        return f"{self.locales}: 1 in the server pod + {pods}"

    def to_text(self) -> str:
        """A few aligned lines, as `arkouda-k8s status` prints them."""
        rows = [
            ("name", f"{self.name} (namespace {self.namespace}, context {self.context or '-'})"),
            ("stage", self.stage + (f": {self.message}" if self.message else "")),
            ("locales", self._locales_text()),
            (
                "server",
                f"{self.server_phase or 'absent'}, {'ready' if self.server_ready else 'not ready'}",
            ),
            ("version", self.arkouda_version or "-"),
            ("memory", _memory_text(self.memory_used, self.memory_max)),
            (
                "tunnel",
                f"{self.tunnel_state} at {self.address[0]}:{self.address[1]}"
                if self.address and self.tunnel_state
                else (self.tunnel_state or "none"),
            ),
            ("age", duration(self.age) if self.age is not None else "-"),
            (
                "expires",
                (self.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC") if self.expires_at else "never")
                + (" (expired)" if self.heartbeat_expired else ""),
            ),
        ]
        return "\n".join(f"{k:<8} {v}" for k, v in rows)

    def to_dict(self) -> dict[str, Any]:
        """The versioned document ``arkouda-k8s status -o json`` prints (kind ClusterStatus)."""
        return {
            "apiVersion": OUTPUT_API_VERSION,
            "kind": "ClusterStatus",
            "name": self.name,
            "namespace": self.namespace,
            "context": self.context,
            "stage": self.stage,
            "message": self.message,
            "expired": self.heartbeat_expired,
            "mode": self.mode,
            "locales": self.locales,
            "localePods": {"ready": self.locales_ready, "total": self.locales_total},
            "server": {"phase": self.server_phase, "ready": self.server_ready},
            "arkoudaVersion": self.arkouda_version,
            "memory": {"usedBytes": self.memory_used, "maxBytes": self.memory_max},
            "tunnel": _tunnel_dict(self.tunnel_state, self.address),
            "ageSeconds": _whole_seconds(self.age),
            "expiresAt": _rfc3339(self.expires_at),
            # added within v1 (docs/cli-output.md): what the CLI also says on stderr
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ClusterStatus:
        """The status a ``to_dict()`` document describes (a Jupyter server's answer to a
        kernel: ``jupyter_link``); ``age`` comes back in whole seconds."""
        tunnel = doc.get("tunnel") or {}
        pods = doc.get("localePods") or {}
        server = doc.get("server") or {}
        memory = doc.get("memory") or {}
        return cls(
            name=str(doc["name"]),
            namespace=str(doc["namespace"]),
            context=doc.get("context"),
            stage=str(doc["stage"]),
            locales_ready=int(pods.get("ready") or 0),
            locales_total=int(pods.get("total") or 0),
            server_phase=server.get("phase"),
            server_ready=bool(server.get("ready")),
            address=_parse_address(tunnel.get("address")),
            tunnel_state=tunnel.get("state"),
            memory_used=memory.get("usedBytes"),
            memory_max=memory.get("maxBytes"),
            arkouda_version=doc.get("arkoudaVersion"),
            age=None if doc.get("ageSeconds") is None else float(doc["ageSeconds"]),
            expires_at=_parse_rfc3339(doc.get("expiresAt")),
            message=str(doc.get("message") or ""),
            heartbeat_expired=bool(doc.get("expired")),
            locales=doc.get("locales"),
            mode=doc.get("mode"),
            # absent from a document of an older arkouda-k8s
            warnings=tuple(str(w) for w in doc.get("warnings") or ()),
        )


@dataclass(frozen=True)
class ClusterInfo:
    """One deployment in ``list_clusters()``."""

    name: str
    namespace: str
    stage: str
    locales_ready: int
    locales_total: int
    mode: str | None
    release: str | None
    age: float | None
    heartbeat: datetime | None
    expires_at: datetime | None
    heartbeat_expired: bool
    context: str | None = None
    server_pod: str | None = None
    memory: str | None = None  # per pod, the Kubernetes quantity of the spec
    memory_max: int | None = None  # bytes: memMax x locales
    # (host, port) of a tunnel to this deployment held by this process or by an
    # `arkouda-k8s forward` on this machine
    tunnel_address: tuple[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """One item of ``arkouda-k8s list -o json`` (kind ClusterInfo)."""
        return {
            "apiVersion": OUTPUT_API_VERSION,
            "kind": "ClusterInfo",
            "name": self.name,
            "namespace": self.namespace,
            "context": self.context,
            "stage": self.stage,
            "expired": self.heartbeat_expired,
            "mode": self.mode,
            "release": self.release,
            "localePods": {"ready": self.locales_ready, "total": self.locales_total},
            "serverPod": self.server_pod,
            "memory": {"perPod": self.memory, "maxBytes": self.memory_max},
            "tunnel": _tunnel_dict("held", self.tunnel_address) if self.tunnel_address else None,
            "ageSeconds": _whole_seconds(self.age),
            "heartbeat": _rfc3339(self.heartbeat),
            "expiresAt": _rfc3339(self.expires_at),
        }

    def summary(self) -> str:
        """One line of the notebook's list of deployments."""
        facts = [self.stage, f"{self.locales_total} locale pods"]
        if self.heartbeat_expired:
            facts.append("heartbeat expired")
        return ", ".join(f for f in facts if f)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ClusterInfo:
        """The row a ``to_dict()`` document describes (a Jupyter server's listing, read by
        a kernel); ``age`` comes back in whole seconds."""
        pods = doc.get("localePods") or {}
        memory = doc.get("memory") or {}
        return cls(
            name=str(doc["name"]),
            namespace=str(doc["namespace"]),
            stage=str(doc["stage"]),
            locales_ready=int(pods.get("ready") or 0),
            locales_total=int(pods.get("total") or 0),
            mode=doc.get("mode"),
            release=doc.get("release"),
            age=None if doc.get("ageSeconds") is None else float(doc["ageSeconds"]),
            heartbeat=_parse_rfc3339(doc.get("heartbeat")),
            expires_at=_parse_rfc3339(doc.get("expiresAt")),
            heartbeat_expired=bool(doc.get("expired")),
            context=doc.get("context"),
            server_pod=doc.get("serverPod"),
            memory=memory.get("perPod"),
            memory_max=memory.get("maxBytes"),
            tunnel_address=_parse_address((doc.get("tunnel") or {}).get("address")),
        )

    def to_wide_row(self) -> list[str]:
        """``to_row()`` and the columns of ``list -o wide``."""
        tunnel = self.tunnel_address
        return self.to_row() + [
            self.context or "-",
            self.server_pod or "-",
            f"{tunnel[0]}:{tunnel[1]}" if tunnel else "-",
            f"{self.memory}/pod" if self.memory else "-",
        ]

    def to_row(self) -> list[str]:
        return [
            self.namespace,
            self.name,
            self.stage,
            f"{self.locales_ready}/{self.locales_total}",
            self.mode or "-",
            self.release or "-",
            duration(self.age) if self.age is not None else "-",
            "expired"
            if self.heartbeat_expired
            else (self.expires_at.strftime("%H:%M:%S") if self.expires_at else "-"),
        ]


def duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


def cluster_list_dict(items: Iterable[ClusterInfo]) -> dict[str, Any]:
    """The document ``arkouda-k8s list -o json`` prints (kind ClusterList)."""
    return {
        "apiVersion": OUTPUT_API_VERSION,
        "kind": "ClusterList",
        "items": [i.to_dict() for i in items],
    }


_RFC3339 = "%Y-%m-%dT%H:%M:%SZ"


def _rfc3339(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime(_RFC3339) if when else None


def _parse_rfc3339(text: str | None) -> datetime | None:
    return datetime.strptime(text, _RFC3339).replace(tzinfo=UTC) if text else None


def _parse_address(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = str(text).rpartition(":")
    return host, int(port)


def _whole_seconds(seconds: float | None) -> int | None:
    return int(max(0, seconds)) if seconds is not None else None


def _tunnel_dict(state: str | None, address: tuple[str, int] | None) -> dict[str, Any] | None:
    if state is None and address is None:
        return None
    return {"state": state, "address": f"{address[0]}:{address[1]}" if address else None}


def _memory_text(used: int | None, cap: int | None) -> str:
    if used is None and cap is None:
        return "-"
    u = format_bytes(used) if used is not None else "?"
    c = format_bytes(cap) if cap is not None else "?"
    return f"{u} used of {c} (memMax x locales)"
