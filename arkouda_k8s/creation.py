"""The creation sequence of a deployment: the order its objects are created in (what goes
side by side, what waits for what), the server's client certificate on the way, and
the waits that follow until the server pod is Ready.

``create`` is called by ``ArkoudaCluster.deploy`` once the deployment's state ConfigMap
is claimed; the handshake, the heartbeat and a rollback on failure stay with the cluster.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from . import background, manifests, server_certificate, teardown
from .credentials import Credentials
from .inventory import _ready
from .kube import Kube
from .ownership import Ownership
from .readiness import Readiness
from .spec import ClusterSpec
from .stages import Report, Timeouts


def create(
    kube: Kube,
    ownership: Ownership,
    readiness: Readiness,
    spec: ClusterSpec,
    credentials: Callable[[], Credentials],
    timeouts: Timeouts,
    report: Report,
    *,
    wait: bool,
    may_approve: bool,
    server_after_locales: bool,
) -> None:
    """Create every object; requests that do not depend on each other go side by
    side, and waits watch from the resourceVersion a create answered with (no list
    first): against a distant API server a deploy costs its sequential round trips.

    ``credentials`` is called once; what it returns is let go as soon as the Secrets
    hold it (``_store_credentials``), before any wait: nothing later needs the keys.
    With ``wait``, returns once the server pod is Ready, else once it is created.
    ``may_approve``: the preflight found we may approve the server's CSR ourselves.
    ``server_after_locales``: the ordering before issue #18 (locale pods Running before
    the server pod is even created), kept for benchmarks/deploy.py.
    """
    t = timeouts
    names = manifests.names(spec)
    deadline = time.monotonic() + t.credentials
    report("credentials", 0, 2, "creating secrets and the locale pods' objects")
    objects, created, binding_done = _store_credentials(
        kube, ownership, spec, credentials, t, deadline, report, may_approve=may_approve
    )
    report("credentials", 2, 2, "credentials stored")
    binding_done.result()
    roles = [o for o in objects if o["kind"] in ("Role", "RoleBinding", "ServiceAccount")]
    if roles:
        report("rbac", len(roles), len(roles), "service account, role and binding created")

    locales = created.get(("Deployment", names.locale_deployment))
    pod = next(o for o in objects if o["kind"] == "Pod")
    if server_after_locales:
        # 3. (old ordering) Locale pods running before the server pod exists.
        readiness.wait_locales(time.monotonic() + t.locales, _resource_version(locales))
    # 4. A Service the server registered in an earlier life makes it exit (trap 2).
    deadline = time.monotonic() + t.server
    if any(o["kind"] == "CertificateSigningRequest" for o in objects):
        teardown.remove_self_registered(ownership, deadline, report)

    # 5. The server pod, created while the locale pods still pull and start: every
    #    node pulls the image at once. Its launch script waits for Ready locales
    #    (upstream trap 1) with a deadline as long as our locale stage.
    pod_created = ownership.create_owned(pod, deadline)
    report("server", 0, 1, "server pod created")
    if not wait:
        return
    if server_after_locales or not spec.locale_pods:
        readiness.wait_server(deadline, _resource_version(pod_created))
        return
    # Both watched at once, from the Deployment's creation on: a locale that cannot
    # start (ImagePullBackOff, Unschedulable) is the cause, reported at once, not a
    # server that never gets Ready.
    started = readiness.wait_server(
        time.monotonic() + t.locales,
        _resource_version(locales) if locales else _resource_version(pod_created),
        with_locales=True,
    )
    if not _ready(started):
        # Locales running: the server stage's own deadline starts now (one list).
        readiness.wait_server(time.monotonic() + t.server)


def _store_credentials(
    kube: Kube,
    ownership: Ownership,
    spec: ClusterSpec,
    credentials: Callable[[], Credentials],
    t: Timeouts,
    deadline: float,
    report: Report,
    *,
    may_approve: bool,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]], background.Background[Any]]:
    """Steps 1 and 2: the first objects (the Secrets among them) and the server's
    certificate. The only place the keys are held: its frame ends once they are stored,
    and what it returns holds no Secret (the objects still to create, the API's answers
    and the RoleBindings under way)."""
    creds = credentials()
    names = manifests.names(spec)
    objects = manifests.render(spec, creds)
    csr_obj = next((o for o in objects if o["kind"] == "CertificateSigningRequest"), None)

    def later(o: dict[str, Any]) -> bool:
        # The server pod waits for its locales (trap 1); the TLS Secret for its
        # certificate; a RoleBinding for its Role (Kubernetes checks, when a user
        # without the `bind` verb binds a role, that the role exists and that the
        # user holds its rules).
        return (
            o["kind"] in ("Pod", "CertificateSigningRequest", "RoleBinding")
            or o["metadata"]["name"] == names.tls_secret
            and o["kind"] == "Secret"
        )

    # 1. Everything but those, at once: Secrets, ServiceAccount, Role, ConfigMap,
    #    Services, the locale Deployment (whose pods start meanwhile).
    first = [o for o in objects if not later(o)]
    answers = ownership.create_all_owned(first, deadline)
    created = {
        _ref(o): answer
        for o, answer in zip(first, answers, strict=True)
        if o["kind"] != "Secret"  # the API's answer holds the data
    }
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    binding_done = background.in_background(ownership.create_all_owned, bindings, deadline)

    # 2. The server's client certificate (--registration server only): CSR,
    #    approval, certificate into the Secret.
    if csr_obj is not None:
        # Preflight already asked whether we may approve (one access review).
        cert, csr_uid = server_certificate.obtain(
            kube,
            ownership.owned(csr_obj),
            may_approve=may_approve,
            timeouts=t,
            deadline=deadline,
            report=report,
        )
        tls = next(
            o
            for o in manifests.render(spec, creds.with_certificate(cert))
            if o["kind"] == "Secret" and o["metadata"]["name"] == names.tls_secret
        )
        stored: list[Callable[[], Any]] = [
            functools.partial(ownership.create_owned, tls, deadline),
            functools.partial(
                kube.delete,
                "CertificateSigningRequest",
                names.csr,
                uid=csr_uid,
                deadline=deadline,
            ),
        ]
        kube.concurrently(stored)
    return [o for o in objects if o["kind"] != "Secret"], created, binding_done


def _ref(obj: dict[str, Any]) -> tuple[str, str]:
    return (obj["kind"], obj["metadata"]["name"])


def _resource_version(obj: dict[str, Any] | None) -> str | None:
    rv = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv else None
