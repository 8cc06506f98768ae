"""The server's client certificate for ``--registration server`` (the charts' flow).

With it the server registers its own Service and Endpoints, as a user of its own whose
certificate comes from a ``kubernetes.io/kube-apiserver-client`` CertificateSigningRequest:
created, approved when the deploying user may (else an administrator must, and the
progress says how), then awaited until a signer issues it. An approved request that no
signer answers (EKS never signs for that signer) fails after ``Timeouts.signing``
instead of waiting for the credentials deadline.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from . import manifests
from .errors import KubeError, StageTimeout
from .kube import Kube, WatchDeadline
from .stages import Report, Timeouts


def obtain(
    kube: Kube,
    csr_obj: dict[str, Any],
    *,
    may_approve: bool,
    timeouts: Timeouts,
    deadline: float,
    report: Report,
) -> tuple[bytes, str]:
    """(the issued certificate, the uid of the request) for the CSR ``csr_obj`` (as the
    deployment owns it); the request is left for the caller to delete once the
    certificate is stored."""
    name = csr_obj["metadata"]["name"]
    created = kube.create_csr(csr_obj, deadline=deadline)
    report("credentials", 1, 2, f"certificate request {name} created")
    if may_approve:
        kube.approve_csr(name, current=created, deadline=deadline)
    else:
        report(
            "credentials",
            1,
            2,
            f"waiting for an administrator to run `kubectl certificate approve {name}`",
        )
    approved_at: dict[str, float] = {}

    def issued(objs: dict[str, dict[str, Any]]) -> bytes | None:
        csr = objs.get(name)
        if csr is None:
            return None
        status = csr.get("status") or {}
        cert = status.get("certificate")
        if cert:
            return base64.b64decode(cert)
        for cond in status.get("conditions") or []:
            kind = cond.get("type")
            if kind in ("Denied", "Failed") and cond.get("status", "True") == "True":
                raise KubeError(
                    f"certificate request {name} was {kind.lower()}: "
                    f"{cond.get('message') or cond.get('reason') or 'no reason given'}",
                    "ask an administrator why, or deploy with the default "
                    "--registration client, which needs no certificate",
                    reason=kind,
                )
            if kind == "Approved":
                approved_at.setdefault("t", time.monotonic())
        if "t" in approved_at and time.monotonic() - approved_at["t"] >= timeouts.signing:
            raise StageTimeout(
                f"certificate request {name} was approved but no signer issued a "
                f"certificate within {timeouts.signing:.0f}s: this cluster does not "
                f"sign {manifests.CSR_SIGNER} requests (EKS never does)",
                "deploy with the default --registration client: the server then needs "
                "no certificate, only a namespaced Role",
                stage="credentials",
                reason="CertificateNotIssued",
            )
        return None

    rv = (created.get("metadata") or {}).get("resourceVersion")
    try:
        cert = kube.wait_for(
            "CertificateSigningRequest",
            issued,
            field_selector=f"metadata.name={name}",
            deadline=deadline,
            # time since the approval counts even when nothing changes
            recheck=max(0.2, min(5.0, timeouts.signing / 4)),
            # from its creation on: the approval (ours or an admin's) is seen
            since=str(rv) if rv else None,
        )
    except WatchDeadline:
        raise StageTimeout(
            f"certificate request {name} was not "
            + ("signed" if may_approve else "approved by an administrator")
            + f" within {timeouts.credentials:.0f}s",
            f"an administrator must run `kubectl certificate approve {name}`, or deploy "
            "with the default --registration client, which needs no certificate"
            if not may_approve
            else "check that the cluster's kube-apiserver-client signer is enabled",
            stage="credentials",
            reason="CertificatePending",
        ) from None
    return cert, str(created["metadata"]["uid"])
