"""An open-loop request stream: inference requests arriving at a serving system (INFless).

Requests arrive by a Poisson process (or a trace of arrival times) whatever the servers do
— open loop. A serving function pulls a *batch* (``take``) and reports it served
(``complete``); the service keeps every request's arrival and completion time. Requests are
rows of numpy arrays, never threads or events: one ``take`` is one simcall whatever the batch
size, and an idle server parks until the next arrival (one event), so a run serves tens of
thousands of simulated requests per real second (benchmarks/README.md).
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from sls_ray.storage.base import Done, Fail, Outcome, Park, Request, Service, ServiceConfig, Ticket, Upload
from sls_ray.vtime import FID_STREAM, NS_PER_S, RANK_TIMER, to_ns


class RequestStreamConfig(ServiceConfig):
    kind: str = "requests"
    latency_s: float = Field(0.001, ge=0, description="gateway-to-instance latency [est]")
    arrival: Literal["poisson", "uniform", "trace"] = Field("poisson", description="arrival process")
    rate_per_s: float = Field(100.0, gt=0, description="mean arrival rate (poisson, uniform)")
    duration_s: float = Field(60.0, gt=0, description="arrivals stop after this")
    trace_s: list[float] = Field(default_factory=list, description="arrival times (arrival: trace)")
    request_bytes: int = Field(4096, ge=0, description="payload per request (moved with the batch)")
    slo_s: float = Field(0.2, gt=0, description="latency objective, for the violation count")
    seed: int = Field(0, description="arrival stream")
    price_per_million: float = Field(3.5, ge=0, description="API gateway USD per million requests [est]")


class RequestStream(Service):
    kind = "requests"
    Config: ClassVar[type[RequestStreamConfig]] = RequestStreamConfig

    def __init__(self, name, config, env) -> None:
        super().__init__(name, config, env)
        self.arrivals = self._arrivals(config)
        self.done_ns = np.full(self.arrivals.size, -1, dtype=np.int64)
        self.head = 0
        self._waiters: list[Ticket] = []
        self._wake_at: int | None = None

    @staticmethod
    def _arrivals(c: RequestStreamConfig) -> np.ndarray:
        if c.arrival == "trace":
            times = np.sort(np.asarray(c.trace_s, dtype=float))
        elif c.arrival == "uniform":
            times = np.arange(0.0, c.duration_s, 1.0 / c.rate_per_s)
        else:
            rng = np.random.default_rng([c.seed, 0x5EED])
            n = int(c.rate_per_s * c.duration_s * 1.2 + 100)
            times = np.cumsum(rng.exponential(1.0 / c.rate_per_s, size=n))
            times = times[times < c.duration_s]
        return np.ceil(times * NS_PER_S).astype(np.int64)

    def _arrived(self, t_ns: int) -> int:
        return int(np.searchsorted(self.arrivals, t_ns, side="right"))

    def _batch(self, t_ns: int, max_batch: int) -> dict | None:
        k = min(self._arrived(t_ns) - self.head, max_batch)
        if k <= 0:
            return None
        first = self.head
        self.head += k
        self.usage.count("REQUEST", k)
        return {"first": first, "count": k, "arrivals_s": self.arrivals[first:first + k] / NS_PER_S}

    def op_take(self, t_ns: int, req: Request) -> Outcome:
        """Up to ``max_batch`` waiting requests; with ``wait`` > 0, park until one arrives."""
        max_batch, wait = req.args
        batch = self._batch(t_ns, max_batch)
        if batch is not None:
            return Done(value=batch, nbytes=batch["count"] * self.config.request_bytes)
        if self.head >= self.arrivals.size or wait <= 0:
            return Done(value=None)
        ticket = Ticket(req.fid, req.seq, t_ns, t_ns + to_ns(wait), {"max_batch": max_batch})
        self._waiters.append(ticket)
        self.env.schedule(ticket.deadline_ns, RANK_TIMER, req.fid, req.seq, lambda t, tk=ticket: self._expire(tk, t))
        self._arm(t_ns)
        return Park(ticket)

    def _arm(self, t_ns: int) -> None:
        """One wake-up event at the next arrival, however many servers wait."""
        if self.head >= self.arrivals.size:
            return
        nxt = int(self.arrivals[self.head])
        if self._wake_at is None or nxt < self._wake_at:
            self._wake_at = nxt
            self.env.schedule(max(nxt, t_ns), RANK_TIMER, FID_STREAM, self.head, self._wake)

    def _wake(self, t_ns: int) -> None:
        if self._wake_at is not None and t_ns < self._wake_at:
            return
        self._wake_at = None
        while self._waiters:
            ticket = self._waiters[0]
            if ticket.closed:
                self._waiters.pop(0)
                continue
            batch = self._batch(t_ns, ticket.data["max_batch"])
            if batch is None:
                break
            self._waiters.pop(0)
            ticket.closed = True
            self.env.resume(ticket, t_ns, Done(value=batch, nbytes=batch["count"] * self.config.request_bytes))
        if self._waiters:
            self._arm(t_ns)

    def _expire(self, ticket: Ticket, t_ns: int) -> None:
        if not ticket.closed:
            ticket.closed = True
            self.env.resume(ticket, t_ns, Done(value=None))

    def cancel(self, ticket: Ticket, t_ns: int | None = None) -> None:
        ticket.closed = True

    def op_complete(self, t_ns: int, req: Request) -> Outcome:
        """The batch's responses leave the server now (request latency ends at commit)."""
        first, count = req.args
        if first < 0 or first + count > self.head:
            return Fail("QueueError", f"requests '{self.name}': batch [{first}, {first + count}) was never taken")

        def commit(t: int) -> int:
            self.done_ns[first:first + count] = t
            return count

        return Upload(0, commit)

    def op_backlog(self, t_ns: int, req: Request) -> Outcome:
        return Done(value=self._arrived(t_ns) - self.head)

    def report(self) -> dict:
        served = self.done_ns >= 0
        lat = (self.done_ns[served] - self.arrivals[served]) / NS_PER_S
        out = {"arrived": int(self.arrivals.size), "served": int(served.sum()),
               "slo_violations": int((lat > self.config.slo_s).sum()) + int((~served).sum())}
        if lat.size:
            out.update({"latency_p50_s": float(np.percentile(lat, 50)), "latency_p99_s": float(np.percentile(lat, 99)),
                        "latency_max_s": float(lat.max())})
        return out

    def cost(self, end_ns: int) -> dict[str, float]:
        return {"requests": self.usage.requests.get("REQUEST", 0) * self.config.price_per_million / 1e6}


# --------------------------------------------------------------------------- serving as data
# The stream above hands batches to real functions one simcall at a time (a thread hand-off per
# batch). A serving system with thousands of instances needs the data plane itself as arrays:
# ``serve_batches`` forms and runs every instance's batches in lock step, one numpy pass per
# batch *round* across all instances, and ``LatencyHistogram`` keeps percentiles without a
# Python object per request. Paper systems (INFless) drive them from their own control plane.

#: ``done_ns`` of a request whose batch did not start by the horizon (still queued)
NOT_SERVED = -1
#: below this many instances with batches left, ``serve_batches`` finishes them one by one
TAIL_INSTANCES = 12


@dataclass(frozen=True)
class BatchRun:
    """What ``serve_batches`` did with one window of requests.

    ``done_ns[j]`` is when request j's batch finished (``NOT_SERVED`` if its batch did not start
    by the horizon: the request is still waiting in its instance's queue). ``served_upto[i]`` is
    the first unserved index of instance i's segment; ``free_ns`` when each instance is idle
    again; ``batch_sizes`` the size of every batch run, in no particular order.
    """

    done_ns: np.ndarray
    served_upto: np.ndarray
    free_ns: np.ndarray
    batch_sizes: np.ndarray


def serve_batches(arrivals_ns: np.ndarray, offsets: np.ndarray, batch: np.ndarray, timeout_ns: np.ndarray,
                  exec_ns: np.ndarray, free_ns: np.ndarray, horizon_ns: int) -> BatchRun:
    """Built-in batching on every instance at once (INFless §4.1's batch queue).

    Instance i owns ``arrivals_ns[offsets[i]:offsets[i+1]]`` (sorted). Its next batch is ready
    when ``batch[i]`` requests wait or its oldest request has waited ``timeout_ns[i]``, starts
    when the instance is also free, takes every waiting request up to ``batch[i]``, and runs
    for ``exec_ns[i]`` (batches are padded to b: fixed-shape compiled models). Batches that
    would start after ``horizon_ns`` are left for the next window. Each loop iteration runs
    one batch on every instance that still has one: the cost is numpy calls per *round*, not
    Python per request, so many instances serve millions of requests per CPU-second.
    """
    A = np.asarray(arrivals_ns, dtype=np.int64)
    n_inst = offsets.size - 1
    p = offsets[:-1].astype(np.int64).copy()
    end = offsets[1:].astype(np.int64)
    free = np.asarray(free_ns, dtype=np.int64).copy()
    done = np.full(A.size, NOT_SERVED, dtype=np.int64)
    if A.size == 0:
        return BatchRun(done, p, free, np.zeros(0, dtype=np.int64))
    # composite keys: one searchsorted finds, for all instances, how many requests arrived by t
    span = int(A.max()) - int(A.min()) + 2
    base = int(A.min())
    seg = np.repeat(np.arange(n_inst, dtype=np.int64), np.diff(offsets))
    keys = seg * span + (A - base)
    heads: list[np.ndarray] = []
    fins: list[np.ndarray] = []
    sizes: list[np.ndarray] = []
    act = np.nonzero(p < end)[0]
    last = A.size - 1
    never = np.iinfo(np.int64).max
    while act.size > TAIL_INSTANCES:
        pa = p[act]
        ba = batch[act]
        idx = pa + ba - 1
        bth = np.where(idx < end[act], A[np.minimum(idx, last)], never)
        ready = np.minimum(bth, A[pa] + timeout_ns[act])
        start = np.maximum(ready, free[act])
        go = start <= horizon_ns
        if not go.all():
            act, pa, ba, start = act[go], pa[go], ba[go], start[go]
            if not act.size:
                break
        upto = np.searchsorted(keys, act * span + np.minimum(start - base, span - 1), side="right")
        k = np.minimum(upto - pa, ba)
        fin = start + exec_ns[act]
        heads.append(pa)
        fins.append(fin)
        sizes.append(k)
        p[act] = pa + k
        free[act] = fin
        act = act[p[act] < end[act]]
    if act.size:
        # the few instances with many batches left: one scalar loop each beats a numpy round for all
        h, f, z = _tail(A, act.tolist(), p, end, free, batch, timeout_ns, exec_ns, horizon_ns)
        heads.append(np.array(h, dtype=np.int64))
        fins.append(np.array(f, dtype=np.int64))
        sizes.append(np.array(z, dtype=np.int64))
    if heads:
        h = np.concatenate(heads)
        f = np.concatenate(fins)
        marker = np.zeros(A.size, dtype=np.int64)
        marker[h] = h
        owner = np.maximum.accumulate(marker)          # each request's batch head (heads ascend)
        first_of = np.full(A.size, -1, dtype=np.int64)
        first_of[h] = f
        served = np.arange(A.size, dtype=np.int64) < np.repeat(p, np.diff(offsets))
        done[served] = first_of[owner[served]]
        return BatchRun(done, p, free, np.concatenate(sizes))
    return BatchRun(done, p, free, np.zeros(0, dtype=np.int64))


def _tail(A: np.ndarray, act: list, p: np.ndarray, end: np.ndarray, free: np.ndarray, batch: np.ndarray,
          timeout_ns: np.ndarray, exec_ns: np.ndarray, horizon_ns: int) -> tuple[list, list, list]:
    """``serve_batches``' rule for a few instances, batch by batch in plain Python (same result)."""
    heads: list[int] = []
    fins: list[int] = []
    sizes: list[int] = []
    for i in act:
        base, ei, bi, fr = int(p[i]), int(end[i]), int(batch[i]), int(free[i])
        to, ex = int(timeout_ns[i]), int(exec_ns[i])
        seg = A[base:ei].tolist()
        n = len(seg)
        pi = 0
        while pi < n:
            idx = pi + bi - 1
            ready = seg[pi] + to
            if idx < n and seg[idx] < ready:
                ready = seg[idx]
            start = ready if ready > fr else fr
            if start > horizon_ns:
                break
            upto = bisect_right(seg, start, pi, min(pi + bi, n))
            heads.append(base + pi)
            fr = start + ex
            fins.append(fr)
            sizes.append(upto - pi)
            pi = upto
        p[i] = base + pi
        free[i] = fr
    return heads, fins, sizes


class LatencyHistogram:
    """Streaming latency histograms per group (function, system...): log bins, no per-request state.

    Bins are 1% wide from 1 µs to ~1,000 s, so a percentile is within 1% of the exact one;
    counts at or under an objective are kept exactly (``within``) because an SLO is a
    threshold, not an estimate.
    """

    RATIO = 1.01
    LOW_NS = 1_000

    def __init__(self, groups: int, slo_ns: np.ndarray | None = None) -> None:
        self.groups = groups
        self.bins = int(np.ceil(np.log(1e12 / self.LOW_NS) / np.log(self.RATIO))) + 2
        self.counts = np.zeros((groups, self.bins), dtype=np.int64)
        self.slo_ns = None if slo_ns is None else np.asarray(slo_ns, dtype=np.int64)
        self.within = np.zeros(groups, dtype=np.int64)
        self.total_ns = np.zeros(groups, dtype=np.float64)

    def bin_of(self, latency_ns: np.ndarray) -> np.ndarray:
        x = np.maximum(latency_ns, self.LOW_NS).astype(np.float64)
        return np.minimum((np.log(x / self.LOW_NS) / np.log(self.RATIO)).astype(np.int64) + 1, self.bins - 1)

    def add(self, group: np.ndarray, latency_ns: np.ndarray) -> None:
        if not latency_ns.size:
            return
        flat = group.astype(np.int64) * self.bins + self.bin_of(latency_ns)
        self.counts += np.bincount(flat, minlength=self.groups * self.bins).reshape(self.groups, self.bins)
        if self.slo_ns is not None:
            self.within += np.bincount(group, weights=latency_ns <= self.slo_ns[group], minlength=self.groups
                                       ).astype(np.int64)
        self.total_ns += np.bincount(group, weights=latency_ns.astype(np.float64), minlength=self.groups)

    def count(self, group: int | None = None) -> int:
        return int(self.counts.sum() if group is None else self.counts[group].sum())

    def percentile(self, q: float, group: int | None = None) -> float:
        """Upper edge (seconds) of the bin holding the q-th percentile; NaN when empty."""
        c = self.counts.sum(axis=0) if group is None else self.counts[group]
        n = int(c.sum())
        if n == 0:
            return float("nan")
        i = int(np.searchsorted(np.cumsum(c), q / 100.0 * n, side="left"))
        return self.LOW_NS * self.RATIO ** i / NS_PER_S
