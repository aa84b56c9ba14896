"""The discrete-event kernel: one run's simulated platform, composed of plain parts.

A plain-Python core with no I/O (docs/design.md §1, "The kernel"). Functions run
elsewhere (threads, Ray hosts) and talk to it only through ``submit`` (a chain of simcalls
stamped with the function's virtual time); it talks back through the transport's ``Hooks``
(start a function, deliver a reply). ``SimKernel`` builds and wires its parts, each a plain
object with its dependencies passed in:

- ``events.EventLoop``: clock, event queue, horizon, causality check; the ``Outbox`` of
  what events asked of the transport, which the kernel forwards after each event;
- ``chains.ChainRunner``: a function's chain of simcalls, run op by op, and its answer;
- ``storage_calls.StorageCalls``: a storage request from arrival to reply (flows, commits,
  retries, parked requests, futures);
- ``functions.FunctionLifecycle``: the records (``LambdaFunction``, ``VmProcess``) and
  invoke, start, deadline, death, exit, retry;
- ``invoker.Invoker`` (warm pool, concurrency, cold starts), ``network.FlowNetwork``
  (transfers) and the storage services (``storage/``), which are plain state.

The kernel handles an event only once its time is below the *horizon* = min(clock of every
RUNNING function) + lookahead, where lookahead is the smallest one-way latency of any service
or of the Invoke API: a running function can only affect shared state at its clock plus one
such latency, so nothing can land in the past. Events are totally ordered by (time, rank,
function id, sequence, counter); the counter advances only inside event handlers, which run
in that order, so results never depend on the real order in which messages arrive.
"""
from __future__ import annotations

from typing import Any, Callable

from sls_ray import simcall as sc
from sls_ray.chains import ChainRunner
from sls_ray.errors import VirtualDeadlock
from sls_ray.events import EventLoop, Hooks, Outbox  # noqa: F401  (Hooks is public here)
from sls_ray.functions import (  # noqa: F401  (the records and the states are public here)
    BLOCKED,
    DONE,
    DRIVER,
    RUNNING,
    STARTING,
    FunctionLifecycle,
    FunctionRecord,
    LambdaFunction,
    VmProcess,
)
from sls_ray.invoker import Invoker
from sls_ray.network import Flow, FlowNetwork
from sls_ray.platform import PlatformProfile
from sls_ray.storage import build_services
from sls_ray.storage.base import Outcome, Service, Ticket
from sls_ray.storage_calls import StorageCalls
from sls_ray.vtime import FID_NETWORK, RANK_COMMIT, to_ns


class SimKernel:
    """The whole simulated platform for one run: its parts, wired, and the transport's entry points."""

    def __init__(self, profile: PlatformProfile, seed: int, hooks: Hooks,
                 handler_memory: dict[str, int] | None = None,
                 handler_timeout: dict[str, float] | None = None) -> None:
        self.profile = profile
        self.fprof = profile.functions
        self.seed = seed
        self.hooks = hooks
        self.loop = EventLoop()
        self.outbox = Outbox()
        self.counts = {"invocations": 0, "cold_starts": 0, "throttles": 0, "simcalls": 0, "ops": 0,
                       "retries": 0, "duplicates": 0}
        self.metrics: list[tuple] = []
        self.fault_notes: list[str] = []  # planned faults that found nothing to act on (summary "notes")
        self.services: dict[str, Service] = build_services(profile, self)
        self.network = FlowNetwork(self._schedule_flow)
        self.invoker = Invoker(self.fprof, seed)
        self.chains = ChainRunner(self.loop, self.outbox, self.metrics, self.counts)
        self.storage = StorageCalls(self.loop, self.services, self.network, self.invoker, self.counts, self.chains)
        self.lifecycle = FunctionLifecycle(self.loop, self.outbox, self.fprof, seed, self.invoker, self.network,
                                           self.services, self.counts, handler_memory, handler_timeout)
        self.chains.connect(self.lifecycle, self.storage)
        self.lifecycle.connect(self.chains)
        self.functions: dict[int, FunctionRecord] = self.lifecycle.functions
        self.storage_waits = self.chains.storage_waits  # (fid, t0, t1): blocked on storage requests
        self.invoke_one_way_ns = self.lifecycle.invoke_one_way_ns
        self.loop.lookahead_ns = self._lookahead()

    def _lookahead(self) -> int:
        """The shortest one-way latency any request of this run can have, faults included.

        A ``slowdown`` with factor < 1 speeds a service up: the product of every such factor
        bounds what overlapping windows can do (float products are monotone, so the bound
        holds bit for bit). Latencies are > 0 (the profile refuses 0), so this is >= 1 ns.
        """
        one_ways = [self.invoke_one_way_ns]
        for svc in self.services.values():
            one_ways.append(svc.nominal_one_way_ns())
            fastest = 1.0
            for _, _, factor in svc.slow_windows:
                if factor < 1.0:
                    fastest *= factor
            if fastest < 1.0:
                one_ways.append(to_ns(svc.config.latency_s * fastest / 2))
        return max(1, min(one_ways))

    # ------------------------------------------------------------------ events
    @property
    def now_ns(self) -> int:
        return self.loop.now_ns

    @now_ns.setter
    def now_ns(self, t_ns: int) -> None:
        self.loop.now_ns = t_ns

    @property
    def lookahead_ns(self) -> int:
        return self.loop.lookahead_ns

    @property
    def deadlock(self) -> VirtualDeadlock | None:
        return self.lifecycle.deadlock

    @property
    def entry_invocation(self) -> int | None:
        return self.lifecycle.entry_invocation

    def schedule(self, t_ns: int, rank: int, fid: int, seq: int, fn: Callable[[int], None],
                 passive: bool = False) -> None:
        """Queue ``fn(t)`` on the event loop (the ``ServiceEnv`` side services and faults use)."""
        self.loop.schedule(t_ns, rank, fid, seq, fn, passive)

    def resume(self, ticket: Ticket, t_ns: int, outcome: Outcome) -> None:
        """A service answers a parked request (the ``ServiceEnv`` protocol, storage/base.py)."""
        self.storage.resume(ticket, t_ns, outcome)

    def _schedule_flow(self, t_ns: int, flow: Flow, version: int) -> None:
        self.loop.schedule(t_ns, RANK_COMMIT, FID_NETWORK, flow.id, lambda t: self.network.complete(flow, version, t))

    def _forward(self) -> None:
        """Hand the transport what the last event (or chain) asked of it."""
        if self.outbox.messages:
            self.outbox.forward(self.hooks)

    def horizon(self) -> int:
        return self.loop.horizon()

    def running_count(self) -> int:
        return self.loop.running_count()

    def step(self, max_events: int = 1 << 30) -> str:
        """Handle every event below the horizon.

        Returns "wait" (running functions may still send simcalls), "done", or "deadlock".
        Only *passive* events (function deadlines) left, nothing running and someone blocked
        means nothing can ever unblock them short of their timeouts: a virtual deadlock.
        """
        if not self.handle_ready(max_events):
            return "wait"
        if self.deadlock is not None:
            return "deadlock"
        if any(r.state == BLOCKED for r in self.functions.values()):
            self.lifecycle.declare_deadlock()
            self._forward()
            return "deadlock"
        self.loop.clear()
        return "done"

    def handle_ready(self, max_events: int = 1 << 30) -> bool:
        """Handle every event below the horizon; True once the run can go no further.

        That is when nothing runs and only passive events are left: ``step`` then says
        whether the run is done or deadlocked. A transport may call this from any thread
        that holds its lock (the in-process one does, right after each simcall).
        """
        return self.loop.run_ready(max_events, after=self._forward)

    # ------------------------------------------------------------------ entry points
    def invoke_entry(self, handler: str, payload: Any, payload_size: int, memory_mb: int | None = None) -> None:
        """The experiment's first invocation, made by the driver at t = 0."""
        self.lifecycle.invoke_entry(handler, payload, payload_size, memory_mb)

    def submit(self, fid: int, t_ns: int, ops: list[sc.Op]) -> None:
        """A function's chain of simcalls, issued at its virtual time ``t_ns``."""
        rec = self.functions[fid]
        if rec.state == DONE:
            # recorded already (a deadlock): end the thread's wait. Not counted: these calls come
            # after the run's end, while its records are collected, in whatever real order
            if not ops or ops[-1].kind != sc.EXIT:
                self.hooks.deliver(fid, sc.Reply(rec.end_ns or 0, error=(rec.status, rec.error)))
            return
        self.chains.submit(rec, t_ns, ops)
        self._forward()

    def kill(self, fid: int, t: int, reason: str = "fault plan") -> bool:
        """Kill a running or blocked function at t (a fault); False when there is none to kill."""
        return self.lifecycle.kill(fid, t, reason)

    # ------------------------------------------------------------------ faults
    def apply_faults(self, faults: list) -> None:
        for i, fault in enumerate(faults):
            fault.install(self, i)
        self.loop.lookahead_ns = self._lookahead()  # a speed-up fault shortens the latencies to respect

    # ------------------------------------------------------------------ results
    def makespan_ns(self) -> int:
        ends = [r.end_ns for r in self.functions.values() if r.end_ns is not None and r.fid != DRIVER]
        return max(ends) if ends else 0
