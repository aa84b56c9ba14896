"""The kernel's event loop (sls_ray/kernel.py) driven by hand: no transport, no threads.

The total order is (time, rank, function id, sequence) whatever order events were queued in
(docs/design.md, "The ordering rule"); a function's lifecycle is start -> simcalls -> exit,
with the start delayed by a cold start.
"""
from __future__ import annotations

from sls_ray import simcall as sc
from sls_ray.config import load_profile
from sls_ray.kernel import SimKernel
from sls_ray.vtime import (
    FID_FAULT,
    FID_NETWORK,
    FID_QUEUE,
    FID_STREAM,
    RANK_ARRIVE,
    RANK_COMMIT,
    RANK_FAULT,
    RANK_REPLY,
    RANK_TIMER,
    to_ns,
)


class RecordingHooks:
    """A transport that runs nothing: it records what the kernel asks of it."""

    def __init__(self) -> None:
        self.started: list[sc.StartCommand] = []
        self.delivered: list[tuple[int, sc.Reply]] = []

    def start(self, cmd: sc.StartCommand) -> None:
        self.started.append(cmd)

    def deliver(self, fid: int, reply: sc.Reply) -> None:
        self.delivered.append((fid, reply))


def kernel(**functions) -> tuple[SimKernel, RecordingHooks]:
    hooks = RecordingHooks()
    return SimKernel(load_profile("aws_2020", {"functions": functions} if functions else None), 0, hooks), hooks


def test_events_run_in_time_rank_fid_seq_order_not_queue_order():
    k, _ = kernel()
    log: list[str] = []
    queued = [(7, RANK_REPLY, 3, 0, "reply f3"), (7, RANK_COMMIT, 5, 1, "commit f5"),
              (7, RANK_COMMIT, FID_NETWORK, 9, "flow done"), (7, RANK_FAULT, FID_FAULT, 0, "fault"),
              (7, RANK_ARRIVE, 2, 4, "arrive f2 #4"), (7, RANK_ARRIVE, 2, 3, "arrive f2 #3"),
              (3, RANK_TIMER, FID_QUEUE, 0, "visibility timeout"), (7, RANK_TIMER, FID_STREAM, 0, "stream")]
    for t, rank, fid, seq, what in queued:
        k.schedule(t, rank, fid, seq, lambda now, what=what: log.append(f"{what}@{now}"))
    assert k.step() == "done"
    assert log == ["visibility timeout@3", "fault@7", "flow done@7", "commit f5@7", "arrive f2 #3@7",
                   "arrive f2 #4@7", "reply f3@7", "stream@7"]


def test_an_event_may_queue_another_at_the_same_instant_and_it_runs_in_order():
    k, _ = kernel()
    log: list[str] = []
    k.schedule(5, RANK_REPLY, 1, 0, lambda t: (log.append("reply"),
                                               k.schedule(t, RANK_TIMER, 1, 1, lambda t2: log.append(f"timer@{t2}"))))
    k.schedule(5, RANK_ARRIVE, 9, 0, lambda t: log.append("arrive"))
    assert k.step() == "done"
    assert log == ["arrive", "reply", "timer@5"]


def test_the_entry_function_starts_after_its_cold_start_and_ends_at_its_exit():
    k, hooks = kernel()
    k.invoke_entry("work", None, 0, memory_mb=1024)
    assert k.step() == "wait", "a started function may still send simcalls"
    (cmd,) = hooks.started
    cold = k.invoker.start_latency_ns(True, cmd.invocation, cmd.attempt * 1000 + cmd.fid)  # functions.py
    assert cmd.start_ns == cold, "the driver's entry invocation is accepted at t = 0"
    assert cmd.handler == "work" and cmd.memory_mb == 1024 and k.counts["cold_starts"] == 1
    assert k.horizon() == cmd.start_ns + k.lookahead_ns, "nothing may run past a running function's clock"
    k.submit(cmd.fid, cmd.start_ns + to_ns(0.25), [sc.Op(sc.EXIT)])
    assert k.step() == "done"
    rec = k.functions[cmd.fid]
    assert rec.end_ns == cmd.start_ns + to_ns(0.25) and rec.status == "ok"


def test_a_compute_is_answered_at_the_function_clock_plus_its_duration():
    k, hooks = kernel()
    k.invoke_entry("work", None, 0)
    k.step()
    (cmd,) = hooks.started
    k.submit(cmd.fid, cmd.start_ns, [sc.Op(sc.COMPUTE, args=(to_ns(2.0),))])
    k.step()
    (fid, reply), = hooks.delivered
    assert fid == cmd.fid and reply.t_ns == cmd.start_ns + to_ns(2.0)


def test_a_killed_function_cancels_its_parked_wait_and_is_billed_to_its_death():
    """Death at t: the parked storage wait is cancelled through the service contract (no answer
    ever reaches the dead function), and the record ends at t with FunctionKilled."""
    k, hooks = kernel()
    k.invoke_entry("waiter", None, 0)
    k.step()
    (cmd,) = hooks.started
    t_kill = cmd.start_ns + to_ns(3.0)
    k.schedule(t_kill, RANK_FAULT, FID_FAULT, 0, lambda t: k.kill(cmd.fid, t))  # the fault plan
    parked = []
    k.schedule(t_kill - 1, RANK_TIMER, FID_FAULT, 1, lambda t: parked.extend(k.functions[cmd.fid].tickets))
    k.submit(cmd.fid, cmd.start_ns, [sc.Op(sc.STORAGE, service="s3", method="wait", args=("never", 0.1, None))])
    assert k.step() == "wait", "the function's thread must still learn of its death and exit"
    (svc, ticket), = parked
    rec = k.functions[cmd.fid]
    assert ticket.closed and rec.tickets == []
    assert rec.dead_ns == t_kill and rec.dead_reason[0] == "FunctionKilled"
    ((fid, reply),) = hooks.delivered
    assert fid == cmd.fid and reply.error[0] == "FunctionKilled", "the wait is answered by the death, not a value"
    polls = svc.usage.requests.get("GET", 0)
    assert polls >= 3 / (0.1 + svc.config.latency_s), "the polls a literal loop sent until its death are billed"
