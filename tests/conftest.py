"""Shared fixtures of the top-level tests.

``lifecycle_sandbox``: one simulated cluster for the whole session (starting one costs
seconds); the lifecycle tests give each deployment its own name and clean up after
themselves, and fault injections are consumed or undone by the test that set them.
``deployed``: ``with deployed(spec) as c:`` deploys on the shared sandbox, tears down at
the end of the block and asserts that nothing of the deployment is left.

The project's own sandbox is imported, never skipped: a sandbox that fails to import
fails the run. ``tests`` is on the import path through pytest's ``pythonpath``
(pyproject.toml), so the helpers are ``_support.*``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _support.lifecycle import admin, cluster, deployment

from arkouda_k8s.cluster import ArkoudaCluster
from arkouda_k8s.sandbox import Sandbox
from arkouda_k8s.spec import ClusterSpec


@pytest.fixture(scope="session")
def lifecycle_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def sb(lifecycle_sandbox: Sandbox) -> Sandbox:
    """The shared sandbox, under the short name the lifecycle tests use."""
    return lifecycle_sandbox


@pytest.fixture(scope="module")
def kube(sb: Sandbox) -> Any:
    """An admin Kube of the shared sandbox."""
    return admin(sb)


@pytest.fixture
def deployed(sb: Sandbox) -> Iterator[Callable[..., Any]]:
    """``with deployed(spec_or_cluster, deploy=True, **cluster_kw) as c:``.

    The block gets the cluster deployed (``deploy=False``: not yet); at its end the
    cluster is torn down, even when the block failed, and nothing labelled with its name
    may be left (an object the teardown missed fails the test, not a later one).
    """
    made: list[ArkoudaCluster] = []

    @contextlib.contextmanager
    def deploy(
        target: ClusterSpec | ArkoudaCluster, deploy: bool = True, **kw: Any
    ) -> Iterator[ArkoudaCluster]:
        c = target if isinstance(target, ArkoudaCluster) else cluster(sb, target, **kw)
        made.append(c)
        with deployment(sb, c, deploy) as c:
            yield c

    yield deploy
    for c in made:  # a block left by an exception already tore down: this is a no-op
        c.teardown()
