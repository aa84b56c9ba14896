"""No limit can be dodged (issue 8, "Limits that could be dodged"): a handler that catches the
error with a bare ``except:``, with ``except BaseException`` or retries after it still ends the
way the cloud ends it, billed to the instant of the error, and nothing it does afterwards is seen.

The limits are hard-coded here (128 MiB, 256 KiB, 409,600 bytes, ...), never read from the
profile under test, so a wrong profile value fails these tests.
"""
from __future__ import annotations

import numpy as np
import pytest

from sls_ray import errors

MiB = 1 << 20
EPS = 1e-9
RUNTIME_MB = 60  # aws_2020's runtime_base_mb, pinned here on purpose


def rows(r, handler):
    return r.invocations[r.invocations["handler"] == handler].reset_index(drop=True)


def bare_except(ctx, tried):
    try:
        with ctx.memory.hold(100 * MiB, "weights"):  # 60 + 100 MiB > 128 MiB
            tried.append("held")
    except:  # noqa: E722  (the dodge under test)
        tried.append("caught")


def catch_base(ctx, tried):
    try:
        ctx.memory.track(np.ones(100 * MiB // 8), "weights")
    except BaseException as e:  # noqa: BLE001  (the dodge under test)
        tried.append(type(e).__name__)


def retry_smaller(ctx, tried):
    for mb in (100, 50, 10, 1):  # each retry asks for less; the sandbox is dead after the first
        try:
            with ctx.memory.hold(mb * MiB, f"try {mb} MiB"):
                tried.append(f"held {mb}")
            break
        except BaseException as e:  # noqa: BLE001
            tried.append(type(e).__name__)


MEMORY_DODGES = [bare_except, catch_base, retry_smaller]


@pytest.mark.parametrize("dodge", MEMORY_DODGES, ids=[d.__name__ for d in MEMORY_DODGES])
def test_a_caught_memory_error_still_ends_the_function_at_the_kill_billed_to_it(sim, dodge):
    tried: list[str] = []
    after: list[str] = []

    def victim(ctx, p):
        ctx.compute(seconds=0.25)
        dodge(ctx, tried)
        for name, call in (("put", lambda: ctx.storage("s3").put("after", b"1")),
                           ("log", lambda: ctx.log("after")),
                           ("compute", lambda: ctx.compute(seconds=1.0)),
                           ("now", lambda: ctx.now),
                           ("invoke", lambda: ctx.invoke("other", None))):
            try:
                call()
                after.append(f"{name} worked")
            except BaseException as e:  # noqa: BLE001  every later platform call raises again
                after.append(f"{name}: {type(e).__name__}")
        return "cheated"

    def main(ctx, p):
        try:
            got = ctx.invoke("victim", None, sync=True)
            ctx.log("result", got=str(got))
        except errors.FunctionError as e:
            ctx.log("caller", message=str(e))
        ctx.log("seen", after=ctx.storage("s3").exists("after"))

    r = sim({"main": main, "victim": victim, "other": lambda ctx, p: None}, ("main", None),
            memory={"victim": 128})
    v = rows(r, "victim").iloc[0]
    assert v["status"] == "MemoryLimitExceeded"
    assert v["end_s"] == pytest.approx(v["start_s"] + 0.25, abs=EPS)  # the kill's instant, not the return
    assert v["billed_ms"] == 300.0  # 0.25 s at 100 ms granularity: billed to the kill
    assert "MemoryLimitExceeded" in tried[0] or tried[0] == "caught"
    assert all("MemoryLimitExceeded" in a for a in after), after
    assert r.metric("result").empty, "the handler's result is discarded"
    assert "MemoryLimitExceeded" in r.metric("caller")["message"].iloc[0]
    assert not r.metric("seen")["after"].iloc[0]
    assert r.metric("after").empty
    assert len(rows(r, "other")) == 0
    assert r.summary["status"] == "ok" and r.summary["failures"] == {"MemoryLimitExceeded": 1}


def test_a_memory_dodge_in_the_entry_function_fails_the_run(sim):
    def main(ctx, p):
        retry_smaller(ctx, [])
        return "pretends to be fine"

    r = sim({"main": main}, ("main", None), memory={"main": 128}, profile={"functions": {"async_retries": 0}})
    assert rows(r, "main").iloc[0]["status"] == "MemoryLimitExceeded"
    assert r.summary["status"] == "failed"
    assert "MemoryLimitExceeded" in r.summary["reason"] and "entry invocation" in r.summary["reason"]


def test_a_sandbox_smaller_than_its_runtime_ends_at_its_start_without_the_watchdog(sim):
    """Issue 8: the runtime (200 MiB) alone is over 128 MiB: MemoryLimitExceeded at the start
    instant, billed one granule, and the rest of the run goes on (the watchdog is 5 real s)."""

    def main(ctx, p):
        ctx.invoke("small", None)
        try:
            ctx.invoke("small", None, sync=True)
        except errors.FunctionError as e:
            ctx.log("sync", message=str(e))
        ctx.log("done", t=ctx.now)

    r = sim({"main": main, "small": lambda ctx, p: ctx.log("ran")}, ("main", None),
            memory={"main": 1024, "small": 128}, profile={"functions": {"runtime_base_mb": 200.0}},
            run={"watchdog_s": 5.0})
    small = rows(r, "small")
    assert (small["status"] == "MemoryLimitExceeded").all()
    assert (small["end_s"] == small["start_s"]).all()
    assert (small["billed_ms"] == 100.0).all()
    assert r.metric("ran").empty
    assert "MemoryLimitExceeded" in r.metric("sync")["message"].iloc[0]
    assert len(r.metric("done")) == 1
    assert r.summary["status"] == "ok"


@pytest.mark.parametrize("memory_mb,sync", [(50, True), (50, False), (100_000, False), (1000, True), (3072, False)])
def test_an_invoke_with_a_memory_size_the_platform_lacks_raises_in_the_caller(sim, memory_mb, sync):
    def main(ctx, p):
        try:
            ctx.invoke("child", None, sync=sync, memory_mb=memory_mb)
        except errors.InvalidParameterValue as e:
            ctx.log("caught", message=str(e))

    r = sim({"main": main, "child": lambda ctx, p: 1}, ("main", None), run={"watchdog_s": 5.0})
    msg = r.metric("caught")["message"].iloc[0]
    assert f"memory_mb={memory_mb}" in msg
    assert len(rows(r, "child")) == 0, "nothing ran, nothing was billed"
    assert r.summary["cost_usd"]["lambda_requests"] == pytest.approx(0.2e-6)  # main's request alone


def test_an_invoke_with_a_size_on_the_grid_runs_at_that_size(sim):
    r = sim({"main": lambda ctx, p: ctx.invoke("child", None, sync=True, memory_mb=192),
             "child": lambda ctx, p: 1}, ("main", None))
    assert rows(r, "child").iloc[0]["memory_mb"] == 192


# ------------------------------------------------------------------ the other limits
def test_a_timeout_caught_with_a_bare_except_still_ends_at_the_deadline(sim):
    def victim(ctx, p):
        for _ in range(3):  # retrying after the timeout
            try:
                ctx.compute(seconds=5.0)
                ctx.storage("s3").exists("x")
            except:  # noqa: E722
                pass
        try:
            ctx.storage("s3").put("after", b"1")
        except BaseException:  # noqa: BLE001
            ctx_log_failed.append(True)
        return "cheated"

    ctx_log_failed: list[bool] = []

    def main(ctx, p):
        try:
            ctx.invoke("victim", None, sync=True)
        except errors.FunctionError as e:
            ctx.log("caller", message=str(e))
        ctx.log("seen", after=ctx.storage("s3").exists("after"))

    r = sim({"main": main, "victim": victim}, ("main", None), timeouts={"victim": 2.0})
    v = rows(r, "victim").iloc[0]
    assert v["status"] == "FunctionTimeout"
    assert v["end_s"] == pytest.approx(v["start_s"] + 2.0, abs=EPS)
    assert v["billed_ms"] == 2000.0
    assert "FunctionTimeout" in r.metric("caller")["message"].iloc[0]
    assert not r.metric("seen")["after"].iloc[0]
    assert ctx_log_failed == [True]


def test_a_kill_caught_as_baseexception_still_ends_the_function_at_the_kill(sim):
    def victim(ctx, p):
        for _ in range(3):
            try:
                ctx.storage("s3").wait("never", poll_interval=0.5)
            except BaseException:  # noqa: BLE001
                continue
        try:
            ctx.storage("s3").put("after", b"1")
        except BaseException:  # noqa: BLE001
            pass

    def main(ctx, p):
        ctx.invoke("victim", None)
        ctx.sleep(10.0)
        ctx.log("seen", after=ctx.storage("s3").exists("after"))

    r = sim({"main": main, "victim": victim}, ("main", None), profile={"functions": {"async_retries": 0}},
            faults=[{"kind": "kill", "fid": 2, "at_s": 3.0}])
    v = rows(r, "victim").iloc[0]
    assert v["status"] == "FunctionKilled"
    assert v["end_s"] == pytest.approx(3.0, abs=EPS)
    assert not r.metric("seen")["after"].iloc[0]


def test_retrying_an_oversized_async_payload_never_invokes(sim):
    def main(ctx, p):
        for _ in range(3):
            try:
                ctx.invoke("child", b"x" * (256 * 1024 + 1))
            except errors.PayloadTooLarge as e:
                ctx.log("refused", message=str(e))

    r = sim({"main": main, "child": lambda ctx, p: 1}, ("main", None))
    assert len(r.metric("refused")) == 3 and "262144" in r.metric("refused")["message"].iloc[0]
    assert len(rows(r, "child")) == 0


@pytest.mark.parametrize("service,limit", [("dynamodb", 409_600), ("memcached", 1_048_576)])
def test_retrying_an_oversized_item_never_stores_it(sim, service, limit):
    def main(ctx, p):
        store = ctx.storage(service)
        for _ in range(3):
            try:
                store.put("big", b"x" * (limit + 1))
            except errors.ItemTooLarge as e:
                ctx.log("refused", message=str(e))
        store.put("fits", b"x" * limit)  # exactly at the limit is accepted
        ctx.log("stored", big=store.exists("big"), fits=len(store.get("fits")))

    r = sim({"main": main}, ("main", None))
    assert len(r.metric("refused")) == 3 and str(limit) in r.metric("refused")["message"].iloc[0]
    row = r.metric("stored").iloc[0]
    assert not row["big"] and row["fits"] == limit


def test_retrying_after_a_429_never_exceeds_the_concurrency_limit(sim):
    def main(ctx, p):
        for i in range(4):
            ctx.invoke("hog", i)
        ctx.sleep(1.0)
        for _ in range(3):
            try:
                ctx.invoke("quick", None, sync=True)
            except errors.Throttled:
                ctx.log("throttled")

    r = sim({"main": main, "hog": lambda ctx, p: ctx.compute(seconds=100), "quick": lambda ctx, p: 1},
            ("main", None), profile={"functions": {"concurrency_limit": 3, "throttle_max_retries": 2}})
    assert r.summary["counts"]["peak_concurrency"] == 3
    assert len(r.metric("throttled")) == 3
    assert len(rows(r, "quick")) == 0
