"""The cost of a hand-computable run equals the profile's price formula (issue 3, "Tests must show" 4):
GB-seconds at 100 ms granularity + a price per request + storage requests and GB-months + node-hours
of a declared node for the whole run, idle included."""
from __future__ import annotations

import math

import pytest

PRICE_GB_S = 0.0000166667
PRICE_REQ = 0.2e-6
MONTH_S = 30 * 24 * 3600.0


def cost_main(ctx, p):
    s3 = ctx.storage("s3")
    s3.put("d/a", b"a" * 1_000_000)   # 0.02 + 0.1 s; commits at 0.5 + 0.01 + 0.1
    s3.get("d/a")                      # 0.12 s
    ctx.invoke("worker", None)         # 0.02 s (accepted at 0.75, worker cold-starts at 1.25)
    ctx.compute(seconds=0.3)           # main: 0.56 s -> billed 600 ms at 1024 MB


def cost_worker(ctx, p):
    ctx.storage("memcached").put("k", b"m" * 1000)   # 0.0005 + 1000 B / 10 MB/s = 0.0006 s
    ctx.compute(seconds=2.0)                          # worker: 2.0006 s -> billed 2100 ms at 512 MB


def test_cost_of_a_hand_computable_run_matches_the_price_formula(sim):
    # pinned: per-second billing with a 60 s minimum (the aws_2020 profile bills ElastiCache per node-hour)
    r = sim({"main": cost_main, "worker": cost_worker}, ("main", None), memory={"main": 1024, "worker": 512},
            services=["memcached"],
            profile={"services": {"memcached": {"billing_min_s": 60, "billing_increment_s": 1}}})
    assert r.summary["status"] == "ok"
    inv = r.invocations.set_index("handler")
    assert inv.loc["main", "end_s"] - inv.loc["main", "start_s"] == pytest.approx(0.56, abs=1e-9)
    assert list(inv["billed_ms"]) == [600.0, 2100.0]
    end = 1.25 + 2.0006
    assert r.summary["makespan_s"] == pytest.approx(end, abs=1e-9)

    expected = {
        "lambda_compute": (0.6 * 1024 / 1024 + 2.1 * 512 / 1024) * PRICE_GB_S,
        "lambda_requests": 2 * PRICE_REQ,
        "s3_requests": 1 * 0.005 / 1000 + 1 * 0.0004 / 1000,
        "s3_storage": 1e6 * (end - 0.61) / 1e9 / MONTH_S * 0.023,
        "memcached_nodes": math.ceil(max(end, 60.0)) * 0.068 / 3600,  # per-second, 60 s minimum
    }
    expected["total"] = sum(expected.values())
    got = r.summary["cost_usd"]
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-15), k
    assert round(got["total"], 2) == round(expected["total"], 2)  # "to the cent", trivially, and far beyond
    # storage.csv carries the same figures per service
    st = r.storage.set_index("service")
    assert st.loc["s3", "cost_usd"] == pytest.approx(expected["s3_requests"] + expected["s3_storage"], rel=1e-12)
    assert st.loc["memcached", "cost_usd"] == pytest.approx(expected["memcached_nodes"], rel=1e-12)
    assert (st.loc["s3", "req_PUT"], st.loc["s3", "req_GET"], st.loc["memcached", "req_PUT"]) == (1, 1, 1)
    assert (st.loc["s3", "bytes_in"], st.loc["s3", "bytes_out"]) == (1_000_000, 1_000_000)


def test_billing_rounds_up_to_100ms_and_exact_multiples_stay(sim):
    def main(ctx, p):
        for d in (0.3, 0.3000001, 0.05, 1.0):
            ctx.invoke("busy", d)

    r = sim({"main": main, "busy": lambda ctx, d: ctx.compute(seconds=d)}, ("main", None),
            profile={"functions": {"warm_start_s": 0.005}})
    busy = r.invocations[r.invocations["handler"] == "busy"]
    assert list(busy["billed_ms"]) == [300.0, 400.0, 100.0, 1000.0]


def test_a_declared_node_is_billed_for_the_whole_run_even_if_idle_and_an_unused_one_is_free(sim):
    def main(ctx, p):
        ctx.compute(seconds=100.0)

    r = sim({"main": main}, ("main", None), services=["redis"])
    cost = r.summary["cost_usd"]
    end = 0.5 + 100.0
    assert cost["redis_nodes"] == pytest.approx(math.ceil(end) * 0.068 / 3600, rel=1e-12)
    assert not any(k.startswith(("memcached", "vm", "s3", "dynamodb", "sqs")) for k in cost)
    assert list(r.storage["service"]) == ["redis"]


def test_dynamodb_bills_read_and_write_units(sim):
    def main(ctx, p):
        db = ctx.storage("dynamodb")
        db.put("a", b"x" * 1500)     # 2 write units (1 KB each)
        db.put("b", b"x" * 100)      # 1 write unit
        db.get("a")                  # 1 read unit (4 KB each)
        db.get("b")                  # 1 read unit

    r = sim({"main": main}, ("main", None))
    cost = r.summary["cost_usd"]
    assert cost["dynamodb_requests"] == pytest.approx((3 * 1.25 + 2 * 0.25) / 1e6, rel=1e-12)


def test_sqs_bills_each_64kb_chunk_as_a_request(sim):
    def main(ctx, p):
        sqs = ctx.storage("sqs")
        sqs.send("q", b"x" * 100)            # 1 request
        sqs.send("q", b"x" * (200 * 1024))   # 4 requests (64 KB chunks)
        m = sqs.receive("q")                 # 1
        sqs.delete_message("q", m.receipt)   # 1
        ctx.now

    r = sim({"main": main}, ("main", None))
    assert r.summary["cost_usd"]["sqs_requests"] == pytest.approx(7 * 0.40 / 1e6, rel=1e-12)


def test_a_vm_is_billed_per_second_with_a_60s_minimum_from_launch(sim):
    def main(ctx, p):
        ctx.storage("vm").put("w", b"x")  # waits for the VM to start (90 s)
        ctx.now

    r = sim({"main": main}, ("main", None))
    end = r.summary["makespan_s"]
    assert end > 90.0
    assert r.summary["cost_usd"]["vm_nodes"] == pytest.approx(math.ceil(end) * 0.096 / 3600, rel=1e-12)
