"""The discrete-event kernel: virtual clock, event queue, horizon, deadlock, entry points.

A plain-Python core with no I/O (docs/design.md). Functions run elsewhere (threads, Ray
hosts) and talk to it only through ``submit`` (a chain of simcalls stamped with the
function's virtual time). The kernel handles an event only once its time is below the
*horizon* = min(clock of every RUNNING function) + lookahead, where lookahead is the
smallest one-way latency of any service or of the Invoke API: a running function can only
affect shared state at its clock plus one such latency, so nothing can land in the past.
Events are totally ordered by (time, rank, function id, sequence, counter); the counter
advances only inside event handlers, which run in that order, so results never depend on
the real order in which messages arrive.

``SimKernel`` is this event loop plus three parts, each in its own module:

- ``chains.py``: running a function's chain of simcalls and answering it;
- ``storage_calls.py``: a storage request from arrival to reply (flows, commits, retries);
- ``functions.py``: ``FunctionRecord`` and the lifecycle (invoke, start, die, exit, retry).

Storage state lives in ``storage/`` (one stand-in per service), transfers in ``network.py``,
the warm pool and cold starts in ``invoker.py``.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from sls_ray import simcall as sc
from sls_ray.chains import ChainRunner
from sls_ray.errors import VirtualDeadlock
from sls_ray.events import EventLoop
from sls_ray.functions import (  # noqa: F401  (FunctionRecord and the states are public here)
    BLOCKED, DONE, DRIVER, RUNNING, STARTING, FunctionLifecycle, FunctionRecord, LambdaFunction, VmProcess,
)
from sls_ray.invoker import Invoker
from sls_ray.network import Flow, FlowNetwork
from sls_ray.platform import PlatformProfile
from sls_ray.storage import build_services
from sls_ray.storage.base import Outcome, Service, Ticket
from sls_ray.storage_calls import StorageCalls
from sls_ray.vtime import RANK_ARRIVE, RANK_COMMIT, to_ns


class Hooks(Protocol):
    """What a transport gives the kernel: start a function, answer a blocked one."""

    def start(self, cmd: sc.StartCommand) -> None: ...

    def deliver(self, fid: int, reply: sc.Reply) -> None: ...


class SimKernel(ChainRunner, FunctionLifecycle):
    """The whole simulated platform for one run; this module holds its event loop."""

    def __init__(self, profile: PlatformProfile, seed: int, hooks: Hooks,
                 handler_memory: dict[str, int] | None = None,
                 handler_timeout: dict[str, float] | None = None) -> None:
        self.profile = profile
        self.fprof = profile.functions
        self.seed = seed
        self.hooks = hooks
        self.handler_memory = handler_memory or {}
        self.handler_timeout = handler_timeout or {}
        self.loop = EventLoop()
        self.functions: dict[int, FunctionRecord] = {}
        self._next_fid = DRIVER
        self.services: dict[str, Service] = build_services(profile, self)
        self.network = FlowNetwork(self._schedule_flow)
        self.invoker = Invoker(self.fprof, seed)
        self.counts = {"invocations": 0, "cold_starts": 0, "throttles": 0, "simcalls": 0, "ops": 0,
                       "retries": 0, "duplicates": 0}
        self.storage = StorageCalls(self.loop, self.services, self.network, self.invoker, self.counts, self)
        self.invoke_one_way_ns = to_ns(self.fprof.invoke_latency_s / 2)
        self.loop.lookahead_ns = self._lookahead()
        self.metrics: list[tuple] = []
        self.deadlock: VirtualDeadlock | None = None
        self._faults_applied: list[dict] = []
        self.entry_invocation: int | None = None  # the driver's invocation (invoke_entry)

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

    def schedule(self, t_ns: int, rank: int, fid: int, seq: int, fn: Callable[[int], None],
                 passive: bool = False) -> None:
        """Queue ``fn(t)`` on the event loop (the ``ServiceEnv`` side services and faults use)."""
        self.loop.schedule(t_ns, rank, fid, seq, fn, passive)

    def _schedule_flow(self, t_ns: int, flow: Flow, version: int) -> None:
        self.loop.schedule(t_ns, RANK_COMMIT, -1, flow.id, lambda t: self.network.complete(flow, version, t))

    def horizon(self) -> int:
        return self.loop.horizon()

    def _set_running(self, rec: FunctionRecord, t_ns: int) -> None:
        rec.state = RUNNING
        rec.clock_ns = t_ns
        self.loop.set_running(rec.fid, t_ns)

    def _set_blocked(self, rec: FunctionRecord) -> None:
        rec.state = BLOCKED
        self.loop.set_stopped(rec.fid)

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
            return self._declare_deadlock()
        self.loop.clear()
        return "done"

    def handle_ready(self, max_events: int = 1 << 30) -> bool:
        """Handle every event below the horizon; True once the run can go no further.

        That is when nothing runs and only passive events are left: ``step`` then says
        whether the run is done or deadlocked. A transport may call this from any thread
        that holds its lock (the in-process one does, right after each simcall).
        """
        return self.loop.run_ready(max_events)

    def _declare_deadlock(self) -> str:
        blocked = [r for r in self.functions.values() if r.state == BLOCKED]
        lines = [f"fid {r.fid} ({r.handler}) since t={r.clock_ns / 1e9:.3f}s waiting on {r.blocked_on}"
                 for r in blocked]
        self.deadlock = VirtualDeadlock(
            f"virtual deadlock at t={self.now_ns / 1e9:.3f}s: {len(blocked)} functions wait on events "
            f"no one will cause:\n  " + "\n  ".join(lines[:50]))
        for r in blocked:
            self._die(r, self.now_ns, "VirtualDeadlock", f"blocked forever on {r.blocked_on}")
        # no event runs after this: record each one now (ended and billed at the deadlock's time)
        for r in blocked:
            self._exit(r, self.now_ns, sc.Op(sc.EXIT))
        return "deadlock"

    # ------------------------------------------------------------------ entry points
    def invoke_entry(self, handler: str, payload: Any, payload_size: int, memory_mb: int | None = None) -> None:
        """The experiment's first invocation, made by the driver at t = 0."""
        driver = LambdaFunction(DRIVER, "<driver>", 0)
        driver.state = DONE
        self.functions[DRIVER] = driver
        op = sc.Op(sc.INVOKE, args=(handler, False, memory_mb), size=payload_size, handle=payload)
        self._next_fid += 1
        self.entry_invocation = invocation = self._next_fid
        self.schedule(0, RANK_ARRIVE, DRIVER, 0,
                      lambda t: self._lambda_arrive(t, driver, 0, op, attempt=0, tries=0, accepted=True,
                                                    invocation=invocation))

    def submit(self, fid: int, t_ns: int, ops: list[sc.Op]) -> None:
        """A function's chain of simcalls, issued at its virtual time ``t_ns``."""
        rec = self.functions[fid]
        if rec.state == DONE:
            # recorded already (a deadlock): end the thread's wait. Not counted: these calls come
            # after the run's end, while its records are collected, in whatever real order
            if not ops or ops[-1].kind != sc.EXIT:
                self.hooks.deliver(fid, sc.Reply(rec.end_ns or 0, error=(rec.status, rec.error)))
            return
        self.counts["simcalls"] += 1
        self.counts["ops"] += len(ops)
        self._set_blocked(rec)
        rec.chain.extend(ops)
        # even if the kernel already handled this function's death, operations issued before
        # that instant still run (their remote effects land after it and are dropped): the
        # outcome cannot depend on whether the death or this chain reached the kernel first
        self._advance(rec, max(t_ns, rec.clock_ns))

    def resume(self, ticket: Ticket, t_ns: int, outcome: Outcome) -> None:
        """A service answers a parked request (the ``ServiceEnv`` protocol, storage/base.py)."""
        self.storage.resume(ticket, t_ns, outcome)

    # ------------------------------------------------------------------ faults
    def apply_faults(self, faults: list) -> None:
        for i, fault in enumerate(faults):
            fault.install(self, i)
        self.loop.lookahead_ns = self._lookahead()  # a speed-up fault shortens the latencies to respect

    # ------------------------------------------------------------------ results
    def makespan_ns(self) -> int:
        ends = [r.end_ns for r in self.functions.values() if r.end_ns is not None and r.fid != DRIVER]
        return max(ends) if ends else 0
