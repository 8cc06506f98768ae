"""The sandbox API server's request cost: creates, patches, lists and watch fan-out.

    python benchmarks/sandbox_api.py [--objects 256] [--watchers 8]

Creates N validated Pods through the official client (the API server's schema
validation, defaulting and admission on each), patches each, lists them, and measures
how long a change takes to reach W concurrent watchers. No kubelet or controllers run,
so only the API server is measured. Exits 1 when the median create exceeds
``--max-create-ms`` (default 25 ms: a 256-locale deploy must not wait on the API).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from typing import Any

from kubernetes import client, config, watch

from arkouda_k8s.sandbox import Sandbox


def _api(sb: Sandbox) -> Any:
    cfg = client.Configuration()
    config.load_kube_config(config_file=sb.kubeconfig_path, client_configuration=cfg)
    return client.ApiClient(cfg)


def _pod(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"bench-{i}", "labels": {"app": "bench"}},
        "spec": {
            "containers": [
                {
                    "name": "arkouda-locale",
                    "image": "bearsrus/arkouda-udp-server:v2023.05.05",
                    "ports": [{"containerPort": 22}],
                    "resources": {"limits": {"cpu": "100m", "memory": "256Mi"}},
                    "env": [{"name": f"V{j}", "value": str(j)} for j in range(8)],
                }
            ]
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--objects", type=int, default=256)
    p.add_argument("--watchers", type=int, default=8)
    p.add_argument("--max-create-ms", type=float, default=25.0)
    args = p.parse_args(argv)

    with Sandbox(kubelet=False, controllers=False) as sb:
        api = _api(sb)
        core = client.CoreV1Api(api)
        creates = []
        for i in range(args.objects):
            t = time.perf_counter()
            core.create_namespaced_pod("default", _pod(i))
            creates.append(time.perf_counter() - t)
        patches = []
        for i in range(args.objects):
            t = time.perf_counter()
            core.patch_namespaced_pod(f"bench-{i}", "default", {"metadata": {"labels": {"p": "1"}}})
            patches.append(time.perf_counter() - t)
        t = time.perf_counter()
        items = core.list_namespaced_pod("default", label_selector="app=bench").items
        list_s = time.perf_counter() - t
        assert len(items) == args.objects

        # watch fan-out: W watchers, one change, time until each sees it
        seen: list[float] = []
        ready = threading.Barrier(args.watchers + 1)
        lock = threading.Lock()
        rv = core.list_namespaced_pod("default", limit=1).metadata.resource_version

        def watcher() -> None:
            wapi = _api(sb)
            w = watch.Watch()
            ready.wait()
            for e in w.stream(
                client.CoreV1Api(wapi).list_namespaced_pod,
                "default",
                field_selector="metadata.name=bench-0",
                resource_version=rv,
                timeout_seconds=10,
            ):
                if e["type"] == "MODIFIED":
                    with lock:
                        seen.append(time.perf_counter())
                    w.stop()
            wapi.close()

        threads = [threading.Thread(target=watcher) for _ in range(args.watchers)]
        for th in threads:
            th.start()
        ready.wait()
        time.sleep(0.5)  # let every stream open
        changed = time.perf_counter()
        core.patch_namespaced_pod("bench-0", "default", {"metadata": {"labels": {"w": "1"}}})
        for th in threads:
            th.join(15)
        api.close()

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"

    print(f"create ({args.objects} pods):  {ms(creates)}")
    print(f"patch  ({args.objects} pods):  {ms(patches)}")
    print(f"list   ({args.objects} pods):  {list_s * 1000:.1f} ms")
    if seen:
        print(
            f"watch fan-out ({len(seen)}/{args.watchers} watchers): {ms([s - changed for s in seen])}"
        )
    else:
        print("watch fan-out: no watcher saw the change")
    print(f"requests served: {dict(sb.stats.requests)}")
    ok = statistics.median(creates) * 1000 <= args.max_create_ms and len(seen) == args.watchers
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
