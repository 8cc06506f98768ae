"""Cluster access: the only module that imports the official ``kubernetes`` client.

A small adapter that loads a kubeconfig (path, context, namespace, exec auth) or the
in-cluster config and speaks plain dicts to the layers above. ``kubernetes`` is
imported lazily so that importing arkouda_k8s stays fast.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from .errors import KubeError, UsageError


@dataclass
class ApiEndpoint:
    """How to reach the API server with a plain HTTP client (aiohttp): the tunnel uses it."""

    server: str
    ssl_context: ssl.SSLContext | None
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # never show the Authorization header
        return f"ApiEndpoint(server={self.server!r})"


def default_kubeconfig() -> str:
    """$KUBECONFIG (first entry), else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    return os.path.expanduser("~/.kube/config")


class Kube:
    """One cluster connection: an ApiClient plus the context it came from."""

    def __init__(
        self, configuration: Any, *, namespace: str, context: str | None, user: str | None
    ) -> None:
        from kubernetes import client

        self.configuration = configuration
        self.api_client = client.ApiClient(configuration)
        self.namespace = namespace
        self.context = context
        self.user = user

    @property
    def server(self) -> str:
        return str(self.configuration.host)

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, namespace: str | None = None
    ) -> Kube:
        from kubernetes import client, config

        path = path or default_kubeconfig()
        if not os.path.exists(path):
            raise UsageError(
                f"kubeconfig: file {path} does not exist",
                "pass --kubeconfig FILE, set $KUBECONFIG, or start a sandbox with `arkouda-k8s sandbox`",
            )
        try:
            contexts, current = config.list_kube_config_contexts(config_file=path)
        except Exception as exc:  # the loader raises plain exceptions for bad files
            raise UsageError(f"kubeconfig: cannot read {path}: {exc}") from None
        names = [c["name"] for c in contexts]
        if context is not None and context not in names:
            raise UsageError(
                f"context: {context!r} is not in {path}", f"choose one of: {', '.join(names)}"
            )
        active = next(c for c in contexts if c["name"] == context) if context else current
        ctx = (active or {}).get("context", {}) or {}
        configuration = client.Configuration()
        try:
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
        return cls(
            configuration,
            namespace=namespace or ctx.get("namespace") or "default",
            context=(active or {}).get("name"),
            user=ctx.get("user"),
        )

    @classmethod
    def in_cluster(cls, namespace: str | None = None) -> Kube:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        ns_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        if namespace is None and os.path.exists(ns_file):
            with open(ns_file) as fh:
                namespace = fh.read().strip()
        return cls(configuration, namespace=namespace or "default", context=None, user=None)

    def endpoint(self) -> ApiEndpoint:
        """The server URL, TLS context and auth headers, for clients other than ``kubernetes``."""
        cfg = self.configuration
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)  # exec-auth tokens expire; get a fresh one
        headers: dict[str, str] = {}
        token = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
            "authorization"
        )
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        elif cfg.username and cfg.password:
            headers.update(
                cfg.get_basic_auth_token() and {"Authorization": cfg.get_basic_auth_token()}
            )
        ctx: ssl.SSLContext | None = None
        if cfg.host.startswith("https"):
            ctx = (
                ssl.create_default_context(cafile=cfg.ssl_ca_cert)
                if cfg.verify_ssl
                else ssl._create_unverified_context()
            )
            if cfg.cert_file and cfg.key_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            if cfg.tls_server_name:
                ctx.check_hostname = False  # verified against tls_server_name by SNI below
        return ApiEndpoint(cfg.host, ctx, headers)
