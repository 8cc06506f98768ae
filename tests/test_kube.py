"""kube.py against the sandbox, through a kubeconfig: apply, list/watch with a deadline,
delete by label, retries, 403s, events, logs, CSRs and access reviews."""

from __future__ import annotations

import logging
import os
import re
import threading
import time

import pytest
from _support import eventually
from cryptography import x509

from arkouda_k8s.credentials import Credentials
from arkouda_k8s.errors import KubeError, UsageError
from arkouda_k8s.kube import Access, Kube, WatchDeadline
from arkouda_k8s.manifests import certificate_signing_request
from arkouda_k8s.spec import ClusterSpec


def cm(name: str, labels: dict | None = None, **data: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {"test": "kube"}},
        "data": data,
    }


def test_kubeconfig_context_and_namespace(sb):
    k = Kube.from_kubeconfig(sb.kubeconfig_path)
    assert k.context == "sandbox" and k.namespace == "default"
    assert k.server.startswith("https://127.0.0.1:")
    assert "namespace default" in k.describe() and "sandbox" in k.describe()
    other = Kube.from_kubeconfig(sb.kubeconfig_path, namespace="kube-public")
    assert other.namespace == "kube-public"
    with pytest.raises(UsageError, match="choose one of: sandbox"):
        Kube.from_kubeconfig(sb.kubeconfig_path, context="nope")
    with pytest.raises(UsageError, match="does not exist"):
        Kube.from_kubeconfig("/nonexistent/kubeconfig")


def test_endpoint_carries_auth_but_never_shows_it(kube):
    ep = kube.endpoint()
    assert ep.headers["Authorization"].startswith("Bearer ")
    token = ep.headers["Authorization"].split()[1]
    assert token not in repr(ep) and token not in repr(kube)


def test_server_side_apply_is_idempotent_and_owned(kube):
    first = kube.apply(cm("kube-apply", a="1"))
    again = kube.apply(cm("kube-apply", a="1"))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    managers = {m.get("manager") for m in again["metadata"].get("managedFields") or []}
    assert "arkouda-k8s" in managers
    changed = kube.apply(cm("kube-apply", a="2"))
    assert changed["data"] == {"a": "2"}
    assert kube.get("ConfigMap", "kube-apply")["data"] == {"a": "2"}
    uid = changed["metadata"]["uid"]
    assert kube.delete("ConfigMap", "kube-apply", uid="not-" + uid) is False  # not that one
    assert kube.get("ConfigMap", "kube-apply") is not None
    assert kube.delete("ConfigMap", "kube-apply", uid=uid) is True
    assert kube.delete("ConfigMap", "kube-apply", uid=uid) is False
    assert kube.get("ConfigMap", "kube-apply") is None


def test_wait_for_sees_a_change_made_later(kube):
    listed = threading.Event()  # the wait's first check ran: it listed and found nothing

    def later():
        if listed.wait(10):
            kube.apply(cm("kube-later", labels={"test": "later"}, x="y"))

    def check(objs):
        listed.set()
        return next(iter(objs.values())) if objs else None

    t = threading.Thread(target=later)
    t.start()
    start = time.monotonic()
    found = kube.wait_for(
        "ConfigMap",
        check,
        label_selector="test=later",
        deadline=time.monotonic() + 10,
    )
    t.join()
    assert found["data"] == {"x": "y"}
    assert time.monotonic() - start < 5
    kube.delete("ConfigMap", "kube-later", uid=found["metadata"]["uid"])


def test_wait_for_honours_its_deadline(kube):
    start = time.monotonic()
    with pytest.raises(WatchDeadline):
        kube.wait_for(
            "ConfigMap",
            lambda objs: None,
            label_selector="test=never",
            deadline=time.monotonic() + 1.5,
        )
    assert 1.4 < time.monotonic() - start < 4


def test_delete_owned_deletes_only_what_the_owner_owns_and_waits(kube, sb):
    owner = kube.apply(cm("kube-owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "kube-owner"}
    ref["uid"] = owner["metadata"]["uid"]
    for i in range(5):
        obj = cm(f"kube-del-{i}", labels={"test": "del"})
        obj["metadata"]["ownerReferences"] = [ref]
        kube.apply(obj)
    kube.apply(cm("kube-keep", labels={"test": "del"}))  # our labels, not owned
    deleted = kube.delete_owned(
        ["ConfigMap"], "test=del", ref["uid"], deadline=time.monotonic() + 10, wait=False
    )
    assert sorted(n for _, n in deleted) == [f"kube-del-{i}" for i in range(5)]
    left = kube.list("ConfigMap", label_selector="test=del")["items"]
    assert [o["metadata"]["name"] for o in left] == ["kube-keep"]
    for name in ("kube-keep", "kube-owner"):
        kube.delete("ConfigMap", name, uid=kube.get("ConfigMap", name)["metadata"]["uid"])


def test_transient_errors_are_retried(kube, sb):
    kube.apply(cm("kube-retry"))
    sb.faults.fail_requests(3, status=503)
    assert kube.get("ConfigMap", "kube-retry") is not None
    sb.faults.fail_requests(2, status=500)
    kube.apply(cm("kube-retry", a="b"))
    got = kube.get("ConfigMap", "kube-retry")
    assert got["data"] == {"a": "b"}
    kube.delete("ConfigMap", "kube-retry", uid=got["metadata"]["uid"])


def test_each_retry_is_logged_with_its_reason_and_no_credentials(kube, sb, caplog):
    kube.apply(cm("kube-retry-log"))
    caplog.set_level(logging.INFO, logger="arkouda_k8s.kube")
    sb.faults.fail_requests(2, status=503)
    got = kube.get("ConfigMap", "kube-retry-log")
    assert got is not None
    retries = [
        r.getMessage()
        for r in caplog.records
        if r.name == "arkouda_k8s.kube" and "retrying" in r.getMessage()
    ]
    assert retries, "a retried request left no log line"
    for n, line in enumerate(retries, start=1):
        # what, why (the API server's own reason), which attempt, how long the wait
        assert line.startswith("GET /api/v1/namespaces/default/configmaps/kube-retry-log")
        assert "HTTP 503" in line and "sandbox fault injection" in line
        assert f"attempt {n}," in line and re.search(r"retrying in \d+\.\d\ds$", line)
    token = kube.endpoint().headers["Authorization"].split()[1]
    for record in caplog.records:
        assert token not in record.getMessage() and "Authorization" not in record.getMessage()
    kube.delete("ConfigMap", "kube-retry-log", uid=got["metadata"]["uid"])


def test_lasting_failure_gives_up_at_the_deadline(kube, sb):
    sb.faults.fail_requests(10_000, status=500)
    try:
        start = time.monotonic()
        with pytest.raises(KubeError, match="kept failing"):
            kube.get("ConfigMap", "x", deadline=time.monotonic() + 1.5)
        assert time.monotonic() - start < 3.5
    finally:
        sb.faults.fail_requests(0)


def test_forbidden_fails_fast_and_names_the_verb(sb):
    alice = Kube.from_kubeconfig(sb.kubeconfig_for_user("kube-alice"))
    start = time.monotonic()
    with pytest.raises(KubeError) as err:
        alice.apply(cm("kube-forbidden"))
    assert err.value.status == 403
    assert time.monotonic() - start < 2
    assert "configmaps" in err.value.message and "patch" in err.value.message.lower()


def _cert_kubeconfig(sb, tmp_path, lifetime) -> str:
    """The sandbox admin with a client certificate of ``lifetime`` (negative: expired)."""
    import yaml

    cert, key = sb.ca.issue_client("sandbox-admin", ["system:masters"], lifetime=lifetime)
    path = tmp_path / "cert.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(sb.kubeconfig_dict(client_certificate=cert, client_key=key), fh)
    return str(path)


def test_expired_client_certificate_is_named_as_the_cause(sb, tmp_path):
    import datetime

    # The API answers a bare 401 "Unauthorized": the error must say why and what to do.
    path = _cert_kubeconfig(sb, tmp_path, datetime.timedelta(minutes=-1))
    with pytest.raises(KubeError) as err:
        Kube.from_kubeconfig(path).list("Pod")
    e = err.value
    assert e.status == 401
    assert "client certificate of user sandbox-admin of context sandbox expired at" in e.message
    assert "refused" not in e.message + (e.hint or "")
    assert "renew the credentials" in e.hint and "kubectl config set-credentials" in e.hint
    # the same certificate within its validity period logs in
    fresh = Kube.from_kubeconfig(_cert_kubeconfig(sb, tmp_path, datetime.timedelta(hours=1)))
    assert fresh.list("Pod", "kube-system")["items"] is not None
    # a clock behind the certificate's start is told apart from an expiry
    from arkouda_k8s.kubeconfig import client_certificate_problem

    early = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    assert "is not valid before" in client_certificate_problem(fresh.configuration, early)
    assert client_certificate_problem(fresh.configuration) is None


def test_unknown_token_says_the_credentials_were_refused(sb, tmp_path):
    import yaml

    doc = sb.kubeconfig_dict(user="nobody", token="not-a-token-the-sandbox-knows")
    path = tmp_path / "token.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(KubeError) as err:
        Kube.from_kubeconfig(str(path)).list("Pod")
    assert err.value.status == 401 and "certificate" not in err.value.message
    assert "credentials of user nobody of context sandbox were refused" in err.value.hint


def test_access_reviews(sb, kube):
    assert kube.can_i(Access("create", "pods")) is True
    alice = Kube.from_kubeconfig(sb.kubeconfig_for_user("kube-bob"))
    needs = [Access("create", "pods"), Access("get", "pods", subresource="log")]
    assert alice.missing_access(needs) == needs
    assert kube.missing_access(needs) == []


def test_csr_create_approve_and_certificate(kube):
    s = ClusterSpec(name="kubecsr", namespace="default", registration="server")
    creds = Credentials.generate(s)
    obj = certificate_signing_request(s, creds)
    kube.create_csr(obj, deadline=time.monotonic() + 10)
    made = kube.create_csr(obj, deadline=time.monotonic() + 10)  # a leftover is replaced
    kube.approve_csr(obj["metadata"]["name"])
    pem = kube.wait_for_certificate(obj["metadata"]["name"], deadline=time.monotonic() + 10)
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.subject.rfc4514_string() == f"CN={creds.user}"
    kube.delete("CertificateSigningRequest", obj["metadata"]["name"], uid=made["metadata"]["uid"])


def test_logs_and_events_of_a_pod(kube):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-logs", "labels": {"test": "logs"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "command": ["sh", "-c", "echo hello-from-pod; sleep 30"],
                }
            ],
        },
    }
    made = kube.apply(pod)
    try:
        kube.wait_for(
            "Pod",
            lambda objs: (
                True
                if any((p.get("status") or {}).get("phase") == "Running" for p in objs.values())
                else None
            ),
            label_selector="test=logs",
            deadline=time.monotonic() + 10,
        )
        eventually(
            lambda: kube.logs("kube-logs", container="c", tail=5),
            5,
            0.1,
            "hello-from-pod in the pod's log",
            until=lambda text: "hello-from-pod" in text,
        )
        reasons = {e.get("reason") for e in kube.events("Pod", "kube-logs")}
        assert reasons & {"Scheduled", "Started", "Pulled", "Created"}
    finally:
        kube.delete("Pod", "kube-logs", uid=made["metadata"]["uid"])
        kube.wait_gone("Pod", label_selector="test=logs", deadline=time.monotonic() + 10)


def test_exec_auth_kubeconfig(sb, tmp_path):
    """A kubeconfig whose user runs an exec credential plugin (as cloud CLIs do)."""
    import sys

    import yaml

    with open(sb.kubeconfig_path) as fh:
        admin_cfg = yaml.safe_load(fh)
    plugin = (
        "import json, sys, yaml\n"
        "cfg = yaml.safe_load(open(sys.argv[1]))  # noqa\n"
        "token = cfg['users'][0]['user']['token']\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',"
        " 'kind': 'ExecCredential', 'status': {'token': token}}))\n"
    )
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin_cfg["clusters"],
        "contexts": [
            {
                "name": "via-exec",
                "context": {
                    "cluster": admin_cfg["clusters"][0]["name"],
                    "user": "exec-user",
                    "namespace": "kube-public",
                },
            }
        ],
        "current-context": "via-exec",
        "users": [
            {
                "name": "exec-user",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": sys.executable,
                        "args": ["-c", plugin, sb.kubeconfig_path],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }
    path = tmp_path / "exec.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    k = Kube.from_kubeconfig(str(path))
    assert k.context == "via-exec" and k.namespace == "kube-public" and k.user == "exec-user"
    assert k.list("ConfigMap")["kind"] == "ConfigMapList"
    assert k.endpoint().headers["Authorization"].startswith("Bearer ")


def test_in_cluster_config_uses_the_service_account(sb):
    """As inside a pod: token, CA and namespace files (on tmpfs) plus the service env."""
    import shutil
    import ssl
    import tempfile

    root = tempfile.mkdtemp(prefix="sa-", dir="/dev/shm")
    try:
        for fname, text in (
            ("token", sb.service_account_token("kube-public", "runner")),
            ("ca.crt", sb.ca_pem),
            ("namespace", "kube-public"),
        ):
            path = f"{root}/{fname}"
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
                fh.write(text)
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(sb.port)}
        k = Kube.in_cluster(root=root, environ=env)
        assert k.namespace == "kube-public" and k.server == f"https://127.0.0.1:{sb.port}"
        assert k.can_i(Access("list", "pods")) is False
        with pytest.raises(KubeError) as err:
            k.list("Pod")
        assert err.value.status == 403
        assert "system:serviceaccount:kube-public:runner" in err.value.message
    finally:
        shutil.rmtree(root)
    # With a CA that did not sign the server's certificate: a TLS error at once, no retries.
    root = tempfile.mkdtemp(prefix="sa-", dir="/dev/shm")
    try:
        shutil.copy(
            ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt",
            f"{root}/ca.crt",
        )
        with open(f"{root}/token", "w") as fh:
            fh.write("not-a-token")
        wrong = Kube.in_cluster(root=root, environ=env)
        start = time.monotonic()
        with pytest.raises(KubeError, match="cannot talk TLS") as err:
            wrong.list("Pod")
        assert time.monotonic() - start < 3
        assert "CERTIFICATE_VERIFY_FAILED" in err.value.message
    finally:
        shutil.rmtree(root)
    with pytest.raises(UsageError, match="outside a pod"):
        Kube.in_cluster(root="/nonexistent", environ={})


def _gone_kubeconfig(tmp_path, server: str) -> str:
    import yaml

    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gone", "cluster": {"server": server}}],
        "users": [{"name": "someone", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "someone"}}],
        "current-context": "gone",
    }
    path = tmp_path / "gone.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_unreachable_api_fails_after_a_few_attempts_not_at_the_deadline(tmp_path):
    path = _gone_kubeconfig(tmp_path, "https://127.0.0.1:1")  # nothing listens on port 1
    down = Kube.from_kubeconfig(path)
    with pytest.raises(KubeError) as err:
        # a deadline far away: a refused connection must not wait for it
        down.list("Pod", deadline=time.monotonic() + 30)
    e = err.value
    assert e.reason == "Unreachable" and e.status is None
    assert down.requests == 5  # kube.UNREACHABLE_ATTEMPTS; the deadline allowed far more
    assert e.message.startswith("nothing answers at the Kubernetes API https://127.0.0.1:1: ")
    assert "Connection refused (5 attempts)" in e.message and "\n" not in e.message
    assert f"server address of the context in {path}" in e.hint
    assert "not-a-secret" not in e.message + e.hint


def test_a_server_that_answered_is_waited_for_while_it_refuses(tmp_path):
    """An API server restarting refuses connections for a while: once it has answered
    this Kube, refusals are retried (past the attempts a never-seen server gets)."""
    import http.server
    import json as json_

    from arkouda_k8s.kube import UNREACHABLE_ATTEMPTS

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json_.dumps({"kind": "PodList", "apiVersion": "v1", "items": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    def serve(port):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Api)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    first = serve(0)
    port = first.server_address[1]
    try:
        kube = Kube.from_kubeconfig(_gone_kubeconfig(tmp_path, f"http://127.0.0.1:{port}"))
        assert kube.list("Pod")["items"] == []
    finally:
        first.shutdown()
        first.server_close()
    servers = []

    def restart_later():
        # back after more refused attempts than a server never seen would get
        try:
            eventually(lambda: kube.requests >= 1 + UNREACHABLE_ATTEMPTS + 2, 30, 0.01)
        finally:
            servers.append(serve(port))

    restarter = threading.Thread(target=restart_later)
    restarter.start()
    try:
        assert kube.list("Pod", deadline=time.monotonic() + 30)["items"] == []
        assert kube.requests > 1 + UNREACHABLE_ATTEMPTS
    finally:
        restarter.join()
        for server in servers:
            server.shutdown()
            server.server_close()


def test_first_request_does_not_load_the_dynamic_clients_validation(tmp_path):
    """`import kubernetes` loads kubernetes_validate when it is installed (the sandbox
    extra), and through it jsonschema's format checkers: seconds before a CLI command's
    first request. Loading a kubeconfig and building the client must not pull them in,
    and kubernetes_validate must still import afterwards (the sandbox needs it)."""
    import subprocess
    import sys

    pytest.importorskip("kubernetes_validate")  # without it there is nothing to avoid
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: abcdefgh}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: ns}}]\n"
    )
    code = (
        "import sys\n"
        "from arkouda_k8s.kube import Kube\n"
        f"k = Kube.from_kubeconfig({str(kubeconfig)!r})\n"
        "loaded = sorted(m for m in ('kubernetes_validate', 'jsonschema') if m in sys.modules)\n"
        "import kubernetes_validate\n"
        "print(k.namespace, loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["ns", "[]"], out.stderr


def test_kubeconfigs_loaded_side_by_side_never_see_a_half_written_certificate(sb, monkeypatch):
    """The kubernetes loader registers an inline certificate's temp file before it
    writes it: two threads loading at once (the notebook's expired check and a magic)
    gave one an empty CA file, `no certificate or crl found`. Loads take turns."""
    import contextlib

    from kubernetes.config import kube_config

    real = kube_config._create_temp_file_with_content
    lock, inside, most = threading.Lock(), [0], [0]
    both = threading.Barrier(2, timeout=2)

    def watched(*args, **kwargs):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            # two loads inside at once meet here; taking turns, the first one's wait
            # ends at the timeout and the barrier stays open for nobody
            with contextlib.suppress(threading.BrokenBarrierError):
                both.wait()
            return real(*args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(kube_config, "_create_temp_file_with_content", watched)
    kubes, errors = [], []

    def load():
        try:
            kubes.append(Kube.from_kubeconfig(sb.kubeconfig_path))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(kubes) == 2
    assert most[0] == 1
    for k in kubes:
        assert k.get("Namespace", "default", None) is not None
