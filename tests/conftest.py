"""Shared fixtures of the top-level tests.

``lifecycle_sandbox``: one simulated cluster for the whole session (starting one costs
seconds); the lifecycle tests give each deployment its own name and clean up after
themselves, and fault injections are consumed or undone by the test that set them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session")
def lifecycle_sandbox() -> Iterator[Any]:
    sandbox = pytest.importorskip("arkouda_k8s.sandbox")
    if not hasattr(sandbox, "Sandbox"):
        pytest.skip("arkouda_k8s.sandbox.Sandbox is not built yet")
    with sandbox.Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def sb(lifecycle_sandbox: Any) -> Any:
    """The shared sandbox, under the short name the lifecycle tests use."""
    return lifecycle_sandbox


@pytest.fixture(scope="module")
def kube(sb: Any) -> Any:
    """An admin Kube of the shared sandbox."""
    from lifecycle_support import admin

    return admin(sb)
