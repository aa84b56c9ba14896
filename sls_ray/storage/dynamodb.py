"""Amazon DynamoDB stand-in (platform.md: DynamoDB).

400 KB items; reads cost ceil(size / 4 KB) read units, writes ceil(size / 1 KB) write units;
in provisioned mode a token bucket per second throttles past capacity (the SDK retries);
queries (our LIST) return 1 MB pages; on-demand prices per million units.
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field

from sls_ray.storage.base import Done, Outcome, Request, Throttle
from sls_ray.storage.kvstore import KVConfig, KVStore
from sls_ray.vtime import NS_PER_S


class DynamoDBConfig(KVConfig):
    kind: str = "dynamodb"
    latency_s: float = Field(0.01, ge=0, description="request latency, single-digit ms [doc][est]")
    item_limit_bytes: int | None = Field(400 * 1024, ge=1, description="item size limit [doc]")
    list_page_keys: int | None = Field(1 << 30, ge=1, description="query pages are limited by bytes, not keys")
    page_bytes: int = Field(1 << 20, gt=0, description="query/scan page size [doc]")
    mode: Literal["on_demand", "provisioned"] = Field("on_demand", description="capacity mode [doc]")
    rcu: float = Field(1000.0, gt=0, description="provisioned read units per second [doc]")
    wcu: float = Field(1000.0, gt=0, description="provisioned write units per second [doc]")
    price_per_million_writes: float = Field(1.25, ge=0, description="on-demand USD per million write units [est]")
    price_per_million_reads: float = Field(0.25, ge=0, description="on-demand USD per million read units [est]")
    price_per_gb_month: float = Field(0.25, ge=0, description="storage USD per GB-month [est]")
    max_retries: int = Field(10, ge=0, description="SDK retries of a throughput exception [doc]")


class DynamoDB(KVStore):
    kind = "dynamodb"
    Config: ClassVar[type[DynamoDBConfig]] = DynamoDBConfig
    config: DynamoDBConfig

    def __init__(self, name, config, env) -> None:
        super().__init__(name, config, env)
        self.read_units = 0.0
        self.write_units = 0.0
        self._second = -1
        self._used = {"r": 0.0, "w": 0.0}

    @staticmethod
    def units(op_class: str, nbytes: int) -> float:
        if op_class in ("PUT", "DELETE"):
            return float(max(1, math.ceil(nbytes / 1024)))
        return float(max(1, math.ceil(nbytes / 4096)))

    def admit(self, t_ns: int, req: Request, op_class: str, nbytes: int) -> Throttle | None:
        if self.config.mode != "provisioned":
            return None
        second = t_ns // NS_PER_S
        if second != self._second:
            self._second, self._used = second, {"r": 0.0, "w": 0.0}
        side = "w" if op_class in ("PUT", "DELETE") else "r"
        cap = self.config.wcu if side == "w" else self.config.rcu
        need = self.units(op_class, nbytes)
        if self._used[side] + need > cap:
            return Throttle(f"ProvisionedThroughputExceededException: {side}cu {cap:g}/s exhausted")
        self._used[side] += need
        return None

    def bill(self, op_class: str, n: int = 1, nbytes: int = 0) -> None:
        super().bill(op_class, n, nbytes)
        units = self.units(op_class, nbytes) * n
        if op_class in ("PUT", "DELETE"):
            self.write_units += units
        else:
            self.read_units += units

    def op_list(self, t_ns: int, req: Request) -> Outcome:
        keys = self.keys_under(req.args[0])
        total = sum(self.items[k][1] + len(k) for k in keys)
        pages = max(1, math.ceil(total / self.config.page_bytes))
        self.usage.count("LIST", pages)
        self.read_units += max(1, math.ceil(total / 4096))
        return Done(value=keys, nbytes=sum(len(k) for k in keys))

    def bill_scan(self, polls: int, nbytes: int) -> None:
        """A Scan reads (and bills) every item it returns: ceil(bytes / 4 KB) read units each time."""
        self.read_units += polls * max(1, math.ceil(nbytes / 4096))

    def cost(self, end_ns: int) -> dict[str, float]:
        out = super().cost(end_ns)
        out["requests"] = (self.write_units * self.config.price_per_million_writes
                           + self.read_units * self.config.price_per_million_reads) / 1e6
        return out
