"""How fast the sandbox brings up many idle locale pods, and what they cost.

Runs a Sandbox, creates a Deployment of N Arkouda locale pods (idle containers with a
TCP readiness probe on port 22 every 2 s, like the manifests), and reports the time
until every pod is Ready, the sandbox process's CPU time and RSS growth, and how
responsive the API stays (GET latency) while the probes run.

    python benchmarks/sandbox_pods.py --pods 256
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from arkouda_k8s.sandbox import Sandbox


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=256)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of steady state")
    args = parser.parse_args()
    from kubernetes import client, config

    with Sandbox() as sb:
        api_client = config.new_client_from_config(config_file=sb.kubeconfig_path)
        apps = client.AppsV1Api(api_client)
        core = client.CoreV1Api(api_client)
        container = {
            "name": "arkouda-locale",
            "image": "bearsrus/arkouda-udp-server:v2023.05.05",
            "command": ["sh", "/opt/arkouda/start-arkouda-locale.sh"],
            "ports": [{"containerPort": 22}],
            "readinessProbe": {"tcpSocket": {"port": 22}, "periodSeconds": 2},
        }
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "bench-locale"},
            "spec": {
                "replicas": args.pods,
                "selector": {"matchLabels": {"app": "bench"}},
                "template": {
                    "metadata": {"labels": {"app": "bench"}},
                    "spec": {"containers": [container]},
                },
            },
        }
        rss0, cpu0, t0 = _rss_mb(), _cpu(), time.monotonic()
        apps.create_namespaced_deployment("default", body)
        deadline = t0 + 300
        while True:
            d = apps.read_namespaced_deployment_status("bench-locale", "default")
            if (d.status.ready_replicas or 0) == args.pods:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {d.status.ready_replicas} of {args.pods} Ready after 300 s")
            time.sleep(0.2)
        ready_s = time.monotonic() - t0
        cpu_up = _cpu() - cpu0
        cpu1 = _cpu()
        first = core.list_namespaced_pod("default").items[0].metadata.name
        lat = []
        end = time.monotonic() + args.settle
        while time.monotonic() < end:
            s = time.perf_counter()
            core.read_namespaced_pod_status(first, "default")
            lat.append((time.perf_counter() - s) * 1000)
            time.sleep(0.1)
        busy = (_cpu() - cpu1) / args.settle
        # Idle steady state: nothing but the probes and status upkeep.
        cpu2 = _cpu()
        time.sleep(args.settle)
        steady = (_cpu() - cpu2) / args.settle
        print(f"pods: {args.pods}")
        print(f"all Ready after: {ready_s:.2f} s (CPU {cpu_up:.2f} s in this process)")
        print(f"steady state: {steady * 100:.1f}% of one core (probes and status upkeep)")
        print(f"with an API client polling 10/s: {busy * 100:.1f}% of one core")
        print(f"RSS growth: {_rss_mb() - rss0:.0f} MB; pod processes: {len(sb.pod_processes())}")
        print(
            f"API GET latency during probes: median {statistics.median(lat):.1f} ms, "
            f"max {max(lat):.1f} ms"
        )
        t = time.monotonic()
        apps.delete_namespaced_deployment("bench-locale", "default")
        while core.list_namespaced_pod("default", label_selector="app=bench").items:
            if time.monotonic() - t > 120:
                raise SystemExit("pods were not garbage-collected within 120 s")
            time.sleep(0.2)
        print(f"deleted and garbage-collected in {time.monotonic() - t:.2f} s")
        api_client.close()


if __name__ == "__main__":
    main()
