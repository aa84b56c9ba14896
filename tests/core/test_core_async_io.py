"""Asynchronous storage requests (``get_async``/``put_async``/``send_async`` + ``ctx.gather``),
declared wire sizes (``charge_bytes``, ``payload.Sized``), Redis ``setnx_incr`` inside a
transaction, and the end-of-run storage oracle (``Experiment.check``)."""
from __future__ import annotations

import numpy as np
import pytest

from sls_ray import errors
from sls_ray.payload import Sized

EPS = 1e-9
MB = 1_000_000  # function NICs are 10 MB/s in the hand profile; S3 latency 20 ms (10 ms each way)


def test_an_async_get_overlaps_compute_and_gather_waits_for_the_later_of_both(sim):
    def main(ctx, p):
        s3 = ctx.storage("s3")
        s3.put("a", np.ones(4), charge_bytes=10 * MB)  # 1 s on the wire
        t0 = ctx.now
        f = s3.get_async("a")
        ctx.compute(seconds=0.5)
        ctx.log("short", dt=ctx.now - t0)  # flushes: the request is in flight, the clock is 0.5
        v = f.result()
        ctx.log("short_done", dt=ctx.now - t0, total=float(v.sum()))
        t0 = ctx.now
        f = s3.get_async("a")
        ctx.compute(seconds=2.0)
        f.result()
        ctx.log("long_done", dt=ctx.now - t0)

    r = sim({"main": main}, ("main", None))
    assert r.summary["status"] == "ok", r.invocations["error"].tolist()
    assert r.metric("short")["dt"].iloc[0] == pytest.approx(0.5, abs=EPS)
    done = r.metric("short_done").iloc[0]
    assert done["dt"] == pytest.approx(0.01 + 1.0 + 0.01, abs=EPS) and done["total"] == 4.0
    assert r.metric("long_done")["dt"].iloc[0] == pytest.approx(2.0, abs=EPS)  # the transfer hid under compute


def test_concurrent_async_transfers_share_the_function_nic(sim):
    def main(ctx, p):
        s3 = ctx.storage("s3")
        s3.put("a", b"x", charge_bytes=10 * MB)
        ctx.now
        t0 = ctx.now
        ctx.gather([s3.get_async("a"), s3.get_async("a")])
        ctx.log("two", dt=ctx.now - t0)
        t0 = ctx.now
        ctx.gather([s3.put_async("b", b"y", charge_bytes=5 * MB), s3.get_async("a")])
        ctx.log("mixed", dt=ctx.now - t0)

    r = sim({"main": main}, ("main", None))
    assert r.metric("two")["dt"].iloc[0] == pytest.approx(0.01 + 2.0 + 0.01, abs=EPS)
    # 5 MB up and 10 MB down on one 10 MB/s NIC: both at 5 MB/s for 1 s, then the rest of the get alone
    assert r.metric("mixed")["dt"].iloc[0] == pytest.approx(0.01 + 1.5 + 0.01, abs=EPS)
    s3 = r.storage.set_index("service").loc["s3"]
    assert s3["bytes_in"] == 15 * MB and s3["bytes_out"] == 30 * MB


def test_a_failed_async_request_raises_at_gather_and_a_dead_function_drops_its_requests(sim):
    def main(ctx, p):
        s3 = ctx.storage("s3")
        ok = s3.put_async("k", b"v")
        bad = s3.get_async("missing")
        try:
            ctx.gather([ok, bad])
        except errors.KeyNotFound:
            ctx.log("raised", ok_done=ok.done, value=ctx.storage("s3").get("k"))
        ctx.storage("s3").put_async("late", b"z", charge_bytes=50 * MB)  # 5 s upload, never awaited

    r = sim({"main": main}, ("main", None))
    row = r.metric("raised").iloc[0]
    assert bool(row["ok_done"]) and row["value"] == b"v"
    s3 = r.storage.set_index("service").loc["s3"]
    assert s3["req_PUT"] == 1 and s3["bytes_in"] == 1  # a request still unsent when the function returned is dropped

    def sender(ctx, p):
        s3 = ctx.storage("s3")
        s3.put_async("big", b"z", charge_bytes=100 * MB)  # 10 s on the wire
        ctx.compute(seconds=30.0)

    def reader(ctx, p):
        ctx.sleep(20.0)
        ctx.log("seen", exists=ctx.storage("s3").exists("big"))

    def main2(ctx, p):
        ctx.invoke("sender")
        ctx.invoke("reader")

    r = sim({"main": main2, "sender": sender, "reader": reader}, ("main", None),
            faults=[{"kind": "kill", "fid": 2, "at_s": 2.0}], profile={"functions": {"async_retries": 0}})
    assert not bool(r.metric("seen")["exists"].iloc[0])


def test_declared_sizes_are_charged_everywhere_and_the_value_arrives_unwrapped(sim):
    def main(ctx, p):
        s3 = ctx.storage("s3")
        t0 = ctx.now
        s3.put("k", np.arange(3.0), charge_bytes=20 * MB)
        v = s3.get("k")
        ctx.log("rt", dt=ctx.now - t0, value=float(v.sum()))
        mc = ctx.storage("memcached")
        try:
            mc.put("m", b"tiny", charge_bytes=2 * MB)
        except errors.ItemTooLarge as e:
            ctx.log("limit", message=str(e))

    r = sim({"main": main}, ("main", None))
    rt = r.metric("rt").iloc[0]
    assert rt["dt"] == pytest.approx(0.01 + 2.0 + 0.01 + 0.01 + 2.0 + 0.01, abs=EPS) and rt["value"] == 3.0
    assert "2000000 bytes" in r.metric("limit")["message"].iloc[0]


def test_sized_preloads_and_async_sends(sim):
    def main(ctx, p):
        sqs = ctx.storage("sqs")
        t0 = ctx.now
        ctx.gather([sqs.send_async("q", i) for i in range(50)])  # overlap: one round trip, not fifty
        ctx.log("sent", dt=ctx.now - t0, length=sqs.length("q"))

    r = sim({"main": main}, ("main", None))
    sent = r.metric("sent").iloc[0]
    assert sent["length"] == 50 and sent["dt"] < 0.05
    assert Sized(b"ab", 7).nbytes == 7


def test_setnx_incr_inside_a_transaction_counts_a_replayed_edge_once(sim):
    def main(ctx, p):
        redis = ctx.storage("redis")
        ops = [("setnx_incr", "edge/a>c", "count/c", 1), ("getv", "count/c")]
        first = redis.transaction(ops)
        replay = redis.transaction(ops)
        other = redis.transaction([("setnx_incr", "edge/b>c", "count/c", 1)])
        ctx.log("tx", first=str(first), replay=str(replay), other=str(other))

    r = sim({"main": main}, ("main", None))
    row = r.metric("tx").iloc[0]
    assert (row["first"], row["replay"], row["other"]) == ("[1, 1]", "[None, 1]", "[2]")


def test_metrics_a_function_stamped_after_its_death_are_dropped(sim):
    def victim(ctx, p):
        ctx.log("before")
        ctx.compute(seconds=10.0)
        ctx.log("after")  # stamped at ~10 s, but the function dies at 5 s
        ctx.storage("s3").exists("x")

    def main(ctx, p):
        ctx.invoke("victim")

    r = sim({"main": main, "victim": victim}, ("main", None), faults=[{"kind": "kill", "fid": 2, "at_s": 5.0}],
            profile={"functions": {"async_retries": 0}})
    kinds = set(r.metrics["kind"])
    assert "before" in kinds and "after" not in kinds
