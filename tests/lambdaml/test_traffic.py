"""LambdaML's storage traffic, request for request as the original communicators send it.

The numbers below are derived by hand from DS3Lab/LambdaML's ``communicator/s3_primitive.py``,
``dynamo_primitive.py`` and ``memcached_primitive.py`` (and the ``storage/*`` clients they call):

AllReduce (``reduce_batch``), W workers, a vector of B bytes, round s:
  every rank PUTs its vector (W PUTs, W·B up). The leader polls back to back, no sleep (S3: LIST;
  DynamoDB: Scan, values included; Memcached: get_multi, values included); the poll after the
  last arrival finds all W. S3 then GETs each (W GETs); the leader deletes what it found (S3 one
  DeleteObjects; DynamoDB one DeleteItem per key, W; Memcached one delete_multi), PUTs the merged
  vector (1 PUT, B up) and expires older merged vectors (S3: LIST + DeleteObjects if any; DynamoDB:
  Scan — values included — + DeleteItem per old key; Memcached: delete_multi if any). The others
  load-or-wait the merged vector: a GET every latency + 0.1 s until it exists (P_s polls each).
ScatterReduce (``reduce_scatter_batch``): W−1 PUTs of the others' parts; a busy poll of the
  rank's part prefix; S3: a GET and a DELETE per part (one after another), DynamoDB: the Scan's
  values and one DeleteItem per part, Memcached: the multi-get's values and one delete_multi;
  one PUT of the reduced part; a busy poll of the round's reduced parts (S3: LIST + one GET per
  other part; DynamoDB: one Scan returning all W parts; Memcached: one multi-get). W = 1: one PUT.

The test world makes timing exact: no cold start or invoke latency (all ranks start at t = 0),
Memcached's node is up from t = 0, and (AllReduce) the leader computes D = 1.013 s before each
round, so it always arrives last and its first poll finds all W vectors. A request reaches the
service L/2 after it is sent and answers L/2 later (sls_ray/storage_calls.py), so P_s follows from
the leader's c round trips before its merged PUT: see ``load_or_wait_polls``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sls_ray.api import WaitTimeout, simulate_handlers
from sls_ray.lambdaml.channels import Channel
from sls_ray.lambdaml.protocols import AsyncModel, SyncCollective

N = 40                 # float64 values: B = 320 bytes, divisible by W in {1, 2, 4, 10}
B = 8 * N
D = 1.013              # the leader's compute before each AllReduce round
SLEEP = 0.1            # load_or_wait's sleep
LATENCY = {"s3": 0.05, "dynamodb": 0.01, "memcached": 0.0005}  # aws_2020_lambdaml
READS = {"s3": "list", "dynamodb": "scan", "memcached": "mget"}
# invoke latency 1 ns: latencies must be > 0
EXACT = {"functions": {"cold_start_s": 0.0, "cold_start_sigma": 0.0, "invoke_latency_s": 1e-9, "warm_start_s": 0.0},
         "services": {"memcached": {"startup_s": 0.0}}}


def trigger(ctx, p):
    for r in range(p["W"]):
        ctx.invoke("worker", {**p, "rank": r})


def worker(ctx, p):
    ch = Channel(ctx, p["svc"], "lml/", chunked=p["svc"] != "dynamodb", reads=READS[p["svc"]])
    ex = SyncCollective(ch, p["rank"], p["W"], p["pattern"])
    for s in range(p["rounds"]):
        if p["rank"] == 0 and p["pattern"] == "allreduce":
            ctx.compute(seconds=D)
        out = ex.exchange(s, np.full(N, float(p["rank"] + 1)))
        assert np.array_equal(out, np.full(N, p["W"] * (p["W"] + 1) / 2))


def traffic(svc: str, pattern: str, W: int, rounds: int) -> dict[str, int]:
    r = simulate_handlers({"trigger": trigger, "worker": worker},
                          ("trigger", {"svc": svc, "pattern": pattern, "W": W, "rounds": rounds}),
                          services=[svc], platform="aws_2020_lambdaml", profile=EXACT)
    assert r.summary["status"] == "ok"
    row = r.storage.set_index("service").loc[svc]
    return {k: int(v) for k, v in row.items() if k.startswith(("req_", "bytes_")) and int(v)}


def round_traffic(svc: str, pattern: str, W: int, s: int) -> dict[str, int]:
    """Requests and bytes of round s alone (all W ranks): s + 1 rounds minus s rounds."""
    after = traffic(svc, pattern, W, s + 1)
    before = traffic(svc, pattern, W, s) if s else {}
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)}


def load_or_wait_polls(svc: str, W: int, s: int) -> int:
    """P_s: GETs one non-leader sends in round s, from the timeline of the original's requests.

    c = the leader's round trips before its merged PUT: PUT own, poll, then S3 W GETs + one
    DeleteObjects (c = W + 3), DynamoDB W DeleteItems (W + 2), Memcached one delete_multi (3).
    Its merged vector commits at start + D + (c + ½)L. After it, the leader expires: S3 and
    DynamoDB list (scan) the merged prefix (1 round trip) and, from round 1 on, delete the
    previous merged vector (1 more). A non-leader's first load-or-wait GET arrives 1.5 L after its
    round starts (its PUT, then L/2) and the next every L + 0.1 s; it starts its next round when
    the successful GET answers (L/2 later): its next first GET arrives 2 L after the success."""
    L = LATENCY[svc]
    c = {"s3": W + 3, "dynamodb": W + 2, "memcached": 3}[svc]
    lists = svc != "memcached"
    period = L + SLEEP
    start, arrive = 0.0, 1.5 * L
    for r in range(s + 1):
        merged = start + D + (c + 0.5) * L
        polls = 1 + math.ceil((merged - arrive) / period - 1e-9)
        success = arrive + (polls - 1) * period
        start = merged + 0.5 * L + (int(lists) + int(r >= 1)) * L
        arrive = success + 2 * L
    return polls


def expected_allreduce(svc: str, W: int, s: int) -> dict[str, int]:
    P = load_or_wait_polls(svc, W, s) if W > 1 else 0
    old = int(s >= 1)  # a previous merged vector to expire
    if svc == "s3":
        out = {"req_PUT": W + 1, "req_LIST": 2, "req_GET": W + (W - 1) * P, "req_DELETE": 1 + old,
               "bytes_in": (W + 1) * B, "bytes_out": (2 * W - 1) * B}
    elif svc == "dynamodb":  # the expiry Scan reads the merged vectors present: this one and the previous
        out = {"req_PUT": W + 1, "req_LIST": 2, "req_GET": (W - 1) * P, "req_DELETE": W + old,
               "bytes_in": (W + 1) * B, "bytes_out": W * B + (1 + old) * B + (W - 1) * B}
    else:
        out = {"req_PUT": W + 1, "req_GET": 1 + (W - 1) * P, "req_DELETE": 1 + old,
               "bytes_in": (W + 1) * B, "bytes_out": (2 * W - 1) * B}
    return {k: v for k, v in out.items() if v}


def expected_scatter_reduce(svc: str, W: int) -> dict[str, int]:
    if W == 1:
        return {"req_PUT": 1, "bytes_in": B}  # W = 1 still writes its merged chunk
    part = B // W
    puts = {"req_PUT": W * (W - 1) + W, "bytes_in": W * (W - 1) * part + W * part}
    if svc == "s3":
        return {**puts, "req_LIST": 2 * W, "req_GET": 2 * W * (W - 1), "req_DELETE": W * (W - 1),
                "bytes_out": 2 * (W - 1) * B}
    if svc == "dynamodb":  # phase 2: each rank's Scan returns all W reduced parts
        return {**puts, "req_LIST": 2 * W, "req_DELETE": W * (W - 1), "bytes_out": (W - 1) * B + W * B}
    return {**puts, "req_GET": 2 * W, "req_DELETE": W, "bytes_out": 2 * (W - 1) * B}


@pytest.mark.parametrize("svc", ["s3", "dynamodb", "memcached"])
@pytest.mark.parametrize("W", [1, 2, 4, 10])
def test_allreduce_sends_the_originals_requests_in_the_first_round_and_in_steady_state(svc, W):
    assert round_traffic(svc, "allreduce", W, 0) == expected_allreduce(svc, W, 0)
    assert round_traffic(svc, "allreduce", W, 2) == expected_allreduce(svc, W, 2)


def test_the_hand_derived_polls_are_the_numbers_written_here():
    """P_0 and P_2 for W = 4 and 10, worked out on paper from the timeline above."""
    assert [load_or_wait_polls("s3", W, s) for W in (4, 10) for s in (0, 2)] == [10, 11, 12, 13]
    assert expected_allreduce("s3", 10, 2) == {"req_PUT": 11, "req_LIST": 2, "req_GET": 127, "req_DELETE": 2,
                                               "bytes_in": 3520, "bytes_out": 6080}


@pytest.mark.parametrize("svc", ["s3", "dynamodb", "memcached"])
@pytest.mark.parametrize("W", [1, 2, 4, 10])
def test_scatter_reduce_sends_the_originals_requests_in_the_first_round_and_in_steady_state(svc, W):
    assert round_traffic(svc, "scatter_reduce", W, 0) == expected_scatter_reduce(svc, W)
    assert round_traffic(svc, "scatter_reduce", W, 2) == expected_scatter_reduce(svc, W)


def test_s3_scatter_reduce_deletes_each_part_after_reading_it_one_request_after_another():
    """W = 4: after its three PUTs (3 L) a rank's first LIST finds all three parts; each part is a
    GET then a DELETE (2 L each), then the PUT of its part, a LIST and three GETs: 3 + 1 + 6 + 1 + 1
    + 3 = 15 request latencies of 50 ms."""
    def one(ctx, p):
        ch = Channel(ctx, "s3", "lml/", reads="list")
        t0 = ctx.now
        SyncCollective(ch, p["rank"], 4, "scatter_reduce").exchange(0, np.ones(N))
        ctx.log("round", rank=p["rank"], seconds=ctx.now - t0)

    def trig(ctx, p):
        for r in range(4):
            ctx.invoke("one", {"rank": r})

    r = simulate_handlers({"trig": trig, "one": one}, ("trig", None), services=["s3"],
                          platform="aws_2020_lambdaml", profile=EXACT)
    np.testing.assert_allclose(r.metric("round")["seconds"], 15 * 0.05, atol=1e-4)


def test_load_or_wait_gives_up_after_60_seconds_with_a_get_every_150_ms():
    def lonely(ctx, p):  # rank 1 of 2: the leader never comes
        ch = Channel(ctx, "s3", "lml/", reads="list")
        try:
            SyncCollective(ch, 1, 2, "allreduce").exchange(0, np.ones(N))
        except WaitTimeout:
            ctx.log("gave_up", at=ctx.now)

    r = simulate_handlers({"lonely": lonely}, ("lonely", None), services=["s3"], platform="aws_2020_lambdaml",
                          profile=EXACT)
    at = r.metric("gave_up")["at"].iloc[0]
    # PUT (50 ms), then GETs from t = 0.075 s every 0.15 s; the wait gives up 60 s after its first
    # GET reached S3 and the answer takes L/2 back
    assert at == pytest.approx(0.075 + 60.0 + 0.025, abs=1e-5)
    s3 = r.storage.set_index("service").loc["s3"]
    # GETs reach S3 at 0.075 + k·0.15 s up to 60 s after the first: k = 0..400, as the original's
    # loop sends GETs while at most 60 s have elapsed
    assert s3["req_PUT"] == 1 and s3["req_GET"] == math.floor(60.0 / 0.15) + 1 == 401


def test_async_exchange_writes_the_initial_model_then_reads_and_writes_once_per_call():
    """Rank 0's first call: the initial PUT, a load-or-wait GET, a PUT of its own model; later calls
    one GET and one PUT. The worker continues from the model it read."""
    def agent(ctx, p):
        ch = Channel(ctx, "s3", "lml/", reads="list")
        am = AsyncModel(ch, N, np.float64, rank=0)
        first = am.exchange(np.full(N, 1.0))
        second = am.exchange(np.full(N, 2.0))
        ctx.log("async", first=float(first[0]), second=float(second[0]))

    r = simulate_handlers({"agent": agent}, ("agent", None), services=["s3"], platform="aws_2020_lambdaml",
                          profile=EXACT)
    row = r.metric("async").iloc[0]
    assert (row["first"], row["second"]) == (1.0, 1.0)  # it read the initial model, then its own first write
    s3 = r.storage.set_index("service").loc["s3"]
    assert (s3["req_PUT"], s3["req_GET"], s3["bytes_in"], s3["bytes_out"]) == (3, 2, 3 * B, 2 * B)


def test_eventual_listing_hides_a_new_key_from_list_for_its_sampled_lag_but_not_from_get():
    """The aws_2020 option for S3 before December 2020: LIST (and LIST-polling) lag behind a PUT."""
    def probe(ctx, p):
        s3 = ctx.storage("s3")
        s3.put("t/a", b"x")
        listed_now = s3.list("t/")
        got = s3.get("t/a")
        t0 = ctx.now
        s3.wait_count("t/", 1, 0.0)
        ctx.log("probe", listed_now=listed_now, got=got, waited=ctx.now - t0)

    eventual = {"services": {"s3": {"consistency": "eventual", "list_lag_s": 2.0, "list_lag_sigma": 0.0}}}
    r = simulate_handlers({"probe": probe}, ("probe", None), services=["s3"], profile=eventual)
    row = r.metric("probe").iloc[0]
    assert row["listed_now"] == [] and row["got"] == b"x"
    # the key shows in LIST 2 s after its commit (0.01 s after the PUT was sent, L = 0.02 s)
    assert 1.9 < row["waited"] < 2.0
    strong = simulate_handlers({"probe": probe}, ("probe", None), services=["s3"])
    assert strong.metric("probe").iloc[0]["listed_now"] == ["t/a"]
