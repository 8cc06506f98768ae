"""`arkouda-k8s run --in-cluster` against deployments in the sandbox: the runner's RBAC
(`render --runner-rbac`) grants exactly what the lookup reads, the token comes from the
deployment's Secret, and the Job example runs in a sandbox pod to Complete."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import eventually
from _support.lifecycle import admin, cluster, spec

from arkouda_k8s import manifests
from arkouda_k8s.errors import KubeError
from arkouda_k8s.kube import Kube
from arkouda_k8s.runner import Step, run_step
from arkouda_k8s.session import matching_release

pytest.importorskip("arkouda", reason="run scripts/install_arkouda_client.py")

ROOT = Path(__file__).resolve().parents[1]
NS = "pipeline"
NAME = "arkouda"  # the deployment name the examples use


def _as_service_account(sb: Any, account: str, namespace: str = NS) -> Kube:
    """A Kube that authenticates as ``system:serviceaccount:<namespace>:<account>``."""
    token = sb.service_account_token(namespace, account)
    path = sb.write_kubeconfig(
        sb.kubeconfig_dict(user=f"sa-{account}", token=token, namespace=namespace),
        f"kubeconfig-sa-{namespace}-{account}",
    )
    return Kube.from_kubeconfig(path, namespace=namespace)


@pytest.fixture(scope="module")
def pipeline_deployments(sb):
    """Deployment `arkouda` (no token: the installed 2020 client cannot send one) and
    `locked` (token on) in namespace `pipeline`, with the runner RBAC of `arkouda`."""
    kube = admin(sb)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    release = matching_release() or "v2023.05.05"
    open_ = cluster(sb, spec(NAME, namespace=NS, authenticate=False, release=release))
    locked = cluster(sb, spec("locked", namespace=NS, authenticate=True))
    # Explicit teardown, not the deployed fixture: the runner RBAC applied here outlives
    # a teardown by design (manifests.runner_rbac), so "nothing left" does not hold.
    try:
        open_.deploy()
        locked.deploy()
        for obj in manifests.runner_rbac(open_.spec) + manifests.runner_rbac(locked.spec):
            kube.apply(obj)
        yield open_, locked
    finally:
        open_.teardown()
        locked.teardown()


def test_runner_rbac_grants_the_lookup_and_nothing_else(sb, pipeline_deployments):
    open_, _ = pipeline_deployments
    kube = _as_service_account(sb, f"{NAME}-runner")
    # What --in-cluster reads: allowed, by name.
    assert kube.get("Service", f"{NAME}-arkouda", NS) is not None
    assert kube.get("Endpoints", f"{NAME}-arkouda", NS) is not None
    assert kube.get("Secret", f"{NAME}-token", NS) is not None
    # Nothing else: another deployment's token, listing, writing.
    for attempt in (
        lambda: kube.get("Secret", "locked-token", NS),
        lambda: kube.get("Secret", f"{NAME}-ssh", NS),
        lambda: kube.list("Secret", NS),
        lambda: kube.list("Pod", NS),
        lambda: kube.delete("Service", f"{NAME}-arkouda", NS, uid="any"),
    ):
        with pytest.raises(KubeError) as err:
            attempt()
        assert err.value.status == 403
    # The grant is the pipeline's: a teardown's label selector does not match it.
    for obj in manifests.runner_rbac(open_.spec):
        labels = obj["metadata"]["labels"]
        assert "app.kubernetes.io/managed-by" not in labels
        assert labels["app.kubernetes.io/instance"] == NAME


def test_in_cluster_run_computes_with_the_service_account(
    sb, pipeline_deployments, capsys, tmp_path
):
    kube = _as_service_account(sb, f"{NAME}-runner")
    out = tmp_path / "out"
    out.mkdir()
    code = "r = ak.arange(0, 100, 1)\n(output_dir / 'sum').write_text(str(r.sum()))\nprint('ok')"
    run_step(Step(code=code, in_cluster=NAME, namespace=NS, kube=kube, output_dir=out))
    assert (out / "sum").read_text() == "4950"
    assert capsys.readouterr().out.splitlines()[-1] == "ok"


def test_in_cluster_token_comes_from_the_secret_and_is_never_shown(
    sb, pipeline_deployments, capsys
):
    _, locked = pipeline_deployments
    kube = _as_service_account(sb, "locked-runner")
    token = locked.token()
    assert token
    # The probe's handshake with the Secret's token passes (a wrong one is "refused the
    # token"); then the installed 2020 client is the obstacle, and it says so.
    with pytest.raises(Exception) as err:
        run_step(Step(code="pass", in_cluster="locked", namespace=NS, kube=kube))
    assert "cannot send a token" in str(err.value)
    captured = capsys.readouterr()
    assert token not in str(err.value) + repr(err.value) + captured.out + captured.err


def test_in_cluster_without_the_grant_fails_with_the_fix(sb, pipeline_deployments):
    kube = _as_service_account(sb, "default")
    with pytest.raises(KubeError) as err:
        run_step(Step(code="pass", in_cluster=NAME, namespace=NS, kube=kube, connect_timeout=5))
    assert err.value.status == 403
    assert f"arkouda-k8s render --runner-rbac {NAME} --namespace {NS}" in err.value.one_line()


def test_in_cluster_waits_for_a_deployment_then_exits_3(sb, pipeline_deployments):
    # The pipeline's grant exists before its deployment does (set up once, deploy later).
    for obj in manifests.runner_rbac(spec("absent", namespace=NS)):
        admin(sb).apply(obj)
    kube = _as_service_account(sb, "absent-runner")
    started = time.monotonic()
    with pytest.raises(Exception) as err:
        run_step(Step(code="pass", in_cluster="absent", namespace=NS, kube=kube, connect_timeout=2))
    assert getattr(err.value, "exit_code", None) == 3
    assert "absent" in str(err.value)
    assert 2.0 <= time.monotonic() - started < 12


def _pods_see_their_service_account(kube: Kube) -> bool:
    """Whether this sandbox's pods find the service account files where a real pod does
    (a kubelet that runs containers over their own filesystem view mounts them there)."""
    probe = "from arkouda_k8s.kube import SERVICE_ACCOUNT_DIR as d; import os; " + (
        "raise SystemExit(0 if os.path.exists(d + '/token') else 1)"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sa-probe", "namespace": NS},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "probe",
                    "image": "arkouda-k8s-runner:0.1.0",
                    "command": [sys.executable, "-c", probe],
                }
            ],
        },
    }
    uid = kube.apply(pod)["metadata"]["uid"]
    try:
        phase = eventually(
            lambda: ((kube.get("Pod", "sa-probe", NS) or {}).get("status") or {}).get("phase"),
            60,
            0.2,
            "the service-account probe pod's phase Succeeded or Failed",
            until=lambda phase: phase in ("Succeeded", "Failed"),
        )
        return phase == "Succeeded"
    finally:
        kube.delete("Pod", "sa-probe", NS, uid=uid)


def test_the_job_example_completes_in_a_sandbox_pod(sb, pipeline_deployments):
    # The sandbox's model of the runner image puts this environment's console scripts
    # on the container's PATH, as the image puts its venv's.
    kube = admin(sb, NS)
    if not _pods_see_their_service_account(kube):
        pytest.skip(
            "this sandbox's kubelet does not mount the service account at its real path "
            "in pods (containers over their own filesystem view come with the kubelet "
            "rewrite); --in-cluster inside a pod needs it"
        )
    job = yaml.safe_load((ROOT / "examples" / "job" / "job.yaml").read_text())
    job["metadata"]["namespace"] = NS
    uid = kube.apply(job)["metadata"]["uid"]
    name = job["metadata"]["name"]

    def job_status() -> dict[str, Any]:
        return (kube.get("Job", name, NS) or {}).get("status") or {}

    def pod_logs() -> dict[str, str]:
        pods = kube.list("Pod", NS, label_selector=f"job-name={name}")["items"]
        return {p["metadata"]["name"]: kube.logs(p["metadata"]["name"], NS) for p in pods}

    try:
        status = eventually(
            job_status,
            120,
            0.2,
            lambda: f"Job {name} Complete or Failed; its pods' logs: {pod_logs()}",
            until=lambda st: (
                {c["type"] for c in st.get("conditions") or []} & {"Complete", "Failed"}
            ),
        )
        conds = {c["type"]: c for c in status.get("conditions") or []}
        pods = kube.list("Pod", NS, label_selector=f"job-name={name}")["items"]
        logs = {p["metadata"]["name"]: kube.logs(p["metadata"]["name"], NS) for p in pods}
        assert "Complete" in conds, f"{status}\n{logs}"
        assert conds["Complete"]["status"] == "True"
        (log,) = [text for text in logs.values()]
        assert "sum of squares 332833500" in log
        (pod,) = pods
        assert pod["spec"]["serviceAccountName"] == f"{NAME}-runner"
    finally:
        kube.delete("Job", name, NS, uid=uid)
