"""Shared fixtures for the whole test suite.

``ray_session``: one local Ray instance for every test that asks for it, bound to loopback and
sized for a 2-core laptop (docs: ../shared/design/virtual-time.md, section 4, "Pytest").
Tests that do not request it never import Ray.
"""
from __future__ import annotations

import os

import pytest

# Set before Ray is ever imported: bind a local instance to 127.0.0.1, one BLAS thread per worker.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session")
def ray_session():
    """A fresh local Ray instance shared by the session (never a stray cluster named by RAY_ADDRESS)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False,
                 object_store_memory=512 * 1024 * 1024, log_to_driver=False)
        started = True
    yield ray
    if started and ray.is_initialized():
        ray.shutdown()
