"""CertificateSigningRequests, for the server's client certificate when it registers
itself (``--registration server``): create (finding a retried create's first attempt,
replacing only our own leftover), approve, and wait for the signed certificate.

The functions take the ``Kube`` whose requests they send as their first argument:
``Kube`` holds them as its methods of the same names.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING, Any

from .errors import KubeError
from .kube_kinds import KINDS

if TYPE_CHECKING:
    from .kube import Kube

log = logging.getLogger(__name__)


def create_csr(kube: Kube, obj: dict[str, Any], *, deadline: float | None = None) -> dict[str, Any]:
    """Create a CertificateSigningRequest, replacing a leftover of the same name."""
    name = obj["metadata"]["name"]
    try:
        return kube.create(obj, deadline=deadline)
    except KubeError as exc:
        if exc.status != 409:
            raise
        log.debug("CertificateSigningRequest %s exists: a retried create, or a leftover", name)
    current = kube.get("CertificateSigningRequest", name, deadline=deadline)
    if current is not None and (current.get("spec") or {}).get("request") == obj["spec"]["request"]:
        return current  # a create retried after a lost answer found its first attempt
    # A CSR's request is immutable: a leftover from an earlier attempt must go first,
    # but only one that is ours (same managed-by and instance labels).
    if current is not None:
        theirs = (current["metadata"].get("labels") or {}).items()
        if not set((obj["metadata"].get("labels") or {}).items()) <= set(theirs):
            raise KubeError(
                f"CertificateSigningRequest {name} already exists and was not made by "
                "this deployment: refusing to replace it",
                "choose another name, or delete that request yourself if it is a leftover",
                status=409,
                reason="AlreadyExists",
            )
        kube.delete(
            "CertificateSigningRequest", name, uid=current["metadata"]["uid"], deadline=deadline
        )
    kube.wait_gone(
        "CertificateSigningRequest", field_selector=f"metadata.name={name}", deadline=deadline
    )
    return kube.create(obj, deadline=deadline)


def approve_csr(
    kube: Kube,
    name: str,
    *,
    reason: str = "ArkoudaK8sApprove",
    message: str = "approved by arkouda-k8s for its own Arkouda server",
    current: dict[str, Any] | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Approve; ``current``: the CSR as just created (saves reading it first)."""
    k = KINDS["CertificateSigningRequest"]
    csr = current or kube.request("GET", k.path(None, name), deadline=deadline)
    csr = {**csr, "status": dict(csr.get("status") or {})}
    conditions = [
        c for c in (csr.get("status") or {}).get("conditions") or [] if c.get("type") != "Approved"
    ]
    conditions.append(
        {
            "type": "Approved",
            "status": "True",
            "reason": reason,
            "message": message,
            "lastUpdateTime": _now_rfc3339(),
        }
    )
    csr["status"]["conditions"] = conditions
    try:
        out: dict[str, Any] = kube.request(
            "PUT", k.path(None, name) + "/approval", body=csr, deadline=deadline
        )
    except KubeError as exc:
        if exc.status != 409 or current is None:
            raise
        # changed since it was created (by whom?): approve what is there now
        log.debug("CertificateSigningRequest %s changed since its create: approving again", name)
        return approve_csr(kube, name, reason=reason, message=message, deadline=deadline)
    return out


def wait_for_certificate(kube: Kube, name: str, *, deadline: float) -> bytes:
    """The signed certificate (PEM) once the CSR is approved and issued.

    Raises KubeError when the CSR is denied or failed, WatchDeadline at the deadline.
    """

    def issued(objs: dict[str, dict[str, Any]]) -> bytes | None:
        csr = objs.get(name)
        if csr is None:
            return None
        status = csr.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Denied", "Failed") and cond.get("status", "True") == "True":
                raise KubeError(
                    f"certificate request {name} was {cond['type'].lower()}: "
                    f"{cond.get('message') or cond.get('reason') or 'no reason given'}",
                    "ask an administrator why, then deploy again",
                    reason=cond["type"],
                )
        cert = status.get("certificate")
        return base64.b64decode(cert) if cert else None

    return kube.wait_for(
        "CertificateSigningRequest",
        issued,
        field_selector=f"metadata.name={name}",
        deadline=deadline,
    )


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
