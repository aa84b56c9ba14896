"""ElastiCache Memcached stand-in (platform.md: Memcached).

1 MB items by default, no key listing (LambdaML lists by multi-getting candidate keys),
volatile (a node failure loses everything), one NIC shared by all clients, node-hour billing.
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from sls_ray.storage.node import NodeConfig, NodeStore


class MemcachedConfig(NodeConfig):
    kind: str = "memcached"
    latency_s: float = Field(0.0005, ge=0, description="request round trip inside a VPC [est]")
    item_limit_bytes: int | None = Field(1 << 20, ge=1, description="item size limit, 1 MB default [src]")
    list_page_keys: int | None = Field(None, ge=1, description="memcached cannot list keys [doc]")
    startup_s: float = Field(0.0, ge=0, description="node start-up from t=0 [est]")


class Memcached(NodeStore):
    kind = "memcached"
    Config: ClassVar[type[MemcachedConfig]] = MemcachedConfig
    config: MemcachedConfig

    def mget_round_trips(self, n_keys: int) -> int:
        return 1  # one multi-get round trip

    def delete_requests(self, n_keys: int) -> int:
        return 1  # delete_multi: one round trip
