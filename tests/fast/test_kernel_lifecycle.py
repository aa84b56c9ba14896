"""The function lifecycle part alone (sls_ray/functions.py), on a bare event loop.

No kernel, no transport, no threads: the lifecycle is built with an event loop, an outbox,
the invoker and a fake chain runner that records every answer it is asked to give. Each test
drives it by hand and checks the virtual times it produces.
"""
from __future__ import annotations

from typing import Any

from sls_ray import simcall as sc
from sls_ray.config import load_profile
from sls_ray.events import EventLoop, Outbox
from sls_ray.functions import BLOCKED, DONE, RUNNING, FunctionLifecycle, FunctionRecord, LambdaFunction, VmProcess
from sls_ray.invoker import Invoker
from sls_ray.network import FlowNetwork
from sls_ray.platform import MiB
from sls_ray.vtime import INF_NS, RANK_COMMIT, to_ns


class FakeChains:
    """Stands in for the chain runner: records the answers and death notices it is handed."""

    def __init__(self) -> None:
        self.finished: list[tuple[int, int, Any, Any, tuple[str, str] | None]] = []
        self.deaths: list[int] = []

    def finish_op(self, rec: FunctionRecord, t: int, value: Any = None, handle: Any = None,
                  error: tuple[str, str] | None = None) -> None:
        self.finished.append((rec.fid, t, value, handle, error))

    def reply_death(self, rec: FunctionRecord) -> None:
        self.deaths.append(rec.fid)


class Env:
    def __init__(self, seed: int = 0, **functions: Any) -> None:
        self.fprof = load_profile("aws_2020", {"functions": functions} if functions else None).functions
        self.loop = EventLoop(lookahead_ns=1)
        self.outbox = Outbox()
        self.invoker = Invoker(self.fprof, seed)
        self.network = FlowNetwork(lambda t, flow, version: self.loop.schedule(
            t, RANK_COMMIT, -1, flow.id, lambda tt: self.network.complete(flow, version, tt)))
        self.counts = {"invocations": 0, "cold_starts": 0, "throttles": 0, "retries": 0, "duplicates": 0}
        self.chains = FakeChains()
        self.life = FunctionLifecycle(self.loop, self.outbox, self.fprof, seed, self.invoker, self.network, {},
                                      self.counts, handler_memory={"big": 2048}, handler_timeout={"short": 2.0})
        # a fake with the two methods the lifecycle calls
        self.life.connect(self.chains)  # type: ignore[arg-type]

    def run_until(self, t_ns: int) -> None:
        """Run every event up to t, passive ones (deadlines) included, as if a function ran at t."""
        self.loop.set_running(-99, t_ns)  # the horizon: t + lookahead (1 ns)
        self.loop.run_ready()
        self.loop.set_stopped(-99)

    def started(self) -> list[sc.StartCommand]:
        return [m for m in self.outbox.messages if isinstance(m, sc.StartCommand)]


def test_the_entry_invocation_starts_cold_with_its_memory_deadline_and_limits():
    env = Env()
    env.life.invoke_entry("big", payload=b"x", payload_size=1)
    assert env.loop.run_ready() is False  # started: it runs, so the horizon waits for it
    (cmd,) = env.started()
    rec = env.life.functions[cmd.fid]
    assert isinstance(rec, LambdaFunction) and rec.state == RUNNING and rec.cold
    assert cmd.start_ns == env.invoker.start_latency_ns(True, cmd.invocation, cmd.fid)
    assert cmd.start_ns > to_ns(0.1)  # a cold start, about 0.5 s
    assert (cmd.handler, cmd.memory_mb, cmd.memory_limit_bytes) == ("big", 2048, 2048 * MiB)
    assert cmd.deadline_ns == rec.deadline_ns == cmd.start_ns + to_ns(900)
    assert env.counts == {"invocations": 1, "cold_starts": 1, "throttles": 0, "retries": 0, "duplicates": 0}
    assert env.loop.horizon() == cmd.start_ns + 1 and env.invoker.active == 1


def test_a_function_that_runs_past_its_timeout_dies_at_its_deadline_and_is_told():
    env = Env()
    env.life.invoke_entry("short", None, 0)
    env.loop.run_ready()
    (cmd,) = env.started()
    rec = env.life.functions[cmd.fid]
    env.life.set_blocked(rec)  # waiting on something that never comes
    env.run_until(cmd.start_ns + to_ns(5))
    assert rec.dead_ns == cmd.start_ns + to_ns(2.0)
    assert rec.dead_reason is not None and rec.dead_reason[0] == "FunctionTimeout"
    assert env.chains.deaths == [rec.fid]  # blocked: the chain runner tells it at once
    env.life.exit(rec, rec.dead_ns + 5, sc.Op(sc.EXIT))  # its exit after the death keeps the death
    assert (rec.state, rec.end_ns, rec.status) == (DONE, cmd.start_ns + to_ns(2.0), "FunctionTimeout")


def test_a_returned_function_leaves_a_warm_container_for_the_next_invocation():
    env = Env()
    env.life.invoke_entry("work", None, 0)
    env.loop.run_ready()
    (first,) = env.started()
    rec = env.life.functions[first.fid]
    env.life.set_blocked(rec)
    t_end = first.start_ns + to_ns(1.0)
    env.life.exit(rec, t_end, sc.Op(sc.EXIT))
    assert (rec.state, rec.status, rec.end_ns) == (DONE, "ok", t_end) and env.invoker.active == 0
    env.outbox.messages.clear()
    # the same function invokes again (asynchronously), from a second caller blocked at t_end
    caller = LambdaFunction(99, "caller", 1024)
    env.life.functions[99] = caller
    env.life.invoke_request(caller, 1, sc.Op(sc.INVOKE, args=("work", False, None), size=10), t_end)
    env.run_until(t_end + to_ns(1.0))
    (second,) = env.started()
    one_way = to_ns(0.01)
    assert second.start_ns == t_end + one_way + to_ns(0.005)  # warm start
    assert not env.life.functions[second.fid].cold and env.counts["cold_starts"] == 1
    # the caller got its 202 (the invocation id) one latency after the request arrived
    assert env.chains.finished == [(99, t_end + 2 * one_way, second.invocation, None, None)]


def test_a_failed_asynchronous_invocation_is_retried_after_the_documented_delays():
    env = Env()
    env.life.invoke_entry("flaky", None, 0)
    ends = []
    for attempt in range(3):
        env.run_until(env.loop.now_ns + to_ns(200))
        cmd = env.started()[-1]
        rec = env.life.functions[cmd.fid]
        assert (cmd.attempt, cmd.invocation) == (attempt, env.life.entry_invocation)
        env.life.set_blocked(rec)
        ends.append(cmd.start_ns + to_ns(0.5))
        env.life.exit(rec, ends[-1], sc.Op(sc.EXIT, args=("ValueError", "boom")))
    env.outbox.messages.clear()
    env.run_until(env.loop.now_ns + to_ns(500))
    assert env.started() == []  # two retries, then no more
    assert env.counts["retries"] == 2
    starts = sorted(r.start_ns for r in env.life.functions.values() if r.fid != 0)
    arrive = to_ns(0.005)  # Lambda re-queues the event itself: only a warm start before it runs again
    assert starts[1] == ends[0] + to_ns(60) + arrive
    assert starts[2] == ends[1] + to_ns(120) + arrive


def test_above_the_concurrency_limit_an_invocation_is_throttled_and_retried():
    env = Env(concurrency_limit=1)
    env.life.invoke_entry("a", None, 0)
    env.loop.run_ready()
    (first,) = env.started()
    caller = env.life.functions[first.fid]
    env.life.set_blocked(caller)
    t = first.start_ns + 10
    env.life.invoke_request(caller, 1, sc.Op(sc.INVOKE, args=("b", True, None), size=0), t)  # synchronous
    env.run_until(t + to_ns(0.5))
    assert env.counts["throttles"] >= 2 and len(env.started()) == 1  # still refused: "a" holds the slot
    env.life.exit(caller, t + to_ns(0.5), sc.Op(sc.EXIT))
    env.run_until(t + to_ns(5))
    assert [c.handler for c in env.started()] == ["a", "b"]


def test_a_kill_ends_a_running_function_but_not_a_starting_or_ended_one():
    env = Env()
    env.life.invoke_entry("victim", None, 0)
    assert env.life.kill(env.life.entry_invocation, 0) is False  # not started yet
    env.loop.run_ready()
    (cmd,) = env.started()
    rec = env.life.functions[cmd.fid]
    assert env.life.kill(cmd.fid, cmd.start_ns + 7, "a test") is True
    assert rec.dead_ns == cmd.start_ns + 7 and rec.dead_reason[0] == "FunctionKilled"
    assert env.chains.deaths == []  # running: it learns of its death at its next call
    assert env.life.kill(cmd.fid, cmd.start_ns + 9) is False  # dead already


def test_the_two_kinds_of_record_answer_for_their_own_concerns():
    fn = LambdaFunction(5, "h", 512, invocation=3, attempt=1)
    vm = VmProcess(6, "server", "vm")
    assert (fn.memory_limit_bytes(), fn.invocation, fn.attempt, fn.is_vm, fn.service) == (512 * MiB, 3, 1, False, "")
    assert (vm.memory_limit_bytes(), vm.invocation, vm.memory_mb, vm.deadline_ns) == (1 << 62, 6, 0, INF_NS)
    assert vm.is_vm and vm.service == "vm" and vm.caller is None and not vm.cold


def test_a_deadlock_ends_every_blocked_function_at_the_clock():
    env = Env()
    env.life.invoke_entry("w", None, 0)
    env.loop.run_ready()
    (cmd,) = env.started()
    rec = env.life.functions[cmd.fid]
    env.life.set_blocked(rec)
    assert rec.state == BLOCKED and env.loop.running_count() == 0
    env.life.declare_deadlock()
    assert env.life.deadlock is not None and "1 functions wait" in str(env.life.deadlock)
    assert (rec.state, rec.status, rec.end_ns) == (DONE, "VirtualDeadlock", env.loop.now_ns)
    assert env.counts["retries"] == 0  # no retry after a deadlock
