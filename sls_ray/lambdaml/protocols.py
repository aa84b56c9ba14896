"""How LambdaML's executors exchange statistics: synchronous, asynchronous, parameter server.

LambdaML, SIGMOD 2021, §4.2-4.3 (lambdaml.md "Collectives through storage"):

- :class:`SyncCollective` — bulk synchronous: leader-based AllReduce or all-to-all
  ScatterReduce (:mod:`sls_ray.collectives`); the step number in every key name is the only
  barrier, so a straggler stalls everyone. It returns the *sum* of the W vectors.
- :class:`ParameterServerClient` — the hybrid channel: workers push to a VM that sums (and,
  for GA-SGD, applies the update) and pull what it publishes; BSP is kept by counting the
  pushes of a step (the VM store lists its keys) and by the step number of the pulled key.
- :class:`AsyncModel` — asynchronous: one shared model key; after a local step a worker
  reads the stored model, merges its own into it and writes it back: last writer wins, no
  lock, no staleness bound.

Fault tolerance. A killed executor is retried by the platform and resumes from its last
epoch checkpoint, *replaying* the steps since then. A replayed step must not wait for inputs
the others consumed long ago, so while replaying a worker first looks for the step's
published result (the merged vector, or its own reduced part, or the server's pull key) and
reads it instead. Results are kept for ``keep_steps`` steps (two checkpoint intervals) and
deleted after, as LambdaML's leader deletes expired merged files.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from sls_ray.api import COLLECTIVES
from sls_ray.lambdaml.channels import Channel

Pattern = Literal["allreduce", "scatter_reduce"]


class SyncCollective:
    """Synchronous AllReduce / ScatterReduce of flat vectors; returns the elementwise sum."""

    applies_update = False

    def __init__(self, channel: Channel, rank: int, world: int, pattern: Pattern, keep_steps: int,
                 replay: bool = False) -> None:
        if pattern not in COLLECTIVES:
            raise ValueError(f"pattern={pattern!r}; known: {sorted(COLLECTIVES)}")
        self.ch, self.rank, self.world, self.pattern = channel, rank, world, pattern
        self.keep_steps = max(1, keep_steps)
        self.replaying = replay

    def _tag(self, step: int) -> str:
        return self.ch.key(f"s{step}")

    def _result_keys(self, step: int, n: int, itemsize: int) -> list[tuple[str, int]]:
        """(tag-relative key, length) of what this rank keeps of a finished step."""
        if self.pattern == "allreduce":
            return [(f"s{step}/merged", n)] if self.rank == 0 else []
        a, b = n * self.rank // self.world, n * (self.rank + 1) // self.world
        return [(f"s{step}/reduced{self.rank}", b - a)]

    def _published(self, step: int, vec: np.ndarray) -> np.ndarray | None:
        """During replay: the step's result if it was already published, else None."""
        n, dtype = vec.size, vec.dtype
        if self.pattern == "allreduce":
            if not self.ch.array_exists(f"s{step}/merged", n, vec.itemsize):
                return None
            return self.ch.load_array(f"s{step}/merged", n, dtype, wait=False)
        bounds = [(n * i // self.world, n * (i + 1) // self.world) for i in range(self.world)]
        a, b = bounds[self.rank]
        if not self.ch.array_exists(f"s{step}/reduced{self.rank}", b - a, vec.itemsize):
            return None
        out = np.empty(n, dtype=dtype)
        for i, (lo, hi) in enumerate(bounds):
            out[lo:hi] = self.ch.load_array(f"s{step}/reduced{i}", hi - lo, dtype)
        return out

    def exchange(self, step: int, vec: np.ndarray) -> np.ndarray:
        vec = np.ascontiguousarray(vec).ravel()
        if self.world == 1:
            return vec.copy()
        if self.replaying:
            done = self._published(step, vec)
            if done is not None:
                return done
            self.replaying = False
        # the core collectives average; summing here keeps integer-valued statistics exact
        total = COLLECTIVES[self.pattern](self.ch.arrays, self.rank, self.world, self._tag(step), vec,
                                          average=False)
        old = step - self.keep_steps
        if old >= 0:
            self.ch.client.delete([k for key, m in self._result_keys(old, vec.size, vec.itemsize)
                                   for k in self.ch.arrays.keys(self.ch.key(key), m, vec.itemsize)])
        return total


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
    parts = ch.arrays.get_many(keys)
    per = len(keys) // world
    total = np.zeros(n, dtype=dtype)
    for r in range(world):
        total += ch.arrays._assemble(parts[r * per:(r + 1) * per], n, dtype)
    ch.client.delete(keys)
    return total


class AsyncModel:
    """One shared model key; read, merge, write back: last writer wins (no lock, no staleness bound)."""

    KEY = "model"

    def __init__(self, channel: Channel, n: int, dtype) -> None:
        self.ch, self.n, self.dtype = channel, n, np.dtype(dtype)
        self.reads = 0
        self.misses = 0

    def pull(self) -> np.ndarray | None:
        """The stored model, or None while no worker has written one yet."""
        self.reads += 1
        got = self.ch.try_load_array(self.KEY, self.n, self.dtype)
        if got is None:
            self.misses += 1
        return got

    def push(self, vec: np.ndarray) -> None:
        self.ch.save_array(self.KEY, np.asarray(vec, dtype=self.dtype))
