"""The deployment lifecycle against the sandbox, through a kubeconfig: deploy to Ready
with the handshake answered, status, idempotence, reattach from another process, the
upstream traps of docs/architecture.md, heartbeat/TTL expiry, and teardown to zero objects."""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import os
import subprocess
import sys
import threading
import time
import types

import pytest
from _support import eventually
from _support.lifecycle import FAST, Recorder, cluster, labelled, spec, wait_no_processes
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from arkouda_k8s import manifests
from arkouda_k8s.cluster import (
    HEARTBEAT_ANNOTATION,
    ArkoudaCluster,
    DeployMode,
    list_clusters,
    teardown_expired,
)
from arkouda_k8s.credentials import Credentials
from arkouda_k8s.errors import ArkoudaK8sError, ClusterNotFound, UsageError
from arkouda_k8s.protocol import ArkoudaProbe


@pytest.mark.parametrize(
    ("mode", "locales"), [("udp", 1), ("udp", 4), ("udp", 16), ("smp", 4)], ids=str
)
def test_deploy_ready_status_and_teardown(sb, kube, deployed, mode, locales):
    name = f"c-{mode}-{locales}"
    rec = Recorder()
    with deployed(spec(name, mode=mode, locales=locales), on_progress=rec) as c:
        # The handshake went through the tunnel to the server itself.
        assert c.config is not None and c.config["numLocales"] == locales
        st = c.status()
        assert st.stage == "Ready" and st.server_ready
        assert st.locales_total == (locales - 1 if mode == "udp" else 0)
        assert st.locales_ready == st.locales_total and st.locales == locales
        assert st.arkouda_version == "v2023.05.05"
        assert st.memory_used is not None and st.memory_used >= 0
        assert st.memory_max == c.spec.effective_mem_max * locales
        text = st.to_text()
        if mode == "udp":
            assert f"locales  {locales}: 1 in the server pod + {locales - 1}/{locales - 1}" in text
        else:
            assert f"locales  {locales} in the server pod (smp)" in text
        assert "v2023.05.05" in text and "used of" in text
        assert c.token() not in repr(st) + text + repr(c)
        if mode == "udp" and locales > 1:
            assert any(
                f"locale pods {locales - 1}/{locales - 1} running" in m for m in rec.messages()
            )
    assert labelled(kube, name) == []
    assert wait_no_processes(sb) == []


def test_progress_stages_come_in_order(sb, kube, deployed):
    rec = Recorder()
    with deployed(spec("c-order", locales=3), on_progress=rec):
        pass
    stages = []
    for e in rec.events:
        if not stages or stages[-1] != e.stage:
            stages.append(e.stage)
    # the server pod is created with its locales: its stage starts before theirs ends
    want = ["preflight", "credentials", "rbac", "server", "locales", "handshake", "ready"]
    firsts = list(dict.fromkeys(s for s in stages if s in want))
    assert firsts == want, stages
    messages = rec.messages()
    assert messages.index("server: server pod created") < messages.index(
        "locales: locale pods 0/2 running"
    )
    # ... and gets Ready only after every locale runs
    assert messages.index("locales: locale pods 2/2 running") < messages.index(
        "server: server pod ready"
    )
    assert rec.events[0].message.startswith("using context sandbox")
    assert any(m == "locales: locale pods 2/2 running" for m in rec.messages())


def test_redeploy_of_the_same_spec_changes_nothing(sb, kube, deployed):
    s = spec("c-idem", locales=3)
    with deployed(s):
        before = {
            (o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
            for kind in ("Pod", "Deployment", "Secret", "Service", "Role", "RoleBinding")
            for o in kube.list(kind, label_selector=manifests.selector(s))["items"]
        }
        second = cluster(sb, s)
        second.deploy()
        assert second.config is not None and not second.created
        after = {
            (o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
            for kind in ("Pod", "Deployment", "Secret", "Service", "Role", "RoleBinding")
            for o in kube.list(kind, label_selector=manifests.selector(s))["items"]
        }
        assert after == before
        second.close()

        with pytest.raises(UsageError) as err:
            cluster(sb, s.replace(locales=5, memory="512Mi")).deploy()
        msg = err.value.one_line()
        assert "locales 3 -> 5" in msg and "memory '256Mi' -> '512Mi'" in msg
        assert "recreating" in msg and "teardown c-idem" in msg
        with pytest.raises(ArkoudaK8sError, match="already exists"):
            cluster(sb, s, mode=DeployMode.CREATE).deploy()
    assert labelled(kube, "c-idem") == []


def test_connect_only_fails_for_an_unknown_name(sb):
    with pytest.raises(ClusterNotFound, match="c-nothing"):
        cluster(sb, spec("c-nothing"), mode="connect-only").deploy()
    with pytest.raises(ClusterNotFound, match="arkouda-k8s list"):
        ArkoudaCluster.from_name("c-nothing", kubeconfig=sb.kubeconfig_path)


def test_reattach_from_another_process(sb, kube, deployed):
    code = (
        "import json, sys\n"
        "from arkouda_k8s.cluster import ArkoudaCluster\n"
        "c = ArkoudaCluster.from_name('c-reattach', kubeconfig=sys.argv[1])\n"
        "st = c.status()\n"
        "print(json.dumps({'version': c.config['arkoudaVersion'], 'stage': st.stage,"
        " 'address': list(c.address), 'locales': c.config['numLocales']}))\n"
        "c.close()\n"
    )
    with deployed(spec("c-reattach", locales=2)) as c:
        c.close()  # like a kernel that died: the deployment keeps running
        out = subprocess.run(
            [sys.executable, "-c", code, sb.kubeconfig_path],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got["stage"] == "Ready" and got["version"] == "v2023.05.05"
        assert got["locales"] == 2 and got["address"][0] == "127.0.0.1"
        assert c.token() not in out.stdout + out.stderr


def _secret_data(kube, name: str) -> dict[tuple[str, str], bytes]:
    """(Secret name, key) -> decoded value, for every Secret of instance ``name``."""
    sel = f"app.kubernetes.io/instance={name}"
    return {
        (o["metadata"]["name"], key): base64.b64decode(value)
        for o in kube.list("Secret", label_selector=sel)["items"]
        for key, value in (o.get("data") or {}).items()
    }


# PEM markers, assembled here so the repository holds no key-shaped text
KEY_END = "PRIVATE " + "KEY" + "-" * 5
OPENSSH_KEY = "-" * 5 + "BEGIN OPENSSH PRIVATE " + "KEY"
PKCS8_KEY = "-" * 5 + "BEGIN PRIVATE " + "KEY"


def _private_keys(data: dict[tuple[str, str], bytes]) -> set[tuple[str, str]]:
    return {where for where, value in data.items() if KEY_END.encode() in value}


def test_registration_client_secrets_hold_no_tls_key_and_old_ones_still_attach(sb, kube, deployed):
    """The default registration uses no client certificate: its Secrets hold the SSH key
    and the token, and no TLS private key. A deployment made by an older arkouda-k8s
    still has a ``{name}-tls`` Secret with a key: reattaching to it connects, and its
    teardown removes that Secret with the rest (the fixture checks nothing is left)."""
    with deployed(spec("c-keys", locales=2)) as c:
        data = _secret_data(kube, "c-keys")
        assert {secret for secret, _ in data} == {"c-keys-ssh", "c-keys-token"}
        assert _private_keys(data) == {("c-keys-ssh", "id_rsa")}
        assert data[("c-keys-ssh", "id_rsa")].startswith(OPENSSH_KEY.encode())

        # What an older version left: a TLS Secret of its own, owned like the rest.
        old = Credentials.generate(c.spec.replace(registration="server"))
        tls = next(
            o
            for o in manifests.render(c.spec.replace(registration="server"), old)
            if o["kind"] == "Secret" and o["metadata"]["name"] == "c-keys-tls"
        )
        c.ownership.create_owned(tls, time.monotonic() + 10)
        c.close()
        again = ArkoudaCluster.from_name("c-keys", kubeconfig=sb.kubeconfig_path)
        try:
            assert again.config is not None and again.config["numLocales"] == 2
            assert again.status().stage == "Ready"
        finally:
            again.close()
        assert ("c-keys-tls", "tls.key") in _private_keys(_secret_data(kube, "c-keys"))
    assert labelled(kube, "c-keys") == []


def test_registration_server_keeps_the_tls_key_its_certificate_names(sb, kube, deployed):
    with deployed(spec("c-tlskey", locales=2, registration="server")) as c:
        assert c.spec.registration == "server"
        data = _secret_data(kube, "c-tlskey")
        assert _private_keys(data) == {("c-tlskey-ssh", "id_rsa"), ("c-tlskey-tls", "tls.key")}
        key = serialization.load_pem_private_key(data[("c-tlskey-tls", "tls.key")], None)
        cert = x509.load_pem_x509_certificate(data[("c-tlskey-tls", "tls.crt")])
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert cert.subject.rfc4514_string() == "CN=arkouda-k8s:default:c-tlskey"


def _holding(root, needles):
    """Paths (attribute chains) from ``root`` to a str/bytes holding one of ``needles``:
    what a deployment object keeps reachable. The walk follows instances, containers,
    closures, threads and frames' locals, but not modules, classes or a function's
    globals (everything is reachable through those) nor a frame's callers (the test's
    own frame holds the key it looks for)."""
    module_dicts = {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    found, seen, todo = [], set(), [(root, "cluster")]
    while todo:
        obj, path = todo.pop()
        if id(obj) in seen or id(obj) in module_dicts:
            continue
        seen.add(id(obj))
        if isinstance(obj, str | bytes | bytearray):
            text = obj.decode("latin-1") if isinstance(obj, bytes | bytearray) else obj
            if any(n in text for n in needles):
                found.append(path)
            continue
        if isinstance(obj, types.ModuleType | type):
            continue
        if isinstance(obj, types.FunctionType):
            cells = [c.cell_contents for c in obj.__closure__ or () if c.cell_contents is not c]
            nexts, named = [*cells, obj.__defaults__, obj.__kwdefaults__], {}
        elif isinstance(obj, types.FrameType):
            nexts, named = [], {f":{k}": v for k, v in obj.f_locals.items()}
        elif isinstance(obj, dict):
            nexts = list(obj.keys())
            named = {f"[{k!r}]": v for k, v in obj.items()}
        else:
            nexts = gc.get_referents(obj)
            named = {f".{k}": v for k, v in getattr(obj, "__dict__", {}).items()}
        # named ones last: taken first, so a path says which attribute holds a key
        todo += [(v, f"{path}>{type(v).__name__}") for v in nexts]
        todo += [(v, path + step) for step, v in named.items()]
    return found


# Any private key in PEM, as text or as a Secret's base64 (OpenSSH or PKCS#8): keys
# generated but never used have no Secret to compare with.
KEYGEN_THREAD = "arkouda-k8s-background"  # background.Background's threads
ANY_PRIVATE_KEY = [
    KEY_END,
    base64.b64encode(OPENSSH_KEY.encode()).decode()[:36],
    base64.b64encode(PKCS8_KEY.encode()).decode()[:28],
]


@pytest.mark.parametrize("registration", ["client", "server"])
def test_a_ready_deployment_keeps_no_private_key_in_memory(sb, kube, deployed, registration):
    """Once the Secrets hold them, the private keys (SSH, and the TLS key of registration
    server) are the cluster's, not this process's: nothing reachable from the deployed
    object, nor from one that attached to it (whose deploy generated keys it never used),
    holds a private key in any form (PEM text or bytes, a line of it, base64)."""
    name = f"c-mem-{registration}"
    with deployed(spec(name, locales=2, registration=registration)) as c:
        assert c.status().stage == "Ready" and c.token()
        data = _secret_data(kube, name)
        keys = [data[where] for where in _private_keys(data)]
        assert len(keys) == (2 if registration == "server" else 1)
        needles = ANY_PRIVATE_KEY + [base64.b64encode(k).decode() for k in keys]
        for key in keys:
            needles += [ln for ln in key.decode().splitlines()[1:-1] if len(ln) >= 40][:3]
        held = _holding(c, needles)
        # The walk sees a key where one is kept (the proof that it looks), in any form.
        for copy in (keys[-1], keys[0].decode().splitlines()[2], base64.b64encode(keys[0])):
            kept = _holding(types.SimpleNamespace(deployment=c, copy=[{"k": copy}]), needles)
            assert "cluster.copy>dict['k']" in kept
        attached = cluster(sb, c.spec)
        attached.deploy()
        try:
            assert not attached.created and attached.config is not None
            # its keys generated side by side with the probes: done before they are looked for
            eventually(
                lambda: not [t for t in threading.enumerate() if t.name == KEYGEN_THREAD],
                timeout=30,
                message="the attach's key generation still running",
            )
            held_by_attached = _holding(attached, needles)
        finally:
            attached.close()
        assert (held, held_by_attached) == ([], [])


class PodRecorder:
    """Watches the instance's pods from another thread and keeps the events in order."""

    def __init__(self, kube, name):
        self.events = []
        self.stop = threading.Event()
        self.kube = kube
        self.selector = f"app.kubernetes.io/instance={name}"
        # Watching from the list's resourceVersion misses nothing that happens after this
        # constructor returns, however late the thread's first request goes out.
        self.rv = kube.list("Pod", label_selector=self.selector)["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            for etype, pod in self.kube.watch(
                "Pod",
                label_selector=self.selector,
                resource_version=self.rv,
                deadline=time.monotonic() + 1,
            ):
                self.rv = pod["metadata"].get("resourceVersion", self.rv)
                st = pod.get("status") or {}
                self.events.append(
                    (etype, pod["metadata"]["name"], st.get("phase"), st.get("podIP"))
                )

    def close(self):
        self.stop.set()
        self.thread.join(5)


def test_trap_locales_run_before_the_server_starts(sb, kube, deployed):
    # The server pod is created with its locales (every node pulls the image at once);
    # its launch script starts Arkouda only once every locale pod is Ready, so the
    # launch names all of them.
    rec = PodRecorder(kube, "c-trap1")
    # Pulls of 2 s on nodes without the image: a locale pod cannot run within 2 s of its
    # creation, so "running before the server pod exists" means the deploy waited for
    # it, not that this process was slow to send its next request (a loaded machine).
    sb.pulls.forget()
    sb.pulls.set_pull_seconds(2.0)
    # the recorder stops before the teardown, so its events end with the deployment's
    try:
        with deployed(spec("c-trap1", locales=4), deploy=False) as c, contextlib.closing(rec):
            c.deploy()
            log = c.logs("server")
            ips = {
                p["status"]["podIP"]
                for p in kube.list("Pod", label_selector="app.kubernetes.io/instance=c-trap1")[
                    "items"
                ]
            }
    finally:
        sb.pulls.set_pull_seconds(0.0)  # the shared sandbox's setting (conftest)
    first_server = next(i for i, e in enumerate(rec.events) if e[1] == "c-trap1-server")
    running_before = {
        e[1]
        for e in rec.events[:first_server]
        if e[2] == "Running" and e[3] and e[1] != "c-trap1-server"
    }
    assert len(running_before) < 3, "the server pod was created only after its locales ran"
    launch = next(line for line in log.splitlines() if "starting 4 locale(s) on" in line)
    assert set(launch.split(" on ", 1)[1].split()) == ips, (launch, ips)


def test_trap_a_leftover_self_registered_service_is_named_not_removed(sb, kube):
    # The real server exits on a Service of its name (trap 2). One that no deployment
    # of ours owns may be anyone's: the deploy refuses, names it, and leaves it alone.
    stale = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "c-trap2-arkouda"},
        "spec": {"ports": [{"port": 5555, "protocol": "TCP", "targetPort": 5555}]},
    }
    old_uid = kube.create(stale)["metadata"]["uid"]
    c = cluster(sb, spec("c-trap2", locales=2))
    try:
        with pytest.raises(ArkoudaK8sError, match="Service default/c-trap2-arkouda already exists"):
            c.deploy()
        assert kube.get("Service", "c-trap2-arkouda")["metadata"]["uid"] == old_uid
        assert labelled(kube, "c-trap2") == ["Service/c-trap2-arkouda"]
    finally:
        kube.delete("Service", "c-trap2-arkouda", uid=old_uid)


def test_both_self_registered_services_are_reported_and_deleted(sb, kube):
    """With --registration server and metrics on, the server registers {name}-arkouda and
    {name}-metrics (Service + Endpoints each, none of our labels; ServerDaemon.chpl):
    leftovers() reports both pairs and teardown deletes and reports them."""
    c = cluster(sb, spec("c-metrics", locales=2, metrics=True, registration="server"))
    pairs = {
        f"{kind}/c-metrics-{svc}"
        for svc in ("arkouda", "metrics")
        for kind in ("Service", "Endpoints")
    }
    # Explicit teardown, not the deployed fixture: the test asserts on what it reports.
    try:
        c.deploy()
        for item in pairs:
            kind, name = item.split("/")
            obj = kube.get(kind, name)
            assert obj is not None and not obj["metadata"].get("labels"), item
        assert pairs <= set(c.leftovers())
    finally:
        deleted = c.teardown()
    # An Endpoints may go with its Service (the endpoints controller) before its own delete.
    assert {"Service/c-metrics-arkouda", "Service/c-metrics-metrics"} <= {
        f"{kind}/{name}" for kind, name in deleted
    }
    for item in pairs:
        assert kube.get(*item.split("/")) is None, item
    assert c.leftovers() == []
    assert labelled(kube, "c-metrics") == []


@pytest.mark.kubectl
def test_trap_tunnel_targets_the_server_pod(sb, kube, deployed):
    """The self-registered Service (registration "server") has no selector, so it cannot
    be port-forwarded (kubectl refuses it); the tunnel forwards to the server pod, found
    by label."""
    with deployed(spec("c-trap3", locales=2, registration="server")) as c:
        svc = kube.get("Service", "c-trap3-arkouda")
        assert svc is not None and not svc["spec"].get("selector")
        assert c.tunnel.pod_name == "c-trap3-server"
        out = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                sb.kubeconfig_path,
                "port-forward",
                "svc/c-trap3-arkouda",
                ":5555",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert out.returncode != 0 and "selector" in out.stderr
        # The server pod replaced (same name, new IP): the same tunnel reaches the new one.
        address = c.address
        old = kube.get("Pod", "c-trap3-server")
        c.readiness.restart_server(time.monotonic() + 30)  # what a server that exited gets
        new = kube.get("Pod", "c-trap3-server")
        assert new["metadata"]["uid"] != old["metadata"]["uid"]

        def handshake() -> int:
            try:
                with ArkoudaProbe(*address, token=c.token(), timeout=2) as probe:
                    return probe.handshake()["numLocales"]
            except ArkoudaK8sError:
                return 0

        assert eventually(handshake, timeout=20, interval=0.2) == 2
        assert c.address == address


def test_trap_mem_max_sits_below_the_limit(sb, kube, deployed):
    with deployed(spec("c-trap5", locales=2, memory="300Mi")) as c:
        pod = kube.get("Pod", "c-trap5-server")
        ctr = pod["spec"]["containers"][0]
        mem_max = int(next(a for a in ctr["args"] if a.startswith("--memMax=")).split("=")[1])
        assert 0 < mem_max < 300 * 2**20
        assert c.status().memory_max == mem_max * 2


def test_heartbeat_ttl_and_expired_teardown(sb, kube, deployed):
    live = cluster(sb, spec("c-live", locales=1, ttl_seconds=60), heartbeat_interval=0.3)
    dead = cluster(sb, spec("c-dead", locales=1, ttl_seconds=60))
    with deployed(live), deployed(dead):

        def beat():
            return kube.get("ConfigMap", "c-live-state")["metadata"]["annotations"][
                HEARTBEAT_ANNOTATION
            ]

        first = beat()
        # renewed while the cluster object is open
        eventually(lambda: beat() != first, 5, 0.2, "c-live's heartbeat annotation renewed")
        dead.close()
        # The notebook holding "c-dead" died two minutes ago.
        kube.patch(
            "ConfigMap",
            "c-dead-state",
            {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z"}}},
        )
        infos = {i.name: i for i in list_clusters(kubeconfig=sb.kubeconfig_path)}
        assert infos["c-dead"].heartbeat_expired and not infos["c-live"].heartbeat_expired
        assert infos["c-live"].expires_at is not None and infos["c-live"].stage == "Ready"
        removed = teardown_expired(kubeconfig=sb.kubeconfig_path)
        assert removed == ["default/c-dead"]
        assert labelled(kube, "c-dead") == []
        assert kube.get("Pod", "c-live-server") is not None


def test_list_clusters_across_namespaces(sb, kube, deployed):
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}})
    a = cluster(sb, spec("c-list-a", locales=1))
    b = ArkoudaCluster(
        spec("c-list-b", mode="smp", locales=2, namespace="team-b"),
        kubeconfig=sb.kubeconfig_path,
        timeouts=FAST,
    )
    with deployed(a, deploy=False), deployed(b, deploy=False):
        a.deploy(wait=False)
        b.deploy(wait=False)
        here = {(i.namespace, i.name) for i in list_clusters(kubeconfig=sb.kubeconfig_path)}
        assert ("default", "c-list-a") in here and ("team-b", "c-list-b") not in here
        every = {
            (i.namespace, i.name): i
            for i in list_clusters(kubeconfig=sb.kubeconfig_path, all_namespaces=True)
        }
        assert ("team-b", "c-list-b") in every
        assert every[("team-b", "c-list-b")].mode == "smp"
    assert labelled(kube, "c-list-b", "team-b") == []


def test_connect_binds_the_client_and_recovers_after_a_tunnel_drop(sb, kube, deployed):
    states = []
    c = cluster(sb, spec("c-connect", locales=2, authenticate=False))
    c.add_tunnel_listener(states.append)
    with deployed(c, deploy=False):
        try:
            c.deploy()
            ak = c.connect()
            assert int(ak.arange(0, 10, 1).sum()) == 45
            assert "ready" in states
            sb.faults.drop_portforward_streams()
            ak = c.connect()  # what the panel's Reconnect does
            assert int(ak.arange(0, 5, 1).sum()) == 10
            assert c.memory_used() is not None
        finally:
            c.close()
            c.close()  # idempotent
            assert states[-1] == "closed"
    assert labelled(kube, "c-connect") == []


def test_two_sessions_deploying_one_name_share_one_deployment(sb, kube, deployed):
    """Two notebooks run the same deploy at once: one creates, the other waits for it
    and connects; there is one set of credentials and both answer."""
    s = spec("c-race", locales=2)
    clusters = [cluster(sb, s), cluster(sb, s)]
    errors = []

    def run(c):
        try:
            c.deploy()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clusters]
    # the first session only closes, the second tears the shared deployment down
    with deployed(clusters[1], deploy=False), contextlib.closing(clusters[0]):
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert sorted(c.created for c in clusters) == [False, True]
        assert clusters[0].token() == clusters[1].token()
        for c in clusters:
            with ArkoudaProbe(*c.address, token=c.token()) as probe:
                assert probe.handshake()["numLocales"] == 2
        # One set of credentials: the SSH and token Secrets (no TLS one by default).
        secrets = kube.list("Secret", label_selector=manifests.selector(s))["items"]
        assert sorted(x["metadata"]["name"] for x in secrets) == ["c-race-ssh", "c-race-token"]
    assert labelled(kube, "c-race") == []


def test_a_deploy_whose_probes_missed_a_concurrent_one_joins_it(sb, kube, deployed):
    """The losing session of a race saw no deployment in its existence probes, and then
    found the names taken by the winner's state ConfigMap: it joins that deploy instead
    of calling the winner's objects foreign (1 run in 4 of the race test did)."""
    s = spec("c-late", locales=2)
    late = cluster(sb, s)
    # the probes ran before the first session's state ConfigMap existed
    late._existing_spec = lambda deadline=None: None  # type: ignore[method-assign]
    late._instance_exists = lambda deadline=None: False  # type: ignore[method-assign]
    with deployed(s) as first, contextlib.closing(late):
        late.deploy()
        assert late.created is False
        assert late.token() == first.token()
    assert labelled(kube, "c-late") == []


def test_a_deploy_that_finds_another_under_way_before_its_server_pod_waits_for_it(
    sb, kube, deployed
):
    """A session probes while another has made its state ConfigMap but not yet its server
    pod: it waits for that deploy and connects, instead of calling it a failed one."""
    s = spec("c-midway", locales=2)
    first = cluster(sb, s)
    made_state = threading.Event()
    go_on = threading.Event()
    real_create = first._create

    def paused_create(*args):
        made_state.set()
        assert go_on.wait(30)
        return real_create(*args)

    first._create = paused_create  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def run(c):
        try:
            c.deploy()
        except Exception as exc:  # reported below
            errors.append(exc)

    late = cluster(sb, s)
    t_first = threading.Thread(target=run, args=(first,))
    with deployed(first, deploy=False), contextlib.closing(late):
        t_first.start()
        try:
            assert made_state.wait(30)
            t_late = threading.Thread(target=run, args=(late,))
            t_late.start()
            # the late session is waiting (not failed) while the first is still paused
            assert not eventually_dead(t_late, 2.0)
            go_on.set()
            t_first.join(90)
            t_late.join(90)
            assert errors == []
            assert (first.created, late.created) == (True, False)
            assert late.token() == first.token()
        finally:
            go_on.set()
    assert labelled(kube, "c-midway") == []


def eventually_dead(thread: threading.Thread, seconds: float) -> bool:
    thread.join(seconds)
    return not thread.is_alive()


def test_context_manager(sb, kube):
    with cluster(sb, spec("c-with", mode="smp", locales=2), teardown_on_exit=True) as c:
        assert c.address is not None and c.status().stage == "Ready"
    assert c.tunnel is None
    assert labelled(kube, "c-with") == []


def test_status_through_a_tunnel_borrowed_from_another_process(sb, deployed):
    """A kernel reaches a deployment through the Jupyter server's tunnel (use_tunnel):
    its status names that tunnel "shared", at the holder's address."""
    with deployed(spec("c-borrow", mode="smp", locales=1)) as c:
        other = ArkoudaCluster.from_name("c-borrow", kubeconfig=sb.kubeconfig_path, connect=False)
        try:
            other.use_tunnel(c.address, c.token())
            st = other.status()
            assert st.tunnel_state == "shared" and st.address == c.address
            assert f"shared at {c.address[0]}:{c.address[1]}" in st.to_text()
        finally:
            other.close()
