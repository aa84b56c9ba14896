"""The Ray transport: a kernel actor on the driver's node, function hosts dealt over the cluster.

``ray.init(address=...)`` joins a cluster; without an address a fresh local instance starts.
Results are bit-identical to the in-process transport for any number of hosts and nodes
(tests/ray check the trace hash).

Actors stay warm between runs of one driver: starting a worker process costs seconds (2-5 s
for three on 2 cores), more than many whole runs, so the kernel actor and the hosts of a
finished run serve the next runs (a run with more hosts starts only the missing ones).
Nothing of a run survives in them but
imported modules: each run sends its own ``RunPlan`` and builds its own kernel and handlers.
Hosts are dealt round-robin over the cluster's alive nodes (hard node affinity, nodes in id
order), so ``--hosts 2`` on two nodes uses both. Ray's ``SPREAD`` strategy, and soft affinity
too, are best-effort for these zero-CPU actors: both were seen to put every host on the head.
Actors of a run that did not end cleanly (a kernel error, the watchdog, a thread stuck in
user code) are killed, never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sls_ray.actors.function_host import FunctionHost
from sls_ray.actors.kernel_actor import KernelActor
from sls_ray.actors.ray_session import ensure_ray


@dataclass
class WarmActors:
    """A kernel actor (serving up to ``capacity`` hosts) and hosts waiting for the next run."""

    kernel: Any
    capacity: int
    hosts: list = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)  # the node each warm host was placed on


#: (driver node id, job id) -> the actors a finished run left warm
_WARM: dict[tuple[str, str], WarmActors] = {}
MIN_CAPACITY = 16  # hosts a new kernel actor can serve (2 exchange threads each)
ISOLATED_CONCURRENCY = 1000  # exchange calls the kernel actor serves at once in isolated mode
SERVE_GRACE_S = 60.0  # a host's serve returns within this once the kernel finished


class RayTransport:
    """Runs a ``RunPlan`` (sls_ray.runtime) on Ray with the settings of its ``run:`` section."""

    def __init__(self, plan, run) -> None:
        self.plan = plan
        self.run = run

    def execute_remote(self):
        """Run on Ray; returns the RunResult built inside the kernel actor."""
        ensure_ray(self.run.address)
        if self.run.isolated:
            return self._isolated()
        n = self.run.hosts
        ctx = ray.get_runtime_context()
        key = (ctx.get_node_id(), ctx.get_job_id())
        for stale in [k for k in _WARM if k != key]:
            _WARM.pop(stale)  # actors of an earlier Ray session: gone with it
        warm = _WARM.pop(key, None) or WarmActors(None, 0)
        if warm.capacity < n:
            if warm.kernel is not None:
                ray.kill(warm.kernel)
            warm.capacity = max(n, MIN_CAPACITY)
            here = NodeAffinitySchedulingStrategy(ctx.get_node_id(), soft=False)
            warm.kernel = KernelActor.options(scheduling_strategy=here, max_concurrency=2 * warm.capacity + 4).remote()
        hosts, warm.hosts = warm.hosts[:n], warm.hosts[n:]
        nodes, warm.nodes = warm.nodes[:n], warm.nodes[n:]
        for node in deal_nodes(nodes, n - len(hosts)):
            hosts.append(
                FunctionHost.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
            )
            nodes.append(node)
        kernel = warm.kernel
        clean = False
        try:
            kinds, limits = ray.get(kernel.open.remote(self.plan, n, self.run.watchdog_s, hosts=hosts))
            serving = [h.serve.remote(self.plan, kernel, i, kinds, limits) for i, h in enumerate(hosts)]
            result = ray.get(kernel.run.remote())
            ends = ray.get(serving, timeout=SERVE_GRACE_S)
            result.summary["nondeterministic"]["host_nodes"] = len({node for _, node, _ in ends})
            clean = result.summary["status"] != "watchdog" and all(stuck == 0 for _, _, stuck in ends)
        finally:
            if clean:
                warm.hosts = hosts + warm.hosts
                warm.nodes = nodes + warm.nodes
                _WARM[key] = warm
            else:
                for actor in hosts + warm.hosts + [kernel]:
                    ray.kill(actor)
        return result

    def _isolated(self):
        """One fresh host per function, each under its own OS memory limit; all killed at the end."""
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        kernel = KernelActor.options(scheduling_strategy=here, max_concurrency=ISOLATED_CONCURRENCY).remote()
        try:
            ray.get(kernel.open.remote(self.plan, 0, self.run.watchdog_s, True))
            return ray.get(kernel.run.remote())
        finally:
            ray.kill(kernel)


def deal_nodes(taken: list[str], count: int) -> list[str]:
    """Nodes for ``count`` new hosts: each to the alive node with the fewest of the run's hosts
    (``taken``: the nodes of the hosts it already has), ties to the lowest node id."""
    alive = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
    load = {node: taken.count(node) for node in alive}
    chosen = []
    for _ in range(count):
        node = min(alive, key=lambda x: (load[x], x))
        load[node] += 1
        chosen.append(node)
    return chosen


def release_warm_actors() -> None:
    """Kill the actors kept warm for the next run (tests, or a driver about to idle for long)."""
    while _WARM:
        warm = _WARM.popitem()[1]
        for actor in warm.hosts + [warm.kernel]:
            ray.kill(actor)
