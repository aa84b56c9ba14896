"""Cirrus's smart S3 iterator (Cirrus §4, "data loading"): prefetch objects, buffer minibatches.

A worker reads its training objects from S3 in a random order per pass (LR) or in sequence
(MF). With prefetching on, the next object's GET starts in the background as soon as the
buffer of ready minibatches drops below ``refill_below`` (Cirrus: about 200) and there is room
for a whole object's minibatches, so compute waits on S3 only when bandwidth runs out. Every
buffered minibatch counts against the function's memory (``ctx.memory.hold``) until it is
consumed, and so does the object in flight from its request on (its receive buffer), so the
buffer (at most ``buffer_minibatches``, default refill_below + one object) never exceeds
its bound and a function too small for it fails with ``MemoryLimitExceeded`` as the
sandbox would. The object in flight is sliced when the buffer runs dry (or at once without
prefetching): the worker stalls only if the transfer has not finished by then. Without prefetching
(PyWren-style, or the ablation) the worker fetches an object only when it has nothing left.
"""
from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator

import numpy as np

from sls_ray.cirrus.data import SparseRows


def object_order(keys: list[str], order: str, seed: tuple) -> Iterator[str]:
    """The objects a worker reads, forever: a fresh random permutation per pass, or in sequence."""
    rng = np.random.default_rng([*seed, 0x5E])
    while True:
        plan = list(keys)
        if order == "random":
            rng.shuffle(plan)
        yield from plan


class S3Iterator:
    def __init__(self, ctx, service: str, keys: list[str], minibatch_rows: int, *, object_rows: int,
                 row_bytes: int, order: str = "random", seed: tuple = (0,), prefetch: bool = True,
                 refill_below: int = 200, buffer_minibatches: int | None = None) -> None:
        if not keys:
            raise ValueError("S3Iterator: no objects to read")
        if order not in ("random", "sequential"):
            raise ValueError(f"S3Iterator order={order!r}; allowed: random, sequential")
        self.ctx, self.s3 = ctx, ctx.storage(service)
        self.keys, self.mb_rows, self.order = list(keys), int(minibatch_rows), order
        self.prefetch, self.refill_below = prefetch, int(refill_below)
        per_object = -(-object_rows // self.mb_rows)
        self.capacity = buffer_minibatches if buffer_minibatches is not None else self.refill_below + per_object
        if self.capacity < per_object:
            raise ValueError(f"S3Iterator: buffer of {self.capacity} minibatches cannot take one object "
                             f"({per_object} minibatches of {self.mb_rows} rows)")
        self.per_object = per_object
        self.mb_bytes = self.mb_rows * row_bytes
        self.plan = object_order(self.keys, order, seed)
        self.queue: deque[tuple[SparseRows, contextlib.ExitStack]] = deque()
        self.pending = None
        self.inflight = contextlib.ExitStack()
        self.fetches = 0
        self.stall_s = 0.0
        self.buffered_bytes = 0
        self.peak_buffered_bytes = 0

    @property
    def capacity_bytes(self) -> int:
        return self.capacity * self.mb_bytes

    def _start(self) -> None:
        # the receive buffer of the object in flight counts from the request on (data streams
        # in while the worker computes), so the ledger never runs behind the real process
        self.inflight = contextlib.ExitStack()
        self.inflight.enter_context(self.ctx.memory.hold(self.per_object * self.mb_bytes, "S3 object in flight"))
        self.buffered_bytes += self.per_object * self.mb_bytes
        self.peak_buffered_bytes = max(self.peak_buffered_bytes, self.buffered_bytes)
        self.pending = self.s3.get_async(next(self.plan))
        self.fetches += 1

    def _land(self) -> None:
        """Wait for the object in flight (no wait if it already arrived) and slice it into the buffer."""
        t0 = self.ctx.clock
        obj: SparseRows = self.pending.result()
        self.stall_s += max(0.0, self.ctx.clock - t0)
        self.pending = None
        self.inflight.close()
        self.buffered_bytes -= self.per_object * self.mb_bytes
        for lo in range(0, len(obj), self.mb_rows):
            mb = obj.rows(lo, min(lo + self.mb_rows, len(obj)))
            stack = contextlib.ExitStack()
            stack.enter_context(self.ctx.memory.hold(mb.nbytes, "minibatch buffer"))
            self.buffered_bytes += mb.nbytes
            self.queue.append((mb, stack))
        self.peak_buffered_bytes = max(self.peak_buffered_bytes, self.buffered_bytes)

    def _room(self) -> bool:
        return len(self.queue) + self.per_object <= self.capacity

    def next(self) -> SparseRows:
        """The next minibatch; starts a prefetch when the buffer runs low."""
        if not self.queue:
            if self.pending is None:
                self._start()
            self._land()
        mb, stack = self.queue.popleft()
        stack.close()
        self.buffered_bytes -= mb.nbytes
        if self.prefetch and self.pending is None and len(self.queue) < self.refill_below and self._room():
            self._start()
        return mb
