"""Helpers for NumPyWren's runtime tests: run the ``numpywren`` experiment from a params dict."""
from __future__ import annotations

import pytest

from sls_ray.config import load_config
from sls_ray.runtime import simulate

#: NumPyWren recovers failures with leases and the provisioner, not Lambda's async retries
NO_RETRIES = {"functions": {"async_retries": 0, "cold_start_sigma": 0.0}}


def run_numpywren(params: dict, faults: list | None = None, profile: dict | None = None, seed: int = 0):
    prof = {**NO_RETRIES, **(profile or {})}
    prof["functions"] = {**NO_RETRIES["functions"], **(profile or {}).get("functions", {})}
    cfg = load_config(data={"experiment": "numpywren", "seed": seed, "profile": prof, "params": params,
                            "faults": faults or []})
    return simulate(cfg)


@pytest.fixture
def numpywren_run():
    return run_numpywren
