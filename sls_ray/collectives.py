"""Collectives through storage: how stateless functions exchange vectors (LambdaML, §4).

Functions cannot talk to each other; they meet in a storage service. Arrays larger than the
service's item limit are cut into chunks (Memcached 1 MB, DynamoDB 400 KB); the step tag in
the key names is the only barrier (synchronous protocols). Two patterns:

- **AllReduce** (leader-based): every worker puts its vector; rank 0 waits for all W, loads
  and sums them, puts the merged vector; everyone waits for it. The leader moves W vectors.
- **ScatterReduce**: the vector is cut into W parts; worker r reduces part r from everyone's
  copies and publishes it; everyone gathers the W reduced parts. Each worker moves about
  2·size·(W−1)/W bytes.

Used by the quickstart, LambdaML and any system that averages through storage.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np


class ArrayChannel:
    """Chunked numpy arrays over one key-value client.

    ``chunked=False`` stores every array as one item, so a value above the service's item
    limit fails with ``ItemTooLarge`` (DynamoDB in LambdaML cannot hold a CNN: the paper's N/A).
    ``list_waits=False`` waits for a set of keys by polling them with GETs even where the
    service lists (DynamoDB: a Query reads, and bills, every item under the prefix).
    """

    def __init__(self, client, chunk_bytes: int | None = None, poll_interval: float = 0.1,
                 timeout: float | None = None, headroom: int = 1024, chunked: bool = True,
                 list_waits: bool = True) -> None:
        self.client = client
        limit = client.item_limit
        cap = (limit - headroom) if limit else None
        self.chunk_bytes = min(chunk_bytes, cap) if (chunk_bytes and cap) else (chunk_bytes or cap)
        if not chunked:
            self.chunk_bytes = None
        self.list_waits = list_waits
        self.poll_interval = poll_interval
        self.timeout = timeout

    def n_chunks(self, nbytes: int) -> int:
        if not self.chunk_bytes or nbytes <= self.chunk_bytes:
            return 1
        return math.ceil(nbytes / self.chunk_bytes)

    def _bounds(self, n: int, itemsize: int) -> list[tuple[int, int]]:
        chunks = self.n_chunks(n * itemsize)
        per = math.ceil(n / chunks) if n else 0
        return [(i * per, min(n, (i + 1) * per)) for i in range(chunks)]

    def keys(self, key: str, n: int, itemsize: int) -> list[str]:
        return [f"{key}/c{i}" for i in range(len(self._bounds(n, itemsize)))]

    def put(self, key: str, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr).ravel()
        for k, (a, b) in zip(self.keys(key, arr.size, arr.itemsize), self._bounds(arr.size, arr.itemsize)):
            self.client.put(k, arr[a:b])

    def _assemble(self, parts: list[np.ndarray], n: int, dtype) -> np.ndarray:
        out = np.empty(n, dtype=dtype)
        pos = 0
        for p in parts:
            out[pos:pos + p.size] = p
            pos += p.size
        return out

    def get(self, key: str, n: int, dtype=np.float64, wait: bool = True) -> np.ndarray:
        keys = self.keys(key, n, np.dtype(dtype).itemsize)
        if wait and len(keys) == 1:
            return np.asarray(self.client.get_wait(keys[0], self.poll_interval, self.timeout), dtype=dtype)
        if wait:
            self.wait_all(keys)
        return self._assemble(self.get_many(keys), n, dtype)

    def wait_all(self, keys: list[str], prefix: str | None = None) -> None:
        """Wait until every key exists: LIST-polling where the service lists, multi-get otherwise."""
        if prefix is not None and self.client.can_list and self.list_waits:
            self.client.wait_count(prefix, len(keys), self.poll_interval, self.timeout)
        elif len(keys) == 1:
            self.client.wait(keys[0], self.poll_interval, self.timeout)
        else:
            self.client.wait_keys(keys, self.poll_interval, self.timeout)

    def get_many(self, keys: list[str]) -> list[Any]:
        """Memcached answers a multi-get in one round trip; others load key by key."""
        if not self.client.can_list:
            found = self.client.mget(keys)
            return [found[k] for k in keys]
        return self.client.get_each(keys)  # one simcall; the GETs still follow one another

    def delete(self, keys: list[str]) -> None:
        self.client.delete(keys)


def allreduce(ch: ArrayChannel, rank: int, world: int, tag: str, vec: np.ndarray,
              average: bool = True) -> np.ndarray:
    """Leader-based AllReduce; returns the sum (or mean) on every rank."""
    vec = np.ascontiguousarray(vec).ravel()
    n, dtype = vec.size, vec.dtype
    if world == 1:
        return vec.copy()
    ch.put(f"{tag}/in/w{rank}", vec)
    merged_key = f"{tag}/merged"
    if rank == 0:
        keys = [k for r in range(world) for k in ch.keys(f"{tag}/in/w{r}", n, vec.itemsize)]
        ch.wait_all(keys, prefix=f"{tag}/in/")
        parts = ch.get_many(keys)
        per = len(keys) // world
        total = np.zeros(n, dtype=dtype)
        for r in range(world):
            total += ch._assemble(parts[r * per:(r + 1) * per], n, dtype)
        if average:
            total /= world
        ch.put(merged_key, total)
        ch.delete(keys)
        return total
    return ch.get(merged_key, n, dtype)


def scatter_reduce(ch: ArrayChannel, rank: int, world: int, tag: str, vec: np.ndarray,
                   average: bool = True) -> np.ndarray:
    """All-to-all ScatterReduce; returns the sum (or mean) on every rank."""
    vec = np.ascontiguousarray(vec).ravel()
    n, dtype = vec.size, vec.dtype
    if world == 1:
        return vec.copy()
    bounds = [(n * i // world, n * (i + 1) // world) for i in range(world)]
    for i, (a, b) in enumerate(bounds):
        if i != rank:
            ch.put(f"{tag}/part{i}/from{rank}", vec[a:b])
    a, b = bounds[rank]
    size = b - a
    mine = vec[a:b].copy()
    senders = [k for k in range(world) if k != rank]
    keys = [key for k in senders for key in ch.keys(f"{tag}/part{rank}/from{k}", size, vec.itemsize)]
    ch.wait_all(keys, prefix=f"{tag}/part{rank}/")
    parts = ch.get_many(keys)
    per = len(keys) // len(senders)
    for j in range(len(senders)):
        mine += ch._assemble(parts[j * per:(j + 1) * per], size, dtype)
    if average:
        mine /= world
    ch.put(f"{tag}/reduced{rank}", mine)
    ch.delete(keys)
    out = np.empty(n, dtype=dtype)
    out[a:b] = mine
    others = [i for i in range(world) if i != rank]
    rkeys = [key for i in others for key in ch.keys(f"{tag}/reduced{i}", bounds[i][1] - bounds[i][0], vec.itemsize)]
    ch.wait_all(rkeys)
    got = ch.get_many(rkeys)
    pos = 0
    for i in others:
        ia, ib = bounds[i]
        cnt = len(ch.keys(f"{tag}/reduced{i}", ib - ia, vec.itemsize))
        out[ia:ib] = ch._assemble(got[pos:pos + cnt], ib - ia, dtype)
        pos += cnt
    return out


COLLECTIVES = {"allreduce": allreduce, "scatter_reduce": scatter_reduce}
Pattern = Literal["allreduce", "scatter_reduce"]
