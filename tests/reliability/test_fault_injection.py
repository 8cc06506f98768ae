"""Faults injected repeatedly at seeded random points (the seed is printed: replay a
failure with RELIABILITY_SEED=<seed>). The short runs are what CI makes; the ``slow``
ones are the benchmark's full sizes (benchmarks/reliability.py prints the figures)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import faultlab
import pytest
from lifecycle_support import FAST, cluster, spec


def seeded() -> tuple[Any, int]:
    env = os.environ.get("RELIABILITY_SEED")
    return faultlab.make_rng(int(env) if env else None)


@pytest.fixture
def ledger() -> faultlab.Ledger:
    rng, seed = seeded()
    led = faultlab.Ledger(seed)
    led.rng = rng  # type: ignore[attr-defined]
    return led


def assert_survived(ledger: faultlab.Ledger, needles: Any) -> None:
    for fault in ledger.faults:
        needles.check(fault.reason, f"the reason given for {fault.kind}")
    assert not ledger.failures(), (ledger.seed, ledger.notes, ledger.failures())
    assert ledger.lost == 0 and ledger.duplicated == 0, (ledger.seed, ledger.notes)
    assert ledger.orphans == [], (ledger.seed, ledger.orphans)


@pytest.fixture(scope="module")
def echo(kube: Any) -> Iterator[str]:
    name = faultlab.echo_pod(kube, "rel-echo")
    yield name
    pod = kube.get("Pod", name, "default")
    kube.delete("Pod", name, "default", uid=pod["metadata"]["uid"])


def test_soak_short_nothing_lost_nothing_twice(sb, kube, echo, ledger, needles):
    figures = faultlab.soak(kube, sb, echo, ledger, ledger.rng, requests=1500)
    assert figures["drops"] >= 10, figures
    assert_survived(ledger, needles)
    # a dropped stream is noticed and the next request gets through within seconds
    assert max(f.recover_s for f in ledger.faults) < 10


@pytest.mark.slow
def test_soak_10000_requests_through_100_drops(sb, kube, echo, ledger, needles):
    figures = faultlab.soak(kube, sb, echo, ledger, ledger.rng, requests=10_000)
    assert figures["drops"] >= 100, figures
    assert_survived(ledger, needles)


def test_api_faults_while_a_tunnel_starts(sb, kube, echo, ledger, needles):
    faultlab.tunnel_faults(sb, kube, echo, ledger, ledger.rng, rounds=8)
    assert len(ledger.faults) == 8
    assert_survived(ledger, needles)


def test_api_faults_during_status_are_retried(sb, kube, ledger, needles):
    c = cluster(sb, spec("rel-st", locales=1), timeouts=FAST).deploy()
    try:
        faultlab.status_faults(sb, c, ledger, ledger.rng, rounds=20)
    finally:
        c.teardown()
    ledger.orphans += faultlab.orphans_of(sb, kube, "rel-st")
    assert_survived(ledger, needles)


def test_api_faults_during_deploy_and_teardown(sb, kube, ledger, needles):
    faultlab.deploy_teardown_faults(sb, kube, ledger, ledger.rng, rounds=2, prefix="rel-t")
    assert_survived(ledger, needles)


def test_server_pod_deleted_mid_computation_is_reported(sb, kube, ledger, needles):
    faultlab.server_pod_killed(sb, kube, ledger, "rel-kill")
    assert_survived(ledger, needles)


def test_cli_sigkilled_mid_deploy_and_mid_teardown(sb, kube, ledger, needles):
    faultlab.cli_killed(sb, kube, ledger, ledger.rng, rounds=2)
    assert_survived(ledger, needles)


def test_a_reset_fault_aborts_the_connection(sb, kube):
    """The sandbox hook itself: a reset before the request leaves nothing changed, a
    reset after it leaves the change made (and the client's retry sees it)."""
    import kubernetes
    import urllib3

    api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(sb.kubeconfig_path))
    body = {"metadata": {"name": "rel-reset"}, "data": {"k": "v"}}
    sb.faults.reset_connections(1, "before")
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.create_namespaced_config_map("default", body, _request_timeout=10)
    assert kube.get("ConfigMap", "rel-reset", "default") is None
    sb.faults.reset_connections(1, "after")
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.create_namespaced_config_map("default", body, _request_timeout=10)
    made = kube.get("ConfigMap", "rel-reset", "default")
    assert made is not None
    kube.delete("ConfigMap", "rel-reset", "default", uid=made["metadata"]["uid"])
