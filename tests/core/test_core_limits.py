"""Every platform limit raises its named error inside the function, is recorded in
invocations.csv, and leaves the other functions running (issue 3, "Tests must show" 3)."""
from __future__ import annotations

import numpy as np
import pytest

from sls_ray import errors

EPS = 1e-9


def sleep_until(ctx, t_s: float) -> None:
    ctx.sleep(t_s - ctx.now)


def first(r, handler):
    """The first attempt's row of a handler's only invocation."""
    rows = r.invocations[(r.invocations["handler"] == handler) & (r.invocations["attempt"] == 0)]
    assert len(rows) == 1
    return rows.iloc[0]


def survivor(ctx, p):
    """Runs beside the failing functions and must finish normally, on time."""
    s3 = ctx.storage("s3")
    for i in range(5):
        ctx.compute(seconds=1.0)
        s3.put(f"survivor/{i}", np.arange(1000, dtype=np.float64) * i)
    got = s3.get("survivor/4")
    assert np.array_equal(got, np.arange(1000) * 4.0)
    ctx.log("survivor", end=ctx.now)
    return "alive"


def run_limit(sim, victim, payload=None, catch=False, profile=None, memory=None, timeouts=None, **kw):
    """main invokes the victim and a survivor; returns (result, victim row, survivor row)."""

    def main(ctx, p):
        ctx.invoke("survivor", None)
        ctx.invoke("victim", {"catch": catch, **(payload or {})})

    def victim_wrapper(ctx, p):
        if not p["catch"]:
            return victim(ctx, p)
        try:
            victim(ctx, p)
        except errors.PlatformError as e:
            ctx.log("caught", error=type(e).__name__, message=str(e))
            return "handled"
        ctx.log("caught", error="none", message="")

    r = sim({"main": main, "victim": victim_wrapper, "survivor": survivor}, ("main", None),
            profile=profile, memory=memory, timeouts=timeouts, **kw)
    rows = r.invocations[r.invocations["attempt"] == 0].set_index("handler")
    assert rows.loc["survivor", "status"] == "ok"
    assert len(r.metric("survivor")) == 1
    return r, rows.loc["victim"], rows.loc["survivor"]


# ------------------------------------------------------------------ errors a function may catch
def sync_payload(ctx, p):
    ctx.invoke("survivor", b"x" * (6_000_000 + 1), sync=True)


def async_payload(ctx, p):
    ctx.invoke("survivor", b"x" * (256 * 1024 + 1))


def memcached_item(ctx, p):
    ctx.storage("memcached").put("big", b"x" * ((1 << 20) + 1))


def dynamodb_item(ctx, p):
    ctx.storage("dynamodb").put("big", b"x" * (400 * 1024 + 1))


def sqs_message(ctx, p):
    ctx.storage("sqs").send("q", b"x" * (256 * 1024 + 1))


def missing_key(ctx, p):
    ctx.storage("s3").get("no/such/key")


def memcached_list(ctx, p):
    ctx.storage("memcached").list("")


CATCHABLE = [
    (sync_payload, "PayloadTooLarge", "6000000"),
    (async_payload, "PayloadTooLarge", "262144"),
    (memcached_item, "ItemTooLarge", "1048576"),
    (dynamodb_item, "ItemTooLarge", "409600"),
    (sqs_message, "ItemTooLarge", "262144"),
    (missing_key, "KeyNotFound", "no/such/key"),
    (memcached_list, "NotSupported", "memcached"),
]


@pytest.mark.parametrize("victim,error,detail", CATCHABLE, ids=[c[0].__name__ for c in CATCHABLE])
def test_a_limit_raises_its_named_error_inside_the_function(sim, victim, error, detail):
    r, row, _ = run_limit(sim, victim, catch=True)
    caught = r.metric("caught").iloc[0]
    assert caught["error"] == error
    assert detail in caught["message"]
    assert row["status"] == "ok"


@pytest.mark.parametrize("victim,error,detail", CATCHABLE, ids=[c[0].__name__ for c in CATCHABLE])
def test_an_uncaught_limit_error_is_recorded_and_the_others_keep_running(sim, victim, error, detail):
    r, row, _ = run_limit(sim, victim)
    assert row["status"] == error
    assert detail in row["error"]
    # Lambda retries a failed asynchronous invocation twice: three failed attempts in all
    tries = r.invocations[r.invocations["handler"] == "victim"]
    assert list(tries["attempt"]) == [0, 1, 2]
    assert set(tries["status"]) == {error}
    assert r.summary["failures"] == {error: 3}
    assert r.summary["counts"]["retries"] == 2
    assert r.summary["status"] == "ok"


def test_payloads_exactly_at_the_limits_are_accepted(sim):
    def main(ctx, p):
        ctx.invoke("echo", b"x" * (256 * 1024))
        got = ctx.invoke("echo", b"x" * 6_000_000, sync=True)
        ctx.log("sync", n=len(got))

    r = sim({"main": main, "echo": lambda ctx, p: p}, ("main", None))
    assert set(r.invocations["status"]) == {"ok"}
    assert r.metric("sync")["n"].iloc[0] == 6_000_000


def test_a_sync_result_above_6mb_fails_the_caller_with_payloadtoolarge(sim):
    def main(ctx, p):
        try:
            ctx.invoke("big", None, sync=True)
        except errors.PayloadTooLarge as e:
            ctx.log("caught", message=str(e))

    r = sim({"main": main, "big": lambda ctx, p: b"x" * 6_000_001}, ("main", None))
    assert "6 MB" in r.metric("caught")["message"].iloc[0]


# ------------------------------------------------------------------ errors that end the function
def big_array(ctx, p):
    ctx.compute(seconds=0.25)
    try:
        ctx.memory.track(np.ones(80 * 2**20 // 8), "weights")  # 60 MiB runtime + 80 MiB > 128 MiB
    except Exception:  # a sandbox kill cannot be caught by user code
        ctx.log("swallowed")
    ctx.log("after")


def test_memory_limit_exceeded_ends_the_function_at_that_virtual_instant(sim):
    r, row, surv = run_limit(sim, big_array, memory={"victim": 128})
    assert row["status"] == "MemoryLimitExceeded"
    assert "128 MiB" in row["error"]
    assert row["end_s"] == pytest.approx(row["start_s"] + 0.25, abs=EPS)
    assert row["memory_mb"] == 128
    assert r.metric("swallowed").empty and r.metric("after").empty
    assert surv["status"] == "ok"


def test_a_fetched_object_counts_toward_the_working_set(sim):
    def victim(ctx, p):
        ctx.storage("s3").get("blob")  # 75 MB + a 60 MiB runtime > 128 MiB

    def main(ctx, p):
        ctx.storage("s3").put("blob", b"x" * 75_000_000)
        ctx.now
        ctx.invoke("victim", None)
        ctx.invoke("ok_reader", None)

    r = sim({"main": main, "victim": victim, "ok_reader": victim}, ("main", None),
            memory={"victim": 128, "ok_reader": 256}, profile={"functions": {"nic_mbs": 1000.0}})
    rows = r.invocations[r.invocations["attempt"] == 0].set_index("handler")
    assert rows.loc["victim", "status"] == "MemoryLimitExceeded"
    assert rows.loc["ok_reader", "status"] == "ok"


def slow(ctx, p):
    ctx.compute(seconds=p["compute_s"])
    ctx.storage("s3").put("late", b"written after the deadline")
    ctx.log("after_put")


def test_function_timeout_ends_the_function_at_its_deadline(sim):
    r, row, _ = run_limit(sim, slow, payload={"compute_s": 5.0}, timeouts={"victim": 2.0})
    assert row["status"] == "FunctionTimeout"
    assert row["end_s"] == pytest.approx(row["start_s"] + 2.0, abs=EPS)
    assert row["billed_ms"] == 2000.0
    assert r.metric("after_put").empty


def test_a_put_scheduled_after_the_deadline_is_not_visible_to_others(sim):
    def main(ctx, p):
        ctx.invoke("victim", {"compute_s": 5.0})
        sleep_until(ctx, 20.0)
        ctx.log("seen", exists=ctx.storage("s3").exists("late"))

    r = sim({"main": main, "victim": slow}, ("main", None), timeouts={"victim": 2.0})
    assert first(r, "victim")["status"] == "FunctionTimeout"
    assert not r.metric("seen")["exists"].iloc[0]
    assert "req_PUT" not in r.storage.columns or r.storage.set_index("service").loc["s3"].get("req_PUT", 0) == 0


def test_a_put_whose_transfer_would_end_after_the_deadline_is_discarded(sim):
    """A 10 MB put at 10 MB/s started 0.5 s before the deadline would commit 0.5 s after it."""

    def victim(ctx, p):
        ctx.compute(seconds=1.5)
        ctx.storage("s3").put("late", b"x" * 10_000_000)
        ctx.now

    def main(ctx, p):
        ctx.invoke("victim", None)
        sleep_until(ctx, 20.0)
        ctx.log("seen", exists=ctx.storage("s3").exists("late"))

    r = sim({"main": main, "victim": victim}, ("main", None), timeouts={"victim": 2.0})
    row = first(r, "victim")
    assert row["status"] == "FunctionTimeout"
    assert row["end_s"] == pytest.approx(row["start_s"] + 2.0, abs=EPS)
    assert not r.metric("seen")["exists"].iloc[0]


def test_a_function_timeout_cannot_be_caught_by_user_code(sim):
    def victim(ctx, p):
        try:
            ctx.compute(seconds=10)
            ctx.storage("s3").exists("x")
        except Exception:
            ctx.log("swallowed")
        ctx.storage("s3").put("after", b"1")

    r = sim({"main": lambda ctx, p: ctx.invoke("victim"), "victim": victim}, ("main", None),
            timeouts={"victim": 1.0})
    assert first(r, "victim")["status"] == "FunctionTimeout"
    assert r.metric("swallowed").empty


# ------------------------------------------------------------------ throttling
def test_concurrency_limit_throttles_and_every_invocation_still_completes(sim):
    """Limit 2 with the trigger plus 5 workers: 429s are counted, the client retries, all finish."""

    def main(ctx, p):
        for i in range(5):
            ctx.invoke("worker", i)

    def worker(ctx, i):
        ctx.compute(seconds=1.0)
        ctx.log("done", i=i)

    r = sim({"main": main, "worker": worker}, ("main", None),
            profile={"functions": {"concurrency_limit": 2}})
    assert r.summary["status"] == "ok"
    assert len(r.invocations) == 6
    assert set(r.invocations["status"]) == {"ok"}
    assert sorted(r.metric("done")["i"]) == [0, 1, 2, 3, 4]
    assert r.summary["counts"]["throttles"] > 0
    assert r.summary["counts"]["peak_concurrency"] == 2
    # never more than 2 at once, by the records
    ev = sorted([(s, 1) for s in r.invocations["start_s"]] + [(e, -1) for e in r.invocations["end_s"]],
                key=lambda x: (x[0], x[1]))
    live = peak = 0
    for _, d in ev:
        live += d
        peak = max(peak, live)
    assert peak <= 2


def test_a_throttled_sync_invoke_raises_throttled_after_the_client_retries(sim):
    def main(ctx, p):
        ctx.invoke("hog", None)
        ctx.sleep(2.0)
        try:
            ctx.invoke("quick", None, sync=True)
        except errors.Throttled as e:
            ctx.log("caught", message=str(e))

    r = sim({"main": main, "hog": lambda ctx, p: ctx.compute(seconds=1000), "quick": lambda ctx, p: 1},
            ("main", None), profile={"functions": {"concurrency_limit": 2, "throttle_max_retries": 3}})
    assert "429" in r.metric("caught")["message"].iloc[0]
    assert r.summary["counts"]["throttles"] == 4


def s3_writer(ctx, p):
    s3 = ctx.storage("s3")
    for i in range(p["n"]):
        s3.put(f"hot/{i}", b"x")
    ctx.now


def test_s3_returns_503_slowdown_above_the_prefix_write_rate(sim):
    r, row, _ = run_limit(sim, s3_writer, payload={"n": 5}, catch=True,
                          profile={"services": {"s3": {"write_rate_per_prefix": 3, "max_retries": 0}}})
    caught = r.metric("caught").iloc[0]
    assert caught["error"] == "Throttled"
    assert "503 SlowDown" in caught["message"]
    s3 = r.storage.set_index("service").loc["s3"]
    assert s3["throttles"] >= 1


def test_s3_slowdown_is_retried_by_the_client_and_the_writes_land(sim):
    def main(ctx, p):
        s3_writer(ctx, {"n": 8})
        ctx.log("listed", n=len(ctx.storage("s3").list("hot/")))

    r = sim({"main": main}, ("main", None),
            profile={"services": {"s3": {"write_rate_per_prefix": 3, "max_retries": 10}}})
    assert r.summary["status"] == "ok"
    assert r.metric("listed")["n"].iloc[0] == 8
    s3 = r.storage.set_index("service").loc["s3"]
    assert s3["throttles"] >= 1
    assert s3["req_PUT"] == 8
    assert r.summary["counts"]["throttles"] == s3["throttles"]


def dynamo_writer(ctx, p):
    db = ctx.storage("dynamodb")
    for i in range(p["n"]):
        db.put(f"item{i}", b"x" * 1000)
    ctx.now


def test_dynamodb_provisioned_capacity_throttles(sim):
    r, row, _ = run_limit(sim, dynamo_writer, payload={"n": 4}, catch=True,
                          profile={"services": {"dynamodb": {"mode": "provisioned", "wcu": 2, "max_retries": 0}}})
    caught = r.metric("caught").iloc[0]
    assert caught["error"] == "Throttled"
    assert "ProvisionedThroughputExceeded" in caught["message"]
    assert r.storage.set_index("service").loc["dynamodb", "throttles"] >= 1


def test_dynamodb_on_demand_does_not_throttle(sim):
    r, row, _ = run_limit(sim, dynamo_writer, payload={"n": 50}, catch=True)
    assert r.metric("caught")["error"].iloc[0] == "none"
    assert r.storage.set_index("service").loc["dynamodb", "throttles"] == 0
