"""An open-loop request stream: inference requests arriving at a serving system (INFless).

Requests arrive by a Poisson process (or a trace of arrival times) whatever the servers do
— open loop. A serving function pulls a *batch* (``take``) and reports it served
(``complete``); the service keeps every request's arrival and completion time. Requests are
rows of numpy arrays, never threads or events: one ``take`` is one simcall whatever the batch
size, and an idle server parks until the next arrival (one event), so a run serves tens of
thousands of simulated requests per real second (benchmarks/README.md).
"""
from __future__ import annotations

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
