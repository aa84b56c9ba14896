"""Open-loop request streams: requests are rows, not threads; batching servers see real queueing."""
from __future__ import annotations

from sls_ray.runtime import simulate_handlers


def _server(ctx, p):
    stream = ctx.storage("requests")
    while True:
        batch = stream.take(p["max_batch"], wait=5.0)
        if batch is None:
            return
        ctx.compute(seconds=p["base_s"] + p["per_req_s"] * batch["count"])
        stream.complete(batch)


def _front(ctx, p):
    for _ in range(p["servers"]):
        ctx.invoke("server", p)


def _run(rate, servers, max_batch, duration=20.0, base_s=0.004, per_req_s=0.001):
    p = {"servers": servers, "max_batch": max_batch, "base_s": base_s, "per_req_s": per_req_s}
    return simulate_handlers({"front": _front, "server": _server}, ("front", p), services=["requests"],
                             profile={"services": {"requests": {"kind": "requests", "rate_per_s": rate,
                                                                "duration_s": duration, "latency_s": 0.001}}})


def test_every_request_is_served_and_latency_is_queueing_plus_service():
    r = _run(rate=200, servers=2, max_batch=8)
    rep = r.summary["services"]["requests"]
    assert r.summary["status"] == "ok"
    assert rep["served"] == rep["arrived"] > 3000
    # light load: a request waits at most one batch's service time plus the 1 ms hop
    assert 0.005 < rep["latency_p50_s"] < 0.02


def test_batching_keeps_an_overloaded_single_server_stable():
    # 600 req/s against 4 ms + 1 ms/request (+1 ms hop, 4 KB/request at 70 MB/s): unbatched capacity
    # is ~165/s, batched well above 600/s
    unbatched = _run(rate=600, servers=1, max_batch=1, duration=10.0).summary["services"]["requests"]
    batched = _run(rate=600, servers=1, max_batch=64, duration=10.0).summary["services"]["requests"]
    # (the first ~0.5 s of arrivals queue behind the cold start either way: compare medians)
    assert unbatched["latency_p50_s"] > 10 * batched["latency_p50_s"]
    assert batched["latency_p50_s"] < 0.2


def test_same_seed_same_latencies_for_a_hundred_thousand_requests():
    """(Requests per real second: benchmarks/speed_checks.py, out of the default tier.)"""
    a = _run(rate=5000, servers=4, max_batch=32, duration=20.0)
    b = _run(rate=5000, servers=4, max_batch=32, duration=20.0)
    assert a.summary["trace_hash"] == b.summary["trace_hash"]
    served = a.summary["services"]["requests"]["served"]
    assert served > 90_000
