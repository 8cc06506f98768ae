"""arkouda-k8s: run Arkouda on Kubernetes from a notebook, a terminal or a pipeline.

Imports are lazy so that ``%load_ext arkouda_k8s`` stays fast: the Kubernetes client
and the Arkouda client load only when a deployment is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The errors are cheap (no imports of their own): a caller catches them by the package.
from .errors import (
    ArkoudaK8sError,
    ClusterNotFound,
    DeployError,
    KubeError,
    PermissionsMissing,
    PreflightError,
    ServerNotAnswering,
    SessionError,
    SpecError,
    TunnelError,
    UsageError,
)

if TYPE_CHECKING:  # what the lazy names below are, for type checkers and editors
    from .cluster import ArkoudaCluster, DeployMode, list_clusters
    from .sandbox import Sandbox
    from .spec import ClusterSpec
    from .tunnel import Tunnel, TunnelState

__version__ = "0.1.0"

__all__ = [
    "ArkoudaCluster",
    "ArkoudaK8sError",
    "ClusterNotFound",
    "ClusterSpec",
    "DeployError",
    "DeployMode",
    "KubeError",
    "PermissionsMissing",
    "PreflightError",
    "Sandbox",
    "ServerNotAnswering",
    "SessionError",
    "SpecError",
    "Tunnel",
    "TunnelError",
    "TunnelState",
    "UsageError",
    "__version__",
    "list_clusters",
]

_LAZY = {
    "ClusterSpec": ("arkouda_k8s.spec", "ClusterSpec"),
    "ArkoudaCluster": ("arkouda_k8s.cluster", "ArkoudaCluster"),
    "DeployMode": ("arkouda_k8s.cluster", "DeployMode"),
    "list_clusters": ("arkouda_k8s.cluster", "list_clusters"),
    "Tunnel": ("arkouda_k8s.tunnel", "Tunnel"),
    "TunnelState": ("arkouda_k8s.tunnel.state", "TunnelState"),
    "Sandbox": ("arkouda_k8s.sandbox", "Sandbox"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'arkouda_k8s' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The Jupyter server extension (arkouda_k8s/jupyter_extension.py), enabled on
    install by jupyter-config/jupyter_server_config.d/arkouda_k8s.json."""
    from .jupyter_extension import ArkoudaK8s

    return [{"module": "arkouda_k8s.jupyter_extension", "app": ArkoudaK8s}]


def load_ipython_extension(ipython: Any) -> None:
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as _unload

    _unload(ipython)
