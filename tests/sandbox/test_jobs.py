"""batch/v1 Jobs in the sandbox, through the official client: defaults and selector on
create, pods from the template until completions succeeded (Complete), backoffLimit and
activeDeadlineSeconds (Failed), and the restart policies a Job may have."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from _support import eventually
from kubernetes import client
from kubernetes.client.rest import ApiException


def _job(name: str, code: str, *, restart: str = "Never", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            **spec,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "restartPolicy": restart,
                    "containers": [
                        {
                            "name": "step",
                            "image": "python:3.11-slim",
                            "command": [sys.executable, "-c", code],
                        }
                    ],
                },
            },
        },
    }


def _until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    return eventually(check, timeout, 0.1, what)


def _condition(job: Any, ctype: str) -> Any:
    for c in job.status.conditions or []:
        if c.type == ctype and c.status == "True":
            return c
    return None


def _pods(core: Any, name: str) -> list[Any]:
    return core.list_namespaced_pod("default", label_selector=f"job-name={name}").items


def test_job_runs_its_pods_to_completion(admin_api, unique):
    batch, core = client.BatchV1Api(admin_api), client.CoreV1Api(admin_api)
    name = f"ok-{unique}"
    created = batch.create_namespaced_job("default", _job(name, "print('done')", completions=2))
    uid = created.metadata.uid
    # What the registry fills in on create.
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    labels = created.spec.template.metadata.labels
    assert labels["batch.kubernetes.io/job-name"] == name and labels["controller-uid"] == uid
    assert created.metadata.labels == labels  # the Job's labels default to the template's
    assert (created.spec.parallelism, created.spec.backoff_limit) == (1, 6)

    job = _until(
        "Complete",
        lambda: (
            _condition(batch.read_namespaced_job_status(name, "default"), "Complete")
            and batch.read_namespaced_job_status(name, "default")
        ),
    )
    assert job.status.succeeded == 2 and not job.status.failed and not job.status.active
    assert job.status.completion_time is not None and job.status.start_time is not None
    assert _condition(job, "Complete").reason == "CompletionsReached"
    pods = _pods(core, name)
    assert len(pods) == 2 and {p.status.phase for p in pods} == {"Succeeded"}
    for pod in pods:
        assert pod.metadata.name.startswith(f"{name}-")
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Job", name, uid, True)
    log = core.read_namespaced_pod_log(pods[0].metadata.name, "default")
    assert log.strip() == "done"
    # Finished means finished: no pod is started after Complete.
    assert len(_pods(core, name)) == 2
    batch.delete_namespaced_job(name, "default", propagation_policy="Background")
    _until("the Job's pods removed", lambda: not _pods(core, name))


def test_backoff_limit_fails_the_job(admin_api, unique):
    batch, core = client.BatchV1Api(admin_api), client.CoreV1Api(admin_api)
    name = f"bad-{unique}"
    batch.create_namespaced_job("default", _job(name, "raise SystemExit(3)", backoffLimit=1))

    def failed() -> Any:
        job = batch.read_namespaced_job_status(name, "default")
        return job if _condition(job, "Failed") else None

    job = _until("Failed", failed)
    cond = _condition(job, "Failed")
    assert cond.reason == "BackoffLimitExceeded"
    assert cond.message == "Job has reached the specified backoff limit"
    assert job.status.failed == 2 and not job.status.succeeded  # backoffLimit 1: two tries
    assert _condition(job, "Complete") is None
    assert [p.status.phase for p in _pods(core, name)] == ["Failed", "Failed"]
    events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}")
    assert "BackoffLimitExceeded" in {e.reason for e in events.items}
    batch.delete_namespaced_job(name, "default", propagation_policy="Background")


def test_active_deadline_stops_a_running_job(admin_api, unique):
    batch, core = client.BatchV1Api(admin_api), client.CoreV1Api(admin_api)
    name = f"slow-{unique}"
    started = time.monotonic()
    code = "import time; time.sleep(120)"
    batch.create_namespaced_job("default", _job(name, code, activeDeadlineSeconds=2))

    def failed() -> Any:
        job = batch.read_namespaced_job_status(name, "default")
        return job if _condition(job, "Failed") else None

    job = _until("DeadlineExceeded", failed)
    assert time.monotonic() - started >= 1.5
    assert _condition(job, "Failed").reason == "DeadlineExceeded"
    _until("the running pod stopped", lambda: not _pods(core, name))
    batch.delete_namespaced_job(name, "default", propagation_policy="Background")


def test_a_job_may_not_restart_always(admin_api, unique):
    batch = client.BatchV1Api(admin_api)
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job("default", _job(f"always-{unique}", "pass", restart="Always"))
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "message": 'Unsupported value: "Always": supported values: "OnFailure", "Never"',
            "field": "spec.template.spec.restartPolicy",
        }
    ]
