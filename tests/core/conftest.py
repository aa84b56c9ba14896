"""Fixtures for the core's tests: a platform profile whose numbers are easy to compute by hand.

Cold starts are exactly 0.5 s (sigma 0), the Invoke API round trip 20 ms, S3 latency 20 ms,
function NICs 10 MB/s. Handlers are passed as plain functions (``sls_ray.runtime.simulate_handlers``).
"""
from __future__ import annotations

import copy

import pytest

from sls_ray.runtime import simulate_handlers

HAND_PROFILE = {
    "functions": {"cold_start_sigma": 0.0, "cold_start_s": 0.5, "warm_start_s": 0.005,
                  "invoke_latency_s": 0.02, "nic_mbs": 10.0, "payload_sync_bytes": 6_000_000},
    "services": {"s3": {"latency_s": 0.02}},
}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


@pytest.fixture
def sim():
    """``sim(handlers, entry, profile={...overrides of HAND_PROFILE}, **simulate_handlers kwargs)``."""

    def run(handlers, entry, profile=None, **kw):
        return simulate_handlers(handlers, entry, profile=merge(HAND_PROFILE, profile or {}), **kw)

    return run
