"""Causality (issue 8): the lookahead covers every latency a run can produce, faults included; no
latency is zero; the event loop refuses an event before its clock; and a speed-up fault gives
the same trace however the threads are timed."""
from __future__ import annotations

import pytest
from test_core_determinism import jitter_main, jitter_worker  # noqa: E402  (tests/core is on sys.path)

from sls_ray.config import load_profile
from sls_ray.errors import ConfigError
from sls_ray.faults import SlowDown
from sls_ray.kernel import SimKernel
from sls_ray.vtime import RANK_TIMER


def _kernel(**services) -> SimKernel:
    return SimKernel(load_profile("aws_2020", {"services": services}), 0, hooks=None)


def test_the_lookahead_is_the_smallest_one_way_latency():
    k = _kernel()
    assert k.lookahead_ns == 250_000  # Memcached/Redis/VM: 0.5 ms round trip, 0.25 ms each way


def test_a_speed_up_fault_shortens_the_lookahead_to_its_fastest_latency():
    k = _kernel()
    k.apply_faults([SlowDown(service="memcached", factor=0.1, t0_s=1.0, t1_s=2.0),
                    SlowDown(service="memcached", factor=0.5, t0_s=1.5, t1_s=3.0),
                    SlowDown(service="s3", factor=4.0, t0_s=0.0, t1_s=9.0)])
    assert k.lookahead_ns == 12_500  # 0.25 ms x 0.1 x 0.5: both windows overlap in [1.5, 2)
    svc = k.services["memcached"]
    assert min(svc.one_way_ns(t) for t in (0, 1_200_000_000, 1_700_000_000, 2_500_000_000)) >= k.lookahead_ns


def test_a_slow_down_fault_leaves_the_lookahead_alone():
    k = _kernel()
    k.apply_faults([SlowDown(service="memcached", factor=3.0, t0_s=1.0, t1_s=2.0)])
    assert k.lookahead_ns == 250_000


@pytest.mark.parametrize("where", [{"functions": {"invoke_latency_s": 0}},
                                   {"services": {"memcached": {"latency_s": 0}}},
                                   {"services": {"s3": {"latency_s": -0.01}}}])
def test_a_zero_or_negative_latency_is_refused(where):
    with pytest.raises(ConfigError, match="latency_s"):
        load_profile("aws_2020", where)


def test_the_event_loop_refuses_an_event_before_its_clock():
    k = _kernel()
    k.now_ns = 1_000
    k.schedule(1_000, RANK_TIMER, 1, 0, lambda t: None)  # at the clock: fine
    with pytest.raises(RuntimeError, match="causality"):
        k.schedule(999, RANK_TIMER, 1, 0, lambda t: None)


def test_a_speed_up_fault_gives_the_same_trace_however_threads_are_timed(sim):
    """Memcached 100x faster during the whole run: the lookahead shrinks with it, so no request
    can land in the kernel's past, and random real sleeps never change the outcome."""
    fault = [{"kind": "slowdown", "service": "memcached", "factor": 0.01, "t0_s": 0.0, "t1_s": 100.0}]
    hashes, reads = set(), []
    for jitter in (False, True, True):
        r = sim({"main": jitter_main, "jitter_worker": jitter_worker}, ("main", {"n": 8, "jitter": jitter}),
                profile={"functions": {"cold_start_sigma": 0.3}}, faults=fault)
        assert r.summary["status"] == "ok"
        hashes.add(r.summary["trace_hash"])
        reads.append(r.metric("step"))
    assert len(hashes) == 1
    assert sorted(reads[0]["counter"]) == list(range(1, 25))
    base = sim({"main": jitter_main, "jitter_worker": jitter_worker}, ("main", {"n": 8, "jitter": False}),
               profile={"functions": {"cold_start_sigma": 0.3}})
    assert base.summary["trace_hash"] not in hashes  # the fault did speed requests up
    assert r.summary["makespan_s"] < base.summary["makespan_s"]
