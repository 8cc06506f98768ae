"""Helpers shared by the sandbox API tests (importable from test modules)."""

from __future__ import annotations

from typing import Any


def api_client_for(kubeconfig_path: str) -> Any:
    """An official-client ApiClient from a kubeconfig file."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig_path, client_configuration=cfg)
    return client.ApiClient(cfg)
