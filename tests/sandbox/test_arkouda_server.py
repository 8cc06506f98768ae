"""The stand-in Arkouda server: the real 2020 client, v2023 messages, memMax, auth.

The 2020.7.7 client (placed by scripts/install_arkouda_client.py) runs unmodified
against the stand-in; its answers must equal NumPy's. v2023 conversations are built
by hand over pyzmq. Self-registration runs the stand-in as the server pod of a sandbox.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import zmq
from _support import eventually

from arkouda_k8s.sandbox.arkouda_server import StandInProcess

ak = pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def server():
    with StandInProcess("-nl", "2", "--authenticate=false") as srv:
        yield srv


@pytest.fixture(scope="module")
def auth_server():
    import os

    env = dict(os.environ, ARKOUDA_SERVER_TOKEN=TOKEN)
    with StandInProcess("-nl", "3", "--authenticate=true", env=env) as srv:
        yield srv


@pytest.fixture
def client(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 2020 client vs v2023.05.05 server
        ak.connect(server.host, server.port, timeout=30)
    yield ak
    ak.disconnect()


# ---------------------------------------------------------------- the 2020 client


def test_banner_and_config_say_stand_in(server, client):
    assert "stand-in" in server.output
    assert f"server listening on tcp://127.0.0.1:{server.port}" in server.output
    conf = ak.get_config()
    assert conf["standIn"] is True
    assert conf["numLocales"] == 2
    assert conf["arkoudaVersion"] == "v2023.05.05"


@pytest.mark.parametrize("size", [1, 10**6])
@pytest.mark.parametrize("dtype", ["int64", "float64", "bool"])
def test_upload_download_round_trip(client, dtype, size):
    rng = np.random.default_rng(size)
    if dtype == "int64":
        data = rng.integers(-(2**62), 2**62, size, dtype=np.int64)
    elif dtype == "float64":
        data = rng.normal(size=size)
    else:
        data = rng.integers(0, 2, size).astype(bool)
    pda = ak.array(data)
    assert pda.size == size and pda.dtype == np.dtype(dtype)
    back = pda.to_ndarray()
    assert back.dtype == data.dtype
    np.testing.assert_array_equal(back, data)
    if dtype != "bool":
        assert pda.sum() == data.sum()
        assert pda.min() == data.min()
        assert pda.max() == data.max()


def test_tutorial_sequence_matches_numpy(client):
    a = ak.arange(0, 1000, 3)
    na = np.arange(0, 1000, 3)
    np.testing.assert_array_equal(a.to_ndarray(), na)
    assert str(a) == "[0 3 6 ... 993 996 999]"  # ak.pdarrayIterThresh = 100 elements
    assert str(ak.arange(0, 5, 1)) == "[0 1 2 3 4]"

    r = ak.randint(0, 10, 1000)
    nr = r.to_ndarray()
    assert nr.min() >= 0 and nr.max() < 10 and len(np.unique(nr)) == 10

    f = ak.array(np.linspace(-1.0, 1.0, 1000))
    nf = np.linspace(-1.0, 1.0, 1000)
    for got, want in [
        (r + r, nr + nr),
        (r * 3, nr * 3),
        (r > 4, nr > 4),
        (f * 2.5, nf * 2.5),
        (f + r, nf + nr),
        (f > r, nf > nr),
        (5 - r, 5 - nr),
        (r * f, nr * nf),
    ]:
        out = got.to_ndarray()
        assert out.dtype == want.dtype
        np.testing.assert_array_equal(out, want)
    assert (r > 4).sum() == (nr > 4).sum()
    assert f.sum() == nf.sum() and f.min() == nf.min() and f.max() == nf.max()

    perm = ak.argsort(r)
    np.testing.assert_array_equal(perm.to_ndarray(), np.argsort(nr, kind="stable"))
    np.testing.assert_array_equal(ak.sort(r).to_ndarray(), np.sort(nr))
    np.testing.assert_array_equal(r[perm].to_ndarray(), nr[np.argsort(nr, kind="stable")])

    values, counts = ak.unique(r, return_counts=True)
    nvalues, ncounts = np.unique(nr, return_counts=True)
    np.testing.assert_array_equal(values.to_ndarray(), nvalues)
    np.testing.assert_array_equal(counts.to_ndarray(), ncounts)

    g = ak.GroupBy(r)
    keys, cnt = g.count()
    np.testing.assert_array_equal(keys.to_ndarray(), nvalues)
    np.testing.assert_array_equal(cnt.to_ndarray(), ncounts)
    vals = ak.arange(0, 1000, 1)
    keys, sums = g.sum(vals)
    want = np.array([np.arange(1000)[nr == k].sum() for k in nvalues])
    np.testing.assert_array_equal(sums.to_ndarray(), want)

    for op in ("min", "max", "mean"):
        keys, agg = g.aggregate(ak.array(np.arange(1000) * 1.5), op)
        want = [getattr(np.arange(1000)[nr == k] * 1.5, op)() for k in nvalues]
        np.testing.assert_array_equal(agg.to_ndarray(), want)

    small = ak.array(np.array([3, 1, 2]))
    assert small.prod() == 6
    assert (small > 2).any() and not (small > 2).all()
    assert repr(a) == "array([0, 3, 6, ..., 993, 996, 999])"

    info = ak.info(r)
    assert 'dtype:"int64"' in info and "size:1000" in info
    used = ak.get_mem_used()
    assert used >= r.size * 8 + f.size * 8


def test_delete_frees_server_memory(client):
    before = ak.get_mem_used()
    big = ak.arange(0, 100_000, 1)
    assert ak.get_mem_used() == before + 800_000
    del big  # the client sends `delete`
    assert ak.get_mem_used() == before


def test_unknown_command_gets_the_real_error_form(client):
    with pytest.raises(RuntimeError, match=r"^Error: unrecognized command: frobnicate 1 2$"):
        ak.client.generic_msg("frobnicate 1 2")


# ------------------------------------------------------------------ v2023 messages


def _request(sock, cmd, args=None, token=None, payload=None, user="tester"):
    items = [
        json.dumps({"key": k, "objType": o, "dtype": d, "val": v})
        for k, (o, d, v) in (args or {}).items()
    ]
    msg = {
        "user": user,
        "token": token or "",
        "cmd": cmd,
        "format": "BINARY" if payload is not None else "STRING",
        "args": json.dumps(items) if items else "",
        "size": len(items) if items else -1,
    }
    if payload is not None:
        sock.send(json.dumps(msg).encode() + b"BINARY_PAYLOAD", flags=zmq.SNDMORE)
        sock.send(payload)
    else:
        sock.send_string(json.dumps(msg))


def _reply(sock):
    return json.loads(sock.recv_string())


@pytest.fixture
def zsock():
    ctx = zmq.Context()
    socks = []

    def connect(srv):
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 20000)
        s.connect(f"tcp://{srv.host}:{srv.port}")
        socks.append(s)
        return s

    yield connect
    for s in socks:
        s.close(0)
    ctx.term()


def test_v2023_conversation(auth_server, zsock):
    sock = zsock(auth_server)
    _request(sock, "connect", token=TOKEN)
    rep = _reply(sock)
    assert rep["msgType"] == "NORMAL" and rep["msg"].startswith("connected to arkouda server")
    assert TOKEN not in rep["msg"]

    _request(sock, "getconfig", token=TOKEN)
    conf = json.loads(_reply(sock)["msg"])
    assert conf["numLocales"] == 3 and conf["authenticate"] is True and conf["standIn"] is True

    data = np.arange(-5, 995, dtype=np.int64) * 3
    _request(
        sock,
        "array",
        {
            "dtype": ("VALUE", "str", "int64"),
            "size": ("VALUE", "int", str(data.size)),
            "seg_string": ("VALUE", "bool", "False"),
        },
        token=TOKEN,
        payload=data.tobytes(),
    )
    rep = _reply(sock)
    assert rep["msgType"] == "NORMAL", rep
    fields = rep["msg"].split()
    assert fields[0] == "created" and fields[2:5] == ["int64", "1000", "1"]
    name = fields[1]

    _request(sock, "tondarray", {"array": ("PDARRAY", "int64", name)}, token=TOKEN)
    raw = sock.recv()
    np.testing.assert_array_equal(np.frombuffer(raw, dtype=np.int64), data)

    _request(
        sock,
        "reduction",
        {"op": ("VALUE", "str", "sum"), "array": ("PDARRAY", "int64", name)},
        token=TOKEN,
    )
    assert _reply(sock)["msg"] == f"int64 {data.sum()}"

    _request(
        sock,
        "binopvs",
        {
            "op": ("VALUE", "str", ">"),
            "a": ("PDARRAY", "int64", name),
            "dtype": ("VALUE", "str", "int64"),
            "value": ("VALUE", "int", "100"),
        },
        token=TOKEN,
    )
    mask = _reply(sock)["msg"].split()[1]
    _request(
        sock,
        "createGroupBy",
        {
            "assumeSortedStr": ("VALUE", "bool", "False"),
            "nkeys": ("VALUE", "int", "1"),
            "keynames": ("LIST", "str", json.dumps([mask])),
            "keytypes": ("LIST", "str", json.dumps(["pdarray"])),
        },
        token=TOKEN,
    )
    gb = json.loads(_reply(sock)["msg"])
    assert gb["groupby"].split()[2:] == ["1000", "2"]
    seg = gb["segments"].split()[1]
    _request(
        sock,
        "countReduction",
        {"segments": ("PDARRAY", "int64", seg), "size": ("VALUE", "int", "1000")},
        token=TOKEN,
    )
    counts = _reply(sock)["msg"].split()[1]
    _request(sock, "tondarray", {"array": ("PDARRAY", "int64", counts)}, token=TOKEN)
    got = np.frombuffer(sock.recv(), dtype=np.int64)
    np.testing.assert_array_equal(got, [np.sum(data <= 100), np.sum(data > 100)])

    def randint(seed):
        args = {
            "size": ("VALUE", "int", "50"),
            "dtype": ("VALUE", "str", "int64"),
            "low": ("VALUE", "int", "0"),
            "high": ("VALUE", "int", "1000000"),
            "seed": ("VALUE", "int", str(seed)),
        }
        _request(sock, "randint", args, token=TOKEN)
        name = _reply(sock)["msg"].split()[1]
        _request(sock, "tondarray", {"array": ("PDARRAY", "int64", name)}, token=TOKEN)
        return np.frombuffer(sock.recv(), dtype=np.int64)

    first, again, other = randint(7), randint(7), randint(8)
    np.testing.assert_array_equal(first, again)  # seeded: reproducible
    assert not np.array_equal(first, other)
    assert first.min() >= 0 and first.max() < 1_000_000

    _request(sock, "getmemused", {"factor": ("VALUE", "int", "1")}, token=TOKEN)
    assert int(_reply(sock)["msg"]) >= data.nbytes

    _request(sock, "nosuchcommand", token=TOKEN)
    rep = _reply(sock)
    assert rep == {
        "msg": "Unrecognized command: nosuchcommand",
        "msgType": "ERROR",
        "user": "tester",
    }


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_v2023_refuses_missing_or_wrong_token(auth_server, zsock, token):
    sock = zsock(auth_server)
    _request(sock, "connect", token=token)
    rep = _reply(sock)
    assert rep["msgType"] == "ERROR"
    assert "token" in rep["msg"] and rep["msg"].startswith("Error:")
    _request(sock, "getconfig", token=token)
    assert _reply(sock)["msgType"] == "ERROR"
    assert TOKEN not in auth_server.output


def test_2020_text_refused_when_authentication_is_on(auth_server, zsock):
    sock = zsock(auth_server)
    sock.send_string("getconfig")
    assert sock.recv_string() == "Error: access to arkouda requires a token"
    assert "?token=<in .arkouda/tokens.txt>" in auth_server.output


# -------------------------------------------------------------------------- memMax


def test_mem_max_refuses_and_keeps_serving():
    # 2 locales, 1 MB each: a 1.6 MB array fits (0.8 MB per locale), the next does not.
    with StandInProcess("-nl", "2", "--memMax=1000000", "--authenticate=false") as srv:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ak.connect(srv.host, srv.port, timeout=30)
        try:
            first = ak.arange(0, 200_000, 1)
            with pytest.raises(RuntimeError) as err:
                ak.array(np.zeros(200_000))
            assert str(err.value) == (
                "Error: Operation would exceed memory limit (1600000,1000000)"
            )
            # logged by the server; its reader thread may not have read it yet
            assert "Operation would exceed memory limit" in srv.wait_for(
                "Operation would exceed memory limit", 10
            )
            # Still serving, and the refused array left no trace.
            assert first.sum() == np.arange(200_000).sum()
            assert ak.get_mem_used() == 1_600_000
            small = ak.arange(0, 10, 1)
            assert small.to_ndarray().tolist() == list(range(10))
        finally:
            ak.disconnect()


def test_shutdown_stops_the_server():
    with StandInProcess("--authenticate=false") as srv:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ak.connect(srv.host, srv.port, timeout=30)
        ak.shutdown()
        assert srv.wait(20) == 0


# --------------------------------------------------------------- self-registration
#
# The stand-in runs as the server pod of a sandbox, with the container contract of
# docs/internals.md: a TLS client certificate from a CSR the sandbox signs, mounted from
# a Secret, a namespaced Role + RoleBinding for the certificate's user.


def _key_and_csr(user: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def _wait(what, fn, timeout=60.0):
    return eventually(fn, timeout, 0.2, what)


def _tls_secret_for(admin_api, namespace: str, user: str, secret: str) -> None:
    """Key + CSR in memory, CSR approved and signed by the sandbox, kept in a Secret."""
    import base64

    from kubernetes import client

    certs = client.CertificatesV1Api(admin_api)
    core = client.CoreV1Api(admin_api)
    key_pem, csr_pem = _key_and_csr(user)
    name = f"{namespace}-{secret}"
    certs.create_certificate_signing_request(
        {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(csr_pem).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "usages": ["client auth"],
            },
        }
    )
    csr = certs.read_certificate_signing_request(name)
    csr.status.conditions = [
        client.V1CertificateSigningRequestCondition(
            type="Approved", status="True", reason="Test", message="approved by the test"
        )
    ]
    certs.replace_certificate_signing_request_approval(name, csr)
    cert_b64 = _wait(
        "the signed certificate",
        lambda: certs.read_certificate_signing_request(name).status.certificate,
    )
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": secret},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": cert_b64, "tls.key": base64.b64encode(key_pem).decode()},
        },
    )
    certs.delete_certificate_signing_request(name)


@pytest.fixture(scope="module")
def registration_ns(sandbox, admin_api):
    import uuid

    from kubernetes import client

    core = client.CoreV1Api(admin_api)
    rbac = client.RbacAuthorizationV1Api(admin_api)
    ns = f"akreg-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    user = f"arkouda-server:{ns}"
    _tls_secret_for(admin_api, ns, user, "server-tls")
    _tls_secret_for(admin_api, ns, f"nobody:{ns}", "norbac-tls")  # no RoleBinding
    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "arkouda-server"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                {
                    "apiGroups": [""],
                    "resources": ["services", "endpoints"],
                    "verbs": ["get", "list", "watch", "create", "delete", "update"],
                },
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "arkouda-server"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "arkouda-server",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    yield ns
    core.delete_namespace(ns)


def _start_server_pod(
    admin_api, ns: str, pod: str, service: str, secret: str, *, wait: bool = True
) -> str | None:
    """The server pod per the container contract; its pod IP once Running."""
    from kubernetes import client

    core = client.CoreV1Api(admin_api)

    def field(path):
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    env = [
        {"name": "NUMLOCALES", "value": "2"},
        {"name": "MY_IP", **field("status.podIP")},
        {"name": "NAMESPACE", **field("metadata.namespace")},
        {"name": "K8S_HOST", "value": "https://kubernetes.default.svc"},
        {"name": "CERT_FILE", "value": "/etc/ssl/arkouda/tls.crt"},
        {"name": "KEY_FILE", "value": "/etc/ssl/arkouda/tls.key"},
        {"name": "EXTERNAL_SERVICE_NAME", "value": service},
        {"name": "EXTERNAL_SERVICE_PORT", "value": "5555"},
        {"name": "EXTERNAL_SERVICE_TARGET_PORT", "value": "5555"},
    ]
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": pod, "labels": {"app": pod}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "arkouda-server",
                        "image": "bearsrus/arkouda-udp-server:v2023.05.05",
                        # The server program itself: these tests are about registration.
                        "command": ["/opt/arkouda/arkouda_server_real"],
                        "args": [
                            "-nl",
                            "2",
                            "--ServerPort=5555",
                            "--authenticate=false",
                            "--memTrack=true",
                            "--logLevel=LogLevel.INFO",
                            "--ExternalIntegration.systemType=SystemType.KUBERNETES",
                            "--ServerDaemon.daemonTypes=ServerDaemonType.INTEGRATION",
                        ],
                        "env": env,
                        "ports": [{"containerPort": 5555, "name": "arkouda"}],
                        "volumeMounts": [{"name": "tls", "mountPath": "/etc/ssl/arkouda"}],
                    }
                ],
                "volumes": [{"name": "tls", "secret": {"secretName": secret}}],
            },
        },
    )

    def running_ip():
        p = core.read_namespaced_pod(pod, ns)
        return p.status.pod_ip if p.status.phase == "Running" else None

    return _wait(f"pod {pod} Running", running_ip) if wait else None


def _exists(fn, *args) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        fn(*args)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def test_registers_service_and_endpoints_and_removes_them_on_shutdown(admin_api, registration_ns):
    from kubernetes import client

    from arkouda_k8s.protocol import ArkoudaProbe

    core = client.CoreV1Api(admin_api)
    ns = registration_ns
    ip = _start_server_pod(admin_api, ns, "ak-server", "ak-arkouda", "server-tls")

    _wait("the Endpoints", lambda: _exists(core.read_namespaced_endpoints, "ak-arkouda", ns))
    svc = core.read_namespaced_service("ak-arkouda", ns)
    assert not svc.spec.selector  # selector-less, as the real server registers it
    assert [(p.port, p.target_port) for p in svc.spec.ports] == [(5555, 5555)]
    eps = core.read_namespaced_endpoints("ak-arkouda", ns)
    assert [a.ip for a in eps.subsets[0].addresses] == [ip]
    assert [p.port for p in eps.subsets[0].ports] == [5555]

    with ArkoudaProbe(ip, 5555, timeout=10) as probe:
        assert probe.handshake()["numLocales"] == 2
        probe.shutdown()
    _wait(
        "the Service to be removed",
        lambda: not _exists(core.read_namespaced_service, "ak-arkouda", ns),
    )
    _wait(
        "the Endpoints to be removed",
        lambda: not _exists(core.read_namespaced_endpoints, "ak-arkouda", ns),
    )
    _wait(
        "the pod to succeed",
        lambda: core.read_namespaced_pod("ak-server", ns).status.phase == "Succeeded",
    )


@pytest.mark.parametrize(
    "case, secret, status",
    [("leftover", "server-tls", "409"), ("norbac", "norbac-tls", "403")],
)
def test_registration_failure_exits_like_the_real_server(
    admin_api, registration_ns, case, secret, status
):
    """The real server's ExternalSystemError escapes its main (ServerDaemon.chpl): the
    process exits and, with restartPolicy Never, the pod fails."""
    from kubernetes import client

    core = client.CoreV1Api(admin_api)
    ns = registration_ns
    service = f"{case}-arkouda"
    if case == "leftover":
        core.create_namespaced_service(
            ns, {"metadata": {"name": service}, "spec": {"ports": [{"port": 5555}]}}
        )
    pod = f"{case}-server"
    _start_server_pod(admin_api, ns, pod, service, secret, wait=False)
    _wait("the pod to fail", lambda: core.read_namespaced_pod(pod, ns).status.phase == "Failed")
    log = core.read_namespaced_pod_log(pod, ns, container="arkouda-server")
    assert f"HTTP {status}" in log and "ExternalSystemError" in log and "exited" in log
    assert "server listening on" not in log
    state = core.read_namespaced_pod(pod, ns).status.container_statuses[0].state
    assert state.terminated.exit_code == 1
    assert not _exists(core.read_namespaced_endpoints, service, ns)
    core.delete_namespaced_pod(pod, ns)


def test_start_flags_and_release():
    from arkouda_k8s.sandbox.arkouda_server import parse_options

    opts = parse_options(
        [
            "-nl",
            "3",
            "--ServerPort=6000",
            "--authenticate",
            "--memMax=1048576",
            "--logLevel=LogLevel.DEBUG",
            "--ServerDaemon.daemonTypes=ServerDaemonType.INTEGRATION",
        ],
        {"SANDBOX_IMAGE": "bearsrus/arkouda-udp-server:v2023.10.06", "SANDBOX_POD_IP": "127.9.0.1"},
    )
    assert (opts.num_locales, opts.port, opts.authenticate, opts.mem_max) == (
        3,
        6000,
        True,
        1048576,
    )
    assert (opts.log_level, opts.release, opts.host) == ("DEBUG", "v2023.10.06", "127.9.0.1")
    assert opts.ignored == []
    # INTEGRATION without SystemType.KUBERNETES registers nothing (ExternalIntegration.chpl).
    assert opts.daemon_types == ("INTEGRATION",) and not opts.registers
    assert parse_options([], {"NUMLOCALES": "4"}).num_locales == 4
    with pytest.raises(SystemExit, match="--logLevel"):
        parse_options(["--logLevel=LogLevel.LOUD"], {})


def test_release_reported_from_the_image_tag(zsock):
    import os

    env = dict(os.environ, SANDBOX_IMAGE="bearsrus/arkouda-smp-server:v2023.06.16")
    with StandInProcess("--authenticate=false", env=env) as srv:
        sock = zsock(srv)
        _request(sock, "getconfig")
        assert json.loads(_reply(sock)["msg"])["arkoudaVersion"] == "v2023.06.16"
        assert "arkouda server version = v2023.06.16" in srv.output
