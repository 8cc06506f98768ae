"""Where a cluster connection comes from: a kubeconfig (path, context, namespace, exec
auth) or a pod's own service account, and how other HTTP clients reach the same server.

Reads files and environment only; no API call. ``kubernetes`` is imported lazily (its
config loaders), so importing arkouda_k8s stays fast.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import KubeError, UsageError

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# One kubeconfig load at a time: the kubernetes loader names the temp file of an inline
# certificate (its cache, shared by the process) before writing it, so a second thread
# loading at that moment got an empty CA file ("no certificate or crl found"): the
# notebook's look for expired deployments and a magic build their Kube at once.
_LOADING = threading.Lock()


def import_kubernetes() -> None:
    """Import the ``kubernetes`` package without its optional validation.

    ``import kubernetes`` loads ``kubernetes.dynamic``, which imports
    ``kubernetes_validate`` when it is installed (the sandbox extra installs it); that
    pulls in jsonschema's format checkers, and where Jupyter is installed too,
    ``rfc3987_syntax``, which builds a parser at import: seconds before a CLI command's
    or a magic's first request. Nothing here uses the dynamic client's validation, so
    the import is made to fail for the duration; a later ``import kubernetes_validate``
    (the sandbox's API server) works as usual.
    """
    import sys

    if "kubernetes" in sys.modules:
        return
    hidden = "kubernetes_validate" not in sys.modules
    if hidden:
        sys.modules["kubernetes_validate"] = None  # type: ignore[assignment]
    try:
        import kubernetes  # noqa: F401
    finally:
        if hidden and sys.modules.get("kubernetes_validate", 0) is None:
            del sys.modules["kubernetes_validate"]


@dataclass(frozen=True)
class LoadedConfig:
    """A ``kubernetes`` Configuration and the context it came from (what ``Kube`` needs)."""

    configuration: Any = field(repr=False)
    namespace: str
    context: str | None
    user: str | None
    cluster: str | None
    # Where the configuration came from (kubeconfig path or "in-cluster"), for messages.
    source: str


@dataclass
class ApiEndpoint:
    """How to reach the API server with a plain HTTP client (aiohttp): the tunnel uses it."""

    server: str
    ssl_context: ssl.SSLContext | None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    # The name the server's certificate must carry and the SNI to send: the kubeconfig's
    # tls-server-name, else the server URL's host. Every dial passes it as
    # server_hostname, with the context's hostname check on.
    server_name: str | None = None
    # What is wrong with the client certificate when the endpoint was made ("expired at
    # ..."; kubeconfig.client_certificate_problem), the likely cause of a bare 401.
    certificate_problem: str | None = None

    def __repr__(self) -> str:  # never show the Authorization header
        return f"ApiEndpoint(server={self.server!r})"


def default_kubeconfig() -> str:
    """$KUBECONFIG (first entry), else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    return os.path.expanduser("~/.kube/config")


def _contexts(path: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    import_kubernetes()
    from kubernetes import config

    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
    except Exception as exc:  # the loader raises plain exceptions for bad files
        raise UsageError(f"kubeconfig: cannot read {path}: {exc}") from None
    return contexts, current


def list_contexts(path: str | None = None) -> tuple[list[tuple[str, str]], str | None]:
    """([(context, namespace)], current context) of a kubeconfig, for pickers.

    Reads the file only (no API call); an absent file gives ([], None).
    """
    path = path or default_kubeconfig()
    if not os.path.exists(path):
        return [], None
    contexts, current = _contexts(path)
    out = [
        (str(c["name"]), str((c.get("context") or {}).get("namespace") or "default"))
        for c in contexts
    ]
    return out, (current or {}).get("name")


def load_kubeconfig(
    path: str | None = None, context: str | None = None, namespace: str | None = None
) -> LoadedConfig:
    """A kubeconfig's context (its current one by default); bad input is a UsageError
    that names the file or the context and the choices."""
    import_kubernetes()
    from kubernetes import client, config

    path = path or default_kubeconfig()
    if not os.path.exists(path):
        raise UsageError(
            f"kubeconfig: file {path} does not exist",
            "pass --kubeconfig FILE, set $KUBECONFIG, or start a sandbox with `arkouda-k8s sandbox`",
        )
    contexts, current = _contexts(path)
    names = [c["name"] for c in contexts]
    if context is not None and context not in names:
        raise UsageError(
            f"context: {context!r} is not in {path}", f"choose one of: {', '.join(names)}"
        )
    active = next(c for c in contexts if c["name"] == context) if context else current
    ctx = (active or {}).get("context", {}) or {}
    configuration = client.Configuration()
    try:
        with _LOADING:
            config.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except Exception as exc:
        raise KubeError(
            f"kubeconfig: cannot load context {context or (active or {}).get('name')}: {exc}"
        ) from None
    return LoadedConfig(
        configuration,
        namespace=namespace or ctx.get("namespace") or "default",
        context=(active or {}).get("name"),
        user=ctx.get("user"),
        cluster=ctx.get("cluster"),
        source=path,
    )


def load_in_cluster(
    namespace: str | None = None,
    *,
    root: str = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """The pod's own service account (token, CA, namespace under ``root``)."""
    import_kubernetes()
    from kubernetes import client
    from kubernetes.config.incluster_config import InClusterConfigLoader

    configuration = client.Configuration()
    try:
        InClusterConfigLoader(
            token_filename=os.path.join(root, "token"),
            cert_filename=os.path.join(root, "ca.crt"),
            environ=dict(os.environ if environ is None else environ),
        ).load_and_set(configuration)
    except Exception as exc:
        raise UsageError(
            f"in-cluster config: {exc}", "outside a pod, pass --kubeconfig FILE"
        ) from None
    ns_file = os.path.join(root, "namespace")
    if namespace is None and os.path.exists(ns_file):
        with open(ns_file) as fh:
            namespace = fh.read().strip()
    return LoadedConfig(
        configuration,
        namespace=namespace or "default",
        context=None,
        user="serviceaccount",
        cluster="in-cluster",
        source="in-cluster",
    )


def wants_kubeconfig(kubeconfig: str | None, context: str | None) -> bool:
    """A kubeconfig when one exists (or was named), else the in-cluster config."""
    return bool(
        kubeconfig
        or context
        or os.path.exists(kubeconfig or default_kubeconfig())
        or "KUBERNETES_SERVICE_HOST" not in os.environ
    )


def endpoint_of(cfg: Any) -> ApiEndpoint:
    """The server URL, TLS context and auth headers of a ``kubernetes`` Configuration."""
    headers: dict[str, str] = {}
    # get_api_key_with_prefix runs the refresh hook, so exec-auth tokens are fresh.
    token = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
    if token:
        headers["Authorization"] = token if " " in token else f"Bearer {token}"
    elif cfg.username and cfg.password:
        headers["Authorization"] = cfg.get_basic_auth_token()
    ctx: ssl.SSLContext | None = None
    if cfg.host.startswith("https"):
        ctx = (
            ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.verify_ssl
            else ssl._create_unverified_context()
        )
        if cfg.cert_file and cfg.key_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    # tls-server-name replaces the host in the certificate check, as kubectl does; it
    # never turns the check off.
    return ApiEndpoint(
        cfg.host,
        ctx,
        headers,
        server_name=cfg.tls_server_name or None,
        certificate_problem=client_certificate_problem(cfg),
    )


def client_certificate_problem(cfg: Any, now: dt.datetime | None = None) -> str | None:
    """Why the configuration's client certificate cannot log in at ``now``: "expired at
    <time>" / "not valid before <time>", or None (valid, or no certificate).

    An API server answers such a certificate with a bare 401 "Unauthorized" (it never says
    why), so the reason is read here, from the certificate the kubeconfig names.
    """
    path = getattr(cfg, "cert_file", None)
    if not path:
        return None
    from cryptography import x509

    try:
        with open(path, "rb") as fh:
            cert = x509.load_pem_x509_certificate(fh.read())
    except (OSError, ValueError) as exc:
        # unreadable here: the 401 keeps its general explanation
        log.debug("client certificate %s not readable: %s", path, exc)
        return None
    now = now or dt.datetime.now(dt.UTC)
    if now > cert.not_valid_after_utc:
        return f"expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    if now < cert.not_valid_before_utc:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
    return None
