"""A small world for kubelet/controller tests: store, one node, kubelet and controllers.

No API server: tests write objects straight into the store on the loop thread, which
keeps these tests fast and independent of the HTTP layer (the client-level tests use
the real Sandbox).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any

from _support import eventually

from arkouda_k8s.sandbox.controllers import Controllers
from arkouda_k8s.sandbox.kubelet import Kubelet
from arkouda_k8s.sandbox.store import Store

NODE = "sandbox-node"


class World:
    def __init__(self, node_memory: str = "8Gi", node_cpu: str = "4") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = 9  # no API server in this world
        self.node_names = [NODE]
        self.store = Store()
        self.kubelet: Kubelet
        self.controllers: Controllers

        async def boot() -> None:
            self.store.create("namespaces", {"metadata": {"name": "default"}})
            alloc = {"cpu": node_cpu, "memory": node_memory, "pods": "256"}
            self.store.create(
                "nodes",
                {
                    "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
                    "status": {"capacity": dict(alloc), "allocatable": dict(alloc)},
                },
            )
            self.kubelet = Kubelet(self)
            self.controllers = Controllers(self)
            await self.kubelet.start()
            await self.controllers.start()

        self.call(boot)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
        """Run ``fn(*args)`` on the loop thread (awaiting it if it is a coroutine)."""
        if threading.current_thread() is self._thread:
            return fn(*args)  # already there (a predicate calling a helper)

        async def run() -> Any:
            out = fn(*args)
            if asyncio.iscoroutine(out):
                out = await out
            return out

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("metadata", {}).setdefault("namespace", "default")
        return self.call(self.store.create, resource, obj)

    def get(self, resource: str, name: str, namespace: str | None = "default") -> Any:
        return self.call(self.store.get, resource, namespace, name)

    def list(self, resource: str, namespace: str | None = "default", **kw: Any) -> list[Any]:
        return self.call(lambda: self.store.list(resource, namespace, **kw)[0])

    def delete(self, resource: str, name: str, namespace: str | None = "default") -> Any:
        return self.call(self.store.delete, resource, namespace, name)

    def wait(self, what: str, pred: Callable[[], Any], timeout: float = 20) -> Any:
        """Poll ``pred`` (run on the loop thread) until it returns something truthy."""
        return eventually(lambda: self.call(pred), timeout, 0.05, what)

    def pod(self, name: str) -> dict[str, Any] | None:
        return self.get("pods", name)

    def wait_pod(
        self, name: str, pred: Callable[[dict[str, Any]], Any], what: str, timeout: float = 20
    ) -> dict[str, Any]:
        def check() -> Any:
            p = self.store.get("pods", "default", name)
            return p if p is not None and pred(p) else None

        return self.wait(f"pod {name}: {what}", check, timeout)

    def log(self, name: str, **kw: Any) -> bytes:
        """The pod's log, or b"" while there is none yet (waiting to start)."""
        from arkouda_k8s.sandbox.store import ApiError

        def read() -> bytes:
            try:
                return self.kubelet.read_log("default", name, **kw)
            except ApiError:
                return b""

        return self.call(read)

    @property
    def isolated(self) -> bool:
        """Containers run in their own mount namespaces (root); else as local processes."""
        return bool(self.kubelet.isolated)

    def exec(self, name: str, argv: list[str], container: str = "main") -> tuple[int, bytes]:
        """``kubectl exec`` into a running container: (exit code, stdout + stderr)."""

        async def run() -> tuple[int, bytes]:
            proc = await self.kubelet.exec_in_pod("default", name, container, argv)
            out, err = await proc.communicate()
            return proc.returncode or 0, out + err

        return self.call(run)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.list("events") if e["involvedObject"]["name"] == name]

    def close(self) -> None:
        async def down() -> None:
            await self.controllers.stop()
            await self.kubelet.stop()

        self.call(down)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


def container_status(pod: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return ((pod.get("status") or {}).get("containerStatuses") or [{}])[index]


def condition(pod: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return c
    return {}


def is_ready(pod: dict[str, Any]) -> bool:
    return condition(pod, "Ready").get("status") == "True"


def alive(pid: int) -> bool:
    """A live (not zombie) process with this pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def descendants(pid: int | None = None) -> list[int]:
    """Every live process below ``pid`` (default: this test process), from /proc."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
