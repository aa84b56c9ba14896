"""The invocation front end (sls_ray/invoker.py): warm containers, concurrency, seeded latencies."""
from __future__ import annotations

from sls_ray.config import load_profile
from sls_ray.invoker import Invoker, WarmPool
from sls_ray.vtime import NS_PER_S, to_ns


def test_a_released_container_is_warm_until_keep_alive_and_used_once():
    pool = WarmPool(keep_alive_ns=10 * NS_PER_S)
    assert not pool.take("f", 1024, 0), "nothing is warm before the first function ends"
    pool.release("f", 1024, 5 * NS_PER_S)
    assert not pool.take("f", 2048, 6 * NS_PER_S), "warmth is per memory size"
    assert not pool.take("g", 1024, 6 * NS_PER_S), "and per handler"
    assert pool.take("f", 1024, 15 * NS_PER_S), "idle exactly keep_alive: still warm"
    assert not pool.take("f", 1024, 15 * NS_PER_S), "a warm container serves one start"


def test_expired_containers_are_dropped_and_the_most_recent_is_reused_first():
    pool = WarmPool(keep_alive_ns=10 * NS_PER_S)
    pool.release("f", 512, 0)
    pool.release("f", 512, 8 * NS_PER_S)
    assert pool.take("f", 512, 12 * NS_PER_S)      # the one idle since 8 s
    assert not pool.take("f", 512, 12 * NS_PER_S)  # the one idle since 0 s expired at 10 s


def test_concurrency_is_counted_from_admission_and_its_peak_kept():
    inv = Invoker(load_profile("aws_2020", {"functions": {"concurrency_limit": 2}}).functions, seed=0)
    inv.admit()
    inv.admit()
    assert not inv.has_capacity() and inv.peak_active == 2
    inv.release()
    assert inv.has_capacity() and inv.active == 1 and inv.peak_active == 2


def test_start_latencies_and_backoffs_depend_on_seed_invocation_and_attempt_only():
    prof = load_profile("aws_2020").functions
    a, b = Invoker(prof, seed=1), Invoker(prof, seed=1)
    assert a.start_latency_ns(True, 7, 0) == b.start_latency_ns(True, 7, 0)
    assert a.start_latency_ns(True, 7, 0) != a.start_latency_ns(True, 7, 1)
    assert a.start_latency_ns(True, 7, 0) != Invoker(prof, seed=2).start_latency_ns(True, 7, 0)
    assert a.start_latency_ns(False, 7, 0) == to_ns(prof.warm_start_s)
    for tries in range(8):
        cap = min(prof.throttle_backoff_max_s, prof.throttle_backoff_s * 2 ** tries) * NS_PER_S
        assert 0.5 * cap <= a.backoff_ns(3, tries) <= cap + 1, "full jitter between half and the cap"
