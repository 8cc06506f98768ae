"""The Kubernetes objects of one deployment, as plain dicts: pure functions, no I/O.

``render(spec, credentials)`` returns every object in apply order, ready for
server-side apply or ``kubectl apply``. Each object is prefixed with the instance name
(several instances share a namespace) and carries the standard labels. This module
builds the workload (pods, the locale Deployment, Services, NetworkPolicy, Namespace)
and offers every other builder too: names, labels and the images' layout
(``manifest_base``), Secrets, RBAC, the CSR and the state ConfigMap
(``manifest_access``), the launch scripts (``manifest_scripts``). The upstream chart
traps (docs/architecture.md) are fixed here: the launch scripts live beside the image's
``/opt/arkouda`` (never over it) and call its launcher by absolute path, namespaced
objects only by default (``registration: client``: the server pod lists its locales
with its own ServiceAccount, we create its Service), a memMax derived below the memory
limit per locale, the token handed over as a file, and locale discovery that waits for
Ready locale pods. The facts about the real images these rely on, with their sources,
are in ``sandbox/image_facts.yaml``.
"""

from __future__ import annotations

import json
from typing import Any

from .credentials import Credentials, user_for
from .errors import SpecError
from .manifest_access import (  # noqa: F401 (re-export: every manifest of a deployment)
    certificate_signing_request,
    deployer_rbac,
    owned,
    rbac,
    runner_rbac,
    secrets,
    state_configmap,
    state_name,
)
from .manifest_base import (  # noqa: F401 (re-export: names, labels, the images' layout)
    ARKOUDA_DIR,
    ARKOUDA_SERVER,
    CA_DIR,
    CSR_SIGNER,
    EPHEMERAL_ANNOTATION,
    EXPORTER_CPU,
    EXPORTER_MEMORY,
    HEARTBEAT_ANNOTATION,
    HOSTNAME_LABEL,
    IMAGE_GID,
    IMAGE_HOME,
    IMAGE_UID,
    INSTANCE_ID_LABEL,
    LAUNCH_DIR,
    LOCALE_SCRIPT,
    LOCALE_WAIT_SECONDS,
    MANAGED_BY,
    METRICS_POLLING_SECONDS,
    PERSISTENCE_INIT,
    PLACEHOLDER,
    SERVER_SCRIPT,
    SERVICE_ACCOUNT_DIR,
    SPEC_ANNOTATION,
    SSH_KEYS_DIR,
    SSH_PORT,
    TLS_DIR,
    TOKEN_DIR,
    TOKEN_FILE,
    TTL_ANNOTATION,
    Names,
    _match_labels,
    _meta,
    _namespace,
    labels,
    names,
    selector,
)
from .manifest_scripts import launch_config, server_args
from .spec import (
    IN_CLUSTER_K8S_HOST,
    METRICS_EXPORTER_PORT,
    METRICS_PORT,
    ClusterSpec,
)

# -- privileges ------------------------------------------------------------------------------
#
# Every container drops ALL capabilities and runs with allowPrivilegeEscalation false (so
# the images' passwordless sudo cannot work, by design). Only two get some back, each
# capability with its reason, also written on the pod as an annotation
# (CAPABILITY_ANNOTATION + name) so `kubectl describe` says why:
# - the udp containers start as root for sshd (locale discovery logs into every locale
#   as ubuntu over ssh; only a root sshd can do that) and the launch script drops to
#   the image's user (setpriv) for everything else: Arkouda never runs as root;
# - the init container that hands a hostPath directory to the image's user.
SSHD_CAPABILITIES = {
    "SETUID": "sshd switches to its privilege-separation user and to the user it logs in "
    "(ubuntu); the launch script switches to ubuntu for everything but sshd",
    "SETGID": "the same switches of group and supplementary groups",
    "SYS_CHROOT": "sshd chroots its pre-authentication process into /run/sshd "
    "(privilege separation); CRI-O runtimes do not grant it by default",
    "NET_BIND_SERVICE": "sshd listens on port 22, where the launcher's ssh connects",
}
PERSISTENCE_CAPABILITIES = {
    "CHOWN": "the kubelet creates a missing hostPath directory root-owned; the init "
    "container gives it to the image's user (uid 1000), which runs the server",
}
CAPABILITY_ANNOTATION = "capabilities.arkouda-k8s.dev/"


# -- pods -----------------------------------------------------------------------------------


def _env(name: str, value: str | int) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _resources(spec: ClusterSpec) -> dict[str, Any]:
    # Chapel sizes its heap and threads at start: requests equal to limits (Guaranteed).
    amounts = {"cpu": spec.cpu, "memory": spec.memory}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _volumes(spec: ClusterSpec, component: str) -> tuple[list[dict], list[dict]]:
    n = names(spec)
    volumes: list[dict[str, Any]] = [
        {"name": "launch", "configMap": {"name": n.launch_config, "defaultMode": 0o555}}
    ]
    # A directory of its own: a volume over /opt/arkouda would hide the launcher, the
    # real program and its libraries.
    mounts: list[dict[str, Any]] = [{"name": "launch", "mountPath": LAUNCH_DIR, "readOnly": True}]
    if spec.mode == "udp":
        volumes.append({"name": "ssh-keys", "secret": {"secretName": n.ssh_secret}})
        mounts.append({"name": "ssh-keys", "mountPath": SSH_KEYS_DIR, "readOnly": True})
    if component == "server":
        volumes.append(
            {
                "name": "token",
                "secret": {
                    "secretName": n.token_secret,
                    "items": [{"key": "token", "path": "token"}],
                    # Root-owned in the pod; the server runs as the image's user.
                    "defaultMode": 0o444,
                },
            }
        )
        mounts.append({"name": "token", "mountPath": TOKEN_DIR, "readOnly": True})
    if spec.registration == "server" and component == "server":
        volumes.append({"name": "tls", "secret": {"secretName": n.tls_secret}})
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "kube-ca",
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    "optional": True,
                },
            }
        )
        mounts.append({"name": "kube-ca", "mountPath": CA_DIR, "readOnly": True})
    if spec.persistence is not None:
        volumes.append(
            {
                "name": "arkouda-files",
                "hostPath": {"path": spec.persistence.host_path, "type": "DirectoryOrCreate"},
            }
        )
        mounts.append({"name": "arkouda-files", "mountPath": spec.persistence.mount_path})
    return volumes, mounts


def security_context(
    *, run_as_root: bool | None, capabilities: dict[str, str] | None = None
) -> dict[str, Any]:
    """A container's securityContext: no capability but ``capabilities`` (name -> why),
    no privilege escalation (setuid programs such as sudo gain nothing), the runtime's
    seccomp profile; root, the images' user or (None) the image's own USER."""
    sc: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if capabilities:
        sc["capabilities"]["add"] = sorted(capabilities)
    if run_as_root:
        sc.update(runAsUser=0, runAsGroup=0)
    elif run_as_root is False:
        sc.update(runAsUser=IMAGE_UID, runAsGroup=IMAGE_GID, runAsNonRoot=True)
    return sc


def _main_security_context(spec: ClusterSpec) -> dict[str, Any]:
    """udp: root with sshd's capabilities (the script drops to ubuntu for the rest);
    smp: no sshd, the images' user throughout, nothing added."""
    if spec.mode == "udp":
        return security_context(run_as_root=True, capabilities=SSHD_CAPABILITIES)
    return security_context(run_as_root=False)


def _init_containers(spec: ClusterSpec) -> list[dict[str, Any]]:
    """A hostPath directory the kubelet created is root's: give it to the images' user
    before the server or a locale starts (their scripts check they can write there)."""
    if spec.persistence is None:
        return []
    path = spec.persistence.mount_path
    return [
        {
            "name": PERSISTENCE_INIT,
            "image": spec.server_image,
            "imagePullPolicy": spec.pull_policy,
            "command": ["chown", f"{IMAGE_UID}:{IMAGE_GID}", path],
            # As large as the main container: an init container then costs no quota.
            "resources": _resources(spec),
            "volumeMounts": [{"name": "arkouda-files", "mountPath": path}],
            "securityContext": security_context(
                run_as_root=True, capabilities=PERSISTENCE_CAPABILITIES
            ),
        }
    ]


def _capability_annotations(pod: dict[str, Any]) -> dict[str, str]:
    """CAPABILITY_ANNOTATION + name -> why, for every capability a container of the pod
    adds back (kubectl describe shows them with the pod)."""
    reasons = {**SSHD_CAPABILITIES, **PERSISTENCE_CAPABILITIES}
    out = {}
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        for cap in c.get("securityContext", {}).get("capabilities", {}).get("add", []):
            out[CAPABILITY_ANNOTATION + cap] = f"{c['name']}: {reasons[cap]}"
    return out


def _uses_own_service_account(spec: ClusterSpec, component: str) -> bool:
    """Only the udp server pod of registration "client" talks to the API with a token."""
    return component == "server" and spec.mode == "udp" and spec.registration == "client"


def _pod_spec(
    spec: ClusterSpec, component: str, containers: list[dict], volumes: list[dict], restart: str
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        **({"initContainers": _init_containers(spec)} if spec.persistence else {}),
        "containers": containers,
        "volumes": volumes,
        "restartPolicy": restart,
        # Many instances may share a namespace; their service env vars are noise.
        "enableServiceLinks": False,
    }
    if _uses_own_service_account(spec, component):
        pod["serviceAccountName"] = names(spec).service_account
        # Locale discovery reads pods with this token (the Role allows nothing more).
        pod["automountServiceAccountToken"] = True
    elif spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    else:
        # Nothing else in these pods talks to the API: no token to steal.
        pod["automountServiceAccountToken"] = False
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    affinity = _spread(spec)
    if affinity:
        pod["affinity"] = affinity
    if spec.tolerations:
        pod["tolerations"] = [dict(t) for t in spec.tolerations]
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return pod


def _spread(spec: ClusterSpec) -> dict[str, Any] | None:
    """One locale per node (the server pod is locale 0): two locales on a node compete
    for its memory and network. Pod anti-affinity on the hostname among the instance's
    pods, a rule (required) or a wish (preferred) of the scheduler."""
    if spec.spread == "none" or spec.mode != "udp" or spec.locales < 2:
        return None
    term = {
        "labelSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "arkouda",
                "app.kubernetes.io/instance": spec.name,
            }
        },
        "topologyKey": HOSTNAME_LABEL,
    }
    if spec.spread == "required":
        rules: dict[str, Any] = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    else:
        rules = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term}
            ]
        }
    return {"podAntiAffinity": rules}


def _persistence_env(spec: ClusterSpec) -> list[dict[str, Any]]:
    return [_env("PERSISTENCE_DIR", spec.persistence.mount_path)] if spec.persistence else []


def _server_container(spec: ClusterSpec) -> dict[str, Any]:
    n = names(spec)
    env = [
        _env("NUMLOCALES", spec.locales),
        _field_env("MY_IP", "status.podIP"),
        _field_env("NAMESPACE", "metadata.namespace"),
        _env("CHPL_RT_NUM_THREADS_PER_LOCALE", spec.effective_threads),
        _env("ARKOUDA_CLIENT_MODE", "API"),
        _env("LOG_LEVEL", spec.log_level),
        _env("MEMTRACK", "true"),
        _env("AUTHENTICATE", str(spec.authenticate).lower()),
        # A path, not the token: the script copies the file where the server reads it.
        _env("ARKOUDA_K8S_TOKEN_FILE", TOKEN_FILE),
        *_persistence_env(spec),
    ]
    if spec.mode == "udp":
        env += [
            _field_env("GASNET_MASTERIP", "status.podIP"),
            _env("GASNET_SUPERNODE_MAXSIZE", 1),
            _env("SSH_KEYS_DIR", SSH_KEYS_DIR),
            _env("APP_NAME", n.locale_app),
            _env("LOCALE_SELECTOR", selector(spec, "locale")),
        ]
        if spec.registration == "client":
            env += [
                _env("SERVICE_ACCOUNT_DIR", SERVICE_ACCOUNT_DIR),
                _env("CA_FILE", f"{SERVICE_ACCOUNT_DIR}/ca.crt"),
            ]
    if spec.registration == "server":
        env += [
            _env("K8S_HOST", IN_CLUSTER_K8S_HOST),
            _env("CERT_FILE", f"{TLS_DIR}/tls.crt"),
            _env("KEY_FILE", f"{TLS_DIR}/tls.key"),
            _env("CA_FILE", f"{CA_DIR}/ca.crt"),
            _env("EXTERNAL_SERVICE_NAME", n.self_service),
            _env("EXTERNAL_SERVICE_PORT", spec.server_port),
            _env("EXTERNAL_SERVICE_TARGET_PORT", spec.server_port),
            _env("POD_METHOD", "GET_POD_IPS"),
        ]
    env.append(_env("COLLECT_METRICS", str(spec.metrics).lower()))
    if spec.metrics and spec.registration == "server":
        env += [
            _env("METRICS_SERVICE_NAME", n.metrics_service),
            _env("METRICS_SERVICE_PORT", METRICS_PORT),
            _env("METRICS_SERVICE_TARGET_PORT", METRICS_PORT),
        ]
    ports = [{"name": "arkouda", "containerPort": spec.server_port, "protocol": "TCP"}]
    if spec.mode == "udp":
        ports.append({"name": "ssh", "containerPort": SSH_PORT, "protocol": "TCP"})
    if spec.metrics:
        ports.append({"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"})
    _, mounts = _volumes(spec, "server")
    return {
        "name": "arkouda-server",
        "image": spec.server_image,
        "imagePullPolicy": spec.pull_policy,
        "command": ["sh", f"{LAUNCH_DIR}/{SERVER_SCRIPT}"],
        "args": server_args(spec),
        "workingDir": IMAGE_HOME,
        "env": env,
        "ports": ports,
        "resources": _resources(spec),
        "volumeMounts": mounts,
        "securityContext": _main_security_context(spec),
        "readinessProbe": {
            "tcpSocket": {"port": spec.server_port},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
    }


def _exporter_container(spec: ClusterSpec) -> dict[str, Any]:
    """The Prometheus exporter, with the variables it reads (its metrics.py main())."""
    amounts = {"cpu": EXPORTER_CPU, "memory": EXPORTER_MEMORY}
    return {
        "name": "prometheus-arkouda-exporter",
        "image": spec.metrics_exporter_image,
        "imagePullPolicy": spec.pull_policy,
        "env": [
            # Same pod, same network namespace: the server's metrics port is local.
            _env("ARKOUDA_METRICS_SERVICE_HOST", "localhost"),
            _env("ARKOUDA_METRICS_SERVICE_PORT", METRICS_PORT),
            _env("ARKOUDA_METRICS_SERVER_NAME", spec.name),
            _env("METRICS_POLLING_INTERVAL", METRICS_POLLING_SECONDS),
            _env("METRICS_SCRAPE_PORT", METRICS_EXPORTER_PORT),
        ],
        "ports": [{"name": "exporter", "containerPort": METRICS_EXPORTER_PORT, "protocol": "TCP"}],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        # Its image's user (root) with no capability: it only reads the metrics port.
        "securityContext": security_context(run_as_root=None),
    }


def _spec_annotation(spec: ClusterSpec) -> dict[str, str]:
    return {SPEC_ANNOTATION: json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))}


def server_pod(spec: ClusterSpec) -> dict[str, Any]:
    """The server: a bare Pod with restartPolicy Never (a restarted server would need
    its locales restarted too, so the lifecycle decides, not the kubelet)."""
    volumes, _ = _volumes(spec, "server")
    containers = [_server_container(spec)]
    if spec.metrics:
        containers.append(_exporter_container(spec))
    pod = _pod_spec(spec, "server", containers, volumes, "Never")
    annotations = {**_spec_annotation(spec), **_capability_annotations(pod)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(spec, names(spec).server_pod, "server", annotations=annotations),
        "spec": pod,
    }


def locale_deployment(spec: ClusterSpec) -> dict[str, Any]:
    """The locale pods: a Deployment of locales - 1 replicas (0 for one locale)."""
    n = names(spec)
    volumes, mounts = _volumes(spec, "locale")
    container = {
        "name": "arkouda-locale",
        "image": spec.server_image,
        "imagePullPolicy": spec.pull_policy,
        "command": ["sh", f"{LAUNCH_DIR}/{LOCALE_SCRIPT}"],
        # The launcher starts each locale's program over ssh in its own working directory.
        "workingDir": IMAGE_HOME,
        "env": [
            _field_env("MY_IP", "status.podIP"),
            _env("NUM_LOCALES", spec.locales),
            _env("MEMTRACK", "true"),
            _env("CHPL_RT_NUM_THREADS_PER_LOCALE", spec.effective_threads),
            _env("GASNET_SUPERNODE_MAXSIZE", 1),
            _env("SSH_KEYS_DIR", SSH_KEYS_DIR),
            *_persistence_env(spec),
        ],
        "ports": [{"name": "ssh", "containerPort": SSH_PORT, "protocol": "TCP"}],
        "resources": _resources(spec),
        "volumeMounts": mounts,
        "securityContext": _main_security_context(spec),
        # Ready = sshd listens: the server's discovery waits for this condition.
        # Probed every second: the server's discovery (polling every second) starts the
        # launch as soon as the last locale is Ready.
        "readinessProbe": {"tcpSocket": {"port": SSH_PORT}, "periodSeconds": 1},
    }
    pod = _pod_spec(spec, "locale", [container], volumes, "Always")
    template_meta: dict[str, Any] = {
        # "app" is the label the image's own discovery helper matches (APP_NAME).
        "labels": {**labels(spec, "locale"), "app": n.locale_app},
        "annotations": {**spec.annotations, **_capability_annotations(pod)},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec, n.locale_deployment, "locale", annotations=_spec_annotation(spec)),
        "spec": {
            "replicas": spec.locale_pods,
            "selector": {"matchLabels": _match_labels(spec, "locale")},
            # A locale that comes back has a new IP the server does not know: replace
            # all at once rather than roll.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": template_meta,
                "spec": pod,
            },
        },
    }


def _service(
    spec: ClusterSpec, name: str, component: str, port: int, target: str, **extra: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, name, component),
        "spec": {
            "selector": _match_labels(spec, "server" if component != "locale" else "locale"),
            "ports": [{"name": target, "port": port, "targetPort": target, "protocol": "TCP"}],
            **extra,
        },
    }


def server_services(spec: ClusterSpec) -> list[dict[str, Any]]:
    """Registration "client": the server's in-cluster Services, made by us with a
    selector on the server pod (the names the server would register itself:
    ``{name}-arkouda``, and ``{name}-metrics`` with metrics on). None for "server"."""
    if spec.registration != "client":
        return []
    n = names(spec)
    out = [_service(spec, n.self_service, "server", spec.server_port, "arkouda")]
    if spec.metrics:
        out.append(_service(spec, n.metrics_service, "metrics", METRICS_PORT, "metrics"))
    return out


def services(spec: ClusterSpec) -> list[dict[str, Any]]:
    """Every Service we create: the server's own (registration "client"), the server's
    ssh Service and the locales' headless one (udp), the exporter's (metrics on)."""
    n = names(spec)
    out = server_services(spec)
    if spec.mode == "udp":
        out.append(_service(spec, n.ssh_service, "server", SSH_PORT, "ssh"))
        out.append(
            _service(
                spec,
                n.headless_service,
                "locale",
                SSH_PORT,
                "ssh",
                clusterIP="None",
                # GASNet needs every locale's address before the pods are Ready.
                publishNotReadyAddresses=True,
            )
        )
    if spec.metrics:
        out.append(
            _service(spec, n.metrics_exporter_service, "metrics", METRICS_EXPORTER_PORT, "exporter")
        )
    return out


def namespace(spec: ClusterSpec) -> dict[str, Any]:
    """The Namespace; labelled managed-by only, so deleting an instance by its labels
    never deletes a namespace other instances live in."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": _namespace(spec),
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
        },
    }


def network_policy(spec: ClusterSpec) -> dict[str, Any] | None:
    """Ingress to the instance's pods: every port from the instance's own pods (sshd,
    GASNet's UDP range), the Arkouda port (and the metrics exporter's) from the
    namespace's pods or, with ``network_policy="cluster"``, from any pod. Egress is left
    alone (the server lists pods through the API). A port-forward (our tunnel) reaches
    the pod through the kubelet and is not subject to it. None with ``"off"``."""
    if spec.network_policy == "off":
        return None
    own = {"app.kubernetes.io/name": "arkouda", "app.kubernetes.io/instance": spec.name}
    clients: list[dict[str, Any]] = (
        [{"podSelector": {}}] if spec.network_policy == "namespace" else [{"namespaceSelector": {}}]
    )
    ports = [{"protocol": "TCP", "port": spec.server_port}]
    if spec.metrics:
        ports.append({"protocol": "TCP", "port": METRICS_EXPORTER_PORT})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, f"{spec.name}-network", "network"),
        "spec": {
            "podSelector": {"matchLabels": own},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": dict(own)}}]},
                {"from": clients, "ports": ports},
            ],
        },
    }


def render(
    spec: ClusterSpec, credentials: Credentials | None = None, *, include_namespace: bool = False
) -> list[dict[str, Any]]:
    """Every object of the deployment, in apply order.

    Without ``credentials`` the secret values are the placeholder ``<generated at deploy>``
    (in ``stringData``) and the CSR request is a placeholder too. udp: Secrets, RBAC
    (ServiceAccount, Role, RoleBinding), the CSR (registration "server" only), ConfigMap,
    Services, locale Deployment, server Pod (the locale Deployment is rendered even with
    0 replicas). smp: token Secret, ConfigMap, Services, server Pod.
    """
    if credentials is not None and credentials.user != user_for(spec.name, _namespace(spec)):
        raise SpecError(
            "credentials",
            credentials.user,
            f"credentials generated for {user_for(spec.name, _namespace(spec))}",
        )
    if credentials is not None and spec.registration == "server" and credentials.csr is None:
        raise SpecError(
            "credentials",
            credentials.user,
            "credentials with a TLS key and CSR: Credentials.generate for a spec with "
            'registration="server"',
        )
    out: list[dict[str, Any]] = []
    if include_namespace:
        out.append(namespace(spec))
    out += secrets(spec, credentials)
    out += rbac(spec)
    if spec.registration == "server":
        out.append(certificate_signing_request(spec, credentials))
    out.append(launch_config(spec))
    out += services(spec)
    policy = network_policy(spec)
    if policy is not None:
        out.append(policy)
    if spec.mode == "udp":
        out.append(locale_deployment(spec))
    out.append(server_pod(spec))
    return out
