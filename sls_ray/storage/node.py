"""What services that live on provisioned nodes share: start-up, a NIC, node-hour billing.

ElastiCache (Memcached, Redis) and EC2 (the VM parameter server) are billed for the whole
time a node is up, idle included — EC2 per second (60 s minimum), ElastiCache per started
node-hour in 2020 (``billing_increment_s: 3600`` in the aws_2020 profile; platform.md, "Cost
accounting"); a node takes minutes to start [est], and requests sent before then wait for it.
One NIC is shared by every client.
"""

from __future__ import annotations

import math

from pydantic import Field

from sls_ray.network import Link
from sls_ray.storage.base import Outcome, Request, Upload, per_second_billing
from sls_ray.storage.kvstore import KVConfig, KVStore
from sls_ray.vtime import to_ns


class NodeConfig(KVConfig):
    nic_gbs: float = Field(1.25, gt=0, description="node NIC, GB/s (10 Gbit/s) [doc][est]")
    startup_s: float = Field(0.0, ge=0, description="time from launch (t=0) until the node serves [est]")
    node_price_per_hour: float = Field(0.068, ge=0, description="USD per node-hour [est]")
    billing_min_s: float = Field(60.0, ge=0, description="minimum billed time [doc][est]")
    nodes: int = Field(1, ge=1, description="identical nodes billed (the store itself is on node 0)")
    billing_increment_s: float = Field(
        1.0,
        gt=0,
        description="billing granularity: 1 = per second (EC2 since "
        "2017), 3600 = per started node-hour (ElastiCache until 2023) [doc]",
    )


class NodeStore(KVStore):
    """A key-value store on provisioned nodes."""

    config: NodeConfig

    def __init__(self, name, config, env) -> None:
        super().__init__(name, config, env)
        self._link = Link(f"svc:{name}", config.nic_gbs * 1e9)

    volatile = True  # a node failure loses the data (fault plan: lose_data)

    def link(self):
        return self._link

    def lose_data(self, t_ns: int) -> None:
        for key in list(self.items):
            self._remove(t_ns, key)

    def op_flush(self, t_ns: int, req: Request) -> Outcome:
        """Memcached ``flush_all`` / Redis ``FLUSHALL``: drop every item, one request."""
        self.bill("FLUSH")

        def commit(t: int) -> int:
            keys = list(self.items)
            for key in keys:
                self._remove(t, key)
            return len(keys)

        return Upload(0, commit)

    def instances(self) -> int:
        """Nodes billed for the whole run."""
        return self.config.nodes

    def ready_ns(self) -> int:
        return to_ns(self.config.startup_s)

    def startup_note(self) -> str:
        return f"{self.name}: node start-up {self.config.startup_s:g}s [est], billed while up"

    def cost(self, end_ns: int) -> dict[str, float]:
        out = super().cost(end_ns)
        inc = self.config.billing_increment_s
        if inc == 1.0:
            per_node = per_second_billing(end_ns, self.config.billing_min_s, self.config.node_price_per_hour)
        else:  # whole increments: a started node-hour is billed whole
            seconds = max(end_ns / 1e9, self.config.billing_min_s)
            per_node = math.ceil(seconds / inc - 1e-12) * inc * self.config.node_price_per_hour / 3600.0
        out["nodes"] = self.instances() * per_node
        return out
