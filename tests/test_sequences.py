"""Declared sequences (``client.get_each``, ``ctx.invoke_each``): one simcall, the loop's virtual
outcome (docs/design.md, "Declared sequences"). Every test runs a handler written as a loop
and the same handler written with the sequence, and compares every virtual record."""
from __future__ import annotations

import numpy as np
import pytest

from sls_ray.errors import KeyNotFound
from sls_ray.runtime import simulate_handlers

PROFILE = {
    "functions": {"cold_start_sigma": 0.0, "cold_start_s": 0.5, "warm_start_s": 0.005,
                  "invoke_latency_s": 0.02, "nic_mbs": 10.0, "async_retries": 0,
                  "memory_step_mb": 1},  # 160 MB below is off the 2020 grid of 64 MB steps
    "services": {"s3": {"latency_s": 0.02}},
}


def run(main, memory_mb: int = 1024, **payload):
    return simulate_handlers({"main": main, "noop": lambda ctx, p: p}, ("main", payload), profile=PROFILE,
                             memory={"main": memory_mb}, services=["s3"])


def same_outcome(a, b) -> None:
    """Equal invocations, storage bills and metrics; only the number of simcalls may differ."""
    assert a.invocations.equals(b.invocations)
    assert a.storage.equals(b.storage)
    assert a.metrics.equals(b.metrics)
    assert a.summary["makespan_s"] == b.summary["makespan_s"]
    assert a.summary["cost_usd"] == b.summary["cost_usd"]


def reader(use_each: bool, sizes: list[int], missing: int | None = None):
    def main(ctx, p):
        s3 = ctx.storage("s3")
        for i, n in enumerate(sizes):
            s3.put(f"k{i}", np.full(n, float(i)))
        ctx.compute(seconds=0.1)
        keys = [f"k{i}" if i != missing else "nope" for i in range(len(sizes))]
        try:
            got = s3.get_each(keys) if use_each else [s3.get(k) for k in keys]
        except KeyNotFound as e:  # a missing key fails the read that names it, at its instant
            ctx.log("error", error=type(e).__name__, t=ctx.now)
            return -1.0
        ctx.log("read", t=ctx.now, total=float(sum(v.sum() for v in got)), n=len(got))
        return float(len(got))

    return main


def test_get_each_reads_one_after_another_like_the_loop_in_one_simcall():
    sizes = [1000, 50_000, 200_000, 10]  # 8 KB to 1.6 MB: transfers of different lengths
    loop, each = run(reader(False, sizes)), run(reader(True, sizes))
    assert loop.summary["status"] == each.summary["status"] == "ok"
    same_outcome(loop, each)
    # PUTs then GETs, each after the previous: 20 ms latency plus its bytes at 10 MB/s
    wire = 8 * sum(sizes) / 10e6
    assert each.metric("read")["t"].iloc[0] == pytest.approx(0.5 + 0.1 + 2 * (0.02 * len(sizes) + wire), abs=1e-6)
    assert each.summary["counts"]["simcalls"] == loop.summary["counts"]["simcalls"] - (len(sizes) - 1)


def test_a_failed_read_stops_the_sequence_where_the_loop_stops():
    sizes = [1000, 1000, 1000, 1000]
    loop, each = run(reader(False, sizes, missing=2)), run(reader(True, sizes, missing=2))
    assert each.metric("error")["error"].iloc[0] == "KeyNotFound"
    same_outcome(loop, each)
    assert each.storage["req_GET"].iloc[0] == 3  # the fourth GET was never sent


def test_memory_headroom_stops_the_sequence_at_the_read_that_crosses_it():
    # 128 MB function: after the runtime base, 3 x 40 MB fit and the fourth does not
    sizes = [5_000_000] * 6
    loop = run(reader(False, sizes), memory_mb=128)
    each = run(reader(True, sizes), memory_mb=128)
    status = each.invocations.set_index("handler").loc["main", "status"]
    assert status == "MemoryLimitExceeded"
    same_outcome(loop, each)
    assert each.storage["req_GET"].iloc[0] < len(sizes)  # the reads after the crossing never happened


def test_invoke_each_acknowledges_one_invocation_after_another_like_the_loop():
    def main(use_each):
        def handler(ctx, p):
            payloads = [{"i": i} for i in range(5)]
            ids = ctx.invoke_each("noop", payloads) if use_each else [ctx.invoke("noop", q) for q in payloads]
            ctx.log("ids", t=ctx.now, first=ids[0], last=ids[-1], n=len(ids))
        return handler

    loop, each = run(main(False)), run(main(True))
    assert each.summary["counts"]["invocations"] == 6
    same_outcome(loop, each)
    assert each.metric("ids")["t"].iloc[0] == pytest.approx(0.5 + 5 * 0.02, abs=1e-9)


def test_an_empty_sequence_returns_no_answers_without_a_simcall():
    def main(ctx, p):
        ctx.log("got", n=len(ctx.storage("s3").get_each([])) + len(ctx.invoke_each("noop", [])))

    r = run(main)
    assert r.summary["status"] == "ok" and r.metric("got")["n"].iloc[0] == 0
