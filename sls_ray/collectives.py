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

    def chunk_bounds(self, n: int, itemsize: int) -> list[tuple[int, int]]:
        chunks = self.n_chunks(n * itemsize)
        per = math.ceil(n / chunks) if n else 0
        return [(i * per, min(n, (i + 1) * per)) for i in range(chunks)]

    def keys(self, key: str, n: int, itemsize: int) -> list[str]:
        return [f"{key}/c{i}" for i in range(len(self.chunk_bounds(n, itemsize)))]

    def put(self, key: str, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr).ravel()
        for k, (a, b) in zip(self.keys(key, arr.size, arr.itemsize), self.chunk_bounds(arr.size, arr.itemsize)):
            self.client.put(k, arr[a:b])

    def assemble(self, parts: list[np.ndarray], n: int, dtype) -> np.ndarray:
        """One vector of length ``n`` from its chunks, in order."""
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
        return self.assemble(self.get_many(keys), n, dtype)

    def wait_all(self, keys: list[str], prefix: str | None = None) -> None:
        """Wait until every key exists: LIST-polling where the service lists, multi-get otherwise."""
        if prefix is not None and self.client.can_list and self.list_waits:
            self.client.wait_count(prefix, len(keys), self.poll_interval, self.timeout)
        elif len(keys) == 1:
            self.client.wait(keys[0], self.poll_interval, self.timeout)
        else:
            self.client.wait_keys(keys, self.poll_interval, self.timeout)

    def get_many(self, keys: list[str]) -> list[Any]:
        """One multi-get where the service answers it in one round trip (Memcached); key by key
        elsewhere, where a multi-get would cost a request per key anyway and serialise them."""
        if self.client.mget_one_round_trip:
            found = self.client.mget(keys)
            return [found[k] for k in keys]
        return self.client.get_each(keys)  # one simcall; the GETs still follow one another

    def delete(self, keys: list[str]) -> None:
        self.client.delete(keys)


def part_bounds(n: int, world: int, residue_first: bool = False) -> list[tuple[int, int]]:
    """[start, end) of each rank's part of an n-vector. ``residue_first``: LambdaML's split
    (n // W each, the first n % W parts one longer); otherwise ``n·i // W`` boundaries."""
    if not residue_first:
        return [(n * i // world, n * (i + 1) // world) for i in range(world)]
    per, rest = divmod(n, world)
    out = []
    for i in range(world):
        a = per * i + min(rest, i)
        out.append((a, a + per + (1 if i < rest else 0)))
    return out


def gather_sum(ch: ArrayChannel, keys: list[str], senders: int, n: int, dtype,
               values: list[Any] | None = None, into: np.ndarray | None = None) -> np.ndarray:
    """Sum ``senders`` n-vectors whose chunks are ``keys`` (sender-major, equal chunk counts).
    ``values``: the chunks already fetched (a multi-get or scan returned them); else they are read.
    ``into``: add to this vector in place instead of a new zero vector."""
    parts = ch.get_many(keys) if values is None else values
    per = len(keys) // senders if senders else 0
    total = np.zeros(n, dtype=dtype) if into is None else into
    for r in range(senders):
        total += ch.assemble(parts[r * per:(r + 1) * per], n, dtype)
    return total


def input_key(tag: str, rank: int) -> str:
    """Where rank puts its vector for the leader's AllReduce."""
    return f"{tag}/in/w{rank}"


def merged_key(tag: str) -> str:
    """The leader's published sum of an AllReduce."""
    return f"{tag}/merged"


def part_key(tag: str, part: int, sender: int) -> str:
    """ScatterReduce: the part ``part`` of sender's vector, for the rank that reduces it."""
    return f"{tag}/part{part}/from{sender}"


def reduced_key(tag: str, part: int) -> str:
    """ScatterReduce: the reduced part ``part``, published by its owner."""
    return f"{tag}/reduced{part}"


def result_keys(ch: ArrayChannel, pattern: str, tag: str, rank: int, world: int, n: int,
                itemsize: int) -> list[str]:
    """Keys of what ``rank`` published in a finished round (its merged or reduced chunks)."""
    if pattern == "allreduce":
        return ch.keys(merged_key(tag), n, itemsize) if rank == 0 else []
    a, b = part_bounds(n, world)[rank]
    return ch.keys(reduced_key(tag, rank), b - a, itemsize)


def allreduce(ch: ArrayChannel, rank: int, world: int, tag: str, vec: np.ndarray,
              average: bool = True) -> np.ndarray:
    """Leader-based AllReduce; returns the sum (or mean) on every rank."""
    vec = np.ascontiguousarray(vec).ravel()
    n, dtype = vec.size, vec.dtype
    if world == 1:
        return vec.copy()
    ch.put(input_key(tag, rank), vec)
    if rank == 0:
        keys = [k for r in range(world) for k in ch.keys(input_key(tag, r), n, vec.itemsize)]
        ch.wait_all(keys, prefix=f"{tag}/in/")
        total = gather_sum(ch, keys, world, n, dtype)
        if average:
            total /= world
        ch.put(merged_key(tag), total)
        ch.delete(keys)
        return total
    return ch.get(merged_key(tag), n, dtype)


def scatter_reduce(ch: ArrayChannel, rank: int, world: int, tag: str, vec: np.ndarray,
                   average: bool = True) -> np.ndarray:
    """All-to-all ScatterReduce; returns the sum (or mean) on every rank."""
    vec = np.ascontiguousarray(vec).ravel()
    n, dtype = vec.size, vec.dtype
    if world == 1:
        return vec.copy()
    bounds = part_bounds(n, world)
    for i, (a, b) in enumerate(bounds):
        if i != rank:
            ch.put(part_key(tag, i, rank), vec[a:b])
    a, b = bounds[rank]
    size = b - a
    mine = vec[a:b].copy()
    senders = [k for k in range(world) if k != rank]
    keys = [key for k in senders for key in ch.keys(part_key(tag, rank, k), size, vec.itemsize)]
    ch.wait_all(keys, prefix=f"{tag}/part{rank}/")
    gather_sum(ch, keys, len(senders), size, dtype, into=mine)
    if average:
        mine /= world
    ch.put(reduced_key(tag, rank), mine)
    ch.delete(keys)
    out = np.empty(n, dtype=dtype)
    out[a:b] = mine
    others = [i for i in range(world) if i != rank]
    rkeys = [key for i in others for key in ch.keys(reduced_key(tag, i), bounds[i][1] - bounds[i][0], vec.itemsize)]
    ch.wait_all(rkeys)
    got = ch.get_many(rkeys)
    pos = 0
    for i in others:
        ia, ib = bounds[i]
        cnt = len(ch.keys(reduced_key(tag, i), ib - ia, vec.itemsize))
        out[ia:ib] = ch.assemble(got[pos:pos + cnt], ib - ia, dtype)
        pos += cnt
    return out


COLLECTIVES = {"allreduce": allreduce, "scatter_reduce": scatter_reduce}
Pattern = Literal["allreduce", "scatter_reduce"]
