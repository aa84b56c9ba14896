"""How LambdaML's executors exchange statistics: synchronous, asynchronous, parameter server.

LambdaML, SIGMOD 2021, §4.2-4.3 (lambdaml.md "Collectives through storage"):

- :class:`SyncCollective` — bulk synchronous: leader-based AllReduce or all-to-all
  ScatterReduce (:mod:`sls_ray.collectives`); the step number in every key name is the only
  barrier, so a straggler stalls everyone. It returns the *sum* of the W vectors.
- :class:`ParameterServerClient` — the hybrid channel: workers push to a VM that sums (and,
  for GA-SGD, applies the update) and pull what it publishes; BSP is kept by counting the
  pushes of a step (the VM store lists its keys) and by the step number of the pulled key.
- :class:`AsyncModel` — asynchronous: one shared model key; after a local step a worker
  reads the stored model, writes its own over it and continues from the one it read: last
  writer wins, no lock, no staleness bound.

Fault tolerance. A killed executor is retried by the platform and resumes from its last
epoch checkpoint, *replaying* the steps since then. A replayed step must not wait for inputs
the others consumed long ago, so while replaying a worker first looks for the step's
published result (the merged vector, or the reduced parts, or the server's pull key) and
reads it instead. That needs results kept longer than the original keeps them (it deletes
every older merged vector each round): ``merged_expiry='late'`` keeps two checkpoint
intervals (one stored vector more per kept step; requests unchanged); the default,
``'previous'``, is the original, under which a crashed worker's replay waits for a merged
vector that is gone and fails after the 60 s WaitTimeout, as the original would.
"""
from __future__ import annotations

import re

import numpy as np

from sls_ray.api import (
    COLLECTIVES,
    CollectivePattern,
    gather_sum,
    input_key,
    merged_key,
    part_bounds,
    part_key,
    reduced_key,
)
from sls_ray.lambdaml.channels import Channel

Pattern = CollectivePattern  # the core collective's patterns (sls_ray.collectives)

#: the original's load_or_wait sleeps 0.1 s between GETs and gives up after 60 s
LOAD_OR_WAIT_SLEEP_S = 0.1
LOAD_OR_WAIT_TIMEOUT_S = 60.0
_STEP = re.compile(r"/s(\d+)/")


class SyncCollective:
    """Synchronous AllReduce / ScatterReduce of flat vectors, request for request as LambdaML's
    communicators send them (``communicator/*_primitive.py``); returns the elementwise sum.

    Per round, for the three channel reads (:attr:`Channel.reads`):

    - AllReduce: every rank PUTs its vector to the round's temporary prefix. The leader (rank
      0) polls back to back, no sleep (S3: LIST then one GET per new object; DynamoDB: Scan,
      values included; Memcached: multi-get, values included), adds what it found and deletes
      it (S3: one DeleteObjects per poll that found objects; DynamoDB: one DeleteItem per key;
      Memcached: one delete_multi), until all W arrived; PUTs the merged vector and expires
      older merged vectors (S3: LIST of the merged prefix + DeleteObjects if any; DynamoDB: Scan
      + DeleteItems; Memcached: one delete_multi). The others load-or-wait the merged vector:
      a GET every 0.1 s, WaitTimeout after 60 s.
    - ScatterReduce (LambdaML's split: the first n % W parts one longer): W−1 PUTs of the
      others' parts; a busy loop over this rank's part prefix that reads and then deletes each
      part on its own (S3: GET + DELETE per part; DynamoDB: the Scan's values + DeleteItem per
      part; Memcached: delete_multi per poll); a PUT of the reduced part; a busy loop over the
      round's reduced prefix (LIST + GETs of the new parts / Scan / multi-get) until all W.
      W = 1 still PUTs its reduced part.

    ``keep_steps`` = 1 is the original (each round deletes every older merged vector); more
    keeps results for replay after a crash (a deliberate option: one more stored vector per
    kept step, the same number of requests).
    """

    applies_update = False

    def __init__(self, channel: Channel, rank: int, world: int, pattern: Pattern, keep_steps: int = 1,
                 replay: bool = False, wait_timeout: float = LOAD_OR_WAIT_TIMEOUT_S) -> None:
        if pattern not in COLLECTIVES:
            raise ValueError(f"pattern={pattern!r}; known: {sorted(COLLECTIVES)}")
        self.ch, self.rank, self.world, self.pattern = channel, rank, world, pattern
        self.client = channel.client
        self.keep_steps = max(1, keep_steps)
        self.replaying = replay
        self.wait_timeout = wait_timeout
        self.tmp_root = channel.key("tmp/")
        self.merged_root = channel.key("merged/")
        self._expired = -1  # Memcached: merged results of steps up to this one are deleted

    # ------------------------------------------------------------ names
    def _tmp(self, step: int) -> str:
        return f"{self.tmp_root}s{step}"

    def _merged(self, step: int) -> str:
        return f"{self.merged_root}s{step}"

    def _layout(self, base: str, lo: int, hi: int, itemsize: int) -> dict[str, tuple[int, int]]:
        """Chunk keys of the slice [lo, hi) stored under ``base``, with the slice each covers."""
        keys = self.ch.arrays.keys(base, hi - lo, itemsize)
        bounds = self.ch.arrays.chunk_bounds(hi - lo, itemsize)
        return {k: (lo + a, lo + b) for k, (a, b) in zip(keys, bounds)}

    def _put(self, base: str, arr: np.ndarray) -> None:
        self.ch.arrays.put(base, arr)

    def _bounds(self, n: int) -> list[tuple[int, int]]:
        return part_bounds(n, self.world, residue_first=True)

    # ------------------------------------------------------------ the original's loops
    def _poll(self, prefix: str, candidates: list[str], need_present: int) -> dict[str, object | None]:
        """One busy poll round: block (polling back to back) until a poll finds something new.
        Returns key -> value (None where the value still has to be read: S3 LIST)."""
        reads = self.ch.reads
        if reads == "list":
            keys = self.client.wait_count(prefix, need_present, 0.0, None)
            return {k: None for k in keys}
        if reads == "scan":
            return self.client.wait_scan(prefix, need_present, 0.0, None)
        return self.client.wait_mget(candidates, 1, 0.0, None)

    def _collect(self, prefix: str, layout: dict[str, tuple[int, int]], into: np.ndarray,
                 delete_each: bool) -> None:
        """Read (and delete) every key of ``layout`` as the busy loop finds it, adding it into ``into``."""
        pending = dict(layout)
        reads = self.ch.reads
        while pending:
            found = self._poll(prefix, sorted(pending), 1)
            new = [k for k in found if k in pending]
            for k in new:
                lo, hi = pending.pop(k)
                value = found[k] if found[k] is not None else self.client.get(k)
                into[lo:hi] += np.asarray(value, dtype=into.dtype)
                if reads != "mget" and (delete_each or reads == "scan"):
                    self.client.delete(k)  # S3 ScatterReduce / DynamoDB: one DeleteObject(Item) per key
            if new and reads == "mget":
                self.client.delete(new)  # Memcached delete_multi
            elif new and reads == "list" and not delete_each:
                self.client.delete(new)  # S3 AllReduce leader: one DeleteObjects per LIST that found objects

    def _gather(self, prefix: str, layout: dict[str, tuple[int, int]], own: list[str], out: np.ndarray) -> None:
        """ScatterReduce phase 2: poll the round's reduced prefix until every other part was read."""
        pending = dict(layout)
        seen = len(own)
        while pending:
            found = self._poll(prefix, sorted(pending), seen + 1)
            for k in [k for k in found if k in pending]:
                lo, hi = pending.pop(k)
                value = found[k] if found[k] is not None else self.client.get(k)
                out[lo:hi] = np.asarray(value, dtype=out.dtype)
                seen += 1

    def expire(self, step: int) -> None:
        """Delete merged results older than the last ``keep_steps`` steps (the leader, every round,
        and the executor at the end of each epoch): list (scan) the merged prefix, then delete."""
        last_old = step - self.keep_steps
        if self.ch.reads == "mget":  # Memcached cannot list: delete the candidate keys it knows
            old = [k for s in range(self._expired + 1, last_old + 1) for k in self._result_candidates(s)]
            self._expired = max(self._expired, last_old)
            if old:
                self.client.delete(old)
            return
        listed = list(self.client.scan(self.merged_root)) if self.ch.reads == "scan" \
            else self.client.list(self.merged_root)
        old = [k for k in listed if int(_STEP.search(k[len(self.merged_root) - 1:]).group(1)) <= last_old]
        if not old:
            return
        if self.ch.reads == "scan":
            for k in old:
                self.client.delete(k)
        else:
            self.client.delete(old)

    def _result_candidates(self, step: int) -> list[str]:
        n, itemsize = self._n, self._itemsize
        if self.pattern == "allreduce":
            return list(self._layout(merged_key(self._merged(step)), 0, n, itemsize))
        return [k for i, (lo, hi) in enumerate(self._bounds(n))
                for k in self._layout(reduced_key(self._merged(step), i), lo, hi, itemsize)]

    # ------------------------------------------------------------ rounds
    def _published(self, step: int, vec: np.ndarray) -> np.ndarray | None:
        """During replay: the step's result if it was already published, else None."""
        n = vec.size
        keys = self._result_candidates(step)
        if not self.ch.client.exists(keys[-1]):
            return None
        got = self.ch.arrays.get_many(keys)
        out = np.empty(n, dtype=vec.dtype)
        pos = 0
        for part in got:
            out[pos:pos + len(part)] = part
            pos += len(part)
        return out

    def exchange(self, step: int, vec: np.ndarray) -> np.ndarray:
        vec = np.ascontiguousarray(vec).ravel()
        self._n, self._itemsize = vec.size, vec.itemsize
        if self.replaying:
            done = self._published(step, vec)
            if done is not None:
                return done
            self.replaying = False
        if self.pattern == "allreduce":
            return self._allreduce(step, vec)
        return self._scatter_reduce(step, vec)

    def _allreduce(self, step: int, vec: np.ndarray) -> np.ndarray:
        n, itemsize = vec.size, vec.itemsize
        tmp, merged = self._tmp(step), self._merged(step)
        self._put(input_key(tmp, self.rank), vec)
        if self.rank == 0:
            layout = {k: v for r in range(self.world)
                      for k, v in self._layout(input_key(tmp, r), 0, n, itemsize).items()}
            total = np.zeros(n, dtype=vec.dtype)
            self._collect(f"{tmp}/in/", layout, total, delete_each=False)
            self._put(merged_key(merged), total)
            self.expire(step)
            return total
        out = np.empty(n, dtype=vec.dtype)
        for k, (lo, hi) in self._layout(merged_key(merged), 0, n, itemsize).items():
            out[lo:hi] = self.client.get_wait(k, LOAD_OR_WAIT_SLEEP_S, self.wait_timeout)
        return out

    def _scatter_reduce(self, step: int, vec: np.ndarray) -> np.ndarray:
        n, itemsize, W, r = vec.size, vec.itemsize, self.world, self.rank
        tmp, merged = self._tmp(step), self._merged(step)
        bounds = self._bounds(n)
        for i, (lo, hi) in enumerate(bounds):
            if i != r:
                self._put(part_key(tmp, i, r), vec[lo:hi])
        a, b = bounds[r]
        out = vec.copy()
        mine = out[a:b]
        layout = {k: (lo - a, hi - a) for s in range(W) if s != r
                  for k, (lo, hi) in self._layout(part_key(tmp, r, s), a, b, itemsize).items()}
        self._collect(f"{tmp}/part{r}/", layout, mine, delete_each=True)
        self._put(reduced_key(merged, r), mine)
        own = list(self._layout(reduced_key(merged, r), a, b, itemsize))
        others = {k: v for i, (lo, hi) in enumerate(bounds) if i != r
                  for k, v in self._layout(reduced_key(merged, i), lo, hi, itemsize).items()}
        self._gather(f"{merged}/", others, own, out)
        return out


class ParameterServerClient:
    """A worker's side of the VM parameter server: push a vector, pull what the server published."""

    def __init__(self, channel: Channel, rank: int, world: int, applies_update: bool, replay: bool = False) -> None:
        self.ch, self.rank, self.world = channel, rank, world
        self.applies_update = applies_update
        self.replaying = replay

    def exchange(self, step: int, vec: np.ndarray) -> np.ndarray:
        vec = np.ascontiguousarray(vec).ravel()
        if self.replaying:
            if self.ch.array_exists(pull_key(step), vec.size, vec.itemsize):
                return self.ch.load_array(pull_key(step), vec.size, vec.dtype, wait=False)
            self.replaying = False
        self.ch.save_array(push_key(step, self.rank), vec)
        return self.ch.load_array(pull_key(step), vec.size, vec.dtype)


def push_key(step: int, rank: int) -> str:
    return f"push/{step}/w{rank}"


def pull_key(step: int) -> str:
    return f"pull/{step}"


def serve_step(ch: Channel, step: int, world: int, n: int, dtype) -> np.ndarray:
    """The parameter server's half of one step: wait for the W pushes (the push counter), sum them."""
    itemsize = np.dtype(dtype).itemsize
    keys = [k for r in range(world) for k in ch.arrays.keys(ch.key(push_key(step, r)), n, itemsize)]
    ch.arrays.wait_all(keys, prefix=ch.key(f"push/{step}/"))
    total = gather_sum(ch.arrays, keys, world, n, dtype)
    ch.client.delete(keys)
    return total


class AsyncModel:
    """LambdaML's asynchronous exchange (``async_reduce``): one shared model key, no lock.

    Rank 0 writes the initial model before its first exchange; then every exchange
    load-or-waits the stored model (a GET every 0.1 s, WaitTimeout after 60 s) and writes the
    worker's own model over it; the worker continues from the model it read (last writer wins,
    no staleness bound). ``write_first`` (the CNN path) writes before reading.
    """

    KEY = "model"

    def __init__(self, channel: Channel, n: int, dtype, rank: int, write_first: bool = False,
                 wait_timeout: float = LOAD_OR_WAIT_TIMEOUT_S) -> None:
        self.ch, self.n, self.dtype = channel, n, np.dtype(dtype)
        self.rank, self.write_first = rank, write_first
        self.wait_timeout = wait_timeout
        self.exchanges = 0

    def exchange(self, own: np.ndarray) -> np.ndarray:
        """Publish ``own``; return the stored model this worker adopts."""
        own = np.asarray(own, dtype=self.dtype)
        if self.rank == 0 and self.exchanges == 0:
            self.ch.save_array(self.KEY, own)  # the initial shared model
        self.exchanges += 1
        if self.write_first:
            self.ch.save_array(self.KEY, own)
        keys = self.ch.arrays.keys(self.ch.key(self.KEY), self.n, self.dtype.itemsize)
        got = [self.ch.client.get_wait(k, LOAD_OR_WAIT_SLEEP_S, self.wait_timeout) for k in keys]
        stored = self.ch.arrays.assemble(got, self.n, self.dtype)
        if not self.write_first:
            self.ch.save_array(self.KEY, own)
        return stored
