"""How fast the sandbox brings up many Arkouda locale pods, and what they cost.

Runs a Sandbox, applies an instance's SSH Secret, launch ConfigMap and locale Deployment
(N replicas, as `manifests.render` makes them: the launch script installs the keys and
starts sshd, a TCP readiness probe on port 22 every 2 s), and reports the time until
every pod is Ready, the CPU time of this process and of the pods, RSS growth, and how
responsive the API stays (GET latency) while the probes run.

With root, each locale is a container over the udp image model running the real script
and OpenSSH's sshd; `--no-isolation` measures the sandbox as it was before (idle
listeners, no process per locale) for comparison.

    python benchmarks/sandbox_pods.py --pods 64
    python benchmarks/sandbox_pods.py --pods 64 --no-isolation
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _pod_cpu(sb) -> float:
    """CPU seconds of the live pod processes, with their reaped children (cp, sudo, ...)
    and everything else in the containers' mount namespaces (the sshd daemons)."""
    tick = os.sysconf("SC_CLK_TCK")
    spaces = {
        getattr(c.runtime, "namespace", None)
        for w in list(sb.kubelet.workers.values())
        for c in w.all_containers()
    } - {None}
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/mnt") not in spaces:
                continue
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=64)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of steady state")
    parser.add_argument(
        "--no-isolation", action="store_true", help="run containers as before (no namespaces)"
    )
    args = parser.parse_args()
    if args.no_isolation:
        os.environ["ARKOUDA_K8S_SANDBOX_ISOLATION"] = "off"
    from kubernetes import client, config

    from arkouda_k8s import manifests
    from arkouda_k8s.credentials import Credentials
    from arkouda_k8s.sandbox import Sandbox
    from arkouda_k8s.sandbox.kubelet import container_support
    from arkouda_k8s.spec import ClusterSpec

    spec = ClusterSpec(name="bench", namespace="default", locales=args.pods + 1, memory="64Mi")
    spec = spec.replace(cpu="10m")
    objects = [
        o
        for o in manifests.render(spec, Credentials.generate(spec))
        if o["kind"] in ("Secret", "ConfigMap", "Deployment")
    ]
    with Sandbox() as sb:
        reason = container_support()
        print(f"containers: {'isolated (image models, sshd)' if reason is None else reason}")
        api_client = config.new_client_from_config(config_file=sb.kubeconfig_path)
        apps = client.AppsV1Api(api_client)
        core = client.CoreV1Api(api_client)
        for obj in objects[:-1]:
            if obj["kind"] == "Secret":
                core.create_namespaced_secret("default", obj)
            else:
                core.create_namespaced_config_map("default", obj)
        body = objects[-1]
        name = body["metadata"]["name"]
        selector = manifests.selector(spec, "locale")
        rss0, cpu0, t0 = _rss_mb(), _cpu(), time.monotonic()
        apps.create_namespaced_deployment("default", body)
        deadline = t0 + 300
        while True:
            d = apps.read_namespaced_deployment_status(name, "default")
            if (d.status.ready_replicas or 0) == args.pods:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {d.status.ready_replicas} of {args.pods} Ready after 300 s")
            time.sleep(0.2)
        ready_s = time.monotonic() - t0
        cpu_up = _cpu() - cpu0
        cpu_pods = _children_cpu() + _pod_cpu(sb)
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
        print(f"all Ready after: {ready_s:.2f} s")
        print(
            f"CPU to Ready: sandbox {cpu_up:.2f} s, pod processes {cpu_pods:.2f} s "
            f"({(cpu_up + cpu_pods) / args.pods * 1000:.0f} ms per pod in all)"
        )
        print(f"steady state: {steady * 100:.1f}% of one core (probes and status upkeep)")
        print(f"with an API client polling 10/s: {busy * 100:.1f}% of one core")
        print(f"RSS growth: {_rss_mb() - rss0:.0f} MB; pod processes: {len(sb.pod_processes())}")
        print(
            f"API GET latency during probes: median {statistics.median(lat):.1f} ms, "
            f"max {max(lat):.1f} ms"
        )
        t = time.monotonic()
        apps.delete_namespaced_deployment(name, "default")
        while core.list_namespaced_pod("default", label_selector=selector).items:
            if time.monotonic() - t > 120:
                raise SystemExit("pods were not garbage-collected within 120 s")
            time.sleep(0.2)
        print(f"deleted and garbage-collected in {time.monotonic() - t:.2f} s")
        api_client.close()


if __name__ == "__main__":
    main()
