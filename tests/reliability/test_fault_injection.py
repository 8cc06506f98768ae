"""Faults injected repeatedly at seeded random points (the seed is printed: replay a
failure with RELIABILITY_SEED=<seed>). The short runs are what CI makes; the ``slow``
ones are the benchmark's full sizes (benchmarks/reliability.py prints the figures)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import faultlab
import pytest
from _support import settled
from _support.echo import PEER_GONE, no_recorded_errors
from _support.lifecycle import FAST, spec


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
    try:
        # Faults cut connections mid-transfer: resets are expected, any other error is not.
        with no_recorded_errors(lambda: {name: kube.logs(name, "default")}, allow=PEER_GONE):
            yield name
    finally:  # also when the echo server failed: a pod left running fails later modules
        pod = kube.get("Pod", name, "default")
        kube.delete("Pod", name, "default", uid=pod["metadata"]["uid"])


def test_soak_short_nothing_lost_nothing_twice(sb, kube, echo, ledger, needles):
    figures = faultlab.soak(kube, sb, echo, ledger, ledger.rng, requests=1500)
    assert figures["drops"] >= 10, figures
    assert_survived(ledger, needles)
    # a dropped stream is noticed and the next request gets through within seconds
    assert max(f.recover_s for f in ledger.faults) < 10


def test_load_short_32_clients_through_one_tunnel(sb, kube, needles):
    """CI's load run (benchmarks/reliability.py runs it 60 s): 32 clients, each its own
    connection, through one tunnel and then directly: every request answered, none
    refused, none waiting more than a few seconds."""
    figures = faultlab.load(sb, clients=32, seconds=3.0, name="rel-load-ci")
    for path, f in figures.items():
        assert f["errors"] == 0, (path, f)
        assert f["requests"] >= 32, (path, f)  # each client got answers
        assert f["p99_ms"] < 5000, (path, f)
    assert faultlab.orphans_of(sb, kube, "rel-load-ci") == []


@pytest.mark.slow
def test_soak_10000_requests_through_100_drops(sb, kube, echo, ledger, needles):
    figures = faultlab.soak(kube, sb, echo, ledger, ledger.rng, requests=10_000)
    assert figures["drops"] >= 100, figures
    assert_survived(ledger, needles)


def test_api_faults_while_a_tunnel_starts(sb, kube, echo, ledger, needles):
    faultlab.tunnel_faults(sb, kube, echo, ledger, ledger.rng, rounds=8)
    assert len(ledger.faults) == 8
    assert_survived(ledger, needles)


def test_api_faults_during_status_are_retried(sb, kube, deployed, ledger, needles):
    with deployed(spec("rel-st", locales=1), timeouts=FAST) as c:
        faultlab.status_faults(sb, c, ledger, ledger.rng, rounds=20)
    ledger.orphans += faultlab.orphans_of(sb, kube, "rel-st")
    assert_survived(ledger, needles)


def test_api_faults_during_deploy_and_teardown(sb, kube, ledger, needles):
    faultlab.deploy_teardown_faults(sb, kube, ledger, ledger.rng, rounds=2, prefix="rel-t")
    assert_survived(ledger, needles)


def test_api_server_restarted_during_deploy_status_and_teardown(sb, kube, ledger, needles):
    """Clients reconnect, watches resume: each deploy ends Ready (or with a reason and
    rolled back), status says Ready, teardown leaves nothing."""
    faultlab.deploy_teardown_faults(
        sb, kube, ledger, ledger.rng, rounds=2, prefix="rel-r", kinds=(faultlab.RESTART,)
    )
    assert any(f.kind.startswith(faultlab.RESTART) for f in ledger.faults)
    assert_survived(ledger, needles)


def test_api_server_restarted_under_the_tunnel_loses_nothing(sb, kube, echo, ledger, needles):
    figures = faultlab.soak(
        kube,
        sb,
        echo,
        ledger,
        ledger.rng,
        requests=600,
        drop_every=(100, 200),
        kind=faultlab.RESTART,
    )
    assert figures["drops"] >= 2, figures
    assert_survived(ledger, needles)


@pytest.mark.parametrize("component", ["server", "locale"])
def test_an_evicted_pod_is_reported_with_its_reason(sb, kube, ledger, needles, component):
    faultlab.pods_evicted(sb, kube, ledger, f"rel-ev-{component[0]}", component)
    assert_survived(ledger, needles)


def test_pods_evicted_during_a_deploy_fail_it_with_the_nodes_reason(sb, kube, ledger, needles):
    faultlab.evicted_during_deploy(sb, kube, ledger, "rel-ev-deploy")
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


def test_the_api_restart_fault_cuts_watches_and_refuses_connections(sb, kube):
    """The sandbox hook itself: an open watch ends, the port refuses connections while
    down, then the same store is served again (objects and resourceVersions go on)."""
    import socket
    import threading

    import kubernetes

    api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(sb.kubeconfig_path))
    before = api.list_namespaced_config_map("default").metadata.resource_version
    ended = threading.Event()

    def watch() -> None:
        w = kubernetes.watch.Watch()
        try:
            for _ in w.stream(
                api.list_namespaced_config_map,
                "default",
                resource_version=before,
                timeout_seconds=60,
                _request_timeout=90,
            ):
                pass
        except Exception:  # noqa: BLE001 - cut by the restart: what the test wants
            pass
        ended.set()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    restart = threading.Thread(target=sb.faults.restart_api, args=(2.0,), daemon=True)
    restart.start()
    assert ended.wait(20), "the watch outlived the restart"

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", sb.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    # retried back to back while the restart lasts (up to 2 s)
    down = settled(refused, 2.0, 0.0, until=lambda r: r or not restart.is_alive())
    assert down, "the API port kept accepting connections while down"
    restart.join(30)
    after = api.list_namespaced_config_map("default").metadata.resource_version
    assert int(after) >= int(before)
