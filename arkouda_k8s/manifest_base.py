"""What every builder of a deployment's manifests shares: the name of each object of an
instance, its labels and selectors, the annotations and labels that mark our objects,
and where the real images keep things (the launch scripts and the pods rely on that
layout; its facts, with their sources, are in ``sandbox/image_facts.yaml``). Pure."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from .credentials import user_for
from .errors import SpecError
from .spec import ClusterSpec

PLACEHOLDER = "<generated at deploy>"
MANAGED_BY = "arkouda-k8s"
# The spec the objects were made from, so a later session can reattach (from_name).
SPEC_ANNOTATION = "arkouda-k8s.dev/spec"
HEARTBEAT_ANNOTATION = "arkouda-k8s.dev/heartbeat"
TTL_ANNOTATION = "arkouda-k8s.dev/ttl-seconds"
# Deployed with --ephemeral: the process that holds it (the Jupyter server extension)
# tears it down when it stops, instead of leaving it to its time-to-live.
EPHEMERAL_ANNOTATION = "arkouda-k8s.dev/ephemeral"
# A random id per deployment, on every object it creates: with the owner reference to
# the state ConfigMap, what tells our objects from ones that merely copy our labels.
INSTANCE_ID_LABEL = "arkouda-k8s.dev/instance-id"
CSR_SIGNER = "kubernetes.io/kube-apiserver-client"

# Where the images keep Arkouda: Chapel's launcher arkouda_server, the program it starts
# on every locale (arkouda_server_real) and its libraries (dep/). Nothing is mounted
# there, and the launcher is called by this absolute path: PATH holds Chapel's bin dir
# and the system's, not /opt/arkouda.
ARKOUDA_DIR = "/opt/arkouda"
ARKOUDA_SERVER = f"{ARKOUDA_DIR}/arkouda_server"
# Our launch scripts, a ConfigMap mounted as a directory of its own.
LAUNCH_DIR = "/opt/arkouda-k8s"
SERVER_SCRIPT = "start-arkouda-server.sh"
LOCALE_SCRIPT = "start-arkouda-locale.sh"
# The images' user (ubuntu, uid 1000) and its home, the working directory of every
# Arkouda process: the server creates .arkouda/ there and reads its token from it.
IMAGE_HOME = "/home/ubuntu"
IMAGE_UID = 1000
IMAGE_GID = 1000
TLS_DIR = "/etc/ssl/arkouda"
SSH_KEYS_DIR = f"{IMAGE_HOME}/ssh-keys"
# The token Secret, mounted read-only; the launch script copies it to the file the
# server reads, <cwd>/.arkouda/tokens.txt (it opens that file read-write).
TOKEN_DIR = "/etc/arkouda-k8s/token"
TOKEN_FILE = f"{TOKEN_DIR}/token"
# The cluster CA, published in every namespace as ConfigMap kube-root-ca.crt, lets the
# launch script verify the API server (registration "server"; with "client" it comes
# with the service-account token).
CA_DIR = "/etc/ssl/kubernetes-ca"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SSH_PORT = 22
# How long the server's launch script waits for every locale pod to be Ready.
# The server pod starts with its locales (every node pulls the image at once), so this
# covers the locales' image pulls: as long as the client's locale stage (Timeouts.locales).
LOCALE_WAIT_SECONDS = 600
# The node label pod anti-affinity spreads locales over.
HOSTNAME_LABEL = "kubernetes.io/hostname"
# The exporter imports arkouda (numpy, pandas, matplotlib: about 95 MiB resident); with
# restartPolicy Never an OOM kill is final, so leave it room.
EXPORTER_MEMORY = "256Mi"
EXPORTER_CPU = "100m"
METRICS_POLLING_SECONDS = 5
# The init container that hands a hostPath directory to the images' user.
PERSISTENCE_INIT = "persistence-owner"


@dataclass(frozen=True)
class Names:
    """The name of every object of one instance (see docs/internals.md)."""

    instance: str
    namespace: str
    ssh_secret: str
    tls_secret: str
    token_secret: str
    role: str
    role_binding: str
    service_account: str
    server_pod: str
    ssh_service: str
    launch_config: str
    locale_deployment: str
    headless_service: str
    self_service: str
    metrics_service: str
    metrics_exporter_service: str
    csr: str
    user: str
    locale_app: str
    runner_account: str  # ServiceAccount, Role, RoleBinding of pipeline pods (runner_rbac)


def _namespace(spec: ClusterSpec) -> str:
    if not spec.namespace:
        raise SpecError(
            "namespace",
            spec.namespace,
            "a namespace to render into: use spec.with_namespace(ns) (the kube context's)",
        )
    return spec.namespace


def names(spec: ClusterSpec) -> Names:
    """Every object name of ``spec``'s instance; the spec must have a namespace."""
    ns = _namespace(spec)
    n = spec.name
    return Names(
        instance=n,
        namespace=ns,
        ssh_secret=f"{n}-ssh",
        tls_secret=f"{n}-tls",
        token_secret=f"{n}-token",
        role=f"{n}-server",
        role_binding=f"{n}-server",
        service_account=spec.service_account or f"{n}-server",
        server_pod=f"{n}-server",
        ssh_service=f"{n}-server",
        launch_config=f"{n}-launch",
        locale_deployment=f"{n}-locale",
        headless_service=f"{n}-locale-headless",
        self_service=f"{n}-arkouda",
        metrics_service=f"{n}-metrics",
        metrics_exporter_service=f"{n}-metrics-exporter",
        csr=f"arkouda-k8s-{ns}-{n}",
        user=user_for(n, ns),
        locale_app=f"{n}-locale",
        runner_account=f"{n}-runner",
    )


def labels(spec: ClusterSpec, component: str) -> dict[str, str]:
    """The labels of an object of ``component``: the spec's own, then the standard ones."""
    return {
        **spec.labels,
        "app.kubernetes.io/name": "arkouda",
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def _match_labels(spec: ClusterSpec, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "arkouda",
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": component,
    }


def selector(spec: ClusterSpec, component: str | None = None) -> str:
    """The label selector of the instance's objects (of one component if given)."""
    parts = [
        "app.kubernetes.io/name=arkouda",
        f"app.kubernetes.io/instance={spec.name}",
        f"app.kubernetes.io/managed-by={MANAGED_BY}",
    ]
    if component:
        parts.append(f"app.kubernetes.io/component={component}")
    return ",".join(parts)


def _meta(
    spec: ClusterSpec,
    name: str,
    component: str,
    *,
    namespaced: bool = True,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced:
        meta["namespace"] = _namespace(spec)
    meta["labels"] = labels(spec, component)
    merged = {**spec.annotations, **(annotations or {})}
    if merged:
        meta["annotations"] = merged
    return meta


def _b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()
