"""The function model: cold and warm starts, keep-alive, modelled compute, sync and async
invocation, deaths during local compute, and handlers that end in unusual ways."""
from __future__ import annotations

import sys
import threading

import pytest

from sls_ray import errors

EPS = 1e-9


def sleep_until(ctx, t_s: float) -> None:
    ctx.sleep(t_s - ctx.now)


def test_cold_then_warm_starts_and_keep_alive_expiry(sim):
    def main(ctx, p):
        for at in (1.0, 5.0, 700.0):  # the 2nd reuses the 1st's container; the 3rd comes after keep-alive
            sleep_until(ctx, at)
            ctx.invoke("w", None)

    r = sim({"main": main, "w": lambda ctx, p: ctx.compute(seconds=0.2)}, ("main", None),
            profile={"functions": {"keep_alive_s": 600.0}}, timeouts={"main": 900})
    w = r.invocations[r.invocations["handler"] == "w"]
    assert list(w["cold"]) == [True, False, True]
    # start = call + 10 ms one way + 0.5 s cold / 5 ms warm
    assert list(w["start_s"]) == pytest.approx([1.51, 5.015, 700.51], abs=EPS)
    assert r.summary["counts"]["cold_starts"] == 3  # main's own start is cold too


def test_concurrent_invocations_each_need_their_own_container(sim):
    def main(ctx, p):
        ctx.invoke("w", None)
        ctx.invoke("w", None)  # the first is still running: a second container, cold

    r = sim({"main": main, "w": lambda ctx, p: ctx.compute(seconds=5)}, ("main", None))
    assert list(r.invocations["cold"]) == [True, True, True]


@pytest.mark.parametrize("memory_mb,seconds", [(1769, 1.0), (3538 // 2, 1.0), (885, 1769 / 885), (3008, 1769 / 3008)])
def test_compute_time_follows_flops_and_the_vcpu_share_of_memory(sim, memory_mb, seconds):
    """14 GFLOP/s at one full vCPU (1,769 MB); the share scales with memory."""

    def main(ctx, p):
        t0 = ctx.now
        charged = ctx.compute(flops=14e9)
        ctx.log("c", dt=ctx.now - t0, charged=charged)

    r = sim({"main": main}, ("main", None), memory={"main": memory_mb},
            profile={"functions": {"memory_step_mb": 1}})  # 1,769 MB: off 2020's 64 MB grid (1 MB since)
    row = r.metric("c").iloc[0]
    assert row["dt"] == pytest.approx(seconds, abs=1e-8)
    assert row["charged"] == pytest.approx(seconds, abs=1e-8)


def test_sync_invoke_returns_the_result_after_callee_time_plus_latencies(sim):
    def main(ctx, p):
        t0 = ctx.now
        v = ctx.invoke("sq", 7, sync=True)
        ctx.log("r", v=v, dt=ctx.now - t0)

    def sq(ctx, x):
        ctx.compute(seconds=1.0)
        return x * x

    r = sim({"main": main, "sq": sq}, ("main", None))
    row = r.metric("r").iloc[0]
    assert row["v"] == 49
    assert row["dt"] == pytest.approx(0.01 + 0.5 + 1.0 + 0.01, abs=EPS)  # one way, cold start, run, one way


def test_a_sync_callee_error_is_raised_in_the_caller_by_name(sim):
    def main(ctx, p):
        try:
            ctx.invoke("bad", None, sync=True)
        except errors.KeyNotFound as e:
            ctx.log("caught", message=str(e))
        try:
            ctx.invoke("boom", None, sync=True)
        except Exception as e:
            ctx.log("caught", message=str(e))

    def bad(ctx, p):
        ctx.storage("s3").get("missing")

    def boom(ctx, p):
        raise ValueError("boom 42")

    r = sim({"main": main, "bad": bad, "boom": boom}, ("main", None))
    msgs = list(r.metric("caught")["message"])
    assert "missing" in msgs[0]
    assert "ValueError" in msgs[1] and "boom 42" in msgs[1]
    assert r.invocations.set_index("handler").loc["main", "status"] == "ok"


@pytest.mark.parametrize("how", ["timeout", "memory", "kill", "kill_after_return"])
def test_a_sync_callee_that_is_ended_by_the_platform_does_not_end_its_caller(sim, how):
    """The callee's sandbox dies; the caller gets an error it can handle and keeps running."""

    def main(ctx, p):
        try:
            ctx.invoke("callee", None, sync=True)
        except errors.PlatformError as e:
            ctx.log("caught", name=type(e).__name__, message=str(e), t=ctx.now)
        ctx.log("alive")

    def callee(ctx, p):
        if how == "memory":
            ctx.memory.hold(10 << 30).__enter__()
        ctx.compute(seconds=10)
        if how == "kill_after_return":  # computed past the kill time and returned, with no simcall
            return "result"
        ctx.storage("s3").exists("x")

    faults = [{"kind": "kill", "fid": 2, "at_s": 2.0}] if how.startswith("kill") else []
    timeouts = {"callee": 20.0 if how == "kill_after_return" else 1.0}
    r = sim({"main": main, "callee": callee}, ("main", None), timeouts=timeouts, faults=faults)
    inv = r.invocations.set_index("handler")
    expected = {"timeout": "FunctionTimeout", "memory": "MemoryLimitExceeded", "kill": "FunctionKilled",
                "kill_after_return": "FunctionKilled"}[how]
    assert inv.loc["callee", "status"] == expected
    assert inv.loc["main", "status"] == "ok"
    caught = r.metric("caught").iloc[0]
    assert caught["name"] == "FunctionError" and expected in caught["message"]
    assert len(r.metric("alive")) == 1
    # the caller hears of the death one way after it, not when the callee would have finished
    end = inv.loc["callee", "end_s"]
    assert end == pytest.approx({"timeout": 2.01, "memory": 1.01, "kill": 2.0, "kill_after_return": 2.0}[how],
                                abs=EPS)
    assert caught["t"] == pytest.approx(end + 0.01, abs=EPS)


def test_a_kill_during_a_local_compute_ends_the_function_at_the_kill_time(sim):
    """The function computed past the kill time without a simcall and even returned: it still dies at t."""

    def main(ctx, p):
        ctx.invoke("w", None)

    def w(ctx, p):
        ctx.compute(seconds=10.0)
        return "finished"

    r = sim({"main": main, "w": w}, ("main", None), faults=[{"kind": "kill", "fid": 2, "at_s": 4.0}],
            profile={"functions": {"async_retries": 0}}, run={"watchdog_s": 20})
    row = r.invocations.set_index("id").loc[2]
    assert row["status"] == "FunctionKilled"
    assert row["end_s"] == pytest.approx(4.0, abs=EPS)
    assert row["billed_ms"] == 3000.0  # 4.0 - 1.01 s, rounded up to 100 ms


def test_a_function_waiting_past_its_timeout_ends_with_functiontimeout(sim):
    def main(ctx, p):
        ctx.invoke("waiter", None)
        ctx.invoke("writer", None)

    def waiter(ctx, p):
        ctx.storage("s3").wait("late", poll_interval=0.5)

    def writer(ctx, p):
        sleep_until(ctx, 10.0)
        ctx.storage("s3").put("late", b"1")

    r = sim({"main": main, "waiter": waiter, "writer": writer}, ("main", None), timeouts={"waiter": 3.0},
            profile={"functions": {"async_retries": 0}})
    inv = r.invocations.set_index("handler")
    assert inv.loc["waiter", "status"] == "FunctionTimeout"
    assert inv.loc["waiter", "end_s"] == pytest.approx(inv.loc["waiter", "start_s"] + 3.0, abs=EPS)
    assert inv.loc["writer", "status"] == "ok"
    # the polls the waiter sent until its death are billed, as a literal loop's would be: every 0.52 s
    polls = int((3.0 - 0.01) // 0.52) + 1
    assert r.storage.set_index("service").loc["s3", "req_GET"] == polls


def test_sys_exit_in_a_handler_fails_the_invocation_instead_of_hanging_the_run(sim):
    def main(ctx, p):
        ctx.invoke("quits", None)
        sleep_until(ctx, 5.0)
        ctx.log("alive")

    def quits(ctx, p):
        ctx.sleep(1.0)
        sys.exit(3)

    r = sim({"main": main, "quits": quits}, ("main", None), run={"watchdog_s": 20},
            profile={"functions": {"async_retries": 0}})
    inv = r.invocations.set_index("handler")
    assert inv.loc["quits", "status"] == "SystemExit"
    assert inv.loc["main", "status"] == "ok" and len(r.metric("alive")) == 1


def test_an_unpicklable_result_fails_the_invocation_instead_of_hanging_the_run(sim):
    def main(ctx, p):
        try:
            ctx.invoke("lock", None, sync=True)
        except Exception as e:
            ctx.log("caught", message=str(e))

    r = sim({"main": main, "lock": lambda ctx, p: threading.Lock()}, ("main", None), run={"watchdog_s": 20})
    assert r.invocations.set_index("handler").loc["lock", "status"] == "TypeError"
    assert "pickle" in r.metric("caught")["message"].iloc[0]


def test_ctx_rng_is_deterministic_per_invocation_and_differs_between_them(sim):
    def main(ctx, p):
        for i in range(3):
            ctx.invoke("w", i)

    def w(ctx, i):
        ctx.log("draw", i=i, x=float(ctx.rng.random()))

    a = sim({"main": main, "w": w}, ("main", None), seed=5).metric("draw").sort_values("i")
    b = sim({"main": main, "w": w}, ("main", None), seed=5).metric("draw").sort_values("i")
    c = sim({"main": main, "w": w}, ("main", None), seed=6).metric("draw").sort_values("i")
    assert list(a["x"]) == list(b["x"])
    assert len(set(a["x"])) == 3
    assert list(a["x"]) != list(c["x"])


def test_memory_hold_counts_a_declared_working_set_only_while_inside(sim):
    def main(ctx, p):
        with ctx.memory.hold(900 << 20, "block"):
            ctx.log("inside", used=ctx.memory.used)
        ctx.log("outside", used=ctx.memory.used)
        with ctx.memory.hold(2000 << 20, "too big"):
            ctx.log("never")

    r = sim({"main": main}, ("main", None), memory={"main": 1024})
    assert r.metric("inside")["used"].iloc[0] - r.metric("outside")["used"].iloc[0] == 900 << 20
    assert r.metric("never").empty
    assert r.invocations["status"].iloc[0] == "MemoryLimitExceeded"


def test_invoking_an_unknown_handler_fails_that_invocation_instead_of_hanging_the_run(sim):
    def main(ctx, p):
        try:
            ctx.invoke("nosuch", None, sync=True)
        except errors.NotSupported as e:
            ctx.log("caught", message=str(e))

    r = sim({"main": main}, ("main", None), run={"watchdog_s": 20})
    assert "nosuch" in r.metric("caught")["message"].iloc[0]
    assert r.invocations.set_index("handler").loc["nosuch", "status"] == "NotSupported"
