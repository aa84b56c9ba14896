"""HHP's percentiles and fallbacks, and LSTH's long/short mix, on scripted idle-time histories."""
from __future__ import annotations

import numpy as np
import pytest

from sls_ray.infless.keepalive import RANGE_MIN, Policy, simulate_keepalive


def _fed(kind, its, gamma=0.5, start=0):
    p = Policy(kind, gamma)
    now = start
    for it in its:
        now += it
        p.observe(it, now)
    return p


def test_hhp_uses_the_5th_and_99th_percentiles_with_10_percent_margins():
    its = [10] * 50 + [20] * 50                     # 5th percentile 10, 99th percentile 20
    pre, keep = _fed("hhp", its).window()
    assert pre == pytest.approx(10 * 0.9)
    assert pre + keep == pytest.approx(20 * 1.1)


def test_hhp_falls_back_to_the_whole_range_when_the_histogram_is_flat_or_thin():
    flat = list(range(1, 240))                      # one IT per bin: CV of bin counts < 2
    assert _fed("hhp", flat).window() == (0.0, float(RANGE_MIN))
    assert _fed("hhp", [7, 7]).window() == (0.0, float(RANGE_MIN))   # too few samples


def test_hhp_predicts_the_next_idle_time_when_most_are_out_of_range():
    pre, keep = _fed("hhp", [300, 400, 500, 600, 700, 10]).window()   # 5 of 6 beyond 4 hours
    median = float(np.median([400, 500, 600, 700, 10]))              # the last five
    assert pre == pytest.approx(0.85 * median) and keep == pytest.approx(0.3 * median)


def test_lsth_mixes_the_long_and_the_recent_histograms_by_gamma():
    its = [30] * 40 + [2] * 40                       # a burst: the last hour holds only 2-minute gaps
    long = _fed("hhp", its).window()
    p = _fed("lsth", its, gamma=0.3)
    short = (2 * 0.9, max(2 * 1.1 - 2 * 0.9, 1.0))   # keep-alive is at least one minute
    pre, keep = p.window()
    assert pre == pytest.approx(0.3 * long[0] + 0.7 * short[0])
    assert keep == pytest.approx(0.3 * long[1] + 0.7 * short[1])


def test_a_periodic_function_is_cold_once_under_every_policy():
    counts = np.zeros((1, 600), np.int64)
    counts[0, ::10] = 1                              # every 10 minutes
    for kind in ("fixed", "hhp", "lsth"):
        row = simulate_keepalive(counts, kind).iloc[0]
        assert row.invocations == 60
        assert row.cold_starts == 1 if kind != "hhp" else row.cold_starts <= 2
