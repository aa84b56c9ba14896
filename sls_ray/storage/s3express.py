"""Amazon S3 Express One Zone stand-in: a directory bucket in the functions' Availability Zone.

What differs from S3 Standard (``s3.py``), from the S3 User Guide ("How is S3 Express One Zone
different?", "Optimizing S3 Express One Zone performance") and the S3 FAQs/pricing (2025):

- single-digit-millisecond first-byte latency, up to 10x faster than S3 Standard [doc];
- request limits per *bucket*, not per prefix: 200,000 reads and 100,000 writes per second by
  default; above them a 503 SlowDown the SDK retries [doc];
- ``ListObjectsV2`` does not return keys in lexicographical order, and a prefix must end in the
  delimiter "/" [doc]. Here the order is a fixed hash order (deterministic, never sorted), and
  a LIST or LIST-poll under a prefix that does not end in "/" fails with NotSupported;
- cheaper requests (PUT $0.00113, GET $0.00003 per 1,000; DELETE free) but a per-GB charge for
  every byte uploaded ($0.0032/GB) and retrieved ($0.0006/GB), and $0.11 per GB-month [doc];
- durable within its zone: a node failure cannot lose data (``lose_data`` is refused).
"""
from __future__ import annotations

import hashlib
from typing import ClassVar

from pydantic import Field

from sls_ray.network import Link
from sls_ray.storage.base import Fail, Outcome, Request, Throttle
from sls_ray.storage.kvstore import KVConfig, KVStore
from sls_ray.vtime import NS_PER_S

GiB = float(1 << 30)  # the FAQ's worked example divides KB by 1,048,576 to get GB


class S3ExpressConfig(KVConfig):
    kind: str = "s3express"
    latency_s: float = Field(0.004, ge=0, description="request latency to first byte: 'consistent single-digit "
                                                      "millisecond' [doc]; 4 ms within it [est]")
    aggregate_gbs: float | None = Field(None, gt=0, description="aggregate bandwidth cap, GB/s; None = unbounded [est]")
    read_rate_per_bucket: int = Field(200_000, gt=0, description="GET/HEAD/LIST per second per directory bucket, "
                                                                 "default quota [doc]")
    write_rate_per_bucket: int = Field(100_000, gt=0, description="PUT/DELETE per second per directory bucket, "
                                                                  "default quota [doc]")
    list_page_keys: int | None = Field(1000, gt=0, description="keys per ListObjectsV2 page [doc]")
    price_put_per_1k: float = Field(0.00113, ge=0, description="USD per 1,000 PUT/LIST, since April 2025 [doc]")
    price_get_per_1k: float = Field(0.00003, ge=0, description="USD per 1,000 GET, since April 2025 [doc]")
    price_upload_per_gb: float = Field(0.0032, ge=0, description="USD per GB uploaded (every PUT byte) [doc]")
    price_retrieval_per_gb: float = Field(0.0006, ge=0, description="USD per GB retrieved (every GET byte) [doc]")
    price_per_gb_month: float = Field(0.11, ge=0, description="USD per GB-month, since April 2025 [doc]")
    max_retries: int = Field(3, ge=0, description="SDK retries of a 503 SlowDown [doc]")


def _hash_order(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=8).digest()


class S3Express(KVStore):
    """A directory bucket: per-bucket request rates, unordered listing under '/'-terminated prefixes."""

    kind = "s3express"
    Config: ClassVar[type[S3ExpressConfig]] = S3ExpressConfig
    config: S3ExpressConfig
    lexicographic_list = False

    def __init__(self, name, config, env) -> None:
        super().__init__(name, config, env)
        self._link = Link(f"svc:{name}", config.aggregate_gbs * 1e9) if config.aggregate_gbs else None
        self._second = -1
        self._reads = self._writes = 0

    def link(self):
        return self._link

    def admit(self, t_ns: int, req: Request, op_class: str, nbytes: int) -> Throttle | None:
        second = t_ns // NS_PER_S
        if second != self._second:
            self._second, self._reads, self._writes = second, 0, 0
        if op_class in ("GET", "LIST"):
            self._reads += 1
            if self._reads > self.config.read_rate_per_bucket:
                return Throttle(f"503 SlowDown: more than {self.config.read_rate_per_bucket} reads/s on "
                                f"directory bucket '{self.name}'")
            return None
        self._writes += 1
        if self._writes > self.config.write_rate_per_bucket:
            return Throttle(f"503 SlowDown: more than {self.config.write_rate_per_bucket} writes/s on "
                            f"directory bucket '{self.name}'")
        return None

    def keys_under(self, prefix: str) -> list[str]:
        """Keys under a prefix in the bucket's own order: fixed for a key set, never lexicographical."""
        return sorted(super().keys_under(prefix), key=_hash_order)

    def _bad_prefix(self, prefix: str) -> Fail | None:
        if prefix == "" or prefix.endswith("/"):
            return None
        return Fail("NotSupported", f"s3express '{self.name}': directory buckets list only under prefixes that "
                                    f"end in '/' (got '{prefix}'); "
                                    f"list '{prefix.rsplit('/', 1)[0] + '/' if '/' in prefix else ''}' "
                                    f"and filter, or name keys by directory")

    def op_list(self, t_ns: int, req: Request) -> Outcome:
        return self._bad_prefix(req.args[0]) or super().op_list(t_ns, req)

    def op_wait_count(self, t_ns: int, req: Request) -> Outcome:
        return self._bad_prefix(req.args[0]) or super().op_wait_count(t_ns, req)

    def cost(self, end_ns: int) -> dict[str, float]:
        out = super().cost(end_ns)
        r = self.usage.requests
        out["requests"] = ((r.get("PUT", 0) + r.get("LIST", 0)) * self.config.price_put_per_1k
                           + r.get("GET", 0) * self.config.price_get_per_1k) / 1000.0
        out["transfer"] = (self.usage.bytes_in / GiB * self.config.price_upload_per_gb
                           + self.usage.bytes_out / GiB * self.config.price_retrieval_per_gb)
        return out
