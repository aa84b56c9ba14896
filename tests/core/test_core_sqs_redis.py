"""SQS leases (visibility timeout, renew, delete, long polling) and the Redis state store's atomic
commands (INCR, SETNX + INCR of a replayed flag, compare-and-set, transactions)."""
from __future__ import annotations

import pytest

from sls_ray import errors

EPS = 1e-9
SQS_OW = 0.005  # SQS latency 10 ms: 5 ms each way


def sleep_until(ctx, t_s: float) -> None:
    ctx.sleep(t_s - ctx.now)


def lease_main(ctx, p):
    sqs = ctx.storage("sqs")
    sqs.send("tasks", {"task": 7})
    ctx.now
    m = sqs.receive("tasks", visibility_timeout=5.0)
    t_recv = ctx.now
    ctx.log("first", id=m.id, count=m.receive_count, body=m.body["task"], t=t_recv)
    ctx.log("during", length=sqs.length("tasks"), in_flight=sqs.in_flight("tasks"),
            again=sqs.receive("tasks", visibility_timeout=5.0) is None)
    sleep_until(ctx, t_recv + 5.0)
    m2 = sqs.receive("tasks", visibility_timeout=5.0)
    ctx.log("second", id=m2.id, count=m2.receive_count, stale=m2.receipt != m.receipt)
    # the old receipt is stale: deleting with it does not remove the message
    sqs.delete_message("tasks", m.receipt)
    ctx.log("after_stale_delete", in_flight=sqs.in_flight("tasks"))
    sqs.delete_message("tasks", m2.receipt)
    sleep_until(ctx, t_recv + 20.0)
    ctx.log("after_delete", length=sqs.length("tasks"), in_flight=sqs.in_flight("tasks"),
            none=sqs.receive("tasks") is None)


def test_a_received_message_that_is_not_deleted_reappears_after_its_visibility_timeout(sim):
    r = sim({"main": lease_main}, ("main", None))
    assert r.summary["status"] == "ok", r.invocations["error"].tolist()
    first, during, second = (r.metric(k).iloc[0] for k in ("first", "during", "second"))
    assert (first["count"], first["body"]) == (1, 7)
    assert (during["length"], during["in_flight"], bool(during["again"])) == (0, 1, True)
    assert second["id"] == first["id"] and second["count"] == 2 and bool(second["stale"])
    assert r.metric("after_stale_delete")["in_flight"].iloc[0] == 1
    done = r.metric("after_delete").iloc[0]
    assert (done["length"], done["in_flight"], bool(done["none"])) == (0, 0, True)


def test_a_message_becomes_visible_exactly_when_its_lease_expires(sim):
    """Received at server time t, visibility 5 s: a receive arriving at t + 5 s gets it, 1 ns earlier does not."""

    def main(ctx, p):
        sqs = ctx.storage("sqs")
        sqs.send("q", b"m")
        ctx.now
        t0 = ctx.now
        sqs.receive("q", visibility_timeout=5.0)  # arrives at t0 + ow: the lease ends at t0 + ow + 5
        for dt, label in ((-1e-9, "early"), (0.0, "on_time")):
            ctx.invoke("probe", {"at": t0 + 5.0 + dt, "label": label})

    def probe(ctx, p):
        sleep_until(ctx, p["at"])
        ctx.log("probe", label=p["label"], got=ctx.storage("sqs").receive("q", visibility_timeout=100) is not None)

    r = sim({"main": main, "probe": probe}, ("main", None))
    got = dict(zip(r.metric("probe")["label"], r.metric("probe")["got"]))
    assert got == {"early": False, "on_time": True}


def test_change_visibility_renews_the_lease(sim):
    def main(ctx, p):
        sqs = ctx.storage("sqs")
        sqs.send("q", b"job")
        ctx.now
        m = sqs.receive("q", visibility_timeout=5.0)
        t = ctx.now
        sleep_until(ctx, t + 3.0)
        ctx.log("renewed", ok=sqs.change_visibility("q", m.receipt, 5.0))  # lease now ends ~t + 8
        sleep_until(ctx, t + 6.0)
        ctx.log("at6", visible=sqs.receive("q", visibility_timeout=1.0) is not None)
        sleep_until(ctx, t + 9.0)
        m2 = sqs.receive("q", visibility_timeout=1.0)
        ctx.log("at9", visible=m2 is not None, count=m2.receive_count)
        sleep_until(ctx, t + 15.0)
        ctx.log("late_renew", ok=sqs.change_visibility("q", m2.receipt, 5.0))  # m2's lease ended at ~t+10

    r = sim({"main": main}, ("main", None))
    assert r.summary["status"] == "ok", r.invocations["error"].tolist()
    assert bool(r.metric("renewed")["ok"].iloc[0])
    assert not r.metric("at6")["visible"].iloc[0]
    assert bool(r.metric("at9")["visible"].iloc[0]) and r.metric("at9")["count"].iloc[0] == 2
    assert not r.metric("late_renew")["ok"].iloc[0]


def test_a_long_poll_receive_waits_for_a_send(sim):
    def main(ctx, p):
        ctx.invoke("sender", None)
        sleep_until(ctx, 2.0)
        m = ctx.storage("sqs").receive("q", visibility_timeout=30, wait=10.0)
        ctx.log("got", body=m.body, t=ctx.now)
        t0 = ctx.now
        ctx.log("empty", none=ctx.storage("sqs").receive("q", wait=3.0) is None, dt=ctx.now - t0)

    def sender(ctx, p):
        sleep_until(ctx, 5.0)
        ctx.storage("sqs").send("q", b"x" * 100)

    r = sim({"main": main, "sender": sender}, ("main", None))
    got = r.metric("got").iloc[0]
    assert got["body"] == b"x" * 100
    # the send commits at 5 + ow + 100 B / 10 MB/s; the waiting receive gets it back the same way
    assert got["t"] == pytest.approx(5.0 + SQS_OW + 1e-5 + 1e-5 + SQS_OW, abs=EPS)
    empty = r.metric("empty").iloc[0]
    assert bool(empty["none"]) and empty["dt"] == pytest.approx(SQS_OW + 3.0 + SQS_OW, abs=EPS)
    assert r.storage.set_index("service").loc["sqs", "req_RECEIVE"] == 2


def test_each_message_is_delivered_to_one_of_many_competing_receivers(sim):
    def main(ctx, p):
        sqs = ctx.storage("sqs")
        for i in range(20):
            sqs.send("work", i)
        ctx.now
        for w in range(5):
            ctx.invoke("worker", w)

    def worker(ctx, w):
        sqs = ctx.storage("sqs")
        while True:
            m = sqs.receive("work", visibility_timeout=60, wait=1.0)
            if m is None:
                return
            ctx.compute(seconds=0.1)
            sqs.delete_message("work", m.receipt)
            ctx.log("did", task=m.body, worker=w)

    r = sim({"main": main, "worker": worker}, ("main", None))
    did = r.metric("did")
    assert sorted(did["task"]) == list(range(20))
    assert did["worker"].nunique() > 1


def test_sqs_rejects_a_bad_visibility_timeout(sim):
    def main(ctx, p):
        try:
            ctx.storage("sqs").receive("q", visibility_timeout=50_000)
        except errors.QueueError as e:
            ctx.log("bad", message=str(e))

    r = sim({"main": main}, ("main", None))
    assert "43200" in r.metric("bad")["message"].iloc[0]


# ------------------------------------------------------------------ redis
def incr_worker(ctx, p):
    redis = ctx.storage("redis")
    for _ in range(5):
        ctx.log("incr", v=redis.incr("counter"))
        ctx.compute(seconds=float(ctx.rng.random()) * 1e-3)


def test_incr_is_atomic_across_many_functions(sim):
    def main(ctx, p):
        for i in range(20):
            ctx.invoke("w", i)
        sleep_until(ctx, 30.0)
        ctx.log("final", v=ctx.storage("redis").getv("counter"))

    r = sim({"main": main, "w": incr_worker}, ("main", None))
    assert sorted(r.metric("incr")["v"]) == list(range(1, 101))
    assert r.metric("final")["v"].iloc[0] == 100


def test_setnx_incr_counts_a_replayed_flag_once(sim):
    """NumPyWren's edge post-op: a parent that runs twice (lease expiry) must bump its child's counter once."""

    def main(ctx, p):
        for attempt in range(4):
            ctx.invoke("parent", attempt)
        sleep_until(ctx, 30.0)
        redis = ctx.storage("redis")
        ctx.log("final", count=redis.getv("deps:child"), other=redis.setnx_incr("edge:other->child", "deps:child"))

    def parent(ctx, attempt):
        ctx.sleep(1.0)
        ctx.log("post", attempt=attempt, v=ctx.storage("redis").setnx_incr("edge:parent->child", "deps:child"))

    r = sim({"main": main, "parent": parent}, ("main", None))
    vals = list(r.metric("post")["v"])
    assert sorted(v for v in vals if v == v and v is not None) == [1]
    assert sum(1 for v in vals if v is None or v != v) == 3
    final = r.metric("final").iloc[0]
    assert final["count"] == 1 and final["other"] == 2


def test_cas_lets_exactly_one_of_many_contenders_win(sim):
    def main(ctx, p):
        for i in range(10):
            ctx.invoke("c", i)

    def c(ctx, i):
        redis = ctx.storage("redis")
        sleep_until(ctx, 3.0)  # all at the same virtual instant
        won = redis.cas("owner", None, i)
        ctx.log("cas", i=i, won=won, owner=redis.getv("owner"))

    r = sim({"main": main, "c": c}, ("main", None))
    rows = r.metric("cas")
    assert rows["won"].sum() == 1
    winner = int(rows[rows["won"]]["i"].iloc[0])
    assert set(rows["owner"]) == {winner}


def test_setnx_and_transactions_are_atomic(sim):
    def main(ctx, p):
        redis = ctx.storage("redis")
        ctx.log("setnx", a=redis.setnx("k", 1), b=redis.setnx("k", 2), v=redis.getv("k"))
        out = redis.transaction([("incr", "n", 5), ("setv", "s", "x"), ("cas", "s", "x", "y"), ("getv", "s"),
                                 ("setnx", "k", 9), ("delete", "k")])
        ctx.log("tx", out=out, k=redis.getv("k"))
        try:
            redis.transaction([("flushall",)])
        except errors.NotSupported as e:
            ctx.log("bad", message=str(e))

    r = sim({"main": main}, ("main", None))
    s = r.metric("setnx").iloc[0]
    assert (bool(s["a"]), bool(s["b"]), s["v"]) == (True, False, 1)
    tx = r.metric("tx").iloc[0]
    assert tx["out"] == [5, True, True, "y", False, True] and tx.get("k") is None  # deleted
    assert "flushall" in r.metric("bad")["message"].iloc[0]
