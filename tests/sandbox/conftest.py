"""Fixtures for the sandbox tests.

``sandbox``: one running Sandbox per test module (starting one takes about a second);
tests give their objects unique names and undo the faults they inject.
``fresh_sandbox``: a Sandbox of its own for a test that needs a pristine cluster.
``admin_api``: an official ``kubernetes`` ApiClient for the module's sandbox (admin).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import api_client_for

from arkouda_k8s.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def fresh_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def admin_api(sandbox: Sandbox) -> Iterator[Any]:
    api = api_client_for(sandbox.kubeconfig_path)
    yield api
    api.close()


@pytest.fixture
def unique() -> str:
    """A short unique name suffix so tests sharing a sandbox do not collide."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip(
            "!!! NO kubectl ON THIS MACHINE: the kubectl compatibility tests are SKIPPED !!!"
        )
    return path


@pytest.fixture
def kubectl_env(sandbox: Sandbox, tmp_path: Any) -> dict[str, str]:
    """Environment for running kubectl against the module's sandbox as admin."""
    env = dict(os.environ)
    env["KUBECONFIG"] = sandbox.kubeconfig_path
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    env["HOME"] = str(tmp_path)
    return env
