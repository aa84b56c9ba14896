"""The Ray transport: a kernel actor on the driver's node, function hosts spread over the cluster.

``ray.init(address=...)`` joins a cluster; without an address a fresh local instance starts.
Results are bit-identical to the in-process transport for any number of hosts
(tests/core and tests/test_ray_transport.py check the trace hash).
"""
from __future__ import annotations

from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sls_ray.actors.ray_session import ensure_ray


class RayTransport:
    def __init__(self, cfg, handlers: dict) -> None:
        self.cfg = cfg
        self.progress = None

    def execute_remote(self):
        """Run on Ray; returns the RunResult built inside the kernel actor."""
        from sls_ray.actors.function_host import FunctionHost
        from sls_ray.actors.kernel_actor import KernelActor

        ensure_ray(self.cfg.run.address)
        cfg_data = self.cfg.model_dump(mode="json")
        isolated = self.cfg.run.isolated
        n = 0 if isolated else self.cfg.run.hosts
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        concurrency = 2 * n + 4 if not isolated else 1000
        kernel = KernelActor.options(scheduling_strategy=here, max_concurrency=concurrency).remote(
            cfg_data, n, self.cfg.run.watchdog_s, isolated)
        kinds, limits = ray.get(kernel.tables.remote())
        hosts = [FunctionHost.options(scheduling_strategy="SPREAD").remote(cfg_data, i) for i in range(n)]
        serving = [h.serve.remote(kernel, kinds, limits) for h in hosts]
        try:
            result = ray.get(kernel.run.remote())
            ray.get(serving, timeout=60)
        finally:
            for actor in hosts + [kernel]:
                ray.kill(actor)
        return result
