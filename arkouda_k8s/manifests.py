"""The Kubernetes objects of one deployment, as plain dicts: pure functions, no I/O.

``render(spec, credentials)`` returns every object in apply order, ready for
server-side apply or ``kubectl apply``. Each object is prefixed with the instance name
(several instances share a namespace) and carries the standard labels. The upstream
chart traps (docs/architecture.md) are fixed here: the launch scripts live beside the image's
``/opt/arkouda`` (never over it) and call its launcher by absolute path, namespaced
objects only by default (``registration: client``: the server pod lists its locales
with its own ServiceAccount, we create its Service), a memMax derived below the memory
limit per locale, the token handed over as a file, and locale discovery that waits for
Ready locale pods. The facts about the real images these rely on, with their sources,
are in ``sandbox/image_facts.yaml``.
"""

from __future__ import annotations

import base64
import copy
import json
import shlex
from dataclasses import dataclass
from typing import Any

from .credentials import Credentials, user_for
from .errors import SpecError
from .spec import (
    IN_CLUSTER_K8S_HOST,
    METRICS_EXPORTER_PORT,
    METRICS_PORT,
    ClusterSpec,
)

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


def _secret(
    spec: ClusterSpec, name: str, values: dict[str, bytes | str | None], type_: str = "Opaque"
) -> dict[str, Any]:
    """A Secret; values that are None are shown as a placeholder in stringData."""
    data = {k: _b64(v) for k, v in values.items() if v is not None}
    string_data = {k: PLACEHOLDER for k, v in values.items() if v is None}
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(spec, name, "credentials"),
        "type": type_,
    }
    if data:
        obj["data"] = data
    if string_data:
        obj["stringData"] = string_data
    return obj


def secrets(spec: ClusterSpec, credentials: Credentials | None) -> list[dict[str, Any]]:
    """The SSH Secret (udp), the TLS Secret (registration "server"), the token Secret."""
    n = names(spec)
    c = credentials
    out = []
    if spec.mode == "udp":
        out.append(
            _secret(
                spec,
                n.ssh_secret,
                {
                    "id_rsa": c.ssh_private_key if c else None,
                    "id_rsa.pub": c.ssh_public_key if c else None,
                },
            )
        )
    if spec.registration == "server":
        out.append(
            _secret(
                spec,
                n.tls_secret,
                {
                    "tls.crt": c.certificate if c and c.certificate else None,
                    "tls.key": c.tls_key if c else None,
                },
                "kubernetes.io/tls",
            )
        )
    out.append(_secret(spec, n.token_secret, {"token": c.token if c else None}))
    return out


_READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}


def rbac(spec: ClusterSpec) -> list[dict[str, Any]]:
    """What the server pod needs from the API, in its namespace only (udp; smp: nothing).

    registration "client": a ServiceAccount (unless the spec names one) with a Role to
    read pods, for locale discovery with the pod's own token. Registration "server": a
    Role for the certificate's user, which also writes services and endpoints because
    the server registers its own selector-less Service (and removes it at shutdown).
    """
    if spec.mode != "udp":
        return []
    n = names(spec)
    out: list[dict[str, Any]] = []
    if spec.registration == "client":
        if not spec.service_account:
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": _meta(spec, n.service_account, "rbac"),
                }
            )
        rules = [dict(_READ_PODS)]
        subject = {"kind": "ServiceAccount", "name": n.service_account, "namespace": n.namespace}
    else:
        rules = [
            dict(_READ_PODS),
            {
                "apiGroups": [""],
                "resources": ["services", "endpoints"],
                "verbs": ["get", "list", "watch", "create", "delete", "update"],
            },
        ]
        subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": n.user}
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(spec, n.role, "rbac"),
            "rules": rules,
        }
    )
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(spec, n.role_binding, "rbac"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": n.role},
            "subjects": [subject],
        }
    )
    return out


def runner_rbac(spec: ClusterSpec) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for pipeline pods that run
    ``arkouda-k8s run --in-cluster NAME``: ``get`` on this deployment's Service, its
    Endpoints and its token Secret, each by name (nothing can be listed or changed).

    Not labelled managed-by arkouda-k8s: the grant belongs to the pipeline, so a teardown
    and redeploy of the cluster leave it in place.
    """
    n = names(spec)
    meta_labels = {
        k: v for k, v in labels(spec, "runner").items() if k != "app.kubernetes.io/managed-by"
    }

    def meta(name: str) -> dict[str, Any]:
        return {"name": name, "namespace": n.namespace, "labels": dict(meta_labels)}

    def rule(resource: str, name: str) -> dict[str, Any]:
        return {
            "apiGroups": [""],
            "resources": [resource],
            "resourceNames": [name],
            "verbs": ["get"],
        }

    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(n.runner_account)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(n.runner_account),
            "rules": [
                rule("services", n.self_service),
                rule("endpoints", n.self_service),
                rule("secrets", n.token_secret),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(n.runner_account),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": n.runner_account,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": n.runner_account, "namespace": n.namespace}
            ],
        },
    ]


def certificate_signing_request(
    spec: ClusterSpec, credentials: Credentials | None
) -> dict[str, Any]:
    """The cluster-scoped CSR for the server's client certificate (CN = the user);
    registration "server" only."""
    n = names(spec)
    request = credentials.csr if credentials else PLACEHOLDER.encode()
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": _meta(spec, n.csr, "credentials", namespaced=False),
        "spec": {
            "request": _b64(request),
            "signerName": CSR_SIGNER,
            "usages": ["digital signature", "key encipherment", "client auth"],
        },
    }


# -- launch scripts ------------------------------------------------------------------------
#
# Written for arkouda-k8s (not the upstream scripts). POSIX sh; python3 is in the image
# (sandbox/image_facts.yaml). The udp scripts start as root with sshd's capabilities
# only (SSHD_CAPABILITIES), start sshd and run the rest as the image's user (ubuntu);
# the smp script runs as ubuntu throughout. No sudo: the pods forbid privilege escalation.

_COMMON = f"""\
fail() {{
  echo "arkouda-k8s: $*" >&2
  exit 1
}}

check_persistence_writable() {{
  # The init container {PERSISTENCE_INIT} gave the hostPath directory to this user.
  dir="${{PERSISTENCE_DIR:-}}"
  [ -n "$dir" ] || return 0
  [ -w "$dir" ] || fail "$dir is not writable for $(id -un) (uid $(id -u))"
}}
"""


# The root part of a udp script: this script again as the image's user (stage "setup":
# the SSH keys, the persistence check), then sshd as root. setpriv keeps no capability
# across the switch to a non-root user.
def _root_stage(then: str) -> str:
    as_user = f"setpriv --reuid={IMAGE_UID} --regid={IMAGE_GID} --init-groups --"
    return f"""\
if [ "${{ARKOUDA_K8S_STAGE:-}}" = setup ]; then
  install_ssh_keys
  check_persistence_writable
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  env ARKOUDA_K8S_STAGE=setup HOME={IMAGE_HOME} {as_user} sh "$0" || exit 1
  start_sshd
{then}
elif [ "${{ARKOUDA_K8S_STAGE:-}}" != user ]; then
  fail "started as uid $(id -u): sshd needs the container to start as root (runAsUser 0)"
fi
"""


# The server: everything after sshd as the image's user (stage "user").
_SERVER_ROOT_STAGE = _root_stage(
    f"  exec env ARKOUDA_K8S_STAGE=user HOME={IMAGE_HOME} setpriv --reuid={IMAGE_UID} "
    f'--regid={IMAGE_GID} --init-groups -- sh "$0" "$@"'
)
# A locale only waits (the launcher starts its Arkouda process over ssh, as ubuntu): it
# stays root, so its SIGTERM trap covers the whole life of the container, and holds no
# capability but sshd's.
_LOCALE_ROOT_STAGE = _root_stage("  :")

_INSTALL_KEYS = f"""\
install_ssh_keys() {{
  # The Secret's files are read-only and shared; ssh wants private copies.
  mkdir -p "$HOME/.ssh"
  chmod 700 "$HOME/.ssh"
  keys="${{SSH_KEYS_DIR:-{SSH_KEYS_DIR}}}"
  cp "$keys/id_rsa" "$HOME/.ssh/id_rsa"
  cp "$keys/id_rsa.pub" "$HOME/.ssh/id_rsa.pub"
  cp "$keys/id_rsa.pub" "$HOME/.ssh/authorized_keys"
  chmod 600 "$HOME/.ssh/id_rsa" "$HOME/.ssh/authorized_keys"
  # Pod IPs change with every start; host keys cannot be known in advance.
  printf 'Host *\\n  StrictHostKeyChecking no\\n  UserKnownHostsFile /dev/null\\n  LogLevel ERROR\\n' \\
    > "$HOME/.ssh/config"
  chmod 600 "$HOME/.ssh/config"
}}

start_sshd() {{
  mkdir -p /run/sshd
  /usr/sbin/sshd || fail "sshd did not start"
}}
"""

# The server reads <cwd>/.arkouda/tokens.txt before ARKOUDA_SERVER_TOKEN and opens it
# read-write (Security.chpl, FileIO.chpl), so it gets a private copy of the Secret's file.
# Never the environment: the udp launcher copies its environment onto the ssh command
# line of every locale, where any process of the pod sees it.
_INSTALL_TOKEN = f"""\
install_token() {{
  [ "${{AUTHENTICATE:-false}}" = true ] || return 0
  token_file="${{ARKOUDA_K8S_TOKEN_FILE:-{TOKEN_FILE}}}"
  [ -s "$token_file" ] || fail "no token at $token_file (the Secret's key 'token')"
  mkdir -p .arkouda
  chmod 700 .arkouda
  # A new file, mode 0600: cp would carry over the Secret's read-only mode.
  rm -f .arkouda/tokens.txt
  (umask 077 && cat "$token_file" > .arkouda/tokens.txt)
}}
"""

# Lists the Ready locale pods' IPs (Ready: sshd listens, the locale's tcp:22 probe) with
# the pod's service-account token (registration "client") or the instance's client
# certificate ("server"), verifying the API server with the cluster CA; without the CA
# it refuses (exit 3) rather than talk to an unverified server.
_DISCOVER = """\
import json, os, ssl, sys, urllib.parse, urllib.request
ca = os.environ["CA_FILE"]
if not os.path.exists(ca):
    print("no cluster CA at %s: will not talk to the API server unverified" % ca, file=sys.stderr)
    sys.exit(3)
ctx = ssl.create_default_context(cafile=ca)
headers = {"Accept": "application/json"}
if os.environ.get("CERT_FILE"):
    ctx.load_cert_chain(os.environ["CERT_FILE"], os.environ["KEY_FILE"])
else:
    with open(os.path.join(os.environ["SERVICE_ACCOUNT_DIR"], "token")) as f:
        headers["Authorization"] = "Bearer " + f.read().strip()
host = os.environ["KUBERNETES_SERVICE_HOST"]
if ":" in host:
    host = "[%s]" % host
url = "https://%s:%s/api/v1/namespaces/%s/pods?labelSelector=%s" % (
    host, os.environ.get("KUBERNETES_SERVICE_PORT", "443"), os.environ["NAMESPACE"],
    urllib.parse.quote(os.environ["LOCALE_SELECTOR"]))
req = urllib.request.Request(url, headers=headers)
with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
    pods = json.load(r)["items"]
def ready(p):
    s = p.get("status") or {}
    return (s.get("phase") == "Running" and s.get("podIP")
            and not p["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in s.get("conditions") or []))
print(" ".join(sorted(p["status"]["podIP"] for p in pods if ready(p))))
"""

# Registration "server": removes a Service/Endpoints left by an earlier run, since the
# server exits on a 409 when it registers.
_REMOVE_STALE = """\
import os, ssl, sys, urllib.error, urllib.request
ca = os.environ["CA_FILE"]
if not os.path.exists(ca):
    print("no cluster CA at %s: will not talk to the API server unverified" % ca, file=sys.stderr)
    sys.exit(3)
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(os.environ["CERT_FILE"], os.environ["KEY_FILE"])
host = os.environ["KUBERNETES_SERVICE_HOST"]
if ":" in host:
    host = "[%s]" % host
base = "https://%s:%s/api/v1/namespaces/%s" % (
    host, os.environ.get("KUBERNETES_SERVICE_PORT", "443"), os.environ["NAMESPACE"])
for name in os.environ["STALE_SERVICES"].split():
    for kind in ("services", "endpoints"):
        req = urllib.request.Request("%s/%s/%s" % (base, kind, name), method="DELETE")
        try:
            urllib.request.urlopen(req, context=ctx, timeout=10).close()
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
"""


def _server_script_udp(registration: str) -> str:
    stale = ""
    if registration == "server":
        stale = f"""
# The server exits when its own Service exists already: remove what an earlier run left.
export STALE_SERVICES="$EXTERNAL_SERVICE_NAME ${{METRICS_SERVICE_NAME:-}}"
python3 -c {shlex.quote(_REMOVE_STALE)} || fail "cannot remove the services of an earlier run"
"""
    return f"""#!/bin/sh
# start-arkouda-server.sh (arkouda-k8s): locale 0 of a GASNet/UDP Arkouda cluster.
# Starts sshd, installs the instance's SSH keys, waits until every locale pod is Ready,
# then runs Arkouda's launcher across them with the given flags.
set -eu
{_COMMON}
{_INSTALL_KEYS}
{_INSTALL_TOKEN}
{_SERVER_ROOT_STAGE}

want=$((NUMLOCALES - 1))
ips=""
if [ "$want" -gt 0 ]; then
  wait_seconds="${{LOCALE_WAIT_SECONDS:-{LOCALE_WAIT_SECONDS}}}"
  deadline=$(( $(date +%s) + wait_seconds ))
  errors="$HOME/.arkouda-k8s-discovery.err"
  while :; do
    rc=0
    ips=$(python3 -c {shlex.quote(_DISCOVER)} 2>"$errors") || rc=$?
    [ "$rc" -eq 3 ] && fail "$(tail -n 1 "$errors")"
    [ "$rc" -eq 0 ] || ips=""
    got=$(echo $ips | wc -w)
    [ "$got" -ge "$want" ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "arkouda-k8s: found $got of $want Ready locale pods ($LOCALE_SELECTOR) after ${{wait_seconds}}s" >&2
      tail -n 1 "$errors" >&2
      exit 1
    fi
    sleep 1
  done
  ips=$(echo $ips | tr ' ' '\\n' | head -n "$want" | tr '\\n' ' ')
fi
{stale}
install_token
export SSH_SERVERS="$MY_IP $ips"
export GASNET_MASTERIP="$MY_IP"
echo "arkouda-k8s: starting $NUMLOCALES locale(s) on $SSH_SERVERS"
exec {ARKOUDA_SERVER} -nl "$NUMLOCALES" "$@"
"""


_LOCALE_SCRIPT = f"""#!/bin/sh
# start-arkouda-locale.sh (arkouda-k8s): a GASNet/UDP locale pod. The server starts
# the Arkouda process here over SSH; this script only runs sshd and waits.
set -eu
sleeper=""
# Stop at once on SIGTERM (no 30 s grace wait), taking the sleep along; set first, so
# a pod deleted while it is still starting sshd stops cleanly too.
trap '[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null; exit 0' TERM INT
{_COMMON}
{_INSTALL_KEYS}
{_LOCALE_ROOT_STAGE}
echo "arkouda-k8s: sshd listening on $MY_IP:22; the server's launcher starts this locale over ssh"
while :; do
  sleep 3600 &
  sleeper=$!
  wait "$sleeper" || true
done
"""

_SERVER_SCRIPT_SMP = f"""#!/bin/sh
# start-arkouda-server.sh (arkouda-k8s): every locale in this one pod (GASNet smp).
set -eu
{_COMMON}
{_INSTALL_TOKEN}
check_persistence_writable
install_token
exec {ARKOUDA_SERVER} -nl "$NUMLOCALES" "$@"
"""


def launch_config(spec: ClusterSpec) -> dict[str, Any]:
    """The ConfigMap with the launch scripts, mounted at /opt/arkouda-k8s."""
    if spec.mode == "udp":
        data = {
            SERVER_SCRIPT: _server_script_udp(spec.registration),
            LOCALE_SCRIPT: _LOCALE_SCRIPT,
        }
    else:
        data = {SERVER_SCRIPT: _SERVER_SCRIPT_SMP}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(spec, names(spec).launch_config, "config"),
        "data": data,
    }


# -- pods -----------------------------------------------------------------------------------


def server_args(spec: ClusterSpec) -> list[str]:
    """The arkouda_server flags (the launch script adds ``-nl``).

    ServerDaemon.daemonTypes defaults to DEFAULT (the client port alone). INTEGRATION is
    DEFAULT plus self-registration (registration "server" only); METRICS adds the
    metrics port, and alone would open no client port, hence DEFAULT,METRICS.
    """
    args = [
        f"--ServerPort={spec.server_port}",
        f"--authenticate={str(spec.authenticate).lower()}",
        f"--memMax={spec.effective_mem_max}",
        "--memTrack=true",
        f"--logLevel=LogLevel.{spec.log_level}",
    ]
    daemons = []
    if spec.registration == "server":
        args.append("--ExternalIntegration.systemType=SystemType.KUBERNETES")
        daemons.append("ServerDaemonType.INTEGRATION")
    if spec.metrics:
        if not daemons:
            daemons.append("ServerDaemonType.DEFAULT")
        daemons.append("ServerDaemonType.METRICS")
    if daemons:
        args.append(f"--ServerDaemon.daemonTypes={','.join(daemons)}")
    return args


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


def state_name(name: str) -> str:
    """The name of instance ``name``'s state ConfigMap."""
    return f"{name}-state"


def state_configmap(
    spec: ClusterSpec,
    instance_id: str | None,
    *,
    heartbeat: str,
    context: str | None = None,
    ephemeral: bool = False,
) -> dict[str, Any]:
    """The small ConfigMap that marks the instance and owns its other objects: the
    spec (for reattach), the time-to-live and the heartbeat (``heartbeat``: when, as
    ``YYYY-MM-DDTHH:MM:SSZ``)."""
    annotations = {
        SPEC_ANNOTATION: json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":")),
        HEARTBEAT_ANNOTATION: heartbeat,
    }
    if spec.ttl_seconds:
        annotations[TTL_ANNOTATION] = str(spec.ttl_seconds)
    if ephemeral:
        annotations[EPHEMERAL_ANNOTATION] = "true"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": state_name(spec.name),
            "namespace": _namespace(spec),
            "labels": {**labels(spec, "config"), INSTANCE_ID_LABEL: instance_id or ""},
            "annotations": annotations,
        },
        "data": {"context": context or "", "created-by": MANAGED_BY},
    }


def owned(obj: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` labelled with the instance id of ``state`` (the instance's
    state ConfigMap, as created) and owned by it: deleting the ConfigMap deletes it, and
    teardown deletes nothing that does not name that ConfigMap's uid."""
    md_state = state["metadata"]
    instance_id = md_state["labels"][INSTANCE_ID_LABEL]
    obj = copy.deepcopy(obj)
    md = obj["metadata"]
    md.setdefault("labels", {})[INSTANCE_ID_LABEL] = instance_id
    if obj["kind"] == "Deployment":
        template = obj["spec"]["template"].setdefault("metadata", {})
        template.setdefault("labels", {})[INSTANCE_ID_LABEL] = instance_id
    if obj["kind"] != "CertificateSigningRequest":  # cluster-scoped: no namespaced owner
        md["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": md_state["name"],
                "uid": str(md_state["uid"]),
            }
        ]
    return obj
