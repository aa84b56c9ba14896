"""Built-in batching (INFless §4.1) through the core's lock-step batch queues, on streams a
person can compute by hand, and the streaming latency histogram."""
from __future__ import annotations

import numpy as np

from sls_ray.api import LatencyHistogram, serve_batches
from sls_ray.storage.requests import NOT_SERVED

MS = 1_000_000


def _one(arrivals_ms, b, exec_ms, slo_ms, horizon_ms=10**6, free_ms=0):
    A = np.array(arrivals_ms, dtype=np.int64) * MS
    return serve_batches(A, np.array([0, A.size]), np.array([b]), np.array([(slo_ms - exec_ms) * MS]),
                         np.array([exec_ms * MS]), np.array([free_ms * MS]), horizon_ms * MS)


def test_a_batch_runs_when_b_requests_wait_and_the_next_waits_for_the_device():
    # b=4, t_exec=30 ms, SLO 100 ms (timeout 70 ms); a request every 10 ms
    r = _one([0, 10, 20, 30, 40, 50, 60, 70], b=4, exec_ms=30, slo_ms=100)
    # batch 1 is full at 30 -> done 60; batch 2 is full at 70, device free at 60 -> done 100
    assert list(r.done_ns // MS) == [60, 60, 60, 60, 100, 100, 100, 100]
    assert list(r.batch_sizes) == [4, 4]
    assert ((r.done_ns // MS) - np.array([0, 10, 20, 30, 40, 50, 60, 70]) <= 100).all()


def test_a_lone_request_runs_at_the_timeout_and_meets_the_slo_exactly():
    r = _one([5], b=8, exec_ms=40, slo_ms=100)      # timeout = 100 - 40 = 60 ms
    assert r.done_ns[0] // MS == 5 + 60 + 40        # latency 100 ms = the SLO
    assert list(r.batch_sizes) == [1]


def test_a_timeout_batch_takes_every_request_that_arrived_by_then_up_to_b():
    r = _one([0, 30, 59, 61], b=8, exec_ms=40, slo_ms=100)  # head times out at 60: takes 0, 30, 59
    assert list(r.done_ns // MS) == [100, 100, 100, 161]
    assert list(r.batch_sizes) == [3, 1]


def test_batches_that_would_start_after_the_horizon_stay_queued():
    r = _one([0, 10, 500], b=2, exec_ms=20, slo_ms=100, horizon_ms=200)
    assert list(r.done_ns // MS)[:2] == [30, 30]
    assert r.done_ns[2] == NOT_SERVED
    assert list(r.served_upto) == [2]


def test_many_instances_in_lock_step_match_one_at_a_time():
    rng = np.random.default_rng(1)
    streams = [np.sort(rng.integers(0, 2000, rng.integers(0, 60))) for _ in range(7)]
    b, ex, slo = [1, 2, 4, 8, 3, 5, 16], [5, 10, 20, 30, 7, 9, 40], [100, 60, 90, 200, 50, 80, 120]
    A = np.concatenate(streams).astype(np.int64) * MS
    off = np.concatenate([[0], np.cumsum([s.size for s in streams])])
    both = serve_batches(A, off, np.array(b), (np.array(slo) - np.array(ex)) * MS, np.array(ex) * MS,
                         np.zeros(7, np.int64), 10**12)
    for i, s in enumerate(streams):
        alone = _one(list(s), b[i], ex[i], slo[i], horizon_ms=10**6)
        assert (both.done_ns[off[i]:off[i + 1]] == alone.done_ns).all()


def test_histogram_percentiles_are_within_one_percent_and_slo_counts_are_exact():
    rng = np.random.default_rng(0)
    lat = rng.lognormal(np.log(50 * MS), 0.5, 100_000).astype(np.int64)
    grp = np.arange(lat.size) % 2
    h = LatencyHistogram(2, np.array([60 * MS, 60 * MS]))
    h.add(grp[:50_000], lat[:50_000])
    h.add(grp[50_000:], lat[50_000:])
    for q in (50, 99):
        exact = np.percentile(lat, q) / 1e9
        assert abs(h.percentile(q) / exact - 1) <= 0.011
    assert h.within.sum() == int((lat <= 60 * MS).sum())
    assert h.count() == lat.size
