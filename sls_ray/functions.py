"""A function instance and its lifecycle: invocation, start, timeout, death, exit, retries.

Lambda's model (platform.md, "Functions"): an invocation arrives at the Invoke API one
latency after the call; it is throttled (429, exponential backoff) above the account's
concurrency limit, or admitted to a warm container or a cold one (``invoker.py``); it starts
with a deadline; it ends by returning, by raising, or by a death — its timeout, a kill, a
memory limit — whose later effects are discarded. A failed asynchronous invocation is
retried (twice by default, after 60 and 120 s). A VM process (``VmProcess``) shares the
chain, clock and death of a function (``FunctionRecord``) but has no deadline, no bill and no
retries; only a ``LambdaFunction`` has those.

``FunctionLifecycle`` is one part of ``SimKernel`` (kernel.py): its methods run inside
kernel events, on the event loop it is given.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from sls_ray import simcall as sc
from sls_ray.errors import PLATFORM_ERRORS, FunctionEnded, VirtualDeadlock
from sls_ray.events import EventLoop, Hooks
from sls_ray.invoker import Invoker
from sls_ray.network import Flow, FlowNetwork, Link
from sls_ray.platform import FunctionsProfile, MiB
from sls_ray.storage.base import ProcessHost
from sls_ray.vtime import INF_NS, RANK_ARRIVE, RANK_FAULT, RANK_REPLY, to_ns

if TYPE_CHECKING:
    from sls_ray.chains import ChainRunner
    from sls_ray.storage.base import Service, Ticket

STARTING, RUNNING, BLOCKED, DONE = "starting", "running", "blocked", "done"
DRIVER = 0  # the pseudo-function that makes the entry invocation at t = 0


class FunctionRecord:
    """What the kernel knows of any simulated process: state, clock, chain, death, end.

    Two kinds share it: ``LambdaFunction`` (an invocation, with a deadline, a memory size, a
    bill and retries) and ``VmProcess`` (a long-lived process on a VM service: no deadline, no
    bill). The fields below are read for both by the results (runtime.py); a VM process
    answers them with constants.
    """

    is_vm: ClassVar[bool] = False
    memory_mb: int
    attempt: int
    invocation: int
    deadline_ns: int
    cold: bool
    init_ns: int
    caller: tuple[int, int] | None
    is_async: bool
    service: str

    __slots__ = (
        "fid", "handler", "state", "clock_ns", "start_ns", "chain", "seq", "blocked_on", "payload",
        "payload_size", "dead_ns", "dead_reason", "death_told", "end_ns", "status", "error", "nic", "flows",
        "tickets", "flops_per_s", "vcpus", "futures", "awaiting", "each", "wait_from", "wait_index",
    )

    def __init__(self, fid: int, handler: str, payload: Any = None, payload_size: int = 0) -> None:
        self.fid, self.handler = fid, handler
        self.state = STARTING
        self.clock_ns = self.start_ns = 0
        self.wait_from: int | None = None  # since when it waits on a storage request (storage_waits.csv)
        self.wait_index: int | None = None  # its latest entry there, extended by a back-to-back request
        self.chain: deque[sc.Op] = deque()
        self.seq = 0
        self.blocked_on = ""
        self.payload, self.payload_size = payload, payload_size
        self.dead_ns: int | None = None
        self.dead_reason: tuple[str, str] | None = None
        self.death_told = False
        self.end_ns: int | None = None
        self.status = ""
        self.error = ""
        self.nic: Link | None = None
        self.flows: set[Flow] = set()
        self.tickets: list[tuple[Service, Ticket]] = []
        self.flops_per_s = 0.0
        self.vcpus = 1.0
        self.futures: dict[int, tuple] = {}  # async request id -> (t_done, value, handle, error)
        self.awaiting: tuple[tuple[int, ...], int] | None = None  # (ids, t) of a blocked AWAIT
        self.each: Any = None  # the answers of a declared sequence in progress (chains.Answers)

    def memory_limit_bytes(self) -> int:
        """The memory its sandbox may use (the transport enforces it)."""
        return 1 << 62


class LambdaFunction(FunctionRecord):
    """One attempt of one invocation: memory size, deadline, warm or cold, caller, retries."""

    __slots__ = ("memory_mb", "attempt", "invocation", "deadline_ns", "cold", "init_ns", "caller", "is_async")

    service = ""  # not on a VM service

    def __init__(self, fid: int, handler: str, memory_mb: int, invocation: int | None = None, attempt: int = 0,
                 payload: Any = None, payload_size: int = 0) -> None:
        super().__init__(fid, handler, payload, payload_size)
        self.memory_mb = memory_mb
        self.invocation = fid if invocation is None else invocation
        self.attempt = attempt
        self.deadline_ns = 0
        self.cold = False
        self.init_ns = 0  # the cold start (INIT phase) before start_ns; 0 for a warm start
        self.caller = None  # (fid, seq) of a synchronous caller, who gets the result
        self.is_async = True

    def memory_limit_bytes(self) -> int:
        return self.memory_mb * MiB


class VmProcess(FunctionRecord):
    """A long-lived process on a VM service: never times out, never billed, never retried."""

    is_vm = True
    __slots__ = ("service", "invocation")

    memory_mb = 0
    attempt = 0
    deadline_ns = INF_NS
    cold = False
    init_ns = 0
    caller = None
    is_async = True

    def __init__(self, fid: int, handler: str, service: str, payload: Any = None, payload_size: int = 0) -> None:
        super().__init__(fid, handler, payload, payload_size)
        self.service = service
        self.invocation = fid


class FunctionLifecycle:
    """Invokes, starts, kills and ends functions and VM processes (a part of SimKernel).

    It owns the records (``functions``) and the function ids. Its dependencies: the event
    loop (events; which functions run, for the horizon), the hooks that start a function
    (the kernel's outbox), the profile's function limits, the invoker (warm pool,
    concurrency, cold starts), the flow network and services (a death cancels flows and
    parked requests), the run's counters; once the kernel connects it, the chain runner
    that answers a caller (``finish_op``) and tells a blocked function of its death.
    """

    chains: ChainRunner

    def __init__(self, loop: EventLoop, hooks: Hooks, fprof: FunctionsProfile, seed: int, invoker: Invoker,
                 network: FlowNetwork, services: dict[str, Service], counts: dict[str, int],
                 handler_memory: dict[str, int] | None = None,
                 handler_timeout: dict[str, float] | None = None) -> None:
        self.loop = loop
        self.hooks = hooks
        self.fprof = fprof
        self.seed = seed
        self.invoker = invoker
        self.network = network
        self.services = services
        self.counts = counts
        self.handler_memory = handler_memory or {}
        self.handler_timeout = handler_timeout or {}
        self.functions: dict[int, FunctionRecord] = {}
        self.next_fid = DRIVER
        self.invoke_one_way_ns = to_ns(fprof.invoke_latency_s / 2)
        self.deadlock: VirtualDeadlock | None = None
        self.entry_invocation: int | None = None  # the driver's invocation (invoke_entry)

    def connect(self, chains: ChainRunner) -> None:
        self.chains = chains

    # ------------------------------------------------------------------ running or not
    def set_running(self, rec: FunctionRecord, t_ns: int) -> None:
        """The function runs user code from t (it was started or answered)."""
        rec.state = RUNNING
        rec.clock_ns = t_ns
        self.loop.set_running(rec.fid, t_ns)

    def set_blocked(self, rec: FunctionRecord) -> None:
        """The function sent a chain and waits for its answer."""
        rec.state = BLOCKED
        self.loop.set_stopped(rec.fid)

    # ------------------------------------------------------------------ invocations
    def invoke_entry(self, handler: str, payload: Any, payload_size: int, memory_mb: int | None = None) -> None:
        """The experiment's first invocation, made by the driver at t = 0."""
        driver = LambdaFunction(DRIVER, "<driver>", 0)
        driver.state = DONE
        self.functions[DRIVER] = driver
        op = sc.Op(sc.INVOKE, args=(handler, False, memory_mb), size=payload_size, handle=payload)
        self.next_fid += 1
        self.entry_invocation = invocation = self.next_fid
        self.loop.schedule(0, RANK_ARRIVE, DRIVER, 0,
                           lambda t: self._lambda_arrive(t, driver, 0, op, attempt=0, tries=0, accepted=True,
                                                         invocation=invocation))

    def invoke_request(self, rec: FunctionRecord, seq: int, op: sc.Op, t: int) -> None:
        handler, sync, memory_mb = op.args
        limit = self.fprof.payload_sync_bytes if sync else self.fprof.payload_async_bytes
        rtt = 2 * self.invoke_one_way_ns
        problem = self.fprof.memory_problem(memory_mb) if memory_mb is not None else ""
        if problem:  # Lambda refuses a configuration it does not offer, before anything runs
            self.chains.finish_op(rec, t + rtt, error=("InvalidParameterValue", (
                f"invoke {handler}: memory_mb={memory_mb!r} {problem}")))
            return
        if op.size > limit:
            self.chains.finish_op(rec, t + rtt, error=("PayloadTooLarge", (
                f"invoke {handler}: payload of {op.size} bytes is above the "
                f"{'synchronous' if sync else 'asynchronous'} limit of {limit} bytes")))
            return
        rec.blocked_on = f"invoke {handler} ({'sync' if sync else 'async'})"
        self.loop.schedule(t + self.invoke_one_way_ns, RANK_ARRIVE, rec.fid, seq,
                           lambda ta: self._lambda_arrive(ta, rec, seq, op, attempt=0, tries=0, accepted=False))

    def _lambda_arrive(self, ta: int, caller: FunctionRecord, seq: int, op: sc.Op, attempt: int, tries: int,
                       accepted: bool, invocation: int | None = None) -> None:
        handler, sync, memory_mb = op.args
        back = self.invoke_one_way_ns
        if invocation is None:
            self.next_fid += 1
            invocation = self.next_fid
        if not self.invoker.has_capacity():
            self.counts["throttles"] += 1
            if sync and tries >= self.fprof.throttle_max_retries:
                self.chains.finish_op(caller, ta + back, error=("Throttled", (
                    f"invoke {handler}: 429 TooManyRequestsException after {tries} retries "
                    f"(concurrency limit {self.fprof.concurrency_limit})")))
                return
            if not sync and not accepted:
                self.chains.finish_op(caller, ta + back, value=invocation)  # 202: Lambda queues the event
                accepted = True
            t_next = ta + 2 * back + self.invoker.backoff_ns(invocation, tries)
            self.loop.schedule(t_next, RANK_ARRIVE, caller.fid, seq,
                               lambda t2: self._lambda_arrive(t2, caller, seq, op, attempt, tries + 1, accepted,
                                                              invocation))
            return
        rec = self._new_function(ta, handler, memory_mb, invocation, attempt, op)
        rec.is_async = not sync
        if sync:
            rec.caller = (caller.fid, seq)
        elif not accepted:
            self.chains.finish_op(caller, ta + back, value=invocation)
        if not sync and attempt == 0 and self.invoker.duplicate(invocation):
            self.counts["duplicates"] += 1
            dup = self._new_function(ta, handler, memory_mb, invocation, attempt, op)
            dup.is_async = True

    def _new_function(self, ta: int, handler: str, memory_mb: int | None, invocation: int, attempt: int,
                      op: sc.Op) -> LambdaFunction:
        memory = memory_mb or self.handler_memory.get(handler, self.fprof.default_memory_mb)
        if self.functions.get(invocation) is None:
            fid = invocation
        else:
            self.next_fid += 1
            fid = self.next_fid
        rec = LambdaFunction(fid, handler, memory, invocation, attempt, op.handle, op.size)
        self.functions[fid] = rec
        self.invoker.admit()
        rec.cold = not self.invoker.pool.take(handler, memory, ta)
        self.counts["invocations"] += 1
        self.counts["cold_starts"] += rec.cold
        start = ta + self.invoker.start_latency_ns(rec.cold, invocation, attempt * 1000 + fid)
        rec.init_ns = start - ta if rec.cold else 0
        timeout = min(self.handler_timeout.get(handler, self.fprof.default_timeout_s), self.fprof.max_duration_s)
        rec.nic = Link(f"fn{fid}", self.fprof.nic_mbs * 1e6)
        rec.vcpus = self.fprof.vcpus(memory)
        rec.flops_per_s = self.fprof.gflops_per_vcpu * 1e9 * rec.vcpus
        self.loop.schedule(start, RANK_REPLY, fid, 0, lambda t: self._start_lambda(rec, t, to_ns(timeout)))
        return rec

    def _start_lambda(self, rec: LambdaFunction, t: int, timeout_ns: int) -> None:
        """A function starts with its deadline (a passive event: a timeout is no progress)."""
        rec.deadline_ns = t + timeout_ns
        self._start(rec, t)
        self.loop.schedule(rec.deadline_ns, RANK_FAULT, rec.fid, 0, lambda td: self.deadline(rec, td), passive=True)

    def _start(self, rec: FunctionRecord, t: int) -> None:
        rec.start_ns = t
        self.set_running(rec, t)
        self.hooks.start(sc.StartCommand(
            fid=rec.fid, handler=rec.handler, payload=rec.payload, start_ns=t, deadline_ns=rec.deadline_ns,
            memory_mb=rec.memory_mb, attempt=rec.attempt, invocation=rec.invocation, seed=self.seed,
            memory_limit_bytes=rec.memory_limit_bytes(),
            base_bytes=int(self.fprof.runtime_base_mb * MiB), payload_bytes=rec.payload_size, is_vm=rec.is_vm,
            extra={"flops_per_s": rec.flops_per_s, "mem_bytes_per_s": self.fprof.mem_bandwidth_gbs * 1e9 *
                   max(rec.vcpus, 1e-3), "service": rec.service}))

    def deadline(self, rec: FunctionRecord, t: int) -> None:
        if rec.state != DONE:
            self.die(rec, t, "FunctionTimeout",
                      f"{rec.handler} (fid {rec.fid}) ran past its timeout of {(t - rec.start_ns) / 1e9:g}s")

    def die(self, rec: FunctionRecord, t: int, name: str, message: str) -> None:
        """End a function at virtual time t; whatever it scheduled after t is discarded."""
        if rec.state == DONE or rec.dead_ns is not None or (rec.end_ns is not None and t >= rec.end_ns):
            return
        rec.dead_ns, rec.dead_reason = t, (name, message)
        for flow in list(rec.flows):
            self.network.cancel(flow, max(t, self.loop.now_ns))
        rec.flows.clear()
        for svc, ticket in rec.tickets:
            svc.cancel(ticket, t)
        rec.tickets.clear()
        if rec.state == BLOCKED:
            self.chains.reply_death(rec)

    def declare_deadlock(self) -> None:
        """Every blocked function waits on events no one will cause: end each one now."""
        now = self.loop.now_ns
        blocked = [r for r in self.functions.values() if r.state == BLOCKED]
        lines = [f"fid {r.fid} ({r.handler}) since t={r.clock_ns / 1e9:.3f}s waiting on {r.blocked_on}"
                 for r in blocked]
        self.deadlock = VirtualDeadlock(
            f"virtual deadlock at t={now / 1e9:.3f}s: {len(blocked)} functions wait on events "
            f"no one will cause:\n  " + "\n  ".join(lines[:50]))
        for r in blocked:
            self.die(r, now, "VirtualDeadlock", f"blocked forever on {r.blocked_on}")
        # no event runs after this: record each one now (ended and billed at the deadlock's time)
        for r in blocked:
            self.exit(r, now, sc.Op(sc.EXIT))

    def kill(self, fid: int, t: int, reason: str = "fault plan") -> bool:
        rec = self.functions.get(fid)
        if rec is None or rec.state in (DONE, STARTING) or rec.dead_ns is not None:
            return False
        self.die(rec, t, "FunctionKilled", f"{rec.handler} (fid {rec.fid}) killed at t={t / 1e9:.3f}s by {reason}")
        return True

    def exit(self, rec: FunctionRecord, t_end: int, op: sc.Op) -> None:
        if rec.state == DONE:
            return
        if rec.dead_ns is not None and rec.dead_reason is not None and rec.dead_ns <= t_end:
            t_end = rec.dead_ns
            status, error = rec.dead_reason
        elif op.args:
            status, error = op.args
        else:
            status, error = "ok", ""
        rec.state = DONE
        self.loop.set_stopped(rec.fid)
        rec.end_ns = t_end
        rec.status = "ok" if status == "ok" else status
        rec.error = error
        for flow in list(rec.flows):
            self.network.cancel(flow, self.loop.now_ns)
        for svc, ticket in rec.tickets:  # async requests still parked when the function returned
            svc.cancel(ticket, t_end)
        rec.tickets.clear()
        if isinstance(rec, LambdaFunction):
            self.invoker.release()
            if rec.status == "ok" or rec.status not in ("MemoryLimitExceeded", "FunctionKilled"):
                self.invoker.pool.release(rec.handler, rec.memory_mb, t_end)
        if rec.caller is not None:
            caller = self.functions[rec.caller[0]]
            t_reply = max(t_end + self.invoke_one_way_ns, self.loop.now_ns)
            if rec.status == "ok":
                handle = op.handle
                if op.size > self.fprof.payload_sync_bytes:
                    self.chains.finish_op(caller, t_reply, error=("PayloadTooLarge", (
                        f"{rec.handler} returned {op.size} bytes, above the 6 MB response limit")))
                else:
                    self.chains.finish_op(caller, t_reply, handle=handle)
            elif issubclass(PLATFORM_ERRORS.get(rec.status, Exception), FunctionEnded):
                # the callee's sandbox died, not the caller's: a catchable error that names why
                self.chains.finish_op(caller, t_reply, error=("FunctionError", (
                    f"{rec.handler} (fid {rec.fid}) ended with {rec.status}: {rec.error}")))
            else:
                self.chains.finish_op(caller, t_reply, error=(rec.status, rec.error))
        elif (isinstance(rec, LambdaFunction) and rec.is_async and rec.status != "ok"
              and rec.attempt < self.fprof.async_retries and self.deadlock is None):
            delays = self.fprof.async_retry_delays_s
            delay = to_ns(delays[min(rec.attempt, len(delays) - 1)]) if delays else 0
            self.counts["retries"] += 1
            op_retry = sc.Op(sc.INVOKE, args=(rec.handler, False, rec.memory_mb), size=rec.payload_size,
                             handle=rec.payload)
            driver = self.functions[DRIVER]
            self.loop.schedule(max(t_end + delay, self.loop.now_ns), RANK_ARRIVE, rec.fid, 1 << 40,
                               lambda ta: self._lambda_arrive(ta, driver, 0, op_retry, rec.attempt + 1, 0, True,
                                                              rec.invocation))  # a retry keeps its request id

    # ------------------------------------------------------------------ VM processes
    def start_vm_request(self, rec: FunctionRecord, seq: int, op: sc.Op, t: int) -> None:
        svc = self.services.get(op.service)
        if not isinstance(svc, ProcessHost):
            self.chains.finish_op(rec, t, error=("NotSupported", f"'{op.service}' is not a VM service"))
            return
        self.next_fid += 1
        fid = self.next_fid
        vm = VmProcess(fid, op.args[0], op.service, op.handle, op.size)
        vm.nic = svc.vm_nic()
        vm.vcpus = svc.vcpus()  # the instance's vCPUs
        vm.flops_per_s = svc.flops_per_s()
        self.functions[fid] = vm
        start = max(t + svc.one_way_ns(t), svc.ready_ns())
        self.loop.schedule(start, RANK_REPLY, fid, 0, lambda ts: self._start(vm, ts))
        self.chains.finish_op(rec, t + 2 * svc.one_way_ns(t), value=fid)
