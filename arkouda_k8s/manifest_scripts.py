"""What runs in a deployment's containers: the launch scripts (in the ConfigMap
``{name}-launch``, mounted beside the image's ``/opt/arkouda``, never over it) and the
flags of ``arkouda_server``. Written for arkouda-k8s, not the upstream scripts. Pure."""

from __future__ import annotations

import shlex
from typing import Any

from .manifest_base import (
    ARKOUDA_SERVER,
    IMAGE_GID,
    IMAGE_HOME,
    IMAGE_UID,
    LOCALE_SCRIPT,
    LOCALE_WAIT_SECONDS,
    PERSISTENCE_INIT,
    SERVER_SCRIPT,
    SSH_KEYS_DIR,
    TOKEN_FILE,
    _meta,
    names,
)
from .spec import ClusterSpec

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
