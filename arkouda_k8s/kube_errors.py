"""What a failed Kubernetes API request means to a user: HTTP answers and broken
connections turned into one-line ``KubeError``s with a hint (403 names the verb and
what to ask for, 401 the credentials, TLS the certificate authority, an address where
nothing listens the address and the kubeconfig), and the short reason a retry is logged with. Never includes headers or credentials. Pure.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from typing import Any

from .errors import KubeError

log = logging.getLogger(__name__)


def _status_doc(data: bytes) -> dict[str, Any]:
    """The API's Status object in an error body, or {} when the body is not one."""
    try:
        doc = json.loads(data)
    except ValueError:
        # a proxy's HTML page or plain text: the caller shows its first bytes instead
        log.debug("error body is not JSON (%d bytes)", len(data))
        return {}
    return doc if isinstance(doc, dict) else {}


def api_error(
    method: str,
    path: str,
    status: int,
    data: bytes,
    *,
    user: str | None,
    server: str,
    context: str | None = None,
    certificate: str | None = None,
) -> KubeError:
    """The error of a request the API server answered with ``status`` (not 2xx).

    ``certificate``: what is wrong with the client certificate the request carried
    ("expired at ...", see kubeconfig.client_certificate_problem), the likely cause of a
    401 the server does not explain.
    """
    doc = _status_doc(data)
    text = str(doc.get("message") or data[:200].decode("utf-8", "replace")).strip()
    reason = str(doc.get("reason") or "")
    if status == 403:
        who = f"user {user}" if user else "the current user"
        return KubeError(
            f"forbidden: {text or f'{method} {path}'}",
            f"{who} lacks this permission; ask an administrator to grant it "
            "(`arkouda-k8s deploy --print-rbac` prints every rule the deploy needs)",
            status=403,
            reason=reason or "Forbidden",
        )
    if status == 401:
        whose = f"user {user or '?'} of context {context or 'in-cluster'}"
        if certificate:
            return KubeError(
                f"unauthorized at {server}: the client certificate of {whose} {certificate}",
                renew_certificate_hint(user),
                status=401,
                reason=reason or "Unauthorized",
            )
        return KubeError(
            f"unauthorized at {server}: {text}",
            f"the credentials of {whose} were refused; log in again or pick another context",
            status=401,
            reason=reason or "Unauthorized",
        )
    return KubeError(f"{method} {path}: {text} (HTTP {status})", status=status, reason=reason)


def renew_certificate_hint(user: str | None) -> str:
    """How to replace a kubeconfig's expired client certificate."""
    return (
        "renew the credentials: log in again with the tool that wrote the kubeconfig "
        f"(or `kubectl config set-credentials {user or 'USER'} --client-certificate=FILE "
        "--client-key=FILE --embed-certs` with a new certificate), or pick another "
        "context (--context)"
    )


def transient_reason(status: int, data: bytes) -> str:
    """Why a retried request failed, for the retry's log line: the status and the API
    server's own reason and message (a Status carries no credentials), shortened."""
    doc = _status_doc(data)
    words = " ".join(str(doc.get(k) or "") for k in ("reason", "message")).split()
    detail = " ".join(words)[:160]
    return f"HTTP {status} ({detail})" if detail else f"HTTP {status}"


def connection_problem(exc: BaseException) -> str:
    """The innermost cause of a failed connection, without urllib3's wrapping."""
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    text = " ".join(str(inner).split())
    # "HTTPSConnection(host=..., port=...): Failed to establish ...: [Errno 111] ..."
    text = re.sub(r"^\S*Connection\(host=[^)]*\): ", "", text)
    text = re.sub(r"^<[^>]*>: ", "", text)
    return text[:200] or type(exc).__name__


def nothing_listens(exc: BaseException) -> bool:
    """The connection was refused (no process listens at the address) or the server's
    name does not resolve: unlike a reset or a timeout, nothing is there to answer."""
    import urllib3

    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:  # urllib3 wraps the socket's error: MaxRetryError -> NewConnectionError
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError | urllib3.exceptions.NameResolutionError):
            return True
        for inner in (getattr(e, "reason", None), e.__cause__, e.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)
    return False


def unreachable_error(server: str, problem: str, attempts: int, source: str | None) -> KubeError:
    """Nothing answers at ``server`` (refused, or an unknown name): told at once."""
    return KubeError(
        f"nothing answers at the Kubernetes API {server}: {problem} ({attempts} attempts)",
        "start the cluster, or check the server address of the context in "
        f"{source or 'the kubeconfig'} (kubectl config view --minify) and that this machine "
        "can reach it (VPN, proxy); or pick another context (--context)",
        reason="Unreachable",
    )


def is_tls_failure(exc: BaseException) -> bool:
    """A certificate or handshake failure: it does not heal by retrying."""
    import urllib3

    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib3.exceptions.SSLError) or isinstance(
        reason, urllib3.exceptions.SSLError | ssl.SSLError
    ):
        return True
    # The client turns urllib3's SSLError into ApiException(status=0, "SSLError\n...").
    return getattr(exc, "status", None) == 0 and "SSLError" in str(reason or "")


def tls_error(exc: BaseException, server: str, source: str | None) -> KubeError:
    """The error for a TLS failure talking to ``server`` (configured from ``source``)."""
    reason = getattr(exc, "reason", None) or exc
    inner = getattr(reason, "args", None)
    text = " ".join(str(inner[0] if inner else reason).split())[:200]
    return KubeError(
        f"cannot talk TLS to the Kubernetes API {server}: {text}",
        f"check the cluster's certificate-authority in the kubeconfig ({source or 'in-cluster'})",
        reason="TLSError",
    )
