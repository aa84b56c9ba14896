"""Running a function's chain of simcalls in virtual time (docs/design.md, "The simcall protocol").

A function sends a *chain*: operations whose results it does not need (put, delete, compute,
log) followed by one that returns data. ``advance`` runs the chain op after op from the
function's clock: local ones (compute, log, now) move the clock at once; a storage request,
an invocation or a VM start leaves the chain until its answer comes back (``finish_op``),
and the last answer is delivered to the function, which runs again from that instant.

A *declared sequence* (``EACH``) is a chain whose every answer the function keeps: reads of
keys known in advance (the LambdaML leader's W gradients), or a trigger's invocations. Its
operations run exactly as if the function had sent them one by one, each when the previous
answer arrived, so virtual times, bills and flows are those of the loop; only the real round
trips between them disappear (docs/design.md, "Declared sequences"). It stops early at the
first error, or after the answer whose bytes take the function past the memory headroom it
declared, where the loop would have failed too.

A death (timeout, kill) can overtake a chain: whatever the function does after its death
instant is discarded, and the function learns of its death at the first blocking call
(``reply_death``, ``gone``).

``ChainRunner`` is one part of ``SimKernel`` (kernel.py). It answers a function through its
``hooks`` (the kernel's outbox, which the kernel forwards to the transport), hands a blocking
operation to the part that serves it (``StorageCalls``, ``FunctionLifecycle``) and ends a
function through the lifecycle.
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from sls_ray import simcall as sc
from sls_ray.events import EventLoop, Hooks
from sls_ray.functions import BLOCKED, DONE, FunctionRecord
from sls_ray.vtime import RANK_FAULT, RANK_REPLY

if TYPE_CHECKING:
    from sls_ray.functions import FunctionLifecycle
    from sls_ray.storage_calls import StorageCalls


class Answers:
    """The answers of a declared sequence so far, and the bytes they brought against its budget."""

    __slots__ = ("budget", "items", "nbytes")

    def __init__(self, budget: int) -> None:
        self.items: list[tuple[Any, Any]] = []
        self.nbytes = 0
        self.budget = budget


class ChainRunner:
    """Runs chains, answers functions and tells them of their deaths (a part of SimKernel).

    Its dependencies: the event loop, the hooks that carry an answer to the transport, the
    run's metrics rows and counters; once the kernel connects them, the lifecycle (invoke,
    VM start, deadline, exit, running/blocked) and storage routing (requests and futures).
    """

    lifecycle: FunctionLifecycle
    storage: StorageCalls

    def __init__(self, loop: EventLoop, hooks: Hooks, metrics: list[tuple], counts: dict[str, int]) -> None:
        self.loop = loop
        self.hooks = hooks
        self.metrics = metrics
        self.counts = counts
        #: (fid, t0, t1): when a function was blocked on storage requests (storage_waits.csv)
        self.storage_waits: list[tuple[int, int, int]] = []

    def connect(self, lifecycle: FunctionLifecycle, storage: StorageCalls) -> None:
        self.lifecycle = lifecycle
        self.storage = storage

    def submit(self, rec: FunctionRecord, t_ns: int, ops: list[sc.Op]) -> None:
        """A live function's chain of simcalls, issued at its virtual time ``t_ns``."""
        self.counts["simcalls"] += 1
        self.counts["ops"] += len(ops)
        self.lifecycle.set_blocked(rec)
        rec.chain.extend(ops)
        # even if the kernel already handled this function's death, operations issued before
        # that instant still run (their remote effects land after it and are dropped): the
        # outcome cannot depend on whether the death or this chain reached the kernel first
        self.advance(rec, max(t_ns, rec.clock_ns))

    def advance(self, rec: FunctionRecord, t: int, value: Any = None, handle: Any = None) -> None:
        chain = rec.chain
        while chain:
            if rec.dead_ns is not None and t >= rec.dead_ns:
                self.reply_death(rec)
                return
            op = chain[0]
            if t > rec.deadline_ns:  # never for a VM process (its deadline is INF_NS)
                # it computed past its deadline: it dies there, in event order, so that a kill
                # between its clock and the deadline (not handled yet) still comes first; this
                # copy of the (passive) deadline event counts as progress, so it is no deadlock
                rec.blocked_on = "its timeout"
                self.loop.schedule(rec.deadline_ns, RANK_FAULT, rec.fid, 0, lambda td: self.lifecycle.deadline(rec, td))
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
                self.storage.request(rec, seq, op, t)
                return
            elif kind == sc.ASYNC:
                self.storage.request_async(rec, seq, op, t)
            elif kind == sc.AWAIT:
                if not all(i in rec.futures for i in op.args):
                    rec.awaiting = (op.args, t)
                    rec.wait_from = t
                    rec.blocked_on = f"await of {len(op.args)} async requests"
                    return
                t, value = self.storage.collect_futures(rec, op.args, t)
                handle = None
            elif kind == sc.INVOKE:
                self.lifecycle.invoke_request(rec, seq, op, t)
                return
            elif kind == sc.START_VM:
                self.lifecycle.start_vm_request(rec, seq, op, t)
                return
            elif kind == sc.EACH:
                # the last op of its chain: its operations take its place (and its sequence
                # number: events are ordered as the loop's), answers kept
                rec.seq -= 1
                if op.handle:
                    rec.each = Answers(op.args[0])
                    chain.extendleft(reversed(op.handle))
                    self.counts["ops"] += len(op.handle) - 1
                else:
                    value, handle = [], None
            elif kind == sc.EXIT:
                rec.end_ns = t  # provisional: a death after this instant cannot touch it
                self.loop.schedule(t + self.loop.lookahead_ns, RANK_REPLY, rec.fid, seq,
                                   partial(self._exit_event, rec, t, op))
                return
        self.deliver(rec, sc.Reply(t, value=value, handle=handle))

    def finish_op(self, rec: FunctionRecord, t: int, value: Any = None, handle: Any = None,
                  error: tuple[str, str] | None = None, nbytes: int = 0) -> None:
        if rec.state == DONE or self.gone(rec, t):
            return
        rec.blocked_on = ""
        if rec.wait_from is not None:  # a storage request (or an await of some) answered
            waits, i = self.storage_waits, rec.wait_index
            if i is not None and waits[i][2] >= rec.wait_from:
                waits[i] = (rec.fid, waits[i][1], t)  # back to back with the previous one: one interval
            else:
                rec.wait_index = len(waits)
                waits.append((rec.fid, rec.wait_from, t))
            rec.wait_from = None
        if error is not None:
            # a failed lazy operation surfaces at the blocking call that carried it
            exit_op = next((o for o in rec.chain if o.kind == sc.EXIT), None)
            rec.chain.clear()
            if exit_op is not None:
                exit_op.args = error
                rec.chain.append(exit_op)
                self.advance(rec, t)
            else:
                self.deliver(rec, sc.Reply(t, error=error))
            return
        each = rec.each
        if each is not None:
            each.items.append((value, handle))
            each.nbytes += nbytes
            if rec.chain and each.nbytes <= each.budget:
                self.advance(rec, t)
            else:  # done, or over its headroom: the function re-sends the rest if it survives
                rec.chain.clear()
                self.deliver(rec, sc.Reply(t, value=each.items))
            return
        if rec.chain:
            self.advance(rec, t, value, handle)
        else:
            self.deliver(rec, sc.Reply(t, value=value, handle=handle))

    def deliver(self, rec: FunctionRecord, reply: sc.Reply) -> None:
        rec.each = None
        self.lifecycle.set_running(rec, reply.t_ns)
        self.hooks.deliver(rec.fid, reply)

    def _exit_event(self, rec: FunctionRecord, t_end: int, op: sc.Op, _t: int) -> None:
        self.lifecycle.exit(rec, t_end, op)

    def reply_death(self, rec: FunctionRecord) -> None:
        """Tell a blocked function it is dead (once), or record its end if it already returned."""
        dead = rec.dead_ns
        assert dead is not None, "only a dead function is told of its death"
        rec.death_told = True
        exit_op = next((o for o in rec.chain if o.kind == sc.EXIT), None)
        rec.chain.clear()
        if exit_op is None and rec.end_ns is not None:
            # it had already returned (its provisional end is after the death: a kill during a
            # local compute): the thread is gone, so record the death now instead of answering
            # it; the exit event scheduled at its provisional end then finds it done
            exit_op = sc.Op(sc.EXIT)
        if exit_op is not None:
            self.loop.schedule(dead + self.loop.lookahead_ns, RANK_REPLY, rec.fid, rec.seq + 1,
                               partial(self._exit_event, rec, dead, exit_op))
        else:
            self.deliver(rec, sc.Reply(max(dead, rec.clock_ns), error=rec.dead_reason))

    def gone(self, rec: FunctionRecord, t: int) -> bool:
        """True when the function died before t: its later effects are discarded.

        A function that issued this operation before its death learns of it here, if no one
        told it yet (it was running when it died).
        """
        if rec.dead_ns is None or t <= rec.dead_ns:
            return False
        if rec.state == BLOCKED and not rec.death_told:
            self.reply_death(rec)
        return True
