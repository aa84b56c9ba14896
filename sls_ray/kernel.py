"""The discrete-event kernel: virtual clock, function table, storage, network, records.

A plain-Python core with no I/O (docs/design.md). Functions run elsewhere (threads, Ray
hosts) and talk to it only through ``submit`` (a chain of simcalls stamped with the
function's virtual time). The kernel handles an event only once its time is below the
*horizon* = min(clock of every RUNNING function) + lookahead, where lookahead is the
smallest one-way latency of any service or of the Invoke API: a running function can only
affect shared state at its clock plus one such latency, so nothing can land in the past.
Events are totally ordered by (time, rank, function id, sequence, counter); the counter
advances only inside event handlers, which run in that order, so results never depend on
the real order in which messages arrive.
"""
from __future__ import annotations

import heapq
from collections import deque
from typing import Any, Callable, Protocol

import numpy as np

from sls_ray import simcall as sc
from sls_ray.errors import PLATFORM_ERRORS, FunctionEnded, VirtualDeadlock
from sls_ray.invoker import Invoker
from sls_ray.network import Flow, FlowNetwork, Link
from sls_ray.platform import MiB, PlatformProfile
from sls_ray.storage import build_services
from sls_ray.storage.base import Done, Fail, Outcome, Park, Request, Service, Throttle, Ticket, Upload
from sls_ray.vtime import (
    INF_NS, RANK_ARRIVE, RANK_COMMIT, RANK_FAULT, RANK_REPLY, RANK_TIMER, to_ns,
)

STARTING, RUNNING, BLOCKED, DONE = "starting", "running", "blocked", "done"
DRIVER = 0  # the pseudo-function that makes the entry invocation at t = 0


class Hooks(Protocol):
    """What a transport gives the kernel: start a function, answer a blocked one."""

    def start(self, cmd: sc.StartCommand) -> None: ...

    def deliver(self, fid: int, reply: sc.Reply) -> None: ...


class FunctionRecord:
    __slots__ = (
        "fid", "handler", "memory_mb", "attempt", "invocation", "start_ns", "deadline_ns", "state",
        "clock_ns", "version", "cold", "caller", "is_async", "payload", "payload_size", "chain", "seq",
        "dead_ns", "dead_reason", "end_ns", "status", "error", "nic", "flows", "tickets", "is_vm",
        "vm_service", "blocked_on", "flops_per_s", "death_told", "futures", "awaiting",
    )

    def __init__(self, fid: int, handler: str, memory_mb: int) -> None:
        self.fid, self.handler, self.memory_mb = fid, handler, memory_mb
        self.attempt = 0
        self.invocation = fid
        self.start_ns = self.deadline_ns = self.clock_ns = 0
        self.version = 0
        self.state = STARTING
        self.cold = False
        self.caller: tuple[int, int] | None = None
        self.is_async = True
        self.payload: Any = None
        self.payload_size = 0
        self.chain: deque[sc.Op] = deque()
        self.seq = 0
        self.dead_ns: int | None = None
        self.dead_reason: tuple[str, str] | None = None
        self.death_told = False
        self.end_ns: int | None = None
        self.status = ""
        self.error = ""
        self.nic: Link | None = None
        self.flows: set[Flow] = set()
        self.tickets: list[tuple[Service, Ticket]] = []
        self.is_vm = False
        self.vm_service = ""
        self.blocked_on = ""
        self.flops_per_s = 0.0
        self.futures: dict[int, tuple] = {}  # async request id -> (t_done, value, handle, error)
        self.awaiting: tuple[tuple[int, ...], int] | None = None  # (ids, t) of a blocked AWAIT


class SimKernel:
    def __init__(self, profile: PlatformProfile, seed: int, hooks: Hooks,
                 handler_memory: dict[str, int] | None = None,
                 handler_timeout: dict[str, float] | None = None) -> None:
        self.profile = profile
        self.fprof = profile.functions
        self.seed = seed
        self.hooks = hooks
        self.handler_memory = handler_memory or {}
        self.handler_timeout = handler_timeout or {}
        self._heap: list = []
        self._ctr = 0
        self._progress = 0  # non-passive events in the heap
        self.now_ns = 0
        self.functions: dict[int, FunctionRecord] = {}
        self._clocks: list[tuple[int, int, int]] = []
        self._next_fid = DRIVER
        self.services: dict[str, Service] = build_services(profile, self)
        self.network = FlowNetwork(self._schedule_flow)
        self.invoker = Invoker(self.fprof, seed)
        self.invoke_one_way_ns = to_ns(self.fprof.invoke_latency_s / 2)
        one_ways = [s.nominal_one_way_ns() for s in self.services.values()] + [self.invoke_one_way_ns]
        self.lookahead_ns = max(1, min(one_ways))
        self.metrics: list[tuple] = []
        self.counts = {"invocations": 0, "cold_starts": 0, "throttles": 0, "simcalls": 0, "ops": 0,
                       "retries": 0, "duplicates": 0}
        self.deadlock: VirtualDeadlock | None = None
        self._faults_applied: list[dict] = []

    # ------------------------------------------------------------------ events
    def schedule(self, t_ns: int, rank: int, fid: int, seq: int, fn: Callable[[int], None],
                 passive: bool = False) -> None:
        """Queue ``fn(t)``; ``passive`` events (deadlines) do not count as progress."""
        self._ctr += 1
        heapq.heappush(self._heap, ((t_ns, rank, fid, seq, self._ctr), fn, passive))
        if not passive:
            self._progress += 1

    def _schedule_flow(self, t_ns: int, flow: Flow, version: int) -> None:
        self.schedule(t_ns, RANK_COMMIT, -1, flow.id, lambda t: self.network.complete(flow, version, t))

    def horizon(self) -> int:
        clocks = self._clocks
        while clocks:
            clock, fid, version = clocks[0]
            rec = self.functions[fid]
            if rec.version == version and rec.state == RUNNING:
                return clock + self.lookahead_ns
            heapq.heappop(clocks)
        return INF_NS

    def _set_running(self, rec: FunctionRecord, t_ns: int) -> None:
        rec.state = RUNNING
        rec.clock_ns = t_ns
        rec.version += 1
        heapq.heappush(self._clocks, (t_ns, rec.fid, rec.version))

    def _set_blocked(self, rec: FunctionRecord) -> None:
        rec.state = BLOCKED
        rec.version += 1

    def running_count(self) -> int:
        return sum(1 for r in self.functions.values() if r.state == RUNNING)

    def step(self, max_events: int = 1 << 30) -> str:
        """Handle every event below the horizon.

        Returns "wait" (running functions may still send simcalls), "done", or "deadlock".
        Only *passive* events (function deadlines) left, nothing running and someone blocked
        means nothing can ever unblock them short of their timeouts: a virtual deadlock.
        """
        heap = self._heap
        n = 0
        while n < max_events:
            h = self.horizon()
            if h == INF_NS and self._progress == 0:
                if any(r.state == BLOCKED for r in self.functions.values()):
                    return self._declare_deadlock()
                heap.clear()
                return "done"
            if not heap or heap[0][0][0] >= h:
                return "wait"
            key, fn, passive = heapq.heappop(heap)
            if not passive:
                self._progress -= 1
            self.now_ns = key[0]
            fn(key[0])
            n += 1
        return "wait"

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
        driver = FunctionRecord(DRIVER, "<driver>", 0)
        driver.state = DONE
        self.functions[DRIVER] = driver
        op = sc.Op(sc.INVOKE, args=(handler, False, memory_mb), size=payload_size, handle=payload)
        self.schedule(0, RANK_ARRIVE, DRIVER, 0,
                      lambda t: self._lambda_arrive(t, driver, 0, op, attempt=0, tries=0, accepted=True))

    def submit(self, fid: int, t_ns: int, ops: list[sc.Op]) -> None:
        """A function's chain of simcalls, issued at its virtual time ``t_ns``."""
        rec = self.functions[fid]
        self.counts["simcalls"] += 1
        self.counts["ops"] += len(ops)
        if rec.state == DONE:
            if not ops or ops[-1].kind != sc.EXIT:  # recorded already (deadlock): end the thread's wait
                self.hooks.deliver(fid, sc.Reply(rec.end_ns or 0, error=(rec.status, rec.error)))
            return
        self._set_blocked(rec)
        rec.chain.extend(ops)
        # even if the kernel already handled this function's death, operations issued before
        # that instant still run (their remote effects land after it and are dropped): the
        # outcome cannot depend on whether the death or this chain reached the kernel first
        self._advance(rec, max(t_ns, rec.clock_ns))

    # ------------------------------------------------------------------ chains
    def _advance(self, rec: FunctionRecord, t: int, value: Any = None, handle: Any = None) -> None:
        chain = rec.chain
        while chain:
            if rec.dead_ns is not None and t >= rec.dead_ns:
                self._reply_death(rec)
                return
            op = chain[0]
            if not rec.is_vm and t > rec.deadline_ns:
                # it computed past its deadline: it dies there, in event order, so that a kill
                # between its clock and the deadline (not handled yet) still comes first; this
                # copy of the (passive) deadline event counts as progress, so it is no deadlock
                rec.blocked_on = "its timeout"
                self.schedule(rec.deadline_ns, RANK_FAULT, rec.fid, 0, lambda td: self._deadline(rec, td))
                return
            chain.popleft()
            rec.seq += 1
            seq = rec.seq
            kind = op.kind
            if kind == sc.COMPUTE:
                t += op.args[0]
            elif kind == sc.LOG:
                self.metrics.append((t, rec.fid, seq, rec.handler, op.args[0], op.args[1]))
            elif kind == sc.NOW:
                value, handle = t, None
            elif kind == sc.STORAGE:
                self._storage_request(rec, seq, op, t)
                return
            elif kind == sc.ASYNC:
                self._async_request(rec, seq, op, t)
            elif kind == sc.AWAIT:
                if not all(i in rec.futures for i in op.args):
                    rec.awaiting = (op.args, t)
                    rec.blocked_on = f"await of {len(op.args)} async requests"
                    return
                t, value = self._collect_futures(rec, op.args, t)
                handle = None
            elif kind == sc.INVOKE:
                self._invoke_request(rec, seq, op, t)
                return
            elif kind == sc.START_VM:
                self._start_vm_request(rec, seq, op, t)
                return
            elif kind == sc.EXIT:
                rec.end_ns = t  # provisional: a death after this instant cannot touch it
                self.schedule(t + self.lookahead_ns, RANK_REPLY, rec.fid, seq,
                              lambda _t, end=t, o=op: self._exit(rec, end, o))
                return
        self._deliver(rec, sc.Reply(t, value=value, handle=handle))

    def _finish_op(self, rec: FunctionRecord, t: int, value: Any = None, handle: Any = None,
                   error: tuple[str, str] | None = None) -> None:
        if rec.state == DONE or self._gone(rec, t):
            return
        rec.blocked_on = ""
        if error is not None:
            # a failed lazy operation surfaces at the blocking call that carried it
            exit_op = next((o for o in rec.chain if o.kind == sc.EXIT), None)
            rec.chain.clear()
            if exit_op is not None:
                exit_op.args = error
                rec.chain.append(exit_op)
                self._advance(rec, t)
            else:
                self._deliver(rec, sc.Reply(t, error=error))
            return
        if rec.chain:
            self._advance(rec, t, value, handle)
        else:
            self._deliver(rec, sc.Reply(t, value=value, handle=handle))

    def _deliver(self, rec: FunctionRecord, reply: sc.Reply) -> None:
        self._set_running(rec, reply.t_ns)
        self.hooks.deliver(rec.fid, reply)

    def _reply_death(self, rec: FunctionRecord) -> None:
        """Tell a blocked function it is dead (once), or record its end if it already returned."""
        rec.death_told = True
        exit_op = next((o for o in rec.chain if o.kind == sc.EXIT), None)
        rec.chain.clear()
        if exit_op is None and rec.end_ns is not None:
            # it had already returned (its provisional end is after the death: a kill during a
            # local compute): the thread is gone, so record the death now instead of answering
            # it; the exit event scheduled at its provisional end then finds it done
            exit_op = sc.Op(sc.EXIT)
        if exit_op is not None:
            self.schedule(rec.dead_ns + self.lookahead_ns, RANK_REPLY, rec.fid, rec.seq + 1,
                          lambda _t: self._exit(rec, rec.dead_ns, exit_op))
        else:
            self._deliver(rec, sc.Reply(max(rec.dead_ns, rec.clock_ns), error=rec.dead_reason))

    def _gone(self, rec: FunctionRecord, t: int) -> bool:
        """True when the function died before t: its later effects are discarded.

        A function that issued this operation before its death learns of it here, if no one
        told it yet (it was running when it died).
        """
        if rec.dead_ns is None or t <= rec.dead_ns:
            return False
        if rec.state == BLOCKED and not rec.death_told:
            self._reply_death(rec)
        return True

    # ------------------------------------------------------------------ storage
    def _storage_request(self, rec: FunctionRecord, seq: int, op: sc.Op, t: int) -> None:
        svc = self.services.get(op.service)
        if svc is None:
            self._finish_op(rec, t, error=("NotSupported", f"no storage service named '{op.service}'; "
                                           f"known: {sorted(self.services)}"))
            return
        rec.blocked_on = f"{op.service}.{op.method}({op.args[0]!r})" if op.args else f"{op.service}.{op.method}"
        req = Request(rec.fid, seq, op.method, op.args, op.size, op.handle, t)
        t_arr = max(t + svc.one_way_ns(t), svc.ready_ns())
        self.schedule(t_arr, RANK_ARRIVE, rec.fid, seq, lambda ta: self._arrive(rec, svc, req, ta, 0))

    def _arrive(self, rec: FunctionRecord, svc: Service, req: Request, ta: int, tries: int,
                fut: int | None = None) -> None:
        if self._gone(rec, ta) or (fut is not None and rec.state == DONE):
            return  # an async request outlives neither a death nor the function's return
        self._outcome(rec, svc, req, ta, svc.handle(ta, req), tries, fut)

    def _outcome(self, rec: FunctionRecord, svc: Service, req: Request, ta: int, out: Outcome, tries: int,
                 fut: int | None = None) -> None:
        back = svc.one_way_ns(ta)
        finish = self._finish_op if fut is None else self._future_finisher(fut)
        if isinstance(out, Done):
            if out.nbytes > 0:
                self._transfer(rec, svc, ta, out.nbytes,
                               lambda te: finish(rec, te + back, out.value, out.handle))
            else:
                finish(rec, ta + back, out.value, out.handle)
        elif isinstance(out, Upload):
            def committed(tc: int) -> None:
                if self._gone(rec, tc):
                    return
                finish(rec, tc + back, out.commit(tc))

            self._transfer(rec, svc, ta, out.nbytes, committed)
        elif isinstance(out, Fail):
            finish(rec, ta + back, error=(out.error, out.message))
        elif isinstance(out, Throttle):
            self.counts["throttles"] += 1
            retries = getattr(svc.config, "max_retries", 3)
            if tries >= retries:
                finish(rec, ta + back, error=("Throttled", f"{svc.kind} '{svc.name}': {out.reason} "
                                              f"after {tries} client retries"))
                return
            t_next = ta + back + self.invoker.backoff_ns(rec.fid * 7919 + req.seq, tries) + back
            self.schedule(t_next, RANK_ARRIVE, rec.fid, req.seq,
                          lambda t2: self._arrive(rec, svc, req, t2, tries + 1, fut))
        elif isinstance(out, Park):
            rec.tickets.append((svc, out.ticket))
            out.ticket.data["_resume"] = (rec, svc, req, fut)

    def resume(self, ticket: Ticket, t_ns: int, outcome: Outcome) -> None:
        """A service answers a parked request (ServiceEnv protocol)."""
        rec, svc, req, fut = ticket.data["_resume"]
        if (svc, ticket) in rec.tickets:
            rec.tickets.remove((svc, ticket))
        if self._gone(rec, t_ns):
            return
        self._outcome(rec, svc, req, t_ns, outcome, 0, fut)

    # ------------------------------------------------------------------ async storage requests
    def _async_request(self, rec: FunctionRecord, seq: int, op: sc.Op, t: int) -> None:
        """Start a request the function does not wait for; its answer is kept under its id.

        The function goes on computing; an AWAIT later collects the answers, at the later of
        its own clock and their completion times (docs/api.md, "Asynchronous requests").
        """
        fut, args = op.args[0], op.args[1:]
        svc = self.services.get(op.service)
        if svc is None:
            self._future_done(rec, fut, t, error=("NotSupported", f"no storage service named '{op.service}'; "
                                                  f"known: {sorted(self.services)}"))
            return
        req = Request(rec.fid, seq, op.method, args, op.size, op.handle, t)
        t_arr = max(t + svc.one_way_ns(t), svc.ready_ns())
        self.schedule(t_arr, RANK_ARRIVE, rec.fid, seq, lambda ta: self._arrive(rec, svc, req, ta, 0, fut))

    def _future_finisher(self, fut: int) -> Callable:
        def finish(rec: FunctionRecord, t: int, value: Any = None, handle: Any = None,
                   error: tuple[str, str] | None = None) -> None:
            self._future_done(rec, fut, t, value, handle, error)

        return finish

    def _future_done(self, rec: FunctionRecord, fut: int, t: int, value: Any = None, handle: Any = None,
                     error: tuple[str, str] | None = None) -> None:
        if rec.state == DONE or self._gone(rec, t):
            return
        rec.futures[fut] = (t, value, handle, error)
        waiting = rec.awaiting
        if waiting is not None and all(i in rec.futures for i in waiting[0]):
            rec.awaiting = None
            t_reply, answers = self._collect_futures(rec, waiting[0], waiting[1])
            self._finish_op(rec, t_reply, answers)

    @staticmethod
    def _collect_futures(rec: FunctionRecord, ids: tuple[int, ...], t: int) -> tuple[int, list]:
        """(reply time, [(value, handle, error), ...]): the answer of an AWAIT whose requests all completed."""
        done = [rec.futures.pop(i) for i in ids]
        return max([t] + [d[0] for d in done]), [d[1:] for d in done]

    def _transfer(self, rec: FunctionRecord, svc: Service, t: int, nbytes: int, done: Callable[[int], None]) -> None:
        links = [rec.nic]
        node = svc.link()
        if node is not None and node is not rec.nic:
            links.append(node)
        holder: list[Flow] = []

        def finished(te: int) -> None:
            if holder:
                rec.flows.discard(holder[0])
            done(te)

        if nbytes <= 0:
            # an empty upload (delete, zero-byte put) still commits strictly after it arrives, in the
            # commit phase of t + 1 ns: every read arriving at t misses it, whatever its function id,
            # as a literal poll would, and analytical polling agrees (storage/kvstore.py)
            self.schedule(t + 1, RANK_COMMIT, rec.fid, rec.seq, done)
            return
        flow = self.network.start(t, links, nbytes, finished)
        if flow is not None:
            holder.append(flow)
            rec.flows.add(flow)

    # ------------------------------------------------------------------ invocations
    def _invoke_request(self, rec: FunctionRecord, seq: int, op: sc.Op, t: int) -> None:
        handler, sync, memory_mb = op.args
        limit = self.fprof.payload_sync_bytes if sync else self.fprof.payload_async_bytes
        rtt = 2 * self.invoke_one_way_ns
        if op.size > limit:
            self._finish_op(rec, t + rtt, error=("PayloadTooLarge", (
                f"invoke {handler}: payload of {op.size} bytes is above the "
                f"{'synchronous' if sync else 'asynchronous'} limit of {limit} bytes")))
            return
        rec.blocked_on = f"invoke {handler} ({'sync' if sync else 'async'})"
        self.schedule(t + self.invoke_one_way_ns, RANK_ARRIVE, rec.fid, seq,
                      lambda ta: self._lambda_arrive(ta, rec, seq, op, attempt=0, tries=0, accepted=False))

    def _lambda_arrive(self, ta: int, caller: FunctionRecord, seq: int, op: sc.Op, attempt: int, tries: int,
                       accepted: bool, invocation: int | None = None) -> None:
        handler, sync, memory_mb = op.args
        back = self.invoke_one_way_ns
        if invocation is None:
            self._next_fid += 1
            invocation = self._next_fid
        if not self.invoker.has_capacity():
            self.counts["throttles"] += 1
            if sync and tries >= self.fprof.throttle_max_retries:
                self._finish_op(caller, ta + back, error=("Throttled", (
                    f"invoke {handler}: 429 TooManyRequestsException after {tries} retries "
                    f"(concurrency limit {self.fprof.concurrency_limit})")))
                return
            if not sync and not accepted:
                self._finish_op(caller, ta + back, value=invocation)  # 202: Lambda queues the event
                accepted = True
            t_next = ta + 2 * back + self.invoker.backoff_ns(invocation, tries)
            self.schedule(t_next, RANK_ARRIVE, caller.fid, seq,
                          lambda t2: self._lambda_arrive(t2, caller, seq, op, attempt, tries + 1, accepted, invocation))
            return
        rec = self._new_function(ta, handler, memory_mb, invocation, attempt, op)
        rec.is_async = not sync
        if sync:
            rec.caller = (caller.fid, seq)
        elif not accepted:
            self._finish_op(caller, ta + back, value=invocation)
        if not sync and attempt == 0 and self.invoker.duplicate(invocation):
            self.counts["duplicates"] += 1
            dup = self._new_function(ta, handler, memory_mb, invocation, attempt, op)
            dup.is_async = True

    def _new_function(self, ta: int, handler: str, memory_mb: int | None, invocation: int, attempt: int,
                      op: sc.Op) -> FunctionRecord:
        memory = memory_mb or self.handler_memory.get(handler, self.fprof.default_memory_mb)
        if self.functions.get(invocation) is None:
            fid = invocation
        else:
            self._next_fid += 1
            fid = self._next_fid
        rec = FunctionRecord(fid, handler, memory)
        rec.invocation, rec.attempt = invocation, attempt
        rec.payload, rec.payload_size = op.handle, op.size
        self.functions[fid] = rec
        self.invoker.admit()
        rec.cold = not self.invoker.pool.take(handler, memory, ta)
        self.counts["invocations"] += 1
        self.counts["cold_starts"] += rec.cold
        start = ta + self.invoker.start_latency_ns(rec.cold, invocation, attempt * 1000 + fid)
        timeout = min(self.handler_timeout.get(handler, self.fprof.default_timeout_s), self.fprof.max_duration_s)
        rec.nic = Link(f"fn{fid}", self.fprof.nic_mbs * 1e6)
        rec.flops_per_s = self.fprof.gflops_per_vcpu * 1e9 * self.fprof.vcpus(memory)
        self.schedule(start, RANK_REPLY, fid, 0, lambda t: self._start(rec, t, to_ns(timeout)))
        return rec

    def _start(self, rec: FunctionRecord, t: int, timeout_ns: int) -> None:
        rec.start_ns = t
        rec.deadline_ns = t + timeout_ns if not rec.is_vm else INF_NS
        self._set_running(rec, t)
        if not rec.is_vm:
            self.schedule(rec.deadline_ns, RANK_FAULT, rec.fid, 0, lambda td: self._deadline(rec, td), passive=True)
        self.hooks.start(sc.StartCommand(
            fid=rec.fid, handler=rec.handler, payload=rec.payload, start_ns=t, deadline_ns=rec.deadline_ns,
            memory_mb=rec.memory_mb, attempt=rec.attempt, invocation=rec.invocation, seed=self.seed,
            memory_limit_bytes=rec.memory_mb * MiB if not rec.is_vm else 1 << 62,
            base_bytes=int(self.fprof.runtime_base_mb * MiB), payload_bytes=rec.payload_size, is_vm=rec.is_vm,
            extra={"flops_per_s": rec.flops_per_s, "mem_bytes_per_s": self.fprof.mem_bandwidth_gbs * 1e9 *
                   max(self._vcpus(rec), 1e-3), "service": rec.vm_service}))

    def _vcpus(self, rec: FunctionRecord) -> float:
        """A function's vCPU share (memory-proportional); a VM process has its instance's vCPUs."""
        if rec.is_vm:
            return float(getattr(self.services[rec.vm_service].config, "vcpus", 1.0))
        return self.fprof.vcpus(rec.memory_mb)

    def _deadline(self, rec: FunctionRecord, t: int) -> None:
        if rec.state != DONE:
            self._die(rec, t, "FunctionTimeout",
                      f"{rec.handler} (fid {rec.fid}) ran past its timeout of {(t - rec.start_ns) / 1e9:g}s")

    def _die(self, rec: FunctionRecord, t: int, name: str, message: str) -> None:
        """End a function at virtual time t; whatever it scheduled after t is discarded."""
        if rec.state == DONE or rec.dead_ns is not None or (rec.end_ns is not None and t >= rec.end_ns):
            return
        rec.dead_ns, rec.dead_reason = t, (name, message)
        for flow in list(rec.flows):
            self.network.cancel(flow, max(t, self.now_ns))
        rec.flows.clear()
        for svc, ticket in rec.tickets:
            cancel = getattr(svc, "cancel", None)
            if cancel is not None:
                cancel(ticket, t)
        rec.tickets.clear()
        if rec.state == BLOCKED:
            self._reply_death(rec)

    def kill(self, fid: int, t: int, reason: str = "fault plan") -> bool:
        rec = self.functions.get(fid)
        if rec is None or rec.state in (DONE, STARTING) or rec.dead_ns is not None:
            return False
        self._die(rec, t, "FunctionKilled", f"{rec.handler} (fid {rec.fid}) killed at t={t / 1e9:.3f}s by {reason}")
        return True

    def _exit(self, rec: FunctionRecord, t_end: int, op: sc.Op) -> None:
        if rec.state == DONE:
            return
        if rec.dead_ns is not None and rec.dead_ns <= t_end:
            t_end = rec.dead_ns
            status, error = rec.dead_reason
        elif op.args:
            status, error = op.args
        else:
            status, error = "ok", ""
        rec.state = DONE
        rec.version += 1
        rec.end_ns = t_end
        rec.status = "ok" if status == "ok" else status
        rec.error = error
        for flow in list(rec.flows):
            self.network.cancel(flow, self.now_ns)
        for svc, ticket in rec.tickets:  # async requests still parked when the function returned
            cancel = getattr(svc, "cancel", None)
            if cancel is not None:
                cancel(ticket, t_end)
        rec.tickets.clear()
        if not rec.is_vm:
            self.invoker.release()
            if rec.status == "ok" or rec.status not in ("MemoryLimitExceeded", "FunctionKilled"):
                self.invoker.pool.release(rec.handler, rec.memory_mb, t_end)
        if rec.caller is not None:
            caller = self.functions[rec.caller[0]]
            t_reply = max(t_end + self.invoke_one_way_ns, self.now_ns)
            if rec.status == "ok":
                handle = op.handle
                if op.size > self.fprof.payload_sync_bytes:
                    self._finish_op(caller, t_reply, error=("PayloadTooLarge", (
                        f"{rec.handler} returned {op.size} bytes, above the 6 MB response limit")))
                else:
                    self._finish_op(caller, t_reply, handle=handle)
            elif issubclass(PLATFORM_ERRORS.get(rec.status, Exception), FunctionEnded):
                # the callee's sandbox died, not the caller's: a catchable error that names why
                self._finish_op(caller, t_reply, error=("FunctionError", (
                    f"{rec.handler} (fid {rec.fid}) ended with {rec.status}: {rec.error}")))
            else:
                self._finish_op(caller, t_reply, error=(rec.status, rec.error))
        elif (rec.is_async and rec.status != "ok" and not rec.is_vm and rec.attempt < self.fprof.async_retries
              and self.deadlock is None):
            delays = self.fprof.async_retry_delays_s
            delay = to_ns(delays[min(rec.attempt, len(delays) - 1)]) if delays else 0
            self.counts["retries"] += 1
            op_retry = sc.Op(sc.INVOKE, args=(rec.handler, False, rec.memory_mb), size=rec.payload_size,
                             handle=rec.payload)
            driver = self.functions[DRIVER]
            self.schedule(max(t_end + delay, self.now_ns), RANK_ARRIVE, rec.fid, 1 << 40,
                          lambda ta: self._lambda_arrive(ta, driver, 0, op_retry, rec.attempt + 1, 0, True,
                                                         rec.invocation))  # a retry keeps its request id

    # ------------------------------------------------------------------ VM processes
    def _start_vm_request(self, rec: FunctionRecord, seq: int, op: sc.Op, t: int) -> None:
        svc = self.services.get(op.service)
        if svc is None or not hasattr(svc, "vm_nic"):
            self._finish_op(rec, t, error=("NotSupported", f"'{op.service}' is not a VM service"))
            return
        self._next_fid += 1
        fid = self._next_fid
        vm = FunctionRecord(fid, op.args[0], 0)
        vm.is_vm, vm.vm_service, vm.is_async = True, op.service, True
        vm.payload, vm.payload_size = op.handle, op.size
        vm.nic = svc.vm_nic()
        vm.flops_per_s = svc.flops_per_s()
        self.functions[fid] = vm
        start = max(t + svc.one_way_ns(t), svc.ready_ns())
        self.schedule(start, RANK_REPLY, fid, 0, lambda ts: self._start(vm, ts, 0))
        self._finish_op(rec, t + 2 * svc.one_way_ns(t), value=fid)

    # ------------------------------------------------------------------ faults
    def apply_faults(self, faults: list) -> None:
        for i, fault in enumerate(faults):
            fault.install(self, i)

    # ------------------------------------------------------------------ results
    def makespan_ns(self) -> int:
        ends = [r.end_ns for r in self.functions.values() if r.end_ns is not None and r.fid != DRIVER]
        return max(ends) if ends else 0
