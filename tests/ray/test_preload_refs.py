"""Preloaded objects on Ray (docs/cluster.md, "Where blocks live"): values above the 64 KB
inline limit reach the kernel as object refs, put by the hosts in turn (or, in isolated
mode, by the kernel's own process), never as pickled bytes; results equal in-process."""
from __future__ import annotations

import numpy as np
import pytest

from sls_ray.config import load_config
from sls_ray.payload import Sized
from sls_ray.runtime import simulate

pytestmark = pytest.mark.ray

# 96 x 96 float64 blocks = 72 KiB each: every input block is above the inline limit
CHOLESKY = {"experiment": "numpywren", "seed": 4,
            "params": {"program": "cholesky", "blocks": 2, "block_size": 96, "baselines": False}}


def test_preloaded_blocks_above_the_inline_limit_become_refs_spread_over_the_hosts(ray_session):
    from sls_ray.actors.function_host import FunctionHost
    from sls_ray.actors.kernel_actor import object_store_preload

    hosts = [FunctionHost.remote() for _ in range(2)]
    try:
        big = [np.full(10_000, float(i)) for i in range(5)]  # 80 KB each
        objects = {"small": b"x" * 100, **{f"b{i}": a for i, a in enumerate(big)},
                   "sized": Sized(np.zeros(20_000), 4096 * 4096 * 8)}
        stored = object_store_preload(hosts)(objects)
        assert list(stored) == list(objects)  # the preload's own order
        assert stored["small"] == (b"x" * 100, 100)  # small values stay inline
        refs = [stored[f"b{i}"][0] for i in range(5)] + [stored["sized"][0]]
        assert all(isinstance(r, ray_session.ObjectRef) for r in refs)
        assert [stored[f"b{i}"][1] for i in range(5)] == [80_000] * 5
        assert stored["sized"][1] == 4096 * 4096 * 8  # the declared size, the real value
        assert ray_session.get(refs[-1]).shape == (20_000,)
        for i in range(5):
            np.testing.assert_array_equal(ray_session.get(refs[i]), big[i])
        owners = {r.owner_address() for r in refs}
        assert len(owners) == 2  # handed to both hosts in turn
        # no hosts (isolated mode starts one per function later): the kernel's process puts them
        alone = object_store_preload([])({"b0": big[0]})
        assert isinstance(alone["b0"][0], ray_session.ObjectRef) and alone["b0"][1] == 80_000
    finally:
        for h in hosts:
            ray_session.kill(h)


@pytest.mark.slow  # ~15 s on 2 loaded cores; tests/ray/test_cluster_data.py runs it on two nodes
def test_real_block_cholesky_on_ray_equals_in_process(ray_session):
    local = simulate(load_config(data=CHOLESKY)).summary
    hosts = simulate(load_config(data={**CHOLESKY, "run": {"transport": "ray", "hosts": 2}})).summary
    assert local["status"] == "ok" and local["correct"] is True
    assert hosts["correct"] is True and hosts["trace_hash"] == local["trace_hash"]
