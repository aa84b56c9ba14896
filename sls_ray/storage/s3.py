"""Amazon S3 stand-in (platform.md, "Storage and messaging": S3).

Durable, effectively unbounded aggregate bandwidth (PyWren saw 60-80 GB/s across thousands
of functions), tens of ms per request, 503 SlowDown above 3,500 writes / 5,500 reads per
second per prefix, LIST pages of 1,000 keys, request and GB-month prices. Optionally
(``consistency: eventual``) the pre-December-2020 listing: a new key appears in LIST, and to
LIST-polling waits, only after a sampled lag.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from sls_ray.network import Link
from sls_ray.storage.base import Request, Throttle
from sls_ray.storage.kvstore import KVConfig, KVStore
from sls_ray.vtime import FID_REVEAL, NS_PER_S, RANK_COMMIT, to_ns


class S3Config(KVConfig):
    kind: str = "s3"
    latency_s: float = Field(0.02, ge=0, description="request latency to first byte [doc][est]")
    aggregate_gbs: float | None = Field(None, gt=0, description="aggregate bandwidth cap, GB/s; None = unbounded [src]")
    write_rate_per_prefix: int = Field(3500, gt=0, description="PUT/COPY/POST/DELETE per second per prefix [doc]")
    read_rate_per_prefix: int = Field(5500, gt=0, description="GET/HEAD per second per prefix [doc]")
    list_page_keys: int | None = Field(1000, ge=1, description="keys per LIST page [doc]")
    price_put_per_1k: float = Field(0.005, ge=0, description="USD per 1,000 PUT/LIST [src][est]")
    price_get_per_1k: float = Field(0.0004, ge=0, description="USD per 1,000 GET [src][est]")
    price_per_gb_month: float = Field(0.023, ge=0, description="USD per GB-month [src]")
    max_retries: int = Field(3, ge=0, description="SDK retries of a 503 SlowDown [doc]")
    consistency: Literal["strong", "eventual"] = Field(
        "strong", description="'eventual': a new key shows in LIST only after a sampled lag, as S3 listings were "
        "until December 2020 [doc]; GETs see it at once")
    list_lag_s: float = Field(1.0, gt=0, description="median LIST visibility lag of a new key (eventual) [est]")
    list_lag_sigma: float = Field(1.0, ge=0, description="lognormal sigma of that lag (eventual) [est]")
    seed: int = Field(0, description="stream of the sampled LIST lags")


class S3(KVStore):
    kind = "s3"
    Config: ClassVar[type[S3Config]] = S3Config
    config: S3Config

    def __init__(self, name, config, env) -> None:
        super().__init__(name, config, env)
        self._link = Link(f"svc:{name}", config.aggregate_gbs * 1e9) if config.aggregate_gbs else None
        self._second = -1
        self._rates: dict[tuple[str, bool], int] = {}
        self._writes = 0  # new keys written (the index of each one's sampled LIST lag)

    def _write(self, t_ns: int, key: str, handle, size: int) -> None:
        if self.config.consistency == "eventual" and t_ns > 0 and key not in self.items:
            self._writes += 1
            rng = np.random.default_rng([self.config.seed, self._writes, 0x5311])
            lag = self.config.list_lag_s * float(np.exp(self.config.list_lag_sigma * rng.standard_normal()))
            self._hidden.add(key)
            def reveal(t: int, k: str = key) -> None:
                self._reveal(t, k)

            self.env.schedule(t_ns + max(1, to_ns(lag)), RANK_COMMIT, FID_REVEAL, self._writes, reveal)
        super()._write(t_ns, key, handle, size)

    def delete_requests(self, n_keys: int) -> int:
        return max(1, -(-n_keys // 1000))  # DeleteObjects: up to 1,000 keys per request [doc]

    def link(self):
        return self._link

    def admit(self, t_ns: int, req: Request, op_class: str, nbytes: int) -> Throttle | None:
        second = t_ns // NS_PER_S
        if second != self._second:
            self._second, self._rates = second, {}
        key = req.args[0] if req.args and isinstance(req.args[0], str) else ""
        prefix = key.rsplit("/", 1)[0] if "/" in key else ""
        is_read = op_class in ("GET", "LIST")
        slot = (prefix, is_read)
        count = self._rates.get(slot, 0) + 1
        self._rates[slot] = count
        limit = self.config.read_rate_per_prefix if is_read else self.config.write_rate_per_prefix
        if count > limit:
            return Throttle(
                f"503 SlowDown: more than {limit} {'reads' if is_read else 'writes'}/s on prefix '{prefix}/'"
            )
        return None

    def cost(self, end_ns: int) -> dict[str, float]:
        out = super().cost(end_ns)
        r = self.usage.requests
        out["requests"] = (
            (r.get("PUT", 0) + r.get("LIST", 0)) * self.config.price_put_per_1k
            + r.get("GET", 0) * self.config.price_get_per_1k
        ) / 1000.0
        return out
